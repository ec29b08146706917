//! Treaty's admin web UI, served by the gateway under `/ui`: traffic and
//! refusals, the ledger browser and its verification, keys and budgets,
//! the contract explorer, what-if between readings, and agent runs.
//!
//! Pages are rendered on the server ([`maud`] templates, every value
//! escaped) with charts as inline SVG from the ledger crate's
//! [`treaty_ledger::svg`]; one small hand-written script (`assets/ui.js`,
//! embedded) refreshes the overview, polls a verification's progress and
//! submits pickers. Nothing needs Node, at run time or to build.
//!
//! Who may look: a signed-in browser ([`auth`]), as the admin (may change
//! keys) or the auditor (may browse and verify, never change). Every
//! change carries the session's CSRF token and is recorded in the ledger
//! through [`treaty_engine::Engine::audit`], as the admin API does.
//!
//! The UI only reads through the engine's store, ledger and policy, and
//! writes nothing but sessions, keys (through `treaty_keys`) and admin
//! records: it never decides, routes or edits the ledger. Listing the
//! ledger reads backwards along the sequence number a bounded number of
//! rows per page, so a page costs the same on any ledger size.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use treaty_engine::Engine;
use treaty_runtime::Runtime;

mod assets;
pub mod auth;
mod contracts;
mod explain;
mod keys;
mod ledger;
mod overview;
mod page;
mod readings;
mod runs;
mod verify;
mod whatif;

/// What every page reads: the engine and runtime the gateway serves,
/// the UI's settings, the verifications under way and the readings
/// loaded for the explorer.
#[derive(Debug)]
pub struct Ui {
    pub engine: Arc<Engine>,
    pub runtime: Arc<Runtime>,
    pub settings: Settings,
    jobs: verify::Jobs,
    readings: readings::Readings,
}

/// The UI's own settings.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// A session unused this long is over (sliding).
    pub session_idle: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            session_idle: Duration::from_secs(8 * 3600),
        }
    }
}

/// The UI's routes, to be nested at `/ui` (links are absolute, under
/// `/ui`).
pub fn router(engine: Arc<Engine>, runtime: Arc<Runtime>, settings: Settings) -> Router {
    let ui = Arc::new(Ui {
        readings: readings::Readings::new(engine.config.clone()),
        engine,
        runtime,
        settings,
        jobs: verify::Jobs::default(),
    });
    Router::new()
        .route("/", get(overview::page))
        .route("/overview/fragment", get(overview::fragment))
        .route("/login", get(auth::login_page).post(auth::login))
        .route("/logout", post(auth::logout))
        .route("/ledger", get(ledger::list))
        .route("/ledger/{request_id}", get(ledger::record))
        .route("/verify", post(verify::start))
        .route("/verify/{job}", get(verify::page))
        .route("/verify/{job}/status", get(verify::status))
        .route("/keys", get(keys::list).post(keys::create))
        .route("/keys/{id}/revoke", post(keys::revoke))
        .route("/explain/{request_id}", get(explain::page))
        .route("/contracts", get(contracts::page))
        .route("/whatif", get(whatif::page))
        .route("/runs", get(runs::list))
        .route("/runs/{id}", get(runs::page))
        .route("/assets/ui.js", get(assets::script))
        .route("/assets/ui.css", get(assets::style))
        .fallback(page::not_found)
        .layer(axum::middleware::from_fn(page::security_headers))
        .with_state(ui)
}
