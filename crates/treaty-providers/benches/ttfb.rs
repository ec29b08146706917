//! Streaming time to first byte, per provider: what Treaty's provider code
//! adds between "send this chat upstream" and "here is the first OpenAI
//! chunk to forward", measured against the in-process emulator on
//! 127.0.0.1 with no latency and no delay between chunks.
//!
//! `cargo bench -p treaty-providers --bench ttfb` runs criterion's
//! measurements (means), then times a few thousand requests one by one
//! for percentiles, raw and provider requests interleaved so the shared
//! machine's background load falls on both alike.
//!
//! - `provider/<kind>`: from calling [`Provider::chat`] with `stream: true`
//!   to the first [`StreamEvent::Chunk`]: URL building, request
//!   translation and encoding, auth headers (SigV4 for Bedrock), the
//!   exchange up to the response headers, and decoding the provider's
//!   first SSE event or event-stream frame into an OpenAI chunk.
//! - `raw/<kind>`: the same HTTP request sent with a reqwest client, from
//!   `send()` to the first body bytes, nothing decoded.
//! - `sign/bedrock`: one SigV4 signature of the Bedrock request alone, to
//!   apportion Bedrock's added time.
//!
//! The added time per provider is `provider - raw`. `openai_compatible`
//! translates nothing and is the baseline: its added time is the cost of
//! the provider layer itself (re-encoding the body, SSE decoding). The
//! percentile lines print it as the median of paired differences (each
//! provider request minus the raw request just before it) and as the
//! difference of the p99s; on a shared machine the paired median is the
//! figure to trust, criterion's means (raw and provider measured seconds
//! apart) much less.
//!
//! Every request, raw or provider, ends with an untimed 100 µs pause
//! ([`settle`]) so that untimed work never overlaps the emulator's end of
//! the previous exchange.
//!
//! How the raw request is made "the same": each provider sends one real
//! request to a capturing socket first, and the raw request replays its
//! method, path, query, headers and body byte for byte (reqwest sets
//! `host` and `content-length` itself). Both clients come from
//! [`http_client`], so connection settings (pooling, `TCP_NODELAY`) are the
//! same and each request reuses a warm keep-alive connection; every reply
//! is read to its end, outside the timed part, so the connection goes back
//! to the pool.
//!
//! Bedrock's raw request cannot replay the captured signature: it signs the
//! capture's host and a past time. Each raw Bedrock request is therefore
//! signed anew, with `aws-sigv4` over the headers the captured
//! `SignedHeaders` lists (exactly as the emulator verifies it), *before*
//! its timer starts: the raw figure is the HTTP exchange alone, and
//! signing counts in the provider's added time, where it belongs. The
//! emulator verifies the signature of both (by re-signing), which costs
//! the same on both sides and cancels in the difference.
//!
//! The emulator runs on its own one-worker runtime (one core); the client
//! side runs on a current-thread runtime on the bench's thread (the
//! other core).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use bytes::Bytes;
use criterion::Criterion;
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::runtime::Runtime;
use treaty_config::{
    AwsCredentials, AwsSettings, AzureApiStyle, AzureAuth, AzureSettings, Endpoint, GeminiApi,
    HostConfig, Secret, UpstreamConfig,
};
use treaty_domain::{Host, HostId, ModelDeployment, ProviderKind};
use treaty_emulator::{
    DEFAULT_AWS_ACCESS_KEY_ID, DEFAULT_AWS_SECRET_ACCESS_KEY, Emulator, EmulatorConfig,
};
use treaty_openai::ChatCompletionRequest;
use treaty_providers::{CallOptions, ChatReply, Provider, StreamEvent, for_host, http_client};

const KEY: &str = "emulator-key-1";
/// Individually timed requests per side and provider, for percentiles.
const TIMED: usize = 5000;
const WARM_UP: usize = 200;
/// See [`settle`].
const SETTLE: Duration = Duration::from_micros(100);

/// One provider kind, reached under its own emulated host label.
struct Kind {
    name: &'static str,
    label: &'static str,
    provider: ProviderKind,
    target: &'static str,
}

const KINDS: [Kind; 5] = [
    Kind {
        name: "openai_compatible",
        label: "compatible",
        provider: ProviderKind::OpenaiCompatible,
        target: "gpt-4o-prod",
    },
    Kind {
        name: "azure_openai",
        label: "azure-eastus",
        provider: ProviderKind::AzureOpenai,
        target: "gpt-4o-prod",
    },
    Kind {
        name: "anthropic",
        label: "anthropic-us",
        provider: ProviderKind::Anthropic,
        target: "claude-sonnet",
    },
    Kind {
        name: "bedrock",
        label: "bedrock-useast1",
        provider: ProviderKind::Bedrock,
        target: "anthropic.claude-3-5-sonnet-20240620-v1:0",
    },
    Kind {
        name: "gemini",
        label: "gemini-us",
        provider: ProviderKind::Gemini,
        target: "gemini-2.0-flash",
    },
];

impl Kind {
    fn deployment(&self) -> ModelDeployment {
        ModelDeployment {
            name: "chat".into(),
            target: self.target.into(),
            input_cost_per_mtok: 0.0,
            output_cost_per_mtok: 0.0,
        }
    }

    /// The host as configured, with its base URL on `server`.
    fn host(&self, server: &str) -> HostConfig {
        let mut endpoint = Endpoint {
            base_url: format!("{server}/{}", self.label),
            api_key: Some(Secret::new(KEY)),
            azure: None,
            gemini: None,
            aws: None,
        };
        match self.provider {
            ProviderKind::AzureOpenai => {
                endpoint.azure = Some(AzureSettings {
                    api_style: AzureApiStyle::Deployments {
                        api_version: "2024-10-21".into(),
                    },
                    auth: AzureAuth::ApiKey,
                });
            }
            ProviderKind::Gemini => endpoint.gemini = Some(GeminiApi::Gemini),
            ProviderKind::Bedrock => {
                endpoint.api_key = None;
                endpoint.aws = Some(AwsSettings {
                    region: "us-east-1".into(),
                    credentials: Some(AwsCredentials {
                        access_key_id: DEFAULT_AWS_ACCESS_KEY_ID.into(),
                        secret_access_key: Secret::new(DEFAULT_AWS_SECRET_ACCESS_KEY),
                        session_token: None,
                    }),
                });
            }
            _ => {}
        }
        HostConfig {
            host: Arc::new(Host {
                id: HostId::new(self.label).unwrap(),
                cloud: "emulated".into(),
                region: "us-east".into(),
                provider: self.provider,
                certifications: vec![],
                models: vec![self.deployment()],
                weight: 1,
            }),
            endpoint,
            rate_limit: Default::default(),
        }
    }
}

fn client() -> reqwest::Client {
    http_client(&UpstreamConfig {
        connect_timeout: Duration::from_secs(2),
        first_byte_timeout: Duration::from_secs(5),
        total_timeout: Duration::from_secs(10),
        max_attempts: 1,
    })
    .unwrap()
}

fn call() -> CallOptions {
    CallOptions {
        first_byte_timeout: Duration::from_secs(5),
        deadline: tokio::time::Instant::now() + Duration::from_secs(10),
        request_id: "req-ttfb-1".into(),
        traceparent: None,
    }
}

/// The same short streamed chat for every provider, parsed once as the
/// gateway does before choosing a host.
fn chat_request() -> ChatCompletionRequest {
    serde_json::from_value(json!({
        "model": "chat",
        "stream": true,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Say hello to the emulator."}
        ]
    }))
    .unwrap()
}

/// An HTTP/1.1 request as a provider put it on the wire.
struct Captured {
    method: reqwest::Method,
    /// Path and query, e.g. `/compatible/v1/chat/completions`.
    target: String,
    /// Lower-case names, in order, `host` and `content-length` left out.
    headers: Vec<(String, String)>,
    body: Bytes,
}

impl Captured {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Lets `kind`'s provider send one streamed chat to a socket that records
/// it and answers 503.
async fn capture(kind: &Kind, req: &ChatCompletionRequest) -> Captured {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let provider = for_host(&kind.host(&base), client()).unwrap();
    let server = async {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut buf = Vec::new();
        let mut read = [0u8; 8192];
        let head_end = loop {
            let n = socket.read(&mut read).await.unwrap();
            assert!(n > 0, "connection closed inside the request head");
            buf.extend_from_slice(&read[..n]);
            if let Some(i) = memchr::memmem::find(&buf, b"\r\n\r\n") {
                break i + 4;
            }
        };
        let head = std::str::from_utf8(&buf[..head_end]).unwrap().to_owned();
        let mut lines = head.split("\r\n");
        let mut request_line = lines.next().unwrap().split(' ');
        let method = request_line.next().unwrap().parse().unwrap();
        let target = request_line.next().unwrap().to_owned();
        let mut headers = Vec::new();
        let mut length = None;
        for line in lines.filter(|l| !l.is_empty()) {
            let (name, value) = line.split_once(':').unwrap();
            let (name, value) = (name.trim().to_ascii_lowercase(), value.trim().to_owned());
            match name.as_str() {
                "content-length" => length = Some(value.parse::<usize>().unwrap()),
                "host" => {}
                "transfer-encoding" => panic!("expected a body with a content-length"),
                _ => headers.push((name, value)),
            }
        }
        let length = length.expect("a content-length");
        while buf.len() < head_end + length {
            let n = socket.read(&mut read).await.unwrap();
            assert!(n > 0, "connection closed inside the request body");
            buf.extend_from_slice(&read[..n]);
        }
        socket
            .write_all(
                b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            )
            .await
            .unwrap();
        Captured {
            method,
            target,
            headers,
            body: Bytes::copy_from_slice(&buf[head_end..head_end + length]),
        }
    };
    let client = async {
        // The 503 makes this an error; only the request matters.
        let _ = provider.chat(req, &kind.deployment(), &call()).await;
    };
    tokio::join!(server, client).0
}

/// What a captured SigV4 `authorization` header says about how to sign
/// again: the region and the signed headers other than those the signer
/// adds itself.
struct SigV4Scope {
    region: String,
    signed: Vec<String>,
}

fn sigv4_scope(captured: &Captured) -> Option<SigV4Scope> {
    let auth = captured
        .header("authorization")?
        .strip_prefix("AWS4-HMAC-SHA256 ")?;
    let mut region = None;
    let mut signed = Vec::new();
    for item in auth.split(',') {
        let (key, value) = item.trim().split_once('=')?;
        match key {
            "Credential" => region = value.split('/').nth(2).map(str::to_owned),
            "SignedHeaders" => {
                signed = value
                    .split(';')
                    .filter(|h| !matches!(*h, "host" | "x-amz-date" | "x-amz-security-token"))
                    .map(str::to_owned)
                    .collect();
            }
            _ => {}
        }
    }
    Some(SigV4Scope {
        region: region?,
        signed,
    })
}

/// The raw replay of one provider's request against the emulator.
struct Raw {
    url: String,
    captured: Captured,
    sigv4: Option<SigV4Scope>,
    credentials: Credentials,
}

impl Raw {
    fn new(emulator: &str, captured: Captured) -> Self {
        Raw {
            url: format!("{emulator}{}", captured.target),
            sigv4: sigv4_scope(&captured),
            credentials: Credentials::new(
                DEFAULT_AWS_ACCESS_KEY_ID,
                DEFAULT_AWS_SECRET_ACCESS_KEY,
                None,
                None,
                "bench",
            ),
            captured,
        }
    }

    /// SigV4 headers for this request now, computed as the provider and
    /// the emulator compute them.
    fn sign(&self, scope: &SigV4Scope) -> Vec<(String, String)> {
        let headers: Vec<(&str, &str)> = scope
            .signed
            .iter()
            .map(|name| (name.as_str(), self.captured.header(name).unwrap()))
            .collect();
        let identity: Identity = self.credentials.clone().into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&scope.region)
            .name("bedrock")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .unwrap()
            .into();
        let signable = SignableRequest::new(
            self.captured.method.as_str(),
            &self.url,
            headers.into_iter(),
            SignableBody::Bytes(&self.captured.body),
        )
        .unwrap();
        let (instructions, _) = sign(signable, &params).unwrap().into_parts();
        instructions
            .headers()
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
            .collect()
    }

    /// The request, ready to send (and signed now, for Bedrock).
    fn request(&self, http: &reqwest::Client) -> reqwest::RequestBuilder {
        let mut request = http
            .request(self.captured.method.clone(), &self.url)
            .body(self.captured.body.clone());
        for (name, value) in &self.captured.headers {
            let resigned = self.sigv4.is_some()
                && matches!(
                    name.as_str(),
                    "authorization" | "x-amz-date" | "x-amz-security-token"
                );
            if !resigned {
                request = request.header(name, value);
            }
        }
        if let Some(scope) = &self.sigv4 {
            for (name, value) in self.sign(scope) {
                request = request.header(name, value);
            }
        }
        request
    }
}

/// An untimed pause after each request, the client's tasks still running.
///
/// Without it the next request's untimed preparation (the raw request is
/// built and signed before its timer starts) overlaps the emulator's
/// cleanup of the last exchange, while the provider's preparation is
/// timed: when the machine is busy that overlap hides part of what the
/// provider adds.
async fn settle() {
    let until = Instant::now() + SETTLE;
    while Instant::now() < until {
        tokio::task::yield_now().await;
    }
}

/// Time from `chat()` to the first chunk to forward; the rest of the
/// stream is read, untimed, so the connection returns to the pool.
async fn provider_ttfb(
    provider: &dyn Provider,
    req: &ChatCompletionRequest,
    deployment: &ModelDeployment,
) -> Duration {
    let call = call();
    let started = Instant::now();
    let ChatReply::Stream(mut stream) = provider.chat(req, deployment, &call).await.unwrap() else {
        panic!("expected a stream from {provider:?}");
    };
    loop {
        match stream.next().await {
            Some(Ok(StreamEvent::Chunk(chunk))) => {
                black_box(chunk);
                break;
            }
            Some(Ok(StreamEvent::Usage(_))) => {}
            other => panic!("expected a chunk from {provider:?}, got {other:?}"),
        }
    }
    let ttfb = started.elapsed();
    while let Some(event) = stream.next().await {
        event.unwrap();
    }
    settle().await;
    ttfb
}

/// Time from `send()` to the first body bytes of the replayed request
/// (built, and for Bedrock signed, before the timer starts).
async fn raw_ttfb(raw: &Raw, http: &reqwest::Client) -> Duration {
    let request = raw.request(http);
    let started = Instant::now();
    let mut response = request.send().await.unwrap();
    assert!(
        response.status().is_success(),
        "{}: {}",
        raw.captured.target,
        response.status()
    );
    let first = response.chunk().await.unwrap().expect("a body");
    let ttfb = started.elapsed();
    black_box(first);
    while response.chunk().await.unwrap().is_some() {}
    settle().await;
    ttfb
}

/// Everything one provider kind needs, set up against the emulator.
struct Case {
    kind: &'static Kind,
    provider: Arc<dyn Provider>,
    deployment: ModelDeployment,
    raw: Raw,
}

fn cases(rt: &Runtime, emulator: &str, req: &ChatCompletionRequest) -> Vec<Case> {
    KINDS
        .iter()
        .map(|kind| {
            let captured = rt.block_on(capture(kind, req));
            Case {
                kind,
                provider: for_host(&kind.host(emulator), client()).unwrap(),
                deployment: kind.deployment(),
                raw: Raw::new(emulator, captured),
            }
        })
        .collect()
}

/// Both paths once, checked: the replay is accepted (key, signature), its
/// first body bytes already hold a whole first event (so the provider never
/// waits on the emulator for more than the raw request's first byte), and
/// the provider's first chunk is an OpenAI chunk.
fn check(rt: &Runtime, case: &Case, req: &ChatCompletionRequest, raw_http: &reqwest::Client) {
    rt.block_on(async {
        let mut response = case.raw.request(raw_http).send().await.unwrap();
        assert!(response.status().is_success(), "{}", case.kind.name);
        let event_stream = response.headers().get("content-type").is_some_and(|v| {
            v.as_bytes()
                .starts_with(b"application/vnd.amazon.eventstream")
        });
        let first = response.chunk().await.unwrap().unwrap();
        let whole = if event_stream {
            // A frame starts with its total length, big-endian.
            first.len() >= 4
                && u32::from_be_bytes([first[0], first[1], first[2], first[3]]) as usize
                    <= first.len()
        } else {
            // SSE events end with a blank line, `\n` or (Gemini) `\r\n`.
            memchr::memmem::find(&first, b"\n\n").is_some()
                || memchr::memmem::find(&first, b"\r\n\r\n").is_some()
        };
        assert!(
            whole,
            "{}: first body bytes hold no whole event",
            case.kind.name
        );
        while response.chunk().await.unwrap().is_some() {}
        let ChatReply::Stream(mut stream) = case
            .provider
            .chat(req, &case.deployment, &call())
            .await
            .unwrap()
        else {
            panic!("expected a stream");
        };
        let Some(Ok(StreamEvent::Chunk(first))) = stream.next().await else {
            panic!("{}: expected a chunk first", case.kind.name);
        };
        let first: Value = serde_json::from_slice(&first).unwrap();
        assert_eq!(
            first["object"], "chat.completion.chunk",
            "{}",
            case.kind.name
        );
        while stream.next().await.is_some() {}
    });
}

fn bench(
    c: &mut Criterion,
    rt: &Runtime,
    cases: &[Case],
    req: &ChatCompletionRequest,
    raw_http: &reqwest::Client,
) {
    // Each provider's raw and provider measurements run back to back, so
    // the load other jobs put on this shared machine drifts less between
    // the two figures that are subtracted.
    for case in cases {
        c.bench_function(&format!("raw/{}", case.kind.name), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        total += raw_ttfb(&case.raw, raw_http).await;
                    }
                    total
                })
            })
        });
        c.bench_function(&format!("provider/{}", case.kind.name), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        total += provider_ttfb(&*case.provider, req, &case.deployment).await;
                    }
                    total
                })
            })
        });
    }
    let bedrock = cases
        .iter()
        .find(|c| c.kind.provider == ProviderKind::Bedrock)
        .unwrap();
    let scope = bedrock.raw.sigv4.as_ref().unwrap();
    c.bench_function("sign/bedrock", |b| {
        b.iter(|| black_box(bedrock.raw.sign(scope)))
    });
}

/// p50 and p99 of `samples`, sorted in place.
fn p50_p99(samples: &mut [Duration]) -> (Duration, Duration) {
    samples.sort_unstable();
    let at = |p: f64| samples[((samples.len() - 1) as f64 * p) as usize];
    (at(0.50), at(0.99))
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Individually timed requests, raw and provider alternating. "Added" is
/// given twice: the median of the paired differences (each provider
/// request minus the raw request just before it, which cancels load that
/// drifts during the run) and the difference of the two p99s.
fn percentiles(
    rt: &Runtime,
    cases: &[Case],
    req: &ChatCompletionRequest,
    raw_http: &reqwest::Client,
) {
    println!();
    println!("time to first byte, {TIMED} requests per side, raw and provider interleaved:");
    for case in cases {
        let (mut raw, mut provider) = rt.block_on(async {
            for _ in 0..WARM_UP {
                raw_ttfb(&case.raw, raw_http).await;
                provider_ttfb(&*case.provider, req, &case.deployment).await;
            }
            let mut raw = Vec::with_capacity(TIMED);
            let mut provider = Vec::with_capacity(TIMED);
            for _ in 0..TIMED {
                raw.push(raw_ttfb(&case.raw, raw_http).await);
                provider.push(provider_ttfb(&*case.provider, req, &case.deployment).await);
            }
            (raw, provider)
        });
        let mut paired: Vec<f64> = raw
            .iter()
            .zip(&provider)
            .map(|(r, p)| micros(*p) - micros(*r))
            .collect();
        paired.sort_unstable_by(f64::total_cmp);
        let (r50, r99) = p50_p99(&mut raw);
        let (p50, p99) = p50_p99(&mut provider);
        println!(
            "ttfb/{:<17} raw p50 {:>6.1} µs p99 {:>6.1} µs | provider p50 {:>6.1} µs p99 {:>6.1} µs | added: paired median {:>5.1} µs, p50 {:>5.1} µs, p99 {:>6.1} µs",
            case.kind.name,
            micros(r50),
            micros(r99),
            micros(p50),
            micros(p99),
            paired[paired.len() / 2],
            micros(p50) - micros(r50),
            micros(p99) - micros(r99),
        );
    }
}

fn main() {
    // The emulator on one worker thread; the client side on this one.
    let emulator_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let emulator = emulator_rt
        .block_on(Emulator::start(
            EmulatorConfig {
                api_key: Some(KEY.into()),
                latency: Duration::ZERO,
                chunk_delay: Duration::ZERO,
                ..EmulatorConfig::default()
            },
            "127.0.0.1:0".parse().unwrap(),
        ))
        .unwrap();
    let req = chat_request();
    let raw_http = client();
    let cases = cases(&rt, &emulator.url(), &req);
    for case in &cases {
        check(&rt, case, &req, &raw_http);
    }

    let mut criterion = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        // Each request also waits out `SETTLE`, untimed: about 6 s a bench.
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    bench(&mut criterion, &rt, &cases, &req, &raw_http);
    criterion.final_summary();
    percentiles(&rt, &cases, &req, &raw_http);
    drop(emulator);
}
