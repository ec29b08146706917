//! What upstream hosts send back: SSE, the OpenAI-family, Anthropic and
//! Gemini streams and full replies, Bedrock's binary event stream and
//! Converse replies. The first byte picks the decoder, the second the
//! size of the network chunks.
#![no_main]

use libfuzzer_sys::fuzz_target;
use treaty_providers::fuzz;

fuzz_target!(|data: &[u8]| {
    let Some((which, rest)) = data.split_first() else {
        return;
    };
    match which % 5 {
        0 => fuzz::sse(rest),
        1 => fuzz::openai(rest),
        2 => fuzz::anthropic(rest),
        3 => fuzz::gemini(rest),
        _ => fuzz::bedrock(rest),
    }
});
