//! Who is calling: a verified virtual key, the request's id and the hints
//! the client gave beside its body. The HTTP edge builds a [`Caller`] from
//! headers; a run worker from the run it resumes.

use std::sync::Arc;

use treaty_keys::{AuthError, VerifiedKey};
use treaty_policy::{Hints, Subject};

use crate::engine::Engine;
use crate::error::{Code, Error};

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub key: Arc<VerifiedKey>,
    /// The request's id (`x-request-id`), also the ledger's id for its
    /// decision.
    pub request_id: String,
    pub hints: Hints,
}

impl Caller {
    /// The key as the decision core sees it.
    pub fn subject(&self) -> Subject<'_> {
        Subject {
            key_id: &self.key.id,
            tenant: &self.key.tenant,
            channel: &self.key.channel,
            product: &self.key.product,
            may_declare: &self.key.declare_classes,
        }
    }

    /// Who is calling, as budgets and rate limits count it.
    pub fn limits_subject(&self) -> treaty_limits::Subject<'_> {
        treaty_limits::Subject {
            key: &self.key.id,
            tenant: self.key.tenant.as_str(),
            channel: self.key.channel.as_str(),
            product: self.key.product.as_str(),
        }
    }

    /// The same caller for another ledger id (a model step, a tool call).
    pub fn with_request_id(&self, request_id: String) -> Caller {
        Caller {
            request_id,
            ..self.clone()
        }
    }
}

impl Engine {
    /// Checks a presented secret ("" when none): 401 for a missing,
    /// unknown, revoked or expired key.
    pub async fn authenticate(&self, presented: &str) -> Result<Arc<VerifiedKey>, Error> {
        self.keys.check(presented).await.map_err(auth_error)
    }

    /// [`Engine::authenticate`] for a client at `addr`, with failed
    /// attempts limited per address (`rate_limits.auth_failures_per_minute`):
    /// an address out of failures gets 429 without its key being looked
    /// up, and the failure that goes one past the allowance turns its 401
    /// into that 429.
    pub async fn authenticate_from(
        &self,
        presented: &str,
        addr: Option<std::net::IpAddr>,
    ) -> Result<Arc<VerifiedKey>, Error> {
        let guard = self.limits.auth().zip(addr);
        if let Some((guard, addr)) = guard
            && let Err(wait) = guard.check(addr)
        {
            self.metrics.auth_failure_limited();
            return Err(too_many_failures(wait));
        }
        let result = self.authenticate(presented).await;
        if let (Err(e), Some((guard, addr))) = (&result, guard)
            && e.code == Code::InvalidApiKey
            && let Err(wait) = guard.failed(addr)
        {
            self.metrics.auth_failure_limited();
            return Err(too_many_failures(wait));
        }
        result
    }

    /// The key a stored run was created with, for its worker.
    pub async fn key_by_id(&self, id: &str) -> Result<Arc<VerifiedKey>, Error> {
        self.keys.by_id(id).await.map_err(auth_error)
    }
}

fn too_many_failures(wait: std::time::Duration) -> Error {
    let secs = wait.as_millis().div_ceil(1000).max(1) as u64;
    let mut e = Error::new(
        Code::AuthFailuresLimited,
        format!(
            "Too many failed authentication attempts from this address. Please try again in {secs}s."
        ),
    );
    e.retry_after = Some(secs);
    e
}

fn auth_error(e: AuthError) -> Error {
    match e {
        AuthError::Store(_) => Error::new(Code::StoreUnavailable, e.to_string()),
        other => Error::new(Code::InvalidApiKey, other.to_string()),
    }
}
