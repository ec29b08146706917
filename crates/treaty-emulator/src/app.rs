//! The emulator's HTTP surface: the route table (every API route with and
//! without a leading host label, the `/_emulator` control routes, the MCP
//! endpoint and the webhook receivers), the
//! state shared by all connections, and the extractor that turns a request
//! into an [`ApiRequest`]. Built by one function so tests and the server
//! get the same app.

use crate::EmulatorConfig;
use crate::auth::Flavor;
use crate::control;
use crate::error::ApiError;
use crate::faults::{Fault, FaultParseError, FaultQueue};
use crate::openai::{self, Endpoint};
use crate::server::KillSwitch;
use crate::stats::Stats;
use crate::webhooks::{self, Webhooks};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, RawPathParams, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, get, on, post};
use std::sync::Arc;

/// Request bodies larger than this are refused (413); long-context tests fit.
const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

/// State shared by every connection. Nothing in it is locked across an await.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: EmulatorConfig,
    pub(crate) stats: Stats,
    pub(crate) faults: FaultQueue,
    pub(crate) webhooks: Webhooks,
}

impl Shared {
    pub(crate) fn new(config: EmulatorConfig) -> Self {
        Self {
            config,
            stats: Stats::default(),
            faults: FaultQueue::default(),
            webhooks: Webhooks::default(),
        }
    }

    pub(crate) fn queue_fault(
        &self,
        host: &str,
        spec: &str,
        count: Option<u32>,
    ) -> Result<(), FaultParseError> {
        let fault = Fault::parse(spec)?;
        self.faults.push(host, fault, count);
        Ok(())
    }
}

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let mut router = Router::new()
        .route(
            "/_emulator/faults",
            post(control::queue_fault).delete(control::clear_faults),
        )
        .route("/_emulator/stats", get(control::stats))
        .route("/_emulator/stats/reset", post(control::reset_stats))
        // Tools: neither counted per host nor subject to faults.
        .route_service("/mcp", crate::mcp::http_service())
        .route("/webhooks/{name}", post(webhooks::receive))
        .route("/webhooks/{name}/effects", get(webhooks::effects));
    // Static segments win over `{host}`, so `/openai/v1/...` is always the
    // Azure v1 style; a host label literally named `openai` is not usable.
    for prefix in ["", "/{host}"] {
        let routes = [
            (
                "/v1/chat/completions",
                api(MethodFilter::POST, Endpoint::Chat, Flavor::OpenAi),
            ),
            (
                "/v1/embeddings",
                api(MethodFilter::POST, Endpoint::Embeddings, Flavor::OpenAi),
            ),
            // Anthropic's model list is asked for with `x-api-key`;
            // everything else is the OpenAI one.
            ("/v1/models", get(crate::anthropic::models_any)),
            ("/v1/messages", post(crate::anthropic::messages)),
            // Gemini: `{model}` is `name:method` (`gemini-x:generateContent`).
            ("/v1beta/models", get(crate::gemini::models)),
            ("/v1beta/models/{model}", post(crate::gemini::gemini_api)),
            (
                "/v1/projects/{project}/locations/{location}/publishers/google/models/{model}",
                post(crate::gemini::vertex),
            ),
            (
                "/openai/deployments/{deployment}/chat/completions",
                api(MethodFilter::POST, Endpoint::Chat, Flavor::AzureDeployment),
            ),
            (
                "/openai/deployments/{deployment}/embeddings",
                api(
                    MethodFilter::POST,
                    Endpoint::Embeddings,
                    Flavor::AzureDeployment,
                ),
            ),
            (
                // Azure's model list for deployment-style resources; it
                // needs `api-version` like the deployment routes.
                "/openai/models",
                api(MethodFilter::GET, Endpoint::Models, Flavor::AzureDeployment),
            ),
            (
                "/openai/v1/chat/completions",
                api(MethodFilter::POST, Endpoint::Chat, Flavor::AzureV1),
            ),
            (
                "/openai/v1/embeddings",
                api(MethodFilter::POST, Endpoint::Embeddings, Flavor::AzureV1),
            ),
            (
                "/openai/v1/models",
                api(MethodFilter::GET, Endpoint::Models, Flavor::AzureV1),
            ),
        ];
        for (path, method_router) in routes {
            router = router.route(&format!("{prefix}{path}"), method_router);
        }
        router = crate::bedrock::routes(router, prefix);
    }
    router.fallback(not_found).with_state(shared)
}

/// A method router sending one route's requests to the API pipeline.
fn api(method: MethodFilter, endpoint: Endpoint, flavor: Flavor) -> MethodRouter<Arc<Shared>> {
    on(
        method,
        move |State(shared): State<Arc<Shared>>, request: ApiRequest| {
            openai::handle(shared, endpoint, flavor, request)
        },
    )
}

/// Everything the API pipeline reads from one request.
pub(crate) struct ApiRequest {
    /// The host label, `default` when the path has none.
    pub(crate) host: String,
    pub(crate) deployment: Option<String>,
    pub(crate) has_api_version: bool,
    pub(crate) headers: HeaderMap,
    /// Absent only when the router is driven without the emulator's server.
    pub(crate) kill: Option<KillSwitch>,
    pub(crate) body: Bytes,
}

impl FromRequest<Arc<Shared>> for ApiRequest {
    type Rejection = Response;

    async fn from_request(request: Request, state: &Arc<Shared>) -> Result<Self, Response> {
        let (mut parts, body) = request.into_parts();
        let params = RawPathParams::from_request_parts(&mut parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let mut host = None;
        let mut deployment = None;
        for (key, value) in &params {
            match key {
                "host" => host = Some(value.to_owned()),
                "deployment" => deployment = Some(value.to_owned()),
                _ => {}
            }
        }
        let has_api_version = parts.uri.query().is_some_and(|query| {
            query.split('&').any(|pair| {
                pair.split_once('=')
                    .is_some_and(|(key, value)| key == "api-version" && !value.is_empty())
            })
        });
        let body = axum::body::to_bytes(body, MAX_BODY_BYTES)
            .await
            .map_err(|_| StatusCode::PAYLOAD_TOO_LARGE.into_response())?;
        Ok(Self {
            host: host.unwrap_or_else(|| "default".to_owned()),
            deployment,
            has_api_version,
            kill: parts.extensions.remove::<KillSwitch>(),
            headers: parts.headers,
            body,
        })
    }
}

async fn not_found() -> Response {
    ApiError::not_found().into_response()
}
