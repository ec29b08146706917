//! OpenTelemetry traces over OTLP/HTTP (protobuf), as a `tracing` layer.
//!
//! [`TraceSettings::resolve`] reads the standard variables
//! (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, else `OTEL_EXPORTER_OTLP_ENDPOINT`
//! plus `/v1/traces`; `OTEL_EXPORTER_OTLP_HEADERS` and `_TRACES_HEADERS`;
//! `OTEL_EXPORTER_OTLP_TIMEOUT`; `OTEL_SERVICE_NAME`;
//! `OTEL_TRACES_SAMPLER_ARG` as the ratio) over the config file's
//! `[telemetry]`, environment first, as OpenTelemetry's own SDKs do.
//! [`layer`] builds the layer and a [`TraceGuard`] that flushes on drop;
//! with no endpoint anywhere it returns `None`, and no layer at all is
//! installed: spans then cost what plain `tracing` spans cost, and the
//! attribute helpers do nothing.
//!
//! Spans are batched and exported from the SDK's own thread; the HTTP
//! request itself runs on the Tokio runtime through Treaty's reqwest (no
//! second HTTP stack, no gRPC). An export that fails is logged by the SDK
//! and dropped: tracing never slows or fails a request.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_http::{HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{BatchSpanProcessor, Sampler, SdkTracerProvider};

/// Where and how spans are exported.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceSettings {
    /// The full traces URL, e.g. `http://collector:4318/v1/traces`.
    pub endpoint: String,
    pub headers: Vec<(String, String)>,
    pub timeout: Duration,
    pub service_name: String,
    /// Root spans sampled, 0 to 1 (a sampled parent is always followed).
    pub sample_ratio: f64,
    /// This replica, as the `service.instance.id` resource attribute.
    pub instance: String,
}

/// `[telemetry]` of the config file, as far as tracing reads it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FileSettings {
    /// OTLP/HTTP base endpoint, e.g. `http://127.0.0.1:4318`.
    pub otlp_endpoint: Option<String>,
    pub service_name: Option<String>,
    pub sample_ratio: Option<f64>,
}

impl TraceSettings {
    /// Tracing settings from the environment over the file; `None` when
    /// neither names an endpoint (tracing off).
    pub fn resolve(
        env: impl Fn(&str) -> Option<String>,
        file: &FileSettings,
        instance: &str,
    ) -> Option<TraceSettings> {
        let var = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        let endpoint = match var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
            Some(full) => full,
            None => {
                let base = var("OTEL_EXPORTER_OTLP_ENDPOINT").or(file.otlp_endpoint.clone())?;
                format!("{}/v1/traces", base.trim_end_matches('/'))
            }
        };
        let mut headers = Vec::new();
        for name in [
            "OTEL_EXPORTER_OTLP_HEADERS",
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
        ] {
            if let Some(list) = var(name) {
                headers.extend(list.split(',').filter_map(|kv| {
                    let (k, v) = kv.split_once('=')?;
                    Some((k.trim().to_owned(), percent_decode(v.trim())))
                }));
            }
        }
        let timeout = var("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT")
            .or_else(|| var("OTEL_EXPORTER_OTLP_TIMEOUT"))
            .and_then(|ms| ms.parse().ok())
            .map(Duration::from_millis)
            .unwrap_or(Duration::from_secs(10));
        let sample_ratio = var("OTEL_TRACES_SAMPLER_ARG")
            .and_then(|r| r.parse().ok())
            .or(file.sample_ratio)
            .unwrap_or(1.0_f64)
            .clamp(0.0, 1.0);
        Some(TraceSettings {
            endpoint,
            headers,
            timeout,
            service_name: var("OTEL_SERVICE_NAME")
                .or(file.service_name.clone())
                .unwrap_or_else(|| "treaty".into()),
            sample_ratio,
            instance: instance.to_owned(),
        })
    }
}

/// `%2C` and friends in header values (the variables' format).
fn percent_decode(v: &str) -> String {
    let bytes = v.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(b) = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|_| v.to_owned())
}

#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("cannot build the OTLP exporter: {0}")]
    Exporter(String),
    #[error("cannot build the HTTP client for OTLP: {0}")]
    Client(String),
}

/// Flushes and stops the exporter when dropped (or on [`TraceGuard::shutdown`]).
#[derive(Debug)]
pub struct TraceGuard {
    provider: SdkTracerProvider,
}

impl TraceGuard {
    /// Exports what is buffered and stops.
    pub fn shutdown(&self) {
        if let Err(e) = self.provider.shutdown() {
            tracing::debug!(error = %e, "OTLP exporter shutdown");
        }
    }

    /// Exports what is buffered now.
    pub fn flush(&self) {
        if let Err(e) = self.provider.force_flush() {
            tracing::debug!(error = %e, "OTLP exporter flush");
        }
    }
}

impl Drop for TraceGuard {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The OTLP layer over subscriber `S`.
pub type Layer<S> = tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::Tracer>;

/// The layer to add to the subscriber, exporting to `settings.endpoint`;
/// also installs the W3C trace-context propagator. Must be called inside
/// a Tokio runtime (exports run on it).
pub fn layer<S>(
    settings: &TraceSettings,
) -> Result<
    (
        tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::Tracer>,
        TraceGuard,
    ),
    TraceError,
>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    let client = TokioHttp {
        client: reqwest::Client::builder()
            .timeout(settings.timeout)
            .build()
            .map_err(|e| TraceError::Client(e.to_string()))?,
        runtime: tokio::runtime::Handle::try_current()
            .map_err(|e| TraceError::Client(e.to_string()))?,
    };
    let headers: HashMap<String, String> = settings.headers.iter().cloned().collect();
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(client)
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(settings.endpoint.clone())
        .with_timeout(settings.timeout)
        .with_headers(headers)
        .build()
        .map_err(|e| TraceError::Exporter(e.to_string()))?;
    let resource = Resource::builder()
        .with_service_name(settings.service_name.clone())
        .with_attribute(KeyValue::new(
            "service.instance.id",
            settings.instance.clone(),
        ))
        .build();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(BatchSpanProcessor::builder(exporter).build())
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            settings.sample_ratio,
        ))))
        .with_resource(resource)
        .build();
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    let tracer = provider.tracer("treaty");
    crate::span::exporting();
    let layer = tracing_opentelemetry::layer().with_tracer(tracer);
    Ok((layer, TraceGuard { provider }))
}

/// OTLP's HTTP client: Treaty's reqwest, driven on the Tokio runtime even
/// when the SDK's export thread polls it outside one.
#[derive(Debug, Clone)]
struct TokioHttp {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl HttpClient for TokioHttp {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let client = self.client.clone();
        let (parts, body) = request.into_parts();
        let task = self.runtime.spawn(async move {
            let mut req = client.request(parts.method, parts.uri.to_string());
            for (name, value) in &parts.headers {
                req = req.header(name, value);
            }
            let res = req.body(body).send().await?;
            let status = res.status();
            let headers = res.headers().clone();
            let bytes = res.bytes().await?;
            Ok::<_, reqwest::Error>((status, headers, bytes))
        });
        let (status, headers, bytes) = task.await??;
        let mut response = Response::new(bytes);
        *response.status_mut() = status;
        *response.headers_mut() = headers;
        Ok(response)
    }
}
