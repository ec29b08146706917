//! Entry points for the fuzz targets in `fuzz/`: each upstream decoder fed
//! arbitrary bytes, cut into arbitrary chunks the way a network delivers
//! them. Only with the `fuzzing` feature; never in a normal build.
//!
//! A decoder may refuse its input with an [`UpstreamError`]; what a fuzz
//! run looks for is a panic, a hang or unbounded memory.
#![allow(clippy::expect_used)]

use std::sync::OnceLock;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};

use crate::UpstreamError;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a current-thread runtime for the fuzz targets")
    })
}

/// `data` after its first byte, in chunks of that byte's size (1..=256).
fn chunks(data: &[u8]) -> impl Stream<Item = Result<Bytes, UpstreamError>> + Send + 'static {
    let (size, rest) = match data.split_first() {
        Some((n, rest)) => (usize::from(*n) + 1, rest),
        None => (1, data),
    };
    let parts: Vec<Result<Bytes, UpstreamError>> = rest
        .chunks(size)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    futures_util::stream::iter(parts)
}

fn drain<T>(stream: impl Stream<Item = T> + Send) {
    runtime().block_on(async {
        let mut stream = std::pin::pin!(stream);
        while stream.next().await.is_some() {}
    });
}

fn deadline() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(3600)
}

/// Server-sent events, as every SSE-speaking provider reads them.
pub fn sse(data: &[u8]) {
    drain(crate::sse::events(chunks(data)));
}

/// An OpenAI-family chat stream, and a full reply body.
pub fn openai(data: &[u8]) {
    let _ = crate::openai_family::reply::probe_body(data);
    let _guard = runtime().enter();
    drain(crate::openai_family::reply::decode_chat_stream(
        chunks(data),
        true,
        deadline(),
        None,
    ));
}

/// An Anthropic Messages stream, and a full reply translated.
pub fn anthropic(data: &[u8]) {
    let _ = crate::anthropic::response::translate(data, 0);
    let _guard = runtime().enter();
    drain(crate::anthropic::stream::decode(
        chunks(data),
        true,
        deadline(),
        None,
    ));
}

/// A Gemini stream, and a full reply translated.
pub fn gemini(data: &[u8]) {
    let _ = crate::gemini::response::translate(data, "gemini-model", 0);
    let _guard = runtime().enter();
    drain(crate::gemini::stream::decode(
        chunks(data),
        crate::gemini::stream::Options {
            forward_usage: true,
            model: "gemini-model".into(),
            deadline: deadline(),
            secret: None,
        },
    ));
}

/// Bedrock's binary event-stream framing, the ConverseStream decoder over
/// it, and a full Converse reply translated.
pub fn bedrock(data: &[u8]) {
    let _ = crate::bedrock::response::translate(data, "id", "model", 0);
    let mut buf = BytesMut::from(data);
    while let Ok(Some(_)) = crate::bedrock::stream::next_frame(&mut buf) {}
    let _guard = runtime().enter();
    drain(crate::bedrock::stream::decode(
        chunks(data),
        true,
        deadline(),
        "id".into(),
        "model".into(),
        Vec::new(),
    ));
}
