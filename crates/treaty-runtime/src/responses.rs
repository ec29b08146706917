//! The OpenAI Responses API, served from Treaty's own state.
//!
//! A create is, in order: validate; check the model; rebuild the history
//! (the chain of previous responses, or the conversation's items) and
//! resolve the input's item references, each of the caller's tenant and
//! product (404 otherwise, as for unknown ids); if the request holds state (stored, or continuing a previous
//! response or a conversation), pass the state gate (this instance may
//! hold it, recorded); make the model step through the one model-call
//! path; store the response and its items, and append them to the
//! conversation. Streams are translated event by event as chunks arrive
//! and stored when they end. Retrieve, delete, cancel and the input items
//! each pass the state gate on the stored response.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use treaty_classify::Features;
use treaty_domain::{Route, StateOp};
use treaty_engine::{
    Answer, Call, CallStream, Caller, End, Error, Held, ModelRequest, Owner, StateAsk, StreamItem,
};
use treaty_openai::responses::{
    CreateResponseRequest, Deleted, Item, ItemList, ResponseObject, ResponseStatus,
    StreamTranslator, input_items, new_id, output_from_chat, to_chat_request,
};
use treaty_store::{ItemKind, ResponseRow};

use crate::page::PageQuery;
use crate::stored::{changed, from_json, invalid, item_row, json, now_ms, to_json};
use crate::{Reply, Runtime, settled};

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

/// The body features of a stored response.
fn stored_features(row: &ResponseRow) -> Features {
    Features {
        store: Some(true),
        previous_response_id: row.previous_response_id.is_some(),
        conversation: row.conversation_id.is_some(),
    }
}

/// `POST /v1/responses`.
pub async fn create(
    rt: &Arc<Runtime>,
    caller: &Caller,
    req: CreateResponseRequest,
) -> Result<Reply, Error> {
    req.validate().map_err(invalid)?;
    // An unknown or forbidden model is refused before any state is decided
    // on or stored: otherwise a failed response nobody can name is kept.
    rt.engine.check_model(&caller.key, &req.model)?;
    // Earlier turns: a chain of stored responses or a conversation.
    let mut history = match (&req.previous_response_id, &req.conversation) {
        (Some(prev), _) => chain(rt, caller, prev).await?,
        (None, Some(conv)) => conversation_history(rt, caller, conv.id()).await?,
        (None, None) => Vec::new(),
    };
    let mut input = input_items(&req);
    crate::references::resolve(rt, caller, &mut input, "input").await?;
    if req.conversation.is_some() {
        crate::conversations::refuse_taken_ids(history.iter().map(Item::id), &input, "input")?;
    }
    history.extend(input.iter().cloned());
    let chat = to_chat_request(&req, &history, req.is_stream()).map_err(invalid)?;

    // Everything a client can get wrong is checked above, so the hold's
    // recorded outcome (the state is held here) is what happens next.
    let id = new_id("resp");
    let stateful = holds_state(&req);
    let held = if stateful {
        Some(
            rt.engine
                .gate_state(
                    caller,
                    StateAsk {
                        op: StateOp::ResponseCreate,
                        id: &id,
                        model: &req.model,
                        features: features(&req),
                        owner: None,
                    },
                )
                .await?,
        )
    } else {
        None
    };
    let result = make(rt, caller, &req, id, input, &chat, stateful).await;
    if let Some(held) = held {
        held.finish(&result);
    }
    result
}

/// Stores the response being made (when asked to) and makes its model step.
async fn make(
    rt: &Arc<Runtime>,
    caller: &Caller,
    req: &CreateResponseRequest,
    id: String,
    input: Vec<Item>,
    chat: &treaty_openai::ChatCompletionRequest,
    stateful: bool,
) -> Result<Reply, Error> {
    let mut object =
        ResponseObject::from_request(id.clone(), now_ms() / 1000, req, ResponseStatus::InProgress);
    let conversation_id = req.conversation.as_ref().map(|c| c.id().to_owned());
    if req.store() {
        let key = &caller.key;
        let row = ResponseRow {
            id: id.clone(),
            tenant: key.tenant.to_string(),
            channel: key.channel.to_string(),
            product: key.product.to_string(),
            key_id: key.id.clone(),
            previous_response_id: req.previous_response_id.clone(),
            conversation_id: conversation_id.clone(),
            status: "in_progress".into(),
            created_at: now_ms(),
            updated_at: now_ms(),
            body: to_json(&object)?,
        };
        let rows = input.iter().map(item_row).collect::<Result<Vec<_>, _>>()?;
        rt.engine
            .store
            .insert_response(&row, &rows)
            .await
            .map_err(Error::store)?;
    }
    let saver = Saver {
        rt: rt.clone(),
        store: req.store(),
        conversation_id,
        input,
    };
    // A response that holds state makes its model step as a separate
    // Chat Completions call, classified and placed like one (so a reading
    // that treats a product's stateless calls differently reaches the
    // step); a stateless response is itself the request being placed.
    let step_id = format!("{}.1", caller.request_id);
    let call = if stateful {
        Call {
            caller,
            request_id: &step_id,
            route: Route::ChatCompletions,
            features: treaty_policy::stateless(),
            run_id: Some(id.as_str()),
            request: ModelRequest::Chat(chat),
        }
    } else {
        Call {
            caller,
            request_id: &caller.request_id,
            route: Route::Responses,
            features: features(req),
            run_id: None,
            request: ModelRequest::Chat(chat),
        }
    };
    let answer = match rt.engine.call(call).await {
        Ok(answer) => answer,
        Err(e) => {
            object.fail_with(e.code.as_str(), &e.message);
            saver.save(&object).await;
            return Err(e);
        }
    };
    match answer {
        Answer::Full(full) => {
            let output = output_from_chat(&full.body).map_err(|e| {
                Error::new(
                    treaty_engine::Code::UpstreamError,
                    format!("The host's reply could not be read: {e}"),
                )
            });
            let output = match output {
                Ok(o) => o,
                Err(e) => {
                    object.fail_with(e.code.as_str(), &e.message);
                    saver.save(&object).await;
                    return Err(e);
                }
            };
            object.complete_with(output);
            saver.save(&object).await;
            Ok(Reply::Json {
                body: to_json(&object)?,
                placed: Some(full.placed),
            })
        }
        Answer::Stream(stream) => {
            let placed = stream.placed().clone();
            let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(32);
            let idle = rt.engine.config.upstream.first_byte_timeout;
            let cancelled = rt.live.watch(&id);
            tokio::spawn(drive_stream(
                rt.clone(),
                stream,
                object,
                saver,
                Channel {
                    tx,
                    idle,
                    cancelled,
                },
            ));
            let events = futures_util::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|b| (b, rx))
            });
            Ok(Reply::Events {
                events: Box::pin(events),
                placed: Some(placed),
            })
        }
    }
}

/// Where a streamed response's events go, and what stops it.
struct Channel {
    tx: tokio::sync::mpsc::Sender<Bytes>,
    /// Longest wait for the host's next chunk.
    idle: std::time::Duration,
    /// Notified when the client cancels the response.
    cancelled: Arc<tokio::sync::Notify>,
}

/// How a streamed response stopped reading its host.
enum Stop {
    /// The host finished and the step's decision is durable.
    Done,
    /// The call stream failed on its own (host or ledger): its outcome is
    /// recorded.
    StreamFailed(String, String),
    /// Treaty stopped it: the client cancelled, left, or the host went
    /// quiet or sent what cannot be translated.
    Stopped(End, Option<(String, String)>),
}

/// Reads the model step's stream, sends Responses events to the client,
/// and stores the response when the stream ends (also when the client
/// left: the response is then stored as it stood, `incomplete`). A cancel
/// stops reading from the host at once (dropping the upstream request)
/// and ends the stream with the response `cancelled`.
async fn drive_stream(
    rt: Arc<Runtime>,
    mut stream: Box<CallStream>,
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
    let mut t = StreamTranslator::new(object);
    let mut client_gone = send_all(&tx, t.start()).await;
    let stop = loop {
        if client_gone {
            break Stop::Stopped(End::ClientGone, None);
        }
        let item = tokio::select! {
            biased;
            () = cancelled.notified() => break Stop::Stopped(End::Cancelled, None),
            item = tokio::time::timeout(idle, stream.next()) => item,
        };
        match item {
            Err(_) => {
                let failure = (
                    "upstream_timeout".to_owned(),
                    "The host stopped sending.".to_owned(),
                );
                break Stop::Stopped(End::Failed(failure.0.clone()), Some(failure));
            }
            Ok(None) | Ok(Some(StreamItem::Done)) => break Stop::Done,
            Ok(Some(StreamItem::Failed(e))) => {
                break Stop::StreamFailed(e.code.as_str().to_owned(), e.message);
            }
            Ok(Some(StreamItem::Chunk(bytes))) => match t.on_chunk(&bytes) {
                Ok(events) => client_gone = send_all(&tx, events).await,
                Err(e) => {
                    let failure = ("upstream_error".to_owned(), e);
                    break Stop::Stopped(End::Failed(failure.0.clone()), Some(failure));
                }
            },
        }
    };
    rt.live.forget(&id);
    let (events, final_object, durable) = match stop {
        Stop::Done => {
            let (events, obj) = t.finish();
            (events, obj, true)
        }
        Stop::StreamFailed(code, message) => {
            let (events, obj) = t.fail(&code, &message);
            (events, obj, true)
        }
        Stop::Stopped(end, failure) => {
            // The step's end waits for its decision to be durable.
            let durable = stream.end(end.clone()).await.is_ok();
            match (end, failure) {
                (End::Cancelled, _) => {
                    let (events, obj) = t.cancel();
                    (events, obj, durable)
                }
                (End::ClientGone, _) => {
                    let (_, mut obj) = t.finish();
                    obj.status = ResponseStatus::Incomplete;
                    (Vec::new(), obj, durable)
                }
                (End::Failed(_), failure) => {
                    let (code, message) = failure.unwrap_or_default();
                    let (events, obj) = t.fail(&code, &message);
                    (events, obj, durable)
                }
            }
        }
    };
    saver.save(&final_object).await;
    if !client_gone && durable {
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
    rt: Arc<Runtime>,
    store: bool,
    conversation_id: Option<String>,
    input: Vec<Item>,
}

impl Saver {
    async fn save(&self, object: &ResponseObject) {
        let store = &self.rt.engine.store;
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
            match store
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
            if let Err(e) = store.append_conversation_items(conv, &turn, now_ms()).await {
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
/// said, oldest first. Each must be the caller's tenant's and product's.
async fn chain(rt: &Runtime, caller: &Caller, last: &str) -> Result<Vec<Item>, Error> {
    let store = &rt.engine.store;
    let tenant = caller.key.tenant.as_str();
    let mut ids = Vec::new();
    let mut next = Some(last.to_owned());
    while let Some(id) = next {
        if ids.len() >= MAX_CHAIN {
            return Err(Error::invalid(
                format!("The chain of previous responses is longer than {MAX_CHAIN}."),
                Some("previous_response_id".into()),
            ));
        }
        let row = store.response(tenant, &id).await.map_err(Error::store)?;
        let Some(row) = row.filter(|r| r.product == caller.key.product.as_str()) else {
            return Err(Error::new(
                treaty_engine::Code::NotFound,
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
            for row in store.response_items(id, kind).await.map_err(Error::store)? {
                items.push(from_json::<Item>(&row.body)?);
            }
        }
    }
    Ok(items)
}

/// A conversation's items, oldest first; it must be the caller's
/// tenant's and product's.
pub(crate) async fn conversation_history(
    rt: &Runtime,
    caller: &Caller,
    id: &str,
) -> Result<Vec<Item>, Error> {
    let row = crate::conversations::row(rt, caller, id)
        .await
        .map_err(|e| e.with_param("conversation"))?;
    crate::conversations::same_product(caller, &row).map_err(|e| e.with_param("conversation"))?;
    let store = &rt.engine.store;
    let mut items = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .conversation_items(id, cursor, treaty_store::Order::Asc, 500)
            .await
            .map_err(Error::store)?;
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

/// Reads a stored response and passes `op` on it through the state gate.
async fn gated(
    rt: &Runtime,
    caller: &Caller,
    id: &str,
    op: StateOp,
) -> Result<(ResponseRow, Held), Error> {
    let row = rt
        .engine
        .store
        .response(caller.key.tenant.as_str(), id)
        .await
        .map_err(Error::store)?
        .ok_or_else(|| Error::not_found("Response", id))?;
    let model = from_json::<ResponseObject>(&row.body)
        .map(|o| o.model)
        .unwrap_or_default();
    let held = rt
        .engine
        .gate_state(
            caller,
            StateAsk {
                op,
                id,
                model: &model,
                features: stored_features(&row),
                owner: Some(Owner {
                    tenant: &row.tenant,
                    product: &row.product,
                }),
            },
        )
        .await?;
    Ok((row, held))
}

pub async fn retrieve(rt: &Runtime, caller: &Caller, id: &str) -> Result<Reply, Error> {
    let (row, held) = gated(rt, caller, id, StateOp::ResponseRetrieve).await?;
    settled(
        held,
        from_json::<ResponseObject>(&row.body).and_then(|o| json(&o)),
    )
}

pub async fn delete(rt: &Runtime, caller: &Caller, id: &str) -> Result<Reply, Error> {
    let (_, held) = gated(rt, caller, id, StateOp::ResponseDelete).await?;
    let result = async {
        changed(
            "Response",
            id,
            rt.engine
                .store
                .delete_response(caller.key.tenant.as_str(), id)
                .await,
        )?;
        json(&Deleted::response(id.to_owned()))
    }
    .await;
    settled(held, result)
}

/// Cancels a response still in progress (a stream being made); one that
/// has ended cannot be cancelled.
pub async fn cancel(rt: &Runtime, caller: &Caller, id: &str) -> Result<Reply, Error> {
    let (row, held) = gated(rt, caller, id, StateOp::ResponseCancel).await?;
    let result = async {
        let mut object: ResponseObject = from_json(&row.body)?;
        if row.status != "in_progress" {
            return Err(Error::invalid(
                format!(
                    "Response '{id}' is {} and can no longer be cancelled.",
                    row.status
                ),
                None,
            ));
        }
        object.status = ResponseStatus::Cancelled;
        let body = to_json(&object)?;
        let tenant = caller.key.tenant.as_str();
        let changed = rt
            .engine
            .store
            .transition_response(tenant, id, "in_progress", "cancelled", &body, now_ms())
            .await
            .map_err(Error::store)?;
        if !changed {
            let row = rt
                .engine
                .store
                .response(tenant, id)
                .await
                .map_err(Error::store)?
                .ok_or_else(|| Error::not_found("Response", id))?;
            return json(&from_json::<ResponseObject>(&row.body)?);
        }
        rt.live.cancel(id);
        json(&object)
    }
    .await;
    settled(held, result)
}

/// `GET /v1/responses/{id}/input_items`: the items given as this
/// response's input, newest first by default, with cursor pagination.
pub async fn input_items_list(
    rt: &Runtime,
    caller: &Caller,
    id: &str,
    q: &PageQuery,
) -> Result<Reply, Error> {
    let limit = q.limit()?;
    let order = q.order(treaty_store::Order::Desc)?;
    let (_, held) = gated(rt, caller, id, StateOp::ResponseInputItems).await?;
    let result = async {
        let mut items = Vec::new();
        for row in rt
            .engine
            .store
            .response_items(id, ItemKind::Input)
            .await
            .map_err(Error::store)?
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
                    return Err(Error::invalid(
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
    .await;
    settled(held, result)
}
