//! Large replies for memory tests (`stream_bytes=N`): filler text handed out
//! in ~1 KiB slices and a non-streamed `chat.completion` body whose content
//! is N bytes, written lazily slice by slice so neither the emulator nor the
//! test ever holds the whole reply in memory.

use crate::reply::{Usage, completion_id, unix_now};
use crate::stream::Truncated;
use axum::body::Body;
use bytes::Bytes;
use futures_util::StreamExt as _;
use futures_util::stream;

/// One slice of filler: 128 words of "emulate ", 1 KiB exactly.
const FILLER_LEN: usize = 1024;
static FILLER: [u8; FILLER_LEN] = {
    let unit = b"emulate ";
    let mut out = [0u8; FILLER_LEN];
    let mut i = 0;
    while i < FILLER_LEN {
        out[i] = unit[i % unit.len()];
        i += 1;
    }
    out
};

/// The next slice of filler text when `left` bytes remain to be sent.
pub(crate) fn filler_slice(left: u64) -> &'static str {
    let len = usize::try_from(left).map_or(FILLER_LEN, |left| left.min(FILLER_LEN));
    // The filler is ASCII, so every prefix is valid UTF-8.
    std::str::from_utf8(&FILLER[..len]).unwrap_or_default()
}

/// Words in `bytes` bytes of filler (a cut word counts as one).
pub(crate) fn filler_words(bytes: u64) -> u64 {
    bytes.div_ceil(8)
}

/// A non-streamed completion with `bytes` bytes of filler content.
pub(crate) fn completion_body(model: &str, bytes: u64, prompt_tokens: u64) -> Body {
    let usage = Usage::new(prompt_tokens, filler_words(bytes));
    // serde_json quotes and escapes the model name; plain strings cannot fail.
    let model = serde_json::to_string(model).unwrap_or_else(|_| "\"\"".to_owned());
    let usage = serde_json::to_string(&usage).unwrap_or_else(|_| "null".to_owned());
    let head = format!(
        "{{\"id\":\"{}\",\"object\":\"chat.completion\",\"created\":{},\"model\":{model},\
         \"system_fingerprint\":\"emulator\",\"choices\":[{{\"index\":0,\"message\":\
         {{\"role\":\"assistant\",\"content\":\"",
        completion_id(),
        unix_now(),
    );
    let tail = format!(
        "\",\"refusal\":null}},\"logprobs\":null,\"finish_reason\":\"stop\"}}],\"usage\":{usage}}}"
    );
    let slices = stream::unfold(bytes, |left| async move {
        (left > 0).then(|| {
            let slice = filler_slice(left);
            (
                Ok::<_, Truncated>(Bytes::from_static(slice.as_bytes())),
                left - slice.len() as u64,
            )
        })
    });
    let parts = stream::iter([Ok(Bytes::from(head))])
        .chain(slices)
        .chain(stream::iter([Ok(Bytes::from(tail))]));
    Body::from_stream(parts)
}
