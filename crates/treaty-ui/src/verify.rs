//! Verifying the ledger from the UI: `POST /ui/verify` starts
//! [`treaty_ledger::verify`] in the background and redirects to the job's
//! page, which polls `/ui/verify/{job}/status` for progress. Any role may
//! verify (it only reads); the form still carries the CSRF token, as it
//! makes the server work.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Form;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Serialize;

use crate::Ui;
use crate::auth::{CsrfForm, Session};
use crate::page;

/// Jobs kept at most; the oldest finished ones are forgotten first.
const KEEP: usize = 32;

/// A verification's state, as the status endpoint reports it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Job {
    pub done: u64,
    pub total: u64,
    pub finished: bool,
    pub ok: bool,
    pub summary: String,
    #[serde(skip)]
    started_ms: i64,
}

#[derive(Debug, Default)]
pub struct Jobs(Mutex<HashMap<String, Job>>);

impl Jobs {
    fn update(&self, id: &str, f: impl FnOnce(&mut Job)) {
        if let Ok(mut jobs) = self.0.lock()
            && let Some(job) = jobs.get_mut(id)
        {
            f(job);
        }
    }

    fn get(&self, id: &str) -> Option<Job> {
        self.0.lock().ok()?.get(id).cloned()
    }

    fn insert(&self, id: String, job: Job) {
        if let Ok(mut jobs) = self.0.lock() {
            if jobs.len() >= KEEP {
                let oldest = jobs
                    .iter()
                    .filter(|(_, j)| j.finished)
                    .min_by_key(|(_, j)| j.started_ms)
                    .map(|(k, _)| k.clone());
                if let Some(k) = oldest {
                    jobs.remove(&k);
                }
            }
            jobs.insert(id, job);
        }
    }
}

pub async fn start(
    State(ui): State<Arc<Ui>>,
    session: Session,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Err(refused) = session.csrf_matches(&form.csrf) {
        return refused.into_response();
    }
    let id = format!("verify_{}", treaty_domain::now_ms());
    ui.jobs.insert(
        id.clone(),
        Job {
            summary: "starting".into(),
            started_ms: treaty_domain::now_ms(),
            ..Job::default()
        },
    );
    let task_ui = ui.clone();
    let task_id = id.clone();
    tokio::spawn(async move {
        let ui = task_ui;
        // Records still queued for the writer are verified too.
        if let Err(e) = ui.engine.ledger.flush().await {
            tracing::warn!(error = %e, "flushing the ledger before verifying");
        }
        let progress = |done: u64, total: u64| {
            ui.jobs.update(&task_id, |j| {
                j.done = done;
                j.total = total;
                j.summary = format!("{done} of {total} records checked");
            });
        };
        let report = treaty_ledger::verify(
            &ui.engine.store,
            treaty_ledger::VerifyOptions::default(),
            progress,
        )
        .await;
        ui.jobs.update(&task_id, |j| {
            j.finished = true;
            match report {
                Ok(r) => {
                    j.ok = r.ok;
                    j.done = r.records;
                    j.total = j.total.max(r.records);
                    j.summary = match &r.problem {
                        None => format!(
                            "Verified: {} records (seq {}..{}), {} checkpoints, head {}…",
                            r.records,
                            r.first,
                            r.last,
                            r.checkpoints,
                            &r.head_hash[..r.head_hash.len().min(16)]
                        ),
                        Some(p) => format!(
                            "FAILED at seq {}: {} ({})",
                            p.seq,
                            p.kind.as_str(),
                            p.detail
                        ),
                    };
                }
                Err(e) => {
                    j.ok = false;
                    j.summary = format!("Could not verify: {e}");
                }
            }
        });
    });
    Redirect::to(&format!("/ui/verify/{id}")).into_response()
}

pub async fn page(
    State(ui): State<Arc<Ui>>,
    session: Session,
    Path(job): Path<String>,
) -> Response {
    let Some(state) = ui.jobs.get(&job) else {
        return page::error_page(StatusCode::NOT_FOUND, "No such verification.");
    };
    let body = html! {
        div.job #job data-poll=(format!("/ui/verify/{job}/status")) {
            label for="verify-progress" { "Progress" }
            progress #verify-progress max="1" value="0" {}
            p data-status role="status" aria-live="polite" { (state.summary) }
        }
        p { a href="/ui/ledger" { "Back to the ledger" } }
    };
    page::layout("Verifying the ledger", &session, "/ui/ledger", body).into_response()
}

pub async fn status(State(ui): State<Arc<Ui>>, _: Session, Path(job): Path<String>) -> Response {
    match ui.jobs.get(&job) {
        Some(j) => Json(j).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
