//! The one builder of decision records.
//!
//! A model call, a refusal, an operation on stored state and a tool call
//! all leave the same record, built here from the [`Decided`] and the
//! router's picks: what the ledger keeps of a decision is everything
//! needed to decide the request again under another reading, and nothing
//! of its content.

use treaty_contracts::ClauseId;
use treaty_ledger::{
    DecisionRecord, HostVerdict, RequestFeatures, RuntimeVerdict, ShadowVerdict, ToolVerdict,
};

use crate::ask::{Ask, What};
use crate::decide::{Decided, Shadow};
use crate::policy::Policy;

/// Where the router would send the request: the first host of the plan in
/// force, and for each shadow reading (in order) the host it would pick.
#[derive(Debug, Clone, Copy, Default)]
pub struct Picks<'a> {
    pub chosen: Option<usize>,
    pub shadows: &'a [Option<usize>],
}

fn ids(clauses: &[ClauseId]) -> Vec<String> {
    clauses.iter().map(|c| c.as_str().to_owned()).collect()
}

impl Decided<'_> {
    /// The ledger record of this decision.
    pub fn record(&self, policy: &Policy, ask: &Ask<'_>, picks: Picks<'_>) -> DecisionRecord {
        let config = policy.config();
        let host_id = |i: usize| config.hosts.get(i).map(|h| h.id().to_string());
        let hosts = match &ask.what {
            What::Tool { .. } => Vec::new(),
            _ => config
                .hosts
                .iter()
                .enumerate()
                .map(|(i, h)| {
                    let (allowed, clauses) = match &self.decision {
                        Some(d) => (
                            d.admitted && d.allowed_hosts.contains(i),
                            ids(d.clauses_for_host(i)),
                        ),
                        None => (true, Vec::new()),
                    };
                    HostVerdict {
                        host: h.id().to_string(),
                        allowed,
                        clauses,
                    }
                })
                .collect(),
        };
        let instance = &config.instance;
        let runtime = self.hold.map(|hold| RuntimeVerdict {
            instance: instance.id.clone(),
            cloud: instance.cloud.clone(),
            region: instance.region.clone(),
            allowed: hold.allowed,
            clauses: ids(hold.clauses),
        });
        let tool = match (&ask.what, &self.tool) {
            (What::Tool { tool, call_id, .. }, Some(t)) => Some(ToolVerdict {
                call_id: (*call_id).to_owned(),
                kind: tool.kind.to_owned(),
                connector: tool.connector.to_owned(),
                name: tool.name.to_owned(),
                allowed: self.refusal.is_none() && t.verdict.allowed,
                clauses: ids(&t.verdict.clauses),
            }),
            _ => None,
        };
        let shadow = self
            .shadows
            .iter()
            .enumerate()
            .map(|(n, s)| shadow_verdict(s, picks.shadows.get(n).copied().flatten(), &host_id))
            .collect();
        let s = &ask.subject;
        DecisionRecord {
            request_id: ask.request_id.to_owned(),
            at_ms: ask.at_ms,
            key_id: s.key_id.to_owned(),
            tenant: s.tenant.to_string(),
            channel: s.channel.to_string(),
            product: s.product.to_string(),
            route: ask.what.route().path().to_owned(),
            model: ask.what.model().to_owned(),
            workload_class: self.class.as_str().to_owned(),
            classified_by: self.rule.to_owned(),
            data_classification: self.data_classification.to_owned(),
            declared_class: self.declared.map(|c| c.as_str().to_owned()),
            reading: policy.reading().map(str::to_owned),
            admitted: self.decision.as_ref().is_none_or(|d| d.admitted),
            admit_clauses: self
                .decision
                .as_ref()
                .map(|d| ids(d.admit_clauses))
                .unwrap_or_default(),
            hosts,
            chosen: picks.chosen.and_then(host_id),
            features: RequestFeatures {
                store: ask.features.store,
                previous_response_id: ask.features.previous_response_id,
                conversation: ask.features.conversation,
            },
            model_step: ask.model_step,
            run_id: ask.run_id.map(str::to_owned),
            refused: self.refusal.as_ref().map(|_| "contract_refused".to_owned()),
            runtime,
            tool,
            operation: match &ask.what {
                What::State { op, .. } => Some(op.as_str().to_owned()),
                _ => None,
            },
            instance: Some(instance.id.clone()),
            shadow,
        }
    }
}

fn shadow_verdict(
    s: &Shadow<'_>,
    pick: Option<usize>,
    host_id: &dyn Fn(usize) -> Option<String>,
) -> ShadowVerdict {
    let d = &s.decision;
    let clauses = if !d.admitted {
        ids(d.admit_clauses)
    } else if s.held.is_some() {
        ids(d.runtime_clauses)
    } else if s.tool_allowed.is_some() {
        Vec::new()
    } else {
        match pick {
            Some(i) => ids(d.clauses_for_host(i)),
            // Nothing allowed: the clauses refusing the hosts serving it.
            None => {
                let mut all: Vec<String> = s
                    .serving
                    .iter()
                    .flat_map(|i| ids(d.clauses_for_host(i)))
                    .collect();
                all.sort();
                all.dedup();
                all
            }
        }
    };
    ShadowVerdict {
        reading: s.reading.to_owned(),
        workload_class: s.class.as_str().to_owned(),
        classified_by: s.rule.to_owned(),
        admitted: d.admitted,
        allowed: s.allowed.iter().filter_map(host_id).collect(),
        chosen: pick.and_then(host_id),
        held: s.held,
        tool_allowed: s.tool_allowed,
        clauses,
    }
}
