// The Responses API through the official Node SDK: a plain response, the
// `responses.stream()` helper, and a function-tool round trip. The demo
// instance is on Azure under reading-openai, so acme's `api` key may hold
// state here.

import assert from "node:assert/strict";
import { test } from "node:test";
import { client, emulatedReply } from "./gateway.mjs";

const WEATHER_TOOL = {
  type: "function",
  name: "get_weather",
  description: "Current weather for a city",
  parameters: {
    type: "object",
    properties: { city: { type: "string" } },
    required: ["city"],
  },
  strict: false,
};

test("responses.create returns output_text, usage and the serving host", async () => {
  const openai = client();
  const prompt = "Draft the Frontier rollout note.";
  const { data, response } = await openai.responses
    .create({ model: "gpt-4o", input: prompt })
    .withResponse();
  const host = response.headers.get("x-treaty-host");
  assert.ok(host?.startsWith("azure-"), `served on Azure, not ${host}`);
  assert.equal(data.object, "response");
  assert.equal(data.status, "completed");
  assert.match(data.output_text, emulatedReply(host, prompt));
  assert.ok(data.usage.input_tokens > 0 && data.usage.output_tokens > 0);

  const stored = await openai.responses.retrieve(data.id);
  assert.equal(stored.output_text, data.output_text);
});

test("responses.stream helper: deltas make the final response", async () => {
  const openai = client();
  const prompt = "Stream a short status update.";
  const stream = openai.responses.stream({ model: "gpt-4o", input: prompt });
  const deltas = [];
  const types = [];
  stream.on("response.output_text.delta", (event) => deltas.push(event.delta));
  stream.on("event", (event) => types.push(event.type));
  const final = await stream.finalResponse();

  assert.equal(types[0], "response.created");
  assert.equal(types.at(-1), "response.completed");
  assert.ok(deltas.length > 1, "the text arrives in several deltas");
  assert.equal(deltas.join(""), final.output_text);
  assert.ok(final.output_text.endsWith(prompt));
  assert.equal(final.status, "completed");

  const stored = await openai.responses.retrieve(final.id);
  assert.equal(stored.output_text, final.output_text);
});

test("function tool round trip with previous_response_id", async () => {
  const openai = client();
  const first = await openai.responses.create({
    model: "gpt-4o",
    input: "What's the weather in Oslo?",
    tools: [WEATHER_TOOL],
  });
  const calls = first.output.filter((item) => item.type === "function_call");
  assert.equal(calls.length, 1, JSON.stringify(first.output));
  const [call] = calls;
  assert.equal(call.name, "get_weather");
  assert.ok(call.call_id);
  JSON.parse(call.arguments);

  const result = JSON.stringify({ city: "Oslo", temperature_c: 7 });
  const second = await openai.responses.create({
    model: "gpt-4o",
    previous_response_id: first.id,
    tools: [WEATHER_TOOL],
    input: [{ type: "function_call_output", call_id: call.call_id, output: result }],
  });
  assert.equal(second.status, "completed");
  assert.ok(second.output_text.includes(`tool results: ${result}`), second.output_text);

  // Streamed, the call is rebuilt by the helper from argument deltas.
  const stream = openai.responses.stream({
    model: "gpt-4o",
    input: "Weather in Bergen?",
    tools: [WEATHER_TOOL],
  });
  const streamed = await stream.finalResponse();
  const streamedCall = streamed.output.find((item) => item.type === "function_call");
  assert.ok(streamedCall, JSON.stringify(streamed.output));
  assert.equal(streamedCall.name, "get_weather");
  JSON.parse(streamedCall.arguments);
});
