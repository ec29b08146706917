//! `/v1/responses`: the OpenAI Responses API, served from Treaty's own
//! state.
//!
//! A create is, in order: authenticate and validate; if the request holds
//! state (stored, or continuing a previous response or a conversation),
//! decide whether this instance may hold it and record that decision
//! ([`hold_state`]); rebuild the history (the chain of previous responses,
//! or the conversation's items); make the model step; store the response
//! and its items, and append them to the conversation. Streams are
//! translated event by event as chunks arrive and stored when they end.

use std::sync::Arc;

use crate::body::{Path, Query};
use axum::Extension;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use futures_util::StreamExt;
use treaty_classify::Features;
use treaty_domain::Route;
use treaty_keys::VerifiedKey;
use treaty_openai::responses::{
    CreateResponseRequest, Deleted, Item, ItemList, ResponseObject, ResponseStatus,
    StreamTranslator, input_items, new_id, to_chat_request,
};
use treaty_providers::StreamEvent;
use treaty_store::{ItemKind, ResponseRow};

use super::{
    PageQuery, changed, from_json, invalid, item_row, json, not_found, now_ms, store_error, to_json,
};
use crate::RequestId;
use crate::auth::authenticate;
use crate::error::{ApiError, Code};
use crate::pipeline::{Ask, StateAsk, hold_state, pass_gate};
use crate::routes::{Shared, placed_headers};
use crate::state::Gateway;

/// Longest chain of `previous_response_id` links followed.
const MAX_CHAIN: usize = 1_000;

pub(crate) fn features(req: &CreateResponseRequest) -> Features {
    Features {
        store: req.store,
        previous_response_id: req.previous_response_id.is_some(),
        conversation: req.conversation.is_some(),
    }
}

fn holds_state(req: &CreateResponseRequest) -> bool {
    req.store() || req.previous_response_id.is_some() || req.conversation.is_some()
}

pub(crate) async fn create(
    State(gw): State<Shared>,
    Extension(request_id): Extension<RequestId>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let key = authenticate(&gw, &headers).await?;
    let req: CreateResponseRequest = crate::body::parse(body, gw.config.server.max_body_bytes)?;
    req.validate().map_err(invalid)?;
    // An unknown or forbidden model is refused before any state is decided
    // on or stored: otherwise a failed response nobody can name is kept.
    crate::routes::context(
        &gw,
        &key,
        request_id.0.clone(),
        Route::Responses,
        &req.model,
    )?;
    // Earlier turns: a chain of stored responses or a conversation.
    let mut history = match (&req.previous_response_id, &req.conversation) {
        (Some(prev), _) => chain(&gw, &key, prev).await?,
        (None, Some(conv)) => conversation_history(&gw, &key, conv.id()).await?,
        (None, None) => Vec::new(),
    };
    let input = input_items(&req);
    if req.conversation.is_some() {
        super::conversations::refuse_taken_ids(history.iter().map(Item::id), &input, "input")?;
    }
    history.extend(input.iter().cloned());
    let chat = to_chat_request(&req, &history, req.is_stream()).map_err(invalid)?;

    // Everything a client can get wrong is checked above, so the hold's
    // recorded outcome (the state is held here) is what happens next.
    let id = new_id("resp");
    let stateful = holds_state(&req);
    if stateful {
        hold_state(
            &gw,
            &key,
            &request_id,
            &headers,
            StateAsk {
                route: Route::Responses,
                model: &req.model,
                features: features(&req),
                state_id: &id,
            },
        )
        .await?;
    }

    let mut object =
        ResponseObject::from_request(id.clone(), started_secs(), &req, ResponseStatus::InProgress);
    let conversation_id = req.conversation.as_ref().map(|c| c.id().to_owned());
    if req.store() {
        let row = ResponseRow {
            id: id.clone(),
            tenant: key.tenant.to_string(),
            key_id: key.id.clone(),
            previous_response_id: req.previous_response_id.clone(),
            conversation_id: conversation_id.clone(),
            status: "in_progress".into(),
            created_at: now_ms(),
            updated_at: now_ms(),
            body: to_json(&object)?,
        };
        let rows = input.iter().map(item_row).collect::<Result<Vec<_>, _>>()?;
        gw.store
            .insert_response(&row, &rows)
            .await
            .map_err(store_error)?;
    }
    let saver = Saver {
        gw: gw.clone(),
        store: req.store(),
        conversation_id,
        input,
    };
    // A response that holds state makes its model step as a separate
    // Chat Completions call, classified and placed like one (so a reading
    // that treats a product's stateless calls differently reaches the
    // step); a stateless response is itself the request being placed.
    let ask = if stateful {
        Ask {
            request_id: format!("{}.1", request_id.0),
            route: Route::ChatCompletions,
            model: &req.model,
            features: crate::routes::stateless(),
            run_id: Some(id.as_str()),
        }
    } else {
        Ask {
            request_id: request_id.0.clone(),
            route: Route::Responses,
            model: &req.model,
            features: features(&req),
            run_id: None,
        }
    };

    if !req.is_stream() {
        let step = match super::step::full(&gw, &key, &headers, ask, &chat).await {
            Ok(step) => step,
            Err(e) => {
                object.fail_with(e.code.as_str(), &e.message);
                saver.save(&object).await;
                return Err(e);
            }
        };
        object.complete_with(step.output);
        saver.save(&object).await;
        let mut res = json(&object)?;
        placed_headers(
            &mut res,
            &step.placed.host,
            step.placed.class,
            &step.placed.clauses,
        );
        return Ok(res);
    }

    let step = match super::step::streaming(&gw, &key, &headers, ask, &chat).await {
        Ok(step) => step,
        Err(e) => {
            object.fail_with(e.code.as_str(), &e.message);
            saver.save(&object).await;
            return Err(e);
        }
    };
    let placed = step.placed.clone();
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(32);
    let idle = gw.config.upstream.first_byte_timeout;
    let cancelled = gw.runtime.live.watch(&id);
    tokio::spawn(drive_stream(
        gw.clone(),
        step,
        object,
        saver,
        Channel {
            tx,
            idle,
            cancelled,
        },
    ));
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<Bytes, std::convert::Infallible>(b), rx))
    });
    let mut res = Response::new(Body::from_stream(body));
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    placed_headers(&mut res, &placed.host, placed.class, &placed.clauses);
    Ok(res)
}

/// The responses this instance is streaming, each with the signal that
/// stops it when its client cancels it. The lock is never held across an
/// await.
#[derive(Debug, Default)]
pub(crate) struct Live {
    streams: std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Notify>>>,
}

impl Live {
    fn watch(&self, id: &str) -> Arc<tokio::sync::Notify> {
        let signal = Arc::new(tokio::sync::Notify::new());
        if let Ok(mut streams) = self.streams.lock() {
            streams.insert(id.to_owned(), signal.clone());
        }
        signal
    }

    fn forget(&self, id: &str) {
        if let Ok(mut streams) = self.streams.lock() {
            streams.remove(id);
        }
    }

    /// Stops the stream making `id`, if this instance is making it. A
    /// stream on another replica finds out when it stores its end (the
    /// stored status stays `cancelled`).
    fn cancel(&self, id: &str) {
        let signal = self.streams.lock().ok().and_then(|s| s.get(id).cloned());
        if let Some(signal) = signal {
            // A permit: the stream sees it even if it is not waiting yet.
            signal.notify_one();
        }
    }
}

fn started_secs() -> i64 {
    now_ms() / 1000
}

/// Where a streamed response's events go, and what stops it.
struct Channel {
    tx: tokio::sync::mpsc::Sender<Bytes>,
    /// Longest wait for the host's next chunk.
    idle: std::time::Duration,
    /// Notified when the client cancels the response.
    cancelled: Arc<tokio::sync::Notify>,
}

/// Reads the upstream stream, sends Responses events to the client, and
/// stores the response when the stream ends (also when the client left:
/// the response is then stored as it stood, `incomplete`). A cancel stops
/// reading from the host at once (dropping the upstream request) and ends
/// the stream with the response `cancelled`.
async fn drive_stream(
    gw: Arc<Gateway>,
    step: super::step::StreamingStep,
    object: ResponseObject,
    saver: Saver,
    channel: Channel,
) {
    let Channel {
        tx,
        idle,
        cancelled,
    } = channel;
    let id = object.id.clone();
    let super::step::StreamingStep {
        first,
        mut rest,
        gate,
        ending,
        placed,
    } = step;
    let mut t = StreamTranslator::new(object);
    let mut client_gone = send_all(&tx, t.start()).await;
    let mut usage = None;
    let mut failure: Option<(String, String)> = None;
    let mut was_cancelled = false;
    let mut next = Some(Ok(first));
    while !client_gone {
        let event = match next.take() {
            Some(e) => Some(e),
            None => tokio::select! {
                biased;
                () = cancelled.notified() => {
                    was_cancelled = true;
                    break;
                }
                e = tokio::time::timeout(idle, rest.next()) => match e {
                    Ok(e) => e,
                    Err(_) => {
                        failure = Some((
                            "upstream_timeout".into(),
                            "The host stopped sending.".into(),
                        ));
                        break;
                    }
                },
            },
        };
        match event {
            None => break,
            Some(Ok(StreamEvent::Usage(u))) => usage = Some(u),
            Some(Ok(StreamEvent::Chunk(bytes))) => match t.on_chunk(&bytes) {
                Ok(events) => client_gone = send_all(&tx, events).await,
                Err(e) => {
                    failure = Some(("upstream_error".into(), e));
                    break;
                }
            },
            Some(Err(e)) => {
                failure = Some(("upstream_error".into(), e.client_facing(&placed.host.id).1));
                break;
            }
        }
    }
    drop(rest);
    gw.runtime.live.forget(&id);
    let (events, final_object, error) = if was_cancelled {
        let (events, obj) = t.cancel();
        (events, obj, Some("cancelled".to_owned()))
    } else if let Some((code, message)) = failure {
        let (events, obj) = t.fail(&code, &message);
        (events, obj, Some(code))
    } else if client_gone {
        let (_, mut obj) = t.finish();
        obj.status = ResponseStatus::Incomplete;
        (Vec::new(), obj, Some("client_disconnected".to_owned()))
    } else {
        let (events, obj) = t.finish();
        (events, obj, None)
    };
    // Batched ledger: the decision is durable before the final event.
    let gate_ok = pass_gate(gate).await.is_ok();
    saver.save(&final_object).await;
    // A cancel is the client's too: the ledger records the step as
    // cancelled by the client.
    ending.end(&gw, usage, client_gone || was_cancelled, error);
    if !client_gone && gate_ok {
        send_all(&tx, events).await;
    }
}

/// Sends events as SSE frames; true when the client has gone.
async fn send_all(
    tx: &tokio::sync::mpsc::Sender<Bytes>,
    events: Vec<treaty_openai::responses::Event>,
) -> bool {
    for e in events {
        if tx.send(e.to_sse()).await.is_err() {
            return true;
        }
    }
    false
}

/// Stores a finished response and appends its turn to its conversation.
struct Saver {
    gw: Arc<Gateway>,
    store: bool,
    conversation_id: Option<String>,
    input: Vec<Item>,
}

impl Saver {
    async fn save(&self, object: &ResponseObject) {
        let status = status_str(object.status);
        let rows: Vec<_> = object
            .output
            .iter()
            .filter_map(|i| item_row(i).ok())
            .collect();
        if self.store {
            let body = match to_json(object) {
                Ok(b) => b,
                Err(_) => return,
            };
            match self
                .gw
                .store
                .finish_response(&object.id, status, now_ms(), &body, &rows)
                .await
            {
                Ok(true) => {}
                // Cancelled (or deleted) while it was being made: the
                // client gave the turn up, so it does not join the
                // conversation either.
                Ok(false) => return,
                Err(e) => {
                    tracing::error!(response = %object.id, error = %e, "cannot store a finished response");
                }
            }
        }
        if let Some(conv) = &self.conversation_id
            && matches!(
                object.status,
                ResponseStatus::Completed | ResponseStatus::Incomplete
            )
        {
            let mut turn: Vec<_> = self.input.iter().filter_map(|i| item_row(i).ok()).collect();
            turn.extend(rows);
            if let Err(e) = self
                .gw
                .store
                .append_conversation_items(conv, &turn, now_ms())
                .await
            {
                tracing::error!(conversation = %conv, error = %e, "cannot append a turn to a conversation");
            }
        }
    }
}

pub(crate) fn status_str(s: ResponseStatus) -> &'static str {
    match s {
        ResponseStatus::Completed => "completed",
        ResponseStatus::Failed => "failed",
        ResponseStatus::InProgress => "in_progress",
        ResponseStatus::Cancelled => "cancelled",
        ResponseStatus::Queued => "queued",
        ResponseStatus::Incomplete => "incomplete",
    }
}

/// The items every earlier response in the chain ending at `last` saw and
/// said, oldest first.
async fn chain(gw: &Gateway, key: &VerifiedKey, last: &str) -> Result<Vec<Item>, ApiError> {
    let tenant = key.tenant.as_str();
    let mut ids = Vec::new();
    let mut next = Some(last.to_owned());
    while let Some(id) = next {
        if ids.len() >= MAX_CHAIN {
            return Err(ApiError::invalid(
                format!("The chain of previous responses is longer than {MAX_CHAIN}."),
                Some("previous_response_id".into()),
            ));
        }
        let Some(row) = gw.store.response(tenant, &id).await.map_err(store_error)? else {
            return Err(ApiError::new(
                Code::NotFound,
                format!("Previous response with id '{id}' not found."),
            )
            .with_param("previous_response_id"));
        };
        next = row.previous_response_id.clone();
        ids.push(row.id);
    }
    let mut items = Vec::new();
    for id in ids.iter().rev() {
        for kind in [ItemKind::Input, ItemKind::Output] {
            for row in gw
                .store
                .response_items(id, kind)
                .await
                .map_err(store_error)?
            {
                items.push(from_json::<Item>(&row.body)?);
            }
        }
    }
    Ok(items)
}

async fn conversation_history(
    gw: &Gateway,
    key: &VerifiedKey,
    id: &str,
) -> Result<Vec<Item>, ApiError> {
    if gw
        .store
        .conversation(key.tenant.as_str(), id)
        .await
        .map_err(store_error)?
        .is_none()
    {
        return Err(not_found("Conversation", id).with_param("conversation"));
    }
    let mut items = Vec::new();
    let mut cursor = None;
    loop {
        let page = gw
            .store
            .conversation_items(id, cursor, treaty_store::Order::Asc, 500)
            .await
            .map_err(store_error)?;
        let done = page.len() < 500;
        for row in &page {
            items.push(from_json::<Item>(&row.body)?);
        }
        cursor = page.last().map(|r| r.seq);
        if done {
            return Ok(items);
        }
    }
}

async fn stored(gw: &Gateway, key: &VerifiedKey, id: &str) -> Result<ResponseRow, ApiError> {
    gw.store
        .response(key.tenant.as_str(), id)
        .await
        .map_err(store_error)?
        .ok_or_else(|| not_found("Response", id))
}

pub(crate) async fn retrieve(
    State(gw): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let key = authenticate(&gw, &headers).await?;
    let row = stored(&gw, &key, &id).await?;
    let object: ResponseObject = from_json(&row.body)?;
    json(&object)
}

pub(crate) async fn delete(
    State(gw): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let key = authenticate(&gw, &headers).await?;
    changed(
        "Response",
        &id,
        gw.store.delete_response(key.tenant.as_str(), &id).await,
    )?;
    json(&Deleted::response(id))
}

/// Cancels a response still in progress (a stream being made); one that
/// has ended cannot be cancelled.
pub(crate) async fn cancel(
    State(gw): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let key = authenticate(&gw, &headers).await?;
    let row = stored(&gw, &key, &id).await?;
    let mut object: ResponseObject = from_json(&row.body)?;
    if row.status != "in_progress" {
        return Err(ApiError::invalid(
            format!(
                "Response '{id}' is {} and can no longer be cancelled.",
                row.status
            ),
            None,
        ));
    }
    object.status = ResponseStatus::Cancelled;
    let body = to_json(&object)?;
    let changed = gw
        .store
        .transition_response(
            key.tenant.as_str(),
            &id,
            "in_progress",
            "cancelled",
            &body,
            now_ms(),
        )
        .await
        .map_err(store_error)?;
    if !changed {
        let row = stored(&gw, &key, &id).await?;
        return json(&from_json::<ResponseObject>(&row.body)?);
    }
    gw.runtime.live.cancel(&id);
    json(&object)
}

/// `GET /v1/responses/{id}/input_items`: the items given as this
/// response's input, newest first by default, with cursor pagination.
pub(crate) async fn input_items_list(
    State(gw): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<PageQuery>,
) -> Result<Response, ApiError> {
    let key = authenticate(&gw, &headers).await?;
    let limit = q.limit()?;
    let order = q.order(treaty_store::Order::Desc)?;
    stored(&gw, &key, &id).await?;
    let mut items = Vec::new();
    for row in gw
        .store
        .response_items(&id, ItemKind::Input)
        .await
        .map_err(store_error)?
    {
        items.push(from_json::<Item>(&row.body)?);
    }
    if order == treaty_store::Order::Desc {
        items.reverse();
    }
    let start = match &q.after {
        None => 0,
        Some(after) => match items.iter().position(|i| i.id() == after) {
            Some(p) => p + 1,
            None => {
                return Err(ApiError::invalid(
                    format!("'after' names no input item of response '{id}': '{after}'."),
                    Some("after".into()),
                ));
            }
        },
    };
    let rest: Vec<Item> = items.into_iter().skip(start).collect();
    let has_more = rest.len() as i64 > limit;
    let page: Vec<Item> = rest.into_iter().take(limit as usize).collect();
    json(&ItemList::new(page, has_more))
}
