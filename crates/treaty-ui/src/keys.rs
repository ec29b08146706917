//! `/ui/keys`: virtual keys (list, create with the secret shown once,
//! revoke) and budgets with their spend. Changes pass
//! [`Session::may_change`] (admin role, CSRF token) and are recorded in
//! the ledger through `engine.audit`, with the same actions as the admin
//! API (`keys.create`, `keys.revoke`).

use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use treaty_keys::{KeyRequest, KeyView};

use crate::Ui;
use crate::auth::{CsrfForm, Role, Session};
use crate::page;

pub async fn list(State(ui): State<Arc<Ui>>, session: Session) -> Response {
    match render(&ui, &session, None, None).await {
        Ok(r) => r,
        Err(e) => page::store_error(&e),
    }
}

/// The keys page, with a freshly minted secret or an error at the top.
async fn render(
    ui: &Ui,
    session: &Session,
    minted: Option<(&KeyView, &str)>,
    error: Option<&str>,
) -> Result<Response, treaty_store::StoreError> {
    let engine = &ui.engine;
    let rows = engine.store.list_keys(None).await?;
    let keys: Vec<KeyView> = rows.iter().map(KeyView::from).collect();
    let budgets = treaty_limits::list_budgets(&engine.store, treaty_domain::now_ms()).await?;
    let admin = session.role == Role::Admin;
    let body = html! {
        @if let Some(e) = error { p.error role="alert" { (e) } }
        @if let Some((view, secret)) = minted {
            div.secret role="status" #new-secret {
                p { "Key " code { (view.id) } " for " (view.tenant) " / " (view.channel) " / " (view.product)
                    " was created. Its secret is shown " strong { "once" } ", now: Treaty keeps only its SHA-256." }
                p { code #secret { (secret) } }
            }
        }
        @if admin { (create_form(ui, session)) }
        @else { p.notice { "The auditor role is read-only: keys are listed, not changed." } }
        h2 { "Keys" }
        div.table-wrap { table #keys {
            thead { tr { th { "id" } th { "name" } th { "tenant / channel / product" } th { "prefix" } th { "created" } th { "expires" } th { "status" } @if admin { th { "" } } } }
            tbody {
                @for k in &keys {
                    tr data-key=(k.id) {
                        td.mono { (k.id) }
                        td { (k.name.as_deref().unwrap_or("")) }
                        td { (k.tenant) " / " (k.channel) " / " (k.product) }
                        td.mono { (k.prefix) "…" }
                        td { (k.created_at) }
                        td { (k.expires_at.as_deref().unwrap_or("never")) }
                        td class=(if k.status == "active" { "ok" } else { "refused" }) { (k.status) }
                        @if admin { td { @if k.status == "active" {
                            form method="post" action=(format!("/ui/keys/{}/revoke", k.id)) data-confirm=(format!("Revoke key {}? Clients using it are refused from now on.", k.id)) {
                                (page::csrf_field(session))
                                button.danger type="submit" aria-label=(format!("Revoke {}", k.id)) { "Revoke" }
                            }
                        } } }
                    }
                }
            }
        } }
        h2 { "Budgets" }
        @if budgets.is_empty() { p { "No budget is set." } }
        @else { (crate::overview::budget_table(&budgets)) }
    };
    Ok(page::layout("Keys and budgets", session, "/ui/keys", body).into_response())
}

fn create_form(ui: &Ui, session: &Session) -> Markup {
    let config = &ui.engine.config;
    html! {
        h2 { "Create a key" }
        form.filters #create-key method="post" action="/ui/keys" {
            (page::csrf_field(session))
            label { "tenant" select name="tenant" required { @for t in &config.tenants { option { (t.id.as_str()) } } } }
            label { "channel" select name="channel" required { @for c in &config.channels { option { (c.id.as_str()) } } } }
            label { "product" select name="product" required { @for p in &config.products { option { (p.id.as_str()) } } } }
            label { "name (optional)" input type="text" name="name" maxlength="100"; }
            label { "expires (UTC, optional)" input type="datetime-local" name="expires"; }
            button type="submit" { "Create key" }
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct CreateForm {
    #[serde(default)]
    csrf: String,
    tenant: String,
    channel: String,
    product: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    expires: String,
}

pub async fn create(
    State(ui): State<Arc<Ui>>,
    session: Session,
    Form(form): Form<CreateForm>,
) -> Response {
    if let Err(refused) = session.may_change(&form.csrf) {
        return refused.into_response();
    }
    let engine = &ui.engine;
    if let Err(m) = engine
        .config
        .check_binding(&form.tenant, &form.channel, &form.product)
    {
        return refuse(&ui, &session, &m).await;
    }
    let expires_at = match form.expires.trim() {
        "" => None,
        text => match page::parse_time(text) {
            Some(t) => Some(t),
            None => {
                return refuse(&ui, &session, &format!("Cannot read the expiry {text:?}.")).await;
            }
        },
    };
    let name = Some(form.name.trim().to_owned()).filter(|n| !n.is_empty());
    let (minted, view) = match treaty_keys::issue(
        &engine.store,
        KeyRequest {
            tenant: form.tenant,
            channel: form.channel,
            product: form.product,
            name,
            models: None,
            declare_classes: None,
            expires_at,
        },
    )
    .await
    {
        Ok(done) => done,
        Err(e) => return page::store_error(&e),
    };
    if let Err(e) = engine
        .audit(
            &session.actor,
            "keys.create",
            &view.id,
            format!("{}/{}/{}", view.tenant, view.channel, view.product),
        )
        .await
    {
        return page::store_error(&e.message);
    }
    // Rendered in the answer to the POST, never stored or redirected to:
    // the secret exists only in this one response.
    match render(&ui, &session, Some((&view, &minted.secret)), None).await {
        Ok(mut r) => {
            *r.status_mut() = StatusCode::CREATED;
            r
        }
        Err(e) => page::store_error(&e),
    }
}

/// The keys page again, with why the form was refused (400).
async fn refuse(ui: &Ui, session: &Session, message: &str) -> Response {
    match render(ui, session, None, Some(message)).await {
        Ok(mut r) => {
            *r.status_mut() = StatusCode::BAD_REQUEST;
            r
        }
        Err(e) => page::store_error(&e),
    }
}

pub async fn revoke(
    State(ui): State<Arc<Ui>>,
    session: Session,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Err(refused) = session.may_change(&form.csrf) {
        return refused.into_response();
    }
    let engine = &ui.engine;
    let row = match engine.store.key_by_id(&id).await {
        Ok(Some(row)) => row,
        Ok(None) => {
            return page::error_page(StatusCode::NOT_FOUND, &format!("No key with id '{id}'."));
        }
        Err(e) => return page::store_error(&e),
    };
    if let Err(e) = engine.store.revoke_key(&id, treaty_domain::now_ms()).await {
        return page::store_error(&e);
    }
    engine.forget_key(&row.secret_hash);
    if let Err(e) = engine
        .audit(
            &session.actor,
            "keys.revoke",
            &id,
            format!("{}/{}/{}", row.tenant, row.channel, row.product),
        )
        .await
    {
        return page::store_error(&e.message);
    }
    Redirect::to("/ui/keys").into_response()
}
