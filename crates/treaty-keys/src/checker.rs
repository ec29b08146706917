//! Checking a presented key, with a short-lived cache in front of the store.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use treaty_domain::{ChannelId, ProductId, TenantId, WorkloadClass};
use treaty_store::{KeyRow, Store, StoreError};

use crate::{hash_secret, now_ms};

/// A key that passed every check, as the request context needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedKey {
    pub id: String,
    pub tenant: TenantId,
    pub channel: ChannelId,
    pub product: ProductId,
    pub models: Option<Vec<String>>,
    /// Classes this key may declare; unknown names in the store are ignored.
    pub declare_classes: Vec<WorkloadClass>,
    expires_at: Option<i64>,
}

impl VerifiedKey {
    pub fn allows_model(&self, model: &str) -> bool {
        self.models
            .as_ref()
            .is_none_or(|m| m.iter().any(|x| x == model))
    }

    pub fn may_declare(&self, class: WorkloadClass) -> bool {
        self.declare_classes.contains(&class)
    }
}

/// Why a key was refused. Every variant is a 401 to the client; the
/// messages never repeat the secret.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("Missing API key: send it as 'Authorization: Bearer <key>'.")]
    Missing,
    #[error("Invalid API key.")]
    Unknown,
    #[error("This API key has been revoked.")]
    Revoked,
    #[error("This API key has expired.")]
    Expired,
    #[error("This API key is bound to a tenant, channel or product that is no longer configured.")]
    Unbound,
    #[error("The key store is unavailable.")]
    Store(#[from] StoreError),
}

struct Entry {
    key: Result<Arc<VerifiedKey>, Refusal>,
    fetched: Instant,
}

#[derive(Clone, Copy)]
enum Refusal {
    Unknown,
    Revoked,
    Unbound,
}

/// The most entries the cache holds before it is emptied; bounds memory
/// under a flood of random keys.
const MAX_ENTRIES: usize = 100_000;

/// Checks keys against the store, caching verdicts for `ttl`.
pub struct KeyChecker {
    store: Store,
    ttl: Duration,
    cache: RwLock<HashMap<String, Entry>>,
    /// Decides whether a stored binding still names configured entities.
    bound: Box<dyn Fn(&KeyRow) -> bool + Send + Sync>,
}

impl std::fmt::Debug for KeyChecker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyChecker")
            .field("ttl", &self.ttl)
            .finish()
    }
}

impl KeyChecker {
    /// `bound` tells whether a key's tenant, channel and product are still
    /// configured.
    pub fn new(
        store: Store,
        ttl: Duration,
        bound: impl Fn(&KeyRow) -> bool + Send + Sync + 'static,
    ) -> Self {
        KeyChecker {
            store,
            ttl,
            cache: RwLock::new(HashMap::new()),
            bound: Box::new(bound),
        }
    }

    /// Verifies a presented secret.
    pub async fn check(&self, secret: &str) -> Result<Arc<VerifiedKey>, AuthError> {
        if secret.is_empty() {
            return Err(AuthError::Missing);
        }
        let hash = hash_secret(secret);
        let cached = self.cache.read().ok().and_then(|cache| {
            cache
                .get(&hash)
                .filter(|e| e.fetched.elapsed() < self.ttl)
                .map(|e| e.key.clone())
        });
        let verdict = match cached {
            Some(v) => v,
            None => {
                // The lock is released above; the store is awaited without it.
                let row = self.store.key_by_hash(&hash).await?;
                let verdict = self.judge(row);
                if !self.ttl.is_zero()
                    && let Ok(mut cache) = self.cache.write()
                {
                    if cache.len() >= MAX_ENTRIES {
                        cache.clear();
                    }
                    cache.insert(
                        hash,
                        Entry {
                            key: verdict.clone(),
                            fetched: Instant::now(),
                        },
                    );
                }
                verdict
            }
        };
        let key = verdict.map_err(|r| match r {
            Refusal::Unknown => AuthError::Unknown,
            Refusal::Revoked => AuthError::Revoked,
            Refusal::Unbound => AuthError::Unbound,
        })?;
        if key.expires_at.is_some_and(|at| now_ms() >= at) {
            return Err(AuthError::Expired);
        }
        Ok(key)
    }

    /// Verifies a key by its public id, for work done on a key's behalf
    /// after its request ended (an agent run's later steps): a key revoked
    /// or expired since then stops the work. Not cached.
    pub async fn by_id(&self, id: &str) -> Result<Arc<VerifiedKey>, AuthError> {
        let row = self.store.key_by_id(id).await?;
        let key = self.judge(row).map_err(|r| match r {
            Refusal::Unknown => AuthError::Unknown,
            Refusal::Revoked => AuthError::Revoked,
            Refusal::Unbound => AuthError::Unbound,
        })?;
        if key.expires_at.is_some_and(|at| now_ms() >= at) {
            return Err(AuthError::Expired);
        }
        Ok(key)
    }

    /// Forgets a key at once (after a revocation through this process).
    pub fn forget(&self, secret_hash: &str) {
        if let Ok(mut cache) = self.cache.write() {
            cache.remove(secret_hash);
        }
    }

    /// Forgets every cached verdict.
    pub fn clear(&self) {
        if let Ok(mut cache) = self.cache.write() {
            cache.clear();
        }
    }

    fn judge(&self, row: Option<KeyRow>) -> Result<Arc<VerifiedKey>, Refusal> {
        let row = row.ok_or(Refusal::Unknown)?;
        if row.revoked_at.is_some() {
            return Err(Refusal::Revoked);
        }
        if !(self.bound)(&row) {
            return Err(Refusal::Unbound);
        }
        let (Ok(tenant), Ok(channel), Ok(product)) = (
            TenantId::new(&row.tenant),
            ChannelId::new(&row.channel),
            ProductId::new(&row.product),
        ) else {
            return Err(Refusal::Unbound);
        };
        Ok(Arc::new(VerifiedKey {
            id: row.id,
            tenant,
            channel,
            product,
            models: row.models,
            declare_classes: row
                .declare_classes
                .iter()
                .flatten()
                .filter_map(|c| c.parse().ok())
                .collect(),
            expires_at: row.expires_at,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mint;

    async fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("k.db").display());
        (dir, Store::open(&url).await.unwrap())
    }

    fn row(m: &crate::MintedKey) -> KeyRow {
        KeyRow {
            id: m.id.clone(),
            secret_hash: m.secret_hash.clone(),
            prefix: m.prefix.clone(),
            tenant: "acme".into(),
            channel: "direct".into(),
            product: "api".into(),
            name: None,
            models: None,
            declare_classes: None,
            created_at: now_ms(),
            expires_at: None,
            revoked_at: None,
        }
    }

    #[tokio::test]
    async fn known_keys_pass_and_everything_else_is_refused() {
        let (_d, store) = store().await;
        let good = mint();
        store.insert_key(&row(&good)).await.unwrap();
        let expired = mint();
        store
            .insert_key(&KeyRow {
                expires_at: Some(now_ms() - 1),
                ..row(&expired)
            })
            .await
            .unwrap();
        let orphan = mint();
        store
            .insert_key(&KeyRow {
                tenant: "gone".into(),
                ..row(&orphan)
            })
            .await
            .unwrap();
        let checker = KeyChecker::new(store.clone(), Duration::from_secs(60), |r| {
            r.tenant == "acme"
        });

        let key = checker.check(&good.secret).await.unwrap();
        assert_eq!(key.tenant.as_str(), "acme");
        assert!(matches!(checker.check("").await, Err(AuthError::Missing)));
        assert!(matches!(
            checker.check("tk-nope").await,
            Err(AuthError::Unknown)
        ));
        assert!(matches!(
            checker.check(&expired.secret).await,
            Err(AuthError::Expired)
        ));
        assert!(matches!(
            checker.check(&orphan.secret).await,
            Err(AuthError::Unbound)
        ));

        // A revocation is seen after the cache entry is forgotten.
        store.revoke_key(&good.id, now_ms()).await.unwrap();
        assert!(checker.check(&good.secret).await.is_ok(), "cached for ttl");
        checker.forget(&good.secret_hash);
        assert!(matches!(
            checker.check(&good.secret).await,
            Err(AuthError::Revoked)
        ));
    }

    #[tokio::test]
    async fn zero_ttl_always_asks_the_store() {
        let (_d, store) = store().await;
        let k = mint();
        store.insert_key(&row(&k)).await.unwrap();
        let checker = KeyChecker::new(store.clone(), Duration::ZERO, |_| true);
        assert!(checker.check(&k.secret).await.is_ok());
        store.revoke_key(&k.id, now_ms()).await.unwrap();
        assert!(matches!(
            checker.check(&k.secret).await,
            Err(AuthError::Revoked)
        ));
    }
}
