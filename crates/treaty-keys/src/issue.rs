//! Creating keys and showing them without their secrets.

use serde::Serialize;
use treaty_domain::WorkloadClass;
use treaty_store::{KeyRow, Store, StoreError};

use crate::{MintedKey, mint, now_ms};

/// What a new key is bound to.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyRequest {
    pub tenant: String,
    pub channel: String,
    pub product: String,
    pub name: Option<String>,
    pub models: Option<Vec<String>>,
    /// Workload classes the key may declare with `x-treaty-workload-class`.
    pub declare_classes: Option<Vec<WorkloadClass>>,
    /// Unix milliseconds.
    pub expires_at: Option<i64>,
}

/// Mints and stores a key. The returned [`MintedKey`] holds the only copy
/// of the secret.
pub async fn issue(store: &Store, req: KeyRequest) -> Result<(MintedKey, KeyView), StoreError> {
    let minted = mint();
    let row = KeyRow {
        id: minted.id.clone(),
        secret_hash: minted.secret_hash.clone(),
        prefix: minted.prefix.clone(),
        tenant: req.tenant,
        channel: req.channel,
        product: req.product,
        name: req.name,
        models: req.models,
        declare_classes: req
            .declare_classes
            .map(|cs| cs.iter().map(|c| c.as_str().to_owned()).collect()),
        created_at: now_ms(),
        expires_at: req.expires_at,
        revoked_at: None,
    };
    store.insert_key(&row).await?;
    Ok((minted, KeyView::from(&row)))
}

/// A key as listed to people and the admin API: never the secret or its
/// hash. Times are RFC 3339.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeyView {
    pub id: String,
    pub prefix: String,
    pub tenant: String,
    pub channel: String,
    pub product: String,
    pub name: Option<String>,
    pub models: Option<Vec<String>>,
    pub declare_classes: Option<Vec<String>>,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
    pub status: &'static str,
}

pub fn rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ms.to_string())
}

impl From<&KeyRow> for KeyView {
    fn from(r: &KeyRow) -> Self {
        let status = if r.revoked_at.is_some() {
            "revoked"
        } else if r.expires_at.is_some_and(|at| now_ms() >= at) {
            "expired"
        } else {
            "active"
        };
        KeyView {
            id: r.id.clone(),
            prefix: r.prefix.clone(),
            tenant: r.tenant.clone(),
            channel: r.channel.clone(),
            product: r.product.clone(),
            name: r.name.clone(),
            models: r.models.clone(),
            declare_classes: r.declare_classes.clone(),
            created_at: rfc3339(r.created_at),
            expires_at: r.expires_at.map(rfc3339),
            revoked_at: r.revoked_at.map(rfc3339),
            status,
        }
    }
}
