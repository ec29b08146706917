// The running gateway and its demo keys, for the Node conformance tests.
//
// run.sh starts `treaty demo --serve` and exports TREATY_BASE_URL (ending
// in /v1, as the SDK expects) and TREATY_KEYS_FILE; the tests never start
// or stop the gateway themselves.

import fs from "node:fs";
import OpenAI from "openai";

function required(name) {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} is not set; run tests/conformance/run.sh, which starts the gateway`);
  }
  return value;
}

const keys = JSON.parse(fs.readFileSync(required("TREATY_KEYS_FILE"), "utf8"));

/** The secret of one demo key. */
export function demoKey({ tenant = "acme", channel = "direct", product = "api" } = {}) {
  const found = keys.find(
    (k) => k.tenant === tenant && k.channel === channel && k.product === product,
  );
  if (!found) throw new Error(`no demo key for ${tenant}/${channel}/${product}`);
  return found.key;
}

/** An official client with retries off, so errors arrive as the gateway sent them. */
export function client(which) {
  return new OpenAI({
    baseURL: required("TREATY_BASE_URL"),
    apiKey: demoKey(which),
    maxRetries: 0,
    timeout: 30_000,
  });
}

/** The emulator's deterministic reply from `host`; its deployment name is not checked. */
export function emulatedReply(host, text) {
  const escape = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  return new RegExp(`^Emulated reply from ${escape(host)} \\([^)]+\\): ${escape(text)}$`);
}

/**
 * Repeats `call` (returning `{ data, response }` from `.withResponse()`)
 * until `host` serves it. Routing spreads requests over six hosts at
 * random, so a match takes about six tries; 100 makes a miss ~1e-8 likely.
 */
export async function onHost(host, call, tries = 100) {
  const seen = new Set();
  for (let i = 0; i < tries; i++) {
    const result = await call();
    const got = result.response.headers.get("x-treaty-host");
    if (got === host) return result;
    seen.add(got);
  }
  throw new Error(`${tries} requests never reached ${host} (served by: ${[...seen].join(", ")})`);
}
