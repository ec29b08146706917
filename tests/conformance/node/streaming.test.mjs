// Streamed chat completions through the official Node SDK: the same text
// as a plain reply, usage at the end, and chunks that arrive as the
// upstream sends them rather than all at once.

import assert from "node:assert/strict";
import { test } from "node:test";
import { client, onHost } from "./gateway.mjs";

// The emulator drips stream chunks this far apart when the directive is in
// the last user message.
const DRIP_MS = 200;

test("stream concatenates to the plain reply and ends with usage", async () => {
  const openai = client({ tenant: "eurobank", channel: "gcp-marketplace" });
  const prompt = "Explain IFRS 9 in two lines.";
  const messages = [{ role: "user", content: prompt }];
  const { data: stream, response } = await openai.chat.completions
    .create({ model: "gpt-4o", messages, stream: true, stream_options: { include_usage: true } })
    .withResponse();
  const host = response.headers.get("x-treaty-host");
  assert.ok(host, "the stream names its host in x-treaty-host");

  const chunks = [];
  for await (const chunk of stream) chunks.push(chunk);
  const streamed = chunks.map((c) => c.choices[0]?.delta?.content ?? "").join("");
  const finish = chunks.map((c) => c.choices[0]?.finish_reason).filter(Boolean);
  assert.deepEqual(finish, ["stop"]);

  // include_usage: only the last chunk carries usage, with no choices.
  const last = chunks.at(-1);
  assert.deepEqual(last.choices, []);
  assert.ok(last.usage && last.usage.completion_tokens > 0);
  assert.ok(chunks.slice(0, -1).every((c) => !c.usage));

  // The same prompt on the same host, unstreamed: the same text and usage.
  const { data: plain } = await onHost(host, () =>
    openai.chat.completions.create({ model: "gpt-4o", messages }).withResponse(),
  );
  assert.equal(streamed, plain.choices[0].message.content);
  assert.ok(streamed.endsWith(prompt));
  assert.equal(last.usage.completion_tokens, plain.usage.completion_tokens);
  assert.equal(last.usage.prompt_tokens, plain.usage.prompt_tokens);
});

test("stream chunks arrive one by one, not buffered", async () => {
  const words = "one two three four five six seven eight";
  const started = performance.now();
  const stream = await client({ product: "chat" }).chat.completions.create({
    model: "gpt-4o-mini",
    messages: [{ role: "user", content: `${words} [[fault:slow=${DRIP_MS}]]` }],
    stream: true,
  });
  const content = [];
  for await (const chunk of stream) {
    const text = chunk.choices[0]?.delta?.content;
    if (text) content.push({ at: performance.now() - started, text });
  }
  const ended = performance.now() - started;

  const reply = content.map((c) => c.text).join("");
  assert.ok(reply.startsWith("Emulated ") && reply.includes(words), reply);
  assert.ok(reply.split(/\s+/).length >= 10, reply);

  // Drip-fed at 200 ms a chunk, the stream lasts seconds; a gateway that
  // buffered it would deliver the first word only at the end.
  const first = content[0].at;
  assert.ok(first < ended - 1000, `first content chunk at ${first} ms, stream ended at ${ended} ms`);
  // And each chunk arrives on its own, not coalesced with its neighbours.
  const gaps = content.slice(1).map((c, i) => c.at - content[i].at).sort((a, b) => a - b);
  const median = gaps[Math.floor(gaps.length / 2)];
  assert.ok(median > DRIP_MS / 2, `gaps between chunks (ms): ${gaps.join(", ")}`);
});
