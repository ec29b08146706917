//! `GET /v1/ledger/proofs/{request_id}`: a tenant's evidence of its own
//! request, the decision record with its RFC 9162 audit path to the latest
//! signed (and witnessed) checkpoint, which anyone can check offline
//! (`treaty receipt verify`, or any RFC 9162 verifier).
//!
//! Another tenant's request id gets the same 404 as an unknown one, so
//! ids do not leak. This reads the ledger's evidence only: no model, no
//! stored state, no tool, so it is not a decision of its own.

use axum::Json;
use axum::extract::State;
use treaty_engine::{Code, Error};
use treaty_ledger::{InclusionProof, ProofError};

use crate::body::Path;
use crate::error::ApiError;
use crate::extract::ApiKey;
use crate::gateway::Gateway;

pub(crate) async fn proof(
    State(gw): State<Gateway>,
    ApiKey(caller): ApiKey,
    Path(request_id): Path<String>,
) -> Result<Json<InclusionProof>, ApiError> {
    let engine = &gw.engine;
    match treaty_ledger::prove_request(&engine.store, caller.key.tenant.as_str(), &request_id).await
    {
        Ok(proof) => Ok(Json(proof)),
        Err(ProofError::NotFound) => Err(Error::not_found("Ledger record", &request_id).into()),
        Err(ProofError::NotYetCheckpointed) => {
            let wait = engine.config.ledger.checkpoint_interval.as_secs().max(1);
            let mut e = Error::new(
                Code::ProofNotReady,
                format!(
                    "The record of '{request_id}' is not under a signed checkpoint yet; one is signed at least every {wait}s. Retry then."
                ),
            );
            e.retry_after = Some(wait);
            Err(e.into())
        }
        Err(ProofError::Ledger(e)) => {
            tracing::error!(error = %e, "cannot build an inclusion proof");
            Err(Error::new(
                Code::LedgerUnavailable,
                "The ledger cannot be read right now.",
            )
            .into())
        }
    }
}
