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

    /// The key a stored run was created with, for its worker.
    pub async fn key_by_id(&self, id: &str) -> Result<Arc<VerifiedKey>, Error> {
        self.keys.by_id(id).await.map_err(auth_error)
    }
}

fn auth_error(e: AuthError) -> Error {
    match e {
        AuthError::Store(_) => Error::new(Code::StoreUnavailable, e.to_string()),
        other => Error::new(Code::InvalidApiKey, other.to_string()),
    }
}
