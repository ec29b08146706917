//! Deciding a recorded request again, for `treaty contracts simulate`,
//! and the clauses of a reading a replay compares.

use treaty_classify::{Features, Input};
use treaty_contracts::{ClauseId, Query};
use treaty_ledger::{
    DecisionRecord, HostVerdict as Recorded, ReadingClauses, Redecision, RuntimeVerdict,
    ScopedClause, ToolVerdict, Verdicts,
};

use crate::decide::TOOL_CALL_RULE;
use crate::policy::Policy;

/// Decides a recorded request again under `policy`: the same shape
/// (route, product, body features, declared class, data classification,
/// time), this policy's classification rules and contracts. A decision
/// to hold state is decided for the policy's instance (the caller loads a
/// policy whose instance is the recorded one to replay it where it was
/// made); a tool call's `use` verdict is decided again.
pub fn redecide(policy: &Policy, d: &DecisionRecord) -> Redecision {
    let config = policy.config();
    let refused = || Redecision {
        admitted: false,
        workload_class: d.workload_class.clone(),
        classified_by: d.classified_by.clone(),
        admit_clauses: Vec::new(),
        hosts: Vec::new(),
        chosen: None,
        runtime: None,
        tool: None,
    };
    let Some(product) = config.product(&d.product) else {
        return refused();
    };
    // A tool call is not classified by rules: it acts for held state (as
    // the decision core records it).
    let (classified_class, rule) = if d.tool.is_some() {
        (treaty_domain::WorkloadClass::StatefulAgent, TOOL_CALL_RULE)
    } else {
        let c = policy.classifier().classify(&Input {
            route: &d.route,
            product: &d.product,
            product_kind: product.kind,
            features: Features {
                store: d.features.store,
                previous_response_id: d.features.previous_response_id,
                conversation: d.features.conversation,
            },
            declared: d.declared_class.as_deref().and_then(|c| c.parse().ok()),
            model_step: d.model_step,
        });
        (c.class, c.rule)
    };
    let class = classified_class.as_str();
    let Some(contracts) = policy.contracts() else {
        let hosts: Vec<Recorded> = config
            .hosts
            .iter()
            .map(|h| Recorded {
                host: h.id().to_string(),
                allowed: h.host.deployment(&d.model).is_some(),
                clauses: Vec::new(),
            })
            .collect();
        let fresh = Redecision::from_verdicts(
            d,
            Verdicts {
                admitted: true,
                workload_class: class,
                classified_by: rule,
                admit_clauses: &[],
                hosts: &hosts,
                preferred: &[],
            },
        );
        // Without contracts every instance may hold any state, and every
        // tool may be used.
        if let Some(tool) = &d.tool {
            return fresh.using(ToolVerdict {
                allowed: true,
                clauses: Vec::new(),
                ..tool.clone()
            });
        }
        return match &d.runtime {
            Some(hold) => fresh.holding(RuntimeVerdict {
                allowed: true,
                clauses: Vec::new(),
                ..hold.clone()
            }),
            None => fresh,
        };
    };
    let (Ok(tenant), Ok(channel), Ok(product_id)) =
        (d.tenant.parse(), d.channel.parse(), d.product.parse())
    else {
        return refused();
    };
    let query = Query {
        tenant: &tenant,
        channel: &channel,
        product: &product_id,
        class: classified_class,
        data_classification: &d.data_classification,
        at_unix_ms: d.at_ms,
    };
    let decision = contracts.decide(&query);
    let ids = |c: &[ClauseId]| c.iter().map(|c| c.as_str().to_owned()).collect::<Vec<_>>();
    let hosts: Vec<Recorded> = config
        .hosts
        .iter()
        .enumerate()
        .map(|(i, h)| Recorded {
            host: h.id().to_string(),
            allowed: decision.allowed_hosts.contains(i) && h.host.deployment(&d.model).is_some(),
            clauses: ids(decision.clauses_for_host(i)),
        })
        .collect();
    let preferred: Vec<String> = decision
        .preferred_hosts
        .iter()
        .map(|i| config.hosts[i].id().to_string())
        .collect();
    let admit_clauses = ids(decision.admit_clauses);
    let fresh = Redecision::from_verdicts(
        d,
        Verdicts {
            admitted: decision.admitted,
            workload_class: class,
            classified_by: rule,
            admit_clauses: &admit_clauses,
            hosts: &hosts,
            preferred: &preferred,
        },
    );
    if let Some(tool) = &d.tool {
        // A tool call: the `use` verdict under this reading.
        let verdict = contracts.may_use(
            &query,
            &treaty_contracts::ToolRef {
                kind: &tool.kind,
                connector: &tool.connector,
                name: &tool.name,
            },
        );
        return fresh.using(ToolVerdict {
            allowed: decision.admitted && verdict.allowed,
            clauses: ids(&verdict.clauses),
            ..tool.clone()
        });
    }
    if d.runtime.is_none() {
        return fresh;
    }
    // A hold: may this policy's instance hold the state, as the gateway
    // records it (the refusing admission clauses when not admitted).
    let i = &config.instance;
    fresh.holding(RuntimeVerdict {
        instance: i.id.clone(),
        cloud: i.cloud.clone(),
        region: i.region.clone(),
        allowed: decision.admitted && decision.runtime_allowed,
        clauses: if decision.admitted {
            ids(decision.runtime_clauses)
        } else {
            admit_clauses
        },
    })
}

/// The clauses of the reading in force of `policy` (none without
/// contracts), for [`treaty_ledger::Simulation::between`]: a replay names
/// the clause of one reading that takes another's place by them.
pub fn reading_clauses(policy: &Policy) -> ReadingClauses {
    let Some(contracts) = policy.contracts() else {
        return ReadingClauses::default();
    };
    ReadingClauses(
        contracts
            .clauses()
            .iter()
            .map(|c| ScopedClause {
                id: c.id.as_str().to_owned(),
                actions: c.actions.iter().map(|a| a.as_str().to_owned()).collect(),
                from_ms: c.window.start_ms(),
                until_ms: c.window.end_ms(),
            })
            .collect(),
    )
}
