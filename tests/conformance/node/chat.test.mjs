// A plain chat completion through the official Node SDK.

import assert from "node:assert/strict";
import { test } from "node:test";
import { client, emulatedReply } from "./gateway.mjs";

test("chat completion returns the emulated reply, usage and the serving host", async () => {
  const prompt = "Classify this logistics report.";
  const { data, response } = await client({ tenant: "dod" })
    .chat.completions.create({ model: "gpt-4o-mini", messages: [{ role: "user", content: prompt }] })
    .withResponse();

  const host = response.headers.get("x-treaty-host");
  assert.ok(host, "the reply names its host in x-treaty-host");
  assert.equal(data.object, "chat.completion");
  assert.equal(data.choices.length, 1);
  assert.equal(data.choices[0].finish_reason, "stop");
  assert.equal(data.choices[0].message.role, "assistant");
  assert.match(data.choices[0].message.content, emulatedReply(host, prompt));
  assert.ok(data.usage.prompt_tokens > 0 && data.usage.completion_tokens > 0);
  assert.equal(data.usage.total_tokens, data.usage.prompt_tokens + data.usage.completion_tokens);
});
