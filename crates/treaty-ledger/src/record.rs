//! The two records the ledger keeps, and their canonical bytes.
//!
//! A [`DecisionRecord`] is written before a request reaches any host and
//! holds everything needed to decide the request again under another
//! reading or classification (the request *shape*: route, product,
//! features, declared class, data classification, model step); an
//! [`OutcomeRecord`] follows with what happened. Neither ever holds a
//! prompt, a completion, a key secret or an upstream body: evidence of
//! where work ran, not of what it said.
//!
//! Canonical form: `serde_json` of the struct. That is deterministic
//! because every field is a struct field serialised in declaration order
//! (no maps, whose key order could vary), every number is an integer (cost
//! in micro-units, latency in microseconds: no floats, whose text form is
//! not unique), and `serde_json` escapes strings one way. Verification
//! hashes the *stored* bytes and never re-serialises, so adding a field
//! later changes new records only and never breaks an old chain; the
//! golden test pins today's bytes.

use serde::{Deserialize, Serialize};

use crate::LedgerError;

/// One host's verdict for a request, with the clauses behind it
/// (permitting if allowed, refusing if not).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostVerdict {
    pub host: String,
    pub allowed: bool,
    pub clauses: Vec<String>,
}

/// The body features classification reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestFeatures {
    /// `store` as sent; `None` when absent.
    pub store: Option<bool>,
    pub previous_response_id: bool,
    pub conversation: bool,
}

/// The decision for one request, durable before any host sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionRecord {
    pub request_id: String,
    /// Unix milliseconds of the decision (also the instant clause windows
    /// were evaluated at).
    pub at_ms: i64,
    /// The virtual key's public id, never its secret.
    pub key_id: String,
    pub tenant: String,
    pub channel: String,
    pub product: String,
    /// The API path, e.g. `/v1/chat/completions`.
    pub route: String,
    /// The public model name asked for.
    pub model: String,
    pub workload_class: String,
    /// The id of the classification rule that set the class.
    pub classified_by: String,
    pub data_classification: String,
    /// A class the client declared (and its key may declare).
    pub declared_class: Option<String>,
    /// The contract reading in force; `None` without contracts.
    pub reading: Option<String>,
    pub admitted: bool,
    /// Permitting clauses if admitted, refusing ones if not.
    pub admit_clauses: Vec<String>,
    /// Every candidate host (those serving the model), in the order the
    /// gateway considered them, with its verdict.
    pub hosts: Vec<HostVerdict>,
    /// The first host of the routing plan.
    pub chosen: Option<String>,
    pub features: RequestFeatures,
    /// A model step made by the agent runtime on behalf of a run.
    pub model_step: bool,
    pub run_id: Option<String>,
    /// The error code when the request was refused before any host.
    pub refused: Option<String>,
    /// For a request that holds state (a stored response, a conversation,
    /// an agent run): the Treaty instance holding it and the contracts'
    /// `hold` verdict. Absent on stateless requests and model steps, and
    /// in records written before the agent platform.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<RuntimeVerdict>,
    /// For a tool call of an agent run: the tool and the contracts' `use`
    /// verdict, decided before the call is made. Absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<ToolVerdict>,
    /// For a decision about stored state: the operation, e.g.
    /// `agents.update` (reads that return stored state are decisions too).
    /// Absent on model calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    /// The Treaty instance (replica) that made the decision. Absent in
    /// records written before replicas were named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// The same request decided under each shadow reading
    /// (`contracts.shadow`), beside the reading in force: where readings
    /// part on live traffic, without a replay.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shadow: Vec<ShadowVerdict>,
}

/// A request decided under a shadow reading: evaluated, never enforced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShadowVerdict {
    pub reading: String,
    /// The class that reading's classification rules give the request.
    pub workload_class: String,
    pub classified_by: String,
    pub admitted: bool,
    /// The hosts serving the model that the reading allows, in config
    /// order (empty when not admitted, and for state and tool decisions).
    pub allowed: Vec<String>,
    /// The host the router would pick among them now.
    pub chosen: Option<String>,
    /// For a decision about stored state: may this instance hold it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held: Option<bool>,
    /// For a tool call: may the tool be used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_allowed: Option<bool>,
    /// The clauses behind the verdict: those refusing it when refused,
    /// else those allowing the chosen host (or the hold, or the use).
    pub clauses: Vec<String>,
}

impl ShadowVerdict {
    /// Whether the request would be served (or the state held, or the
    /// tool used) under this reading.
    pub fn allows(&self) -> bool {
        if !self.admitted {
            return false;
        }
        match (self.held, self.tool_allowed) {
            (Some(held), _) => held,
            (None, Some(allowed)) => allowed,
            (None, None) => !self.allowed.is_empty(),
        }
    }
}

/// A tool an agent run asked to call, and whether the contracts let it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolVerdict {
    /// The model's id for the call.
    pub call_id: String,
    /// `webhook` or `mcp`.
    pub kind: String,
    /// The MCP connector, or the webhook's name.
    pub connector: String,
    pub name: String,
    pub allowed: bool,
    /// Permitting clauses if allowed, refusing ones if not; empty when no
    /// clause of the reading names the `use` action.
    pub clauses: Vec<String>,
}

/// Where a stateful runtime is held, and whether the contracts let it be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeVerdict {
    pub instance: String,
    pub cloud: String,
    pub region: String,
    pub allowed: bool,
    /// Permitting clauses if allowed, refusing ones if not.
    pub clauses: Vec<String>,
}

/// One attempt at one host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptRecord {
    pub host: String,
    /// Why it failed over; `None` for the attempt that served.
    pub error: Option<String>,
    pub latency_us: u64,
}

/// What happened to a request, written when it ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutcomeRecord {
    pub request_id: String,
    pub at_ms: i64,
    pub served_by: Option<String>,
    pub attempts: Vec<AttemptRecord>,
    /// The HTTP status returned to the client.
    pub status: u16,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Cost in micro-units of the deployment's currency (integers only:
    /// hashed data holds no floats).
    pub cost_micros: i64,
    pub latency_us: u64,
    pub client_cancelled: bool,
    pub error: Option<String>,
}

/// A change of the key that signs the log, recorded in the log itself so
/// that the change is covered by the checkpoints after it (and, when the
/// previous key was at hand, by one it signed too).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    pub at_ms: i64,
    /// The note verifier key now signing (`name+id+base64`).
    pub key: String,
    /// The key it replaces; `None` for the log's first key.
    pub previous: Option<String>,
    /// Why the key changed.
    pub reason: String,
}

/// An administrative change (a key created or revoked, a budget set or
/// removed), recorded with who made it, so the log shows who changed what
/// a counterparty's requests were held to. Never holds a secret: a key is
/// named by its id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminRecord {
    pub at_ms: i64,
    /// Who: `admin-api@<address>`, or `cli:<user>` for the command line.
    pub actor: String,
    /// What: `keys.create`, `keys.revoke`, `budgets.set`, `budgets.remove`.
    pub action: String,
    /// The object: a key id or a budget id.
    pub target: String,
    /// The change, for people (the key's tenant/channel/product, the
    /// budget's amount and period).
    pub detail: String,
}

/// What [`crate::Ledger::append`] takes.
///
/// The variants differ in size (a decision lists host verdicts), but an
/// entry is built once and serialised at once by `append`: boxing the
/// decision would add an allocation per request for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Decision(DecisionRecord),
    Outcome(OutcomeRecord),
    Key(KeyRecord),
    Admin(AdminRecord),
}

/// The kind of a record. Its one-byte code is what the hash covers; its
/// name is what the `kind` column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Decision,
    Outcome,
    Key,
    Admin,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Decision => "decision",
            Kind::Outcome => "outcome",
            Kind::Key => "key",
            Kind::Admin => "admin",
        }
    }

    /// The byte hashed into the chain.
    pub fn code(self) -> u8 {
        match self {
            Kind::Decision => 1,
            Kind::Outcome => 2,
            Kind::Key => 3,
            Kind::Admin => 4,
        }
    }

    pub fn parse(name: &str) -> Option<Kind> {
        match name {
            "decision" => Some(Kind::Decision),
            "outcome" => Some(Kind::Outcome),
            "key" => Some(Kind::Key),
            "admin" => Some(Kind::Admin),
            _ => None,
        }
    }
}

impl Entry {
    pub fn kind(&self) -> Kind {
        match self {
            Entry::Decision(_) => Kind::Decision,
            Entry::Outcome(_) => Kind::Outcome,
            Entry::Key(_) => Kind::Key,
            Entry::Admin(_) => Kind::Admin,
        }
    }

    /// The request the record belongs to; a key record's is `key:` and
    /// the key's id, an admin record's `admin:` and its target.
    pub fn request_id(&self) -> String {
        match self {
            Entry::Decision(d) => d.request_id.clone(),
            Entry::Outcome(o) => o.request_id.clone(),
            Entry::Key(k) => format!("key:{}", k.key.split('+').nth(1).unwrap_or("")),
            Entry::Admin(a) => format!("admin:{}", a.target),
        }
    }

    pub fn at_ms(&self) -> i64 {
        match self {
            Entry::Decision(d) => d.at_ms,
            Entry::Outcome(o) => o.at_ms,
            Entry::Key(k) => k.at_ms,
            Entry::Admin(a) => a.at_ms,
        }
    }

    /// The canonical JSON that is stored and hashed.
    pub fn canonical(&self) -> Result<String, LedgerError> {
        match self {
            Entry::Decision(d) => serde_json::to_string(d),
            Entry::Outcome(o) => serde_json::to_string(o),
            Entry::Key(k) => serde_json::to_string(k),
            Entry::Admin(a) => serde_json::to_string(a),
        }
        .map_err(|e| LedgerError::Encode(e.to_string()))
    }

    /// Reads a stored payload back.
    pub fn decode(kind: Kind, payload: &str) -> Result<Entry, serde_json::Error> {
        Ok(match kind {
            Kind::Decision => Entry::Decision(serde_json::from_str(payload)?),
            Kind::Outcome => Entry::Outcome(serde_json::from_str(payload)?),
            Kind::Key => Entry::Key(serde_json::from_str(payload)?),
            Kind::Admin => Entry::Admin(serde_json::from_str(payload)?),
        })
    }
}

#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;

    pub fn decision(n: u64) -> DecisionRecord {
        DecisionRecord {
            request_id: format!("req_{n:06}"),
            at_ms: 1_767_225_600_000 + n as i64 * 1000,
            key_id: "key_01".into(),
            tenant: "acme".into(),
            channel: "aws-marketplace".into(),
            product: "frontier".into(),
            route: "/v1/chat/completions".into(),
            model: "gpt-4o".into(),
            workload_class: "stateless_api".into(),
            classified_by: "model-steps".into(),
            data_classification: "internal".into(),
            declared_class: None,
            reading: Some("reading-openai".into()),
            admitted: true,
            admit_clauses: vec!["C2".into()],
            hosts: vec![
                HostVerdict {
                    host: "azure-eastus".into(),
                    allowed: true,
                    clauses: vec!["C1".into()],
                },
                HostVerdict {
                    host: "bedrock-us".into(),
                    allowed: false,
                    clauses: vec!["C4".into()],
                },
            ],
            chosen: Some("azure-eastus".into()),
            features: RequestFeatures::default(),
            model_step: true,
            run_id: Some("run_1".into()),
            refused: None,
            runtime: None,
            tool: None,
            operation: None,
            instance: None,
            shadow: Vec::new(),
        }
    }

    pub fn outcome(n: u64) -> OutcomeRecord {
        OutcomeRecord {
            request_id: format!("req_{n:06}"),
            at_ms: 1_767_225_600_000 + n as i64 * 1000 + 250,
            served_by: Some("azure-eastus".into()),
            attempts: vec![AttemptRecord {
                host: "azure-eastus".into(),
                error: None,
                latency_us: 240_000,
            }],
            status: 200,
            prompt_tokens: 12,
            completion_tokens: 30,
            cost_micros: 330,
            latency_us: 250_000,
            client_cancelled: false,
            error: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;

    #[test]
    fn records_round_trip_through_their_canonical_bytes() {
        for entry in [Entry::Decision(decision(7)), Entry::Outcome(outcome(7))] {
            let text = entry.canonical().unwrap();
            assert_eq!(Entry::decode(entry.kind(), &text).unwrap(), entry);
            // Canonical: serialising the decoded record gives the same bytes.
            let again = Entry::decode(entry.kind(), &text)
                .unwrap()
                .canonical()
                .unwrap();
            assert_eq!(again, text);
        }
    }

    #[test]
    fn canonical_bytes_are_pinned() {
        let text = Entry::Outcome(outcome(1)).canonical().unwrap();
        assert_eq!(
            text,
            r#"{"request_id":"req_000001","at_ms":1767225601250,"served_by":"azure-eastus","attempts":[{"host":"azure-eastus","error":null,"latency_us":240000}],"status":200,"prompt_tokens":12,"completion_tokens":30,"cost_micros":330,"latency_us":250000,"client_cancelled":false,"error":null}"#
        );
    }

    #[test]
    fn kinds_have_stable_names_and_codes() {
        assert_eq!(Kind::parse("decision"), Some(Kind::Decision));
        assert_eq!(Kind::parse("outcome"), Some(Kind::Outcome));
        assert_eq!(Kind::parse("other"), None);
        assert_eq!(
            (
                Kind::Decision.code(),
                Kind::Outcome.code(),
                Kind::Key.code()
            ),
            (1, 2, 3)
        );
        assert_eq!(Kind::parse("key"), Some(Kind::Key));
    }
}
