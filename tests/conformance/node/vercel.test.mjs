// The Vercel AI SDK (`ai` 6 with `@ai-sdk/openai` 3), a client nobody here
// wrote, in its ordinary multi-turn loop: each turn's `response.messages`
// goes back in the next call. Its OpenAI provider speaks the Responses API
// with `store` on by default, so it sends earlier assistant turns back as
// `{"type":"item_reference","id":"msg_…"}`; the gateway must resolve them
// from the items it stored itself.

import assert from "node:assert/strict";
import { test } from "node:test";
import { createOpenAI } from "@ai-sdk/openai";
import { generateText, streamText } from "ai";
import { demoKey, emulatedReply } from "./gateway.mjs";

/** A provider whose fetch keeps every request body it sends. */
function recordingProvider() {
  const bodies = [];
  const provider = createOpenAI({
    baseURL: process.env.TREATY_BASE_URL,
    apiKey: demoKey(),
    fetch: async (url, init) => {
      if (typeof init?.body === "string") bodies.push(JSON.parse(init.body));
      return fetch(url, init);
    },
  });
  return { provider, bodies };
}

/** The ids of the `item_reference` inputs in one request body. */
function references(body) {
  return (body.input ?? []).filter((item) => item.type === "item_reference").map((item) => item.id);
}

const words = (text) => text.split(/\s+/).filter(Boolean).length;

test("generateText: three turns with response.messages sent back as item references", async () => {
  const { provider, bodies } = recordingProvider();
  const model = provider("gpt-4o");
  const messages = [];
  const turns = ["Plan the Frontier rollout.", "Now list the risks.", "Summarise both."];
  const results = [];

  for (const prompt of turns) {
    messages.push({ role: "user", content: prompt });
    const result = await generateText({ model, messages, maxRetries: 0 });
    const host = result.response.headers?.["x-treaty-host"];
    assert.ok(host, "the gateway names the serving host");
    assert.match(result.text, emulatedReply(host, prompt));
    messages.push(...result.response.messages);
    results.push(result);
  }

  // The SDK did send references (otherwise this test would prove nothing):
  // the second call names the first answer's item, the third names both.
  assert.equal(bodies.length, 3);
  assert.equal(bodies[1].store ?? true, true, "store is on, the SDK's default");
  const firstItem = results[0].response.messages[0].content[0].providerOptions?.openai?.itemId;
  assert.ok(firstItem?.startsWith("msg_"), `the first answer carries its item id, not ${firstItem}`);
  assert.deepEqual(references(bodies[1]), [firstItem]);
  assert.equal(references(bodies[2]).length, 2);

  // The referenced text reached the upstream: the emulator counts every
  // message's words in input_tokens, so the third turn's prompt holds at
  // least the first two turns' prompts and answers.
  const [first, second, third] = results;
  assert.ok(
    third.usage.inputTokens >=
      second.usage.inputTokens + words(second.text) + words(turns[2]),
    `input tokens ${third.usage.inputTokens} after ${second.usage.inputTokens}: the references were not resolved`,
  );
  assert.ok(second.usage.inputTokens >= first.usage.inputTokens + words(first.text));
});

test("streamText: a streamed answer referenced by the next turn", async () => {
  const { provider, bodies } = recordingProvider();
  const model = provider("gpt-4o");
  const messages = [{ role: "user", content: "Stream the status." }];

  const first = streamText({ model, messages, maxRetries: 0 });
  let streamed = "";
  for await (const delta of first.textStream) streamed += delta;
  assert.ok(streamed.endsWith("Stream the status."), `streamed text: ${streamed}`);
  messages.push(...(await first.response).messages);

  messages.push({ role: "user", content: "And the next step?" });
  const second = await generateText({ model, messages, maxRetries: 0 });
  assert.ok(second.text.endsWith("And the next step?"));
  assert.equal(references(bodies[1]).length, 1, "the streamed answer went back as a reference");
  assert.ok(second.usage.inputTokens >= words(streamed) + words("And the next step?"));
});
