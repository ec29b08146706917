//! Spans exported over OTLP/HTTP to a real receiver (a local server that
//! decodes the protobuf request as a collector would), with their GenAI
//! and Treaty attributes, the client's trace as their parent, and the
//! `traceparent` passed on to an upstream.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use tokio::sync::mpsc;
use tracing_subscriber::layer::SubscriberExt;
use treaty_telemetry::span::{
    GenAiRequest, GenAiResponse, TreatyAttrs, follow_client, inject, record_request,
    record_response, record_treaty,
};
use treaty_telemetry::trace::{FileSettings, TraceSettings, layer};

const CLIENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

async fn receiver() -> (String, mpsc::UnboundedReceiver<ExportTraceServiceRequest>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let app = Router::new().route(
        "/v1/traces",
        post(move |body: Bytes| {
            let tx = tx.clone();
            async move {
                let req = ExportTraceServiceRequest::decode(body).unwrap();
                let _ = tx.send(req);
                ""
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), rx)
}

fn attrs(span: &Span) -> HashMap<String, Any> {
    span.attributes
        .iter()
        .filter_map(|kv| Some((kv.key.clone(), kv.value.clone()?.value?)))
        .collect()
}

fn text(a: &HashMap<String, Any>, key: &str) -> String {
    match a.get(key) {
        Some(Any::StringValue(s)) => s.clone(),
        other => panic!("{key}: {other:?}"),
    }
}

fn int(a: &HashMap<String, Any>, key: &str) -> i64 {
    match a.get(key) {
        Some(Any::IntValue(n)) => *n,
        other => panic!("{key}: {other:?}"),
    }
}

fn list(a: &HashMap<String, Any>, key: &str) -> Vec<String> {
    match a.get(key) {
        Some(Any::ArrayValue(arr)) => arr
            .values
            .iter()
            .map(|v| match &v.value {
                Some(Any::StringValue(s)) => s.clone(),
                other => panic!("{key}: {other:?}"),
            })
            .collect(),
        other => panic!("{key}: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_reach_a_collector_with_genai_and_treaty_attributes() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (base, mut received) = receiver().await;
    let env = |name: &str| (name == "OTEL_EXPORTER_OTLP_ENDPOINT").then(|| base.clone());
    let settings = TraceSettings::resolve(env, &FileSettings::default(), "replica-1").unwrap();
    assert_eq!(settings.endpoint, format!("{base}/v1/traces"));
    let (otel, guard) = layer(&settings).unwrap();
    let subscriber = tracing_subscriber::registry().with(otel);

    let mut upstream_headers = http::HeaderMap::new();
    tracing::subscriber::with_default(subscriber, || {
        let mut client = http::HeaderMap::new();
        client.insert(
            "traceparent",
            format!("00-{CLIENT_TRACE}-00f067aa0ba902b7-01")
                .parse()
                .unwrap(),
        );
        let request = tracing::info_span!("chat gpt-4o");
        follow_client(&request, &client);
        record_request(
            &request,
            &GenAiRequest {
                operation: "chat",
                provider: "azure.ai.openai",
                request_model: "gpt-4o",
            },
        );
        record_treaty(
            &request,
            &TreatyAttrs {
                class: Some("stateless_api"),
                reading: Some("reading-openai"),
                clauses: &["C1", "C3"],
                host: Some("azure-eastus"),
                ledger_seq: Some(42),
            },
        );
        {
            let _entered = request.enter();
            let attempt = tracing::info_span!("attempt azure-eastus");
            record_treaty(
                &attempt,
                &TreatyAttrs {
                    host: Some("azure-eastus"),
                    ..TreatyAttrs::default()
                },
            );
            inject(&attempt, &mut upstream_headers);
        }
        record_response(
            &request,
            &GenAiResponse {
                response_model: Some("gpt-4o-2024-08-06"),
                input_tokens: Some(12),
                output_tokens: Some(30),
                finish_reasons: &["stop"],
                error_type: None,
            },
        );
    });
    let traceparent = upstream_headers
        .get("traceparent")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        traceparent.starts_with(&format!("00-{CLIENT_TRACE}-")),
        "the upstream joins the client's trace: {traceparent}"
    );
    tokio::task::spawn_blocking(move || guard.flush())
        .await
        .unwrap();

    let mut spans = Vec::new();
    let mut resource = HashMap::new();
    while spans.len() < 2 {
        let req = tokio::time::timeout(Duration::from_secs(10), received.recv())
            .await
            .expect("spans exported within 10 s")
            .unwrap();
        for rs in req.resource_spans {
            if let Some(r) = &rs.resource {
                for kv in &r.attributes {
                    if let Some(Any::StringValue(v)) = kv.value.clone().and_then(|v| v.value) {
                        resource.insert(kv.key.clone(), v);
                    }
                }
            }
            for ss in rs.scope_spans {
                spans.extend(ss.spans);
            }
        }
    }
    assert_eq!(
        resource.get("service.name").map(String::as_str),
        Some("treaty")
    );
    assert_eq!(
        resource.get("service.instance.id").map(String::as_str),
        Some("replica-1")
    );
    let chat = spans.iter().find(|s| s.name == "chat gpt-4o").unwrap();
    let attempt = spans
        .iter()
        .find(|s| s.name == "attempt azure-eastus")
        .unwrap();
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    assert_eq!(
        hex(&chat.trace_id),
        CLIENT_TRACE,
        "the client's trace continues"
    );
    assert_eq!(hex(&chat.parent_span_id), "00f067aa0ba902b7");
    assert_eq!(
        attempt.parent_span_id, chat.span_id,
        "attempts are children"
    );
    assert!(traceparent.contains(&hex(&attempt.span_id)));

    let a = attrs(chat);
    assert_eq!(text(&a, "gen_ai.operation.name"), "chat");
    assert_eq!(text(&a, "gen_ai.provider.name"), "azure.ai.openai");
    assert_eq!(text(&a, "gen_ai.request.model"), "gpt-4o");
    assert_eq!(text(&a, "gen_ai.response.model"), "gpt-4o-2024-08-06");
    assert_eq!(int(&a, "gen_ai.usage.input_tokens"), 12);
    assert_eq!(int(&a, "gen_ai.usage.output_tokens"), 30);
    assert_eq!(list(&a, "gen_ai.response.finish_reasons"), ["stop"]);
    assert_eq!(text(&a, "treaty.class"), "stateless_api");
    assert_eq!(text(&a, "treaty.reading"), "reading-openai");
    assert_eq!(list(&a, "treaty.clauses"), ["C1", "C3"]);
    assert_eq!(text(&a, "treaty.host"), "azure-eastus");
    assert_eq!(int(&a, "treaty.ledger.seq"), 42);
    assert!(!a.contains_key("error.type"));
    assert_eq!(text(&attrs(attempt), "treaty.host"), "azure-eastus");
}

#[test]
fn settings_follow_the_standard_variables_over_the_file() {
    let file = FileSettings {
        otlp_endpoint: Some("http://file:4318/".into()),
        service_name: Some("from-file".into()),
        sample_ratio: Some(0.5),
    };
    let none = |_: &str| None;
    assert_eq!(
        TraceSettings::resolve(none, &FileSettings::default(), "r"),
        None,
        "off"
    );
    let s = TraceSettings::resolve(none, &file, "r").unwrap();
    assert_eq!(
        (s.endpoint.as_str(), s.service_name.as_str(), s.sample_ratio),
        ("http://file:4318/v1/traces", "from-file", 0.5)
    );
    let env = |name: &str| {
        match name {
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT" => Some("http://env:4318/custom"),
            "OTEL_EXPORTER_OTLP_HEADERS" => Some("authorization=Bearer%20abc, x-tenant=ops"),
            "OTEL_SERVICE_NAME" => Some("gateway-eu"),
            "OTEL_EXPORTER_OTLP_TIMEOUT" => Some("2500"),
            "OTEL_TRACES_SAMPLER_ARG" => Some("0.1"),
            _ => None,
        }
        .map(str::to_owned)
    };
    let s = TraceSettings::resolve(env, &file, "r").unwrap();
    assert_eq!(
        s.endpoint, "http://env:4318/custom",
        "the signal's own URL is used as is"
    );
    assert_eq!(
        s.headers,
        [
            ("authorization".to_owned(), "Bearer abc".to_owned()),
            ("x-tenant".to_owned(), "ops".to_owned())
        ]
    );
    assert_eq!(s.service_name, "gateway-eu");
    assert_eq!(s.timeout, Duration::from_millis(2_500));
    assert_eq!(s.sample_ratio, 0.1);
}

#[test]
fn without_a_layer_the_helpers_do_nothing_and_inject_nothing() {
    let span = tracing::info_span!("chat");
    record_request(
        &span,
        &GenAiRequest {
            operation: "chat",
            provider: "openai",
            request_model: "gpt-4o",
        },
    );
    let mut headers = http::HeaderMap::new();
    inject(&span, &mut headers);
    assert!(headers.is_empty());
}
