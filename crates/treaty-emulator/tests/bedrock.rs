//! Emulated Bedrock over real HTTP: SigV4 is verified (a correct signature
//! answers, a wrong secret, key id, body or missing signature gets
//! Bedrock's 403 shapes), replies are Converse-shaped, streams are binary
//! event-stream frames with valid CRCs, and faults come in Bedrock's error
//! shapes and as slow or corrupt streams.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::{Duration, Instant, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use bytes::Bytes;
use serde_json::{Value, json};
use support::{client, start};
use treaty_emulator::{DEFAULT_AWS_ACCESS_KEY_ID, DEFAULT_AWS_SECRET_ACCESS_KEY};

/// Signs and sends `POST url` as a Bedrock client would.
async fn signed_post(
    url: &str,
    body: &[u8],
    key_id: &str,
    secret: &str,
    extra: &[(&str, &str)],
) -> reqwest::Response {
    let identity: Identity = Credentials::new(key_id, secret, None, None, "test").into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("bedrock")
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let headers = [("content-type", "application/json")];
    let signable = SignableRequest::new(
        "POST",
        url,
        headers.iter().copied(),
        SignableBody::Bytes(body),
    )
    .unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    let mut request = client()
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_vec());
    for (name, value) in instructions.headers() {
        request = request.header(name, value);
    }
    for (name, value) in extra {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

fn converse_body(text: &str) -> Vec<u8> {
    json!({"messages": [{"role": "user", "content": [{"text": text}]}],
        "inferenceConfig": {"maxTokens": 100}})
    .to_string()
    .into_bytes()
}

/// `(event type, payload)` of each frame, checking lengths and CRCs.
fn decode_frames(mut bytes: Bytes) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let total = u32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize;
        let frame = bytes.split_to(total);
        let message = aws_smithy_eventstream::frame::read_message_from(frame).unwrap();
        let kind = message
            .headers()
            .iter()
            .find(|h| h.name().as_str() == ":event-type")
            .map(|h| h.value().as_string().unwrap().as_str().to_owned())
            .unwrap();
        out.push((kind, serde_json::from_slice(message.payload()).unwrap()));
    }
    out
}

#[tokio::test]
async fn signed_converse_answers_in_converse_shape() {
    let emulator = start().await;
    let url = format!(
        "{}/bedrock-useast1/model/anthropic.claude-v2%3A1/converse",
        emulator.url()
    );
    let response = signed_post(
        &url,
        &converse_body("Hello"),
        DEFAULT_AWS_ACCESS_KEY_ID,
        DEFAULT_AWS_SECRET_ACCESS_KEY,
        &[],
    )
    .await;
    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key("x-amzn-requestid"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["output"]["message"]["content"][0]["text"],
        "Emulated reply from bedrock-useast1 (anthropic.claude-v2:1): Hello"
    );
    assert_eq!(body["stopReason"], "end_turn");
    assert!(body["usage"]["totalTokens"].as_u64().unwrap() > 0);
    assert_eq!(emulator.requests_for("bedrock-useast1"), 1);
}

#[tokio::test]
async fn bad_signatures_get_bedrocks_403s() {
    let emulator = start().await;
    let url = format!("{}/h/model/m/converse", emulator.url());
    let body = converse_body("Hello");
    let cases = [
        (
            signed_post(
                &url,
                &body,
                DEFAULT_AWS_ACCESS_KEY_ID,
                "not-the-secret",
                &[],
            )
            .await,
            "InvalidSignatureException",
            "signature we calculated does not match",
        ),
        (
            signed_post(
                &url,
                &body,
                "AKIDSOMEONEELSE",
                DEFAULT_AWS_SECRET_ACCESS_KEY,
                &[],
            )
            .await,
            "UnrecognizedClientException",
            "security token",
        ),
        (
            client().post(&url).body(body.clone()).send().await.unwrap(),
            "MissingAuthenticationTokenException",
            "Missing Authentication Token",
        ),
    ];
    for (response, kind, message) in cases {
        assert_eq!(response.status(), 403);
        assert_eq!(response.headers()["x-amzn-errortype"], kind);
        let json: Value = response.json().await.unwrap();
        assert!(
            json["message"].as_str().unwrap().contains(message),
            "{json}"
        );
        assert!(!json.to_string().contains(DEFAULT_AWS_SECRET_ACCESS_KEY));
    }
    // A body changed after signing: the payload hash no longer matches.
    let identity: Identity = Credentials::new(
        DEFAULT_AWS_ACCESS_KEY_ID,
        DEFAULT_AWS_SECRET_ACCESS_KEY,
        None,
        None,
        "t",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("bedrock")
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let signable =
        SignableRequest::new("POST", &url, std::iter::empty(), SignableBody::Bytes(&body)).unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    let mut request = client().post(&url).body(converse_body("Hellp"));
    for (name, value) in instructions.headers() {
        request = request.header(name, value);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 403);
    assert_eq!(
        response.headers()["x-amzn-errortype"],
        "InvalidSignatureException"
    );
}

#[tokio::test]
async fn converse_stream_is_framed_with_valid_crcs() {
    let emulator = start().await;
    let url = format!("{}/model/m/converse-stream", emulator.url());
    let response = signed_post(
        &url,
        &converse_body("one two"),
        DEFAULT_AWS_ACCESS_KEY_ID,
        DEFAULT_AWS_SECRET_ACCESS_KEY,
        &[],
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "application/vnd.amazon.eventstream"
    );
    let frames = decode_frames(response.bytes().await.unwrap());
    let kinds: Vec<&str> = frames.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(kinds.first(), Some(&"messageStart"));
    assert_eq!(
        &kinds[kinds.len() - 3..],
        ["contentBlockStop", "messageStop", "metadata"]
    );
    let text: String = frames
        .iter()
        .filter_map(|(_, p)| p["delta"]["text"].as_str())
        .collect();
    assert_eq!(text, "Emulated reply from default (m): one two");
    assert_eq!(frames[frames.len() - 2].1["stopReason"], "end_turn");
}

#[tokio::test]
async fn faults_come_in_bedrock_shapes() {
    let emulator = start().await;
    let url = format!("{}/h/model/m/converse", emulator.url());
    let key = (DEFAULT_AWS_ACCESS_KEY_ID, DEFAULT_AWS_SECRET_ACCESS_KEY);
    for (spec, status, kind) in [
        ("status=429,retry_after=1", 429, "ThrottlingException"),
        ("status=503", 503, "ServiceUnavailableException"),
        ("status=400", 400, "ValidationException"),
        ("status=500", 500, "InternalServerException"),
    ] {
        let response = signed_post(
            &url,
            &converse_body("x"),
            key.0,
            key.1,
            &[("x-emulator-fault", spec)],
        )
        .await;
        assert_eq!(response.status(), status, "{spec}");
        assert_eq!(response.headers()["x-amzn-errortype"], kind);
        let json: Value = response.json().await.unwrap();
        assert!(json["message"].as_str().unwrap().contains("Emulated fault"));
    }
    // A directive in the text works like the header.
    let response = signed_post(
        &url,
        &converse_body("[[fault:status=429]]"),
        key.0,
        key.1,
        &[],
    )
    .await;
    assert_eq!(response.status(), 429);

    // Slow drip: frames arrive apart.
    let stream_url = format!("{}/h/model/m/converse-stream", emulator.url());
    let started = Instant::now();
    let response = signed_post(
        &stream_url,
        &converse_body("a b c"),
        key.0,
        key.1,
        &[("x-emulator-fault", "slow=40")],
    )
    .await;
    let frames = decode_frames(response.bytes().await.unwrap());
    assert!(started.elapsed() >= Duration::from_millis(40 * (frames.len() as u64 - 1)));

    // Corrupt: the second frame's CRC does not match.
    let response = signed_post(
        &stream_url,
        &converse_body("a b c"),
        key.0,
        key.1,
        &[("x-emulator-fault", "malformed")],
    )
    .await;
    let mut bytes = response.bytes().await.unwrap();
    let first = u32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize;
    assert!(aws_smithy_eventstream::frame::read_message_from(bytes.split_to(first)).is_ok());
    let second = u32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize;
    assert!(aws_smithy_eventstream::frame::read_message_from(bytes.split_to(second)).is_err());
}

#[tokio::test]
async fn titan_and_cohere_embeddings() {
    let emulator = start().await;
    let key = (DEFAULT_AWS_ACCESS_KEY_ID, DEFAULT_AWS_SECRET_ACCESS_KEY);
    let url = format!(
        "{}/model/amazon.titan-embed-text-v2%3A0/invoke",
        emulator.url()
    );
    let body = json!({"inputText": "one two three", "dimensions": 256, "normalize": true});
    let response = signed_post(&url, body.to_string().as_bytes(), key.0, key.1, &[]).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-amzn-bedrock-input-token-count"], "3");
    let json: Value = response.json().await.unwrap();
    assert_eq!(json["embedding"].as_array().unwrap().len(), 256);
    assert_eq!(json["inputTextTokenCount"], 3);

    let url = format!("{}/model/cohere.embed-english-v3/invoke", emulator.url());
    let body = json!({"texts": ["a", "b"], "input_type": "search_document"});
    let response = signed_post(&url, body.to_string().as_bytes(), key.0, key.1, &[]).await;
    let json: Value = response.json().await.unwrap();
    assert_eq!(json["embeddings"].as_array().unwrap().len(), 2);
}
