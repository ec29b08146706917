//! `POST /v1/chat/completions`, plain and streamed.

use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use treaty_domain::Route;
use treaty_engine::{Answer, Call, ModelRequest};
use treaty_openai::ChatCompletionRequest;

use crate::body::Json;
use crate::error::ApiError;
use crate::extract::ApiKey;
use crate::gateway::Gateway;
use crate::sse::ChatSse;

pub(crate) async fn chat_completions(
    State(gw): State<Gateway>,
    ApiKey(caller): ApiKey,
    Json(req): Json<ChatCompletionRequest>,
) -> Result<Response, ApiError> {
    req.validate()
        .map_err(|(message, param)| ApiError::invalid(message, Some(param)))?;
    let answer = gw
        .engine
        .call(Call {
            caller: &caller,
            request_id: &caller.request_id,
            route: Route::ChatCompletions,
            features: treaty_policy::stateless(),
            run_id: None,
            request: ModelRequest::Chat(&req),
        })
        .await?;
    Ok(match answer {
        Answer::Full(full) => {
            let mut res = Response::new(Body::from(treaty_openai::with_model(
                &full.body, &req.model,
            )));
            crate::headers::json(&mut res);
            crate::headers::placed(&mut res, &full.placed);
            crate::headers::receipt(&mut res, full.receipt.as_deref());
            res
        }
        Answer::Stream(stream) => {
            let placed = stream.placed().clone();
            let mut res = Response::new(Body::from_stream(ChatSse::new(stream, req.model)));
            crate::headers::event_stream(&mut res);
            crate::headers::placed(&mut res, &placed);
            res
        }
    })
}
