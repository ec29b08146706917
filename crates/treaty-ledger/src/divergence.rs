//! `divergence`: where each shadow reading parts from the reading in
//! force, on the traffic the ledger recorded.
//!
//! With `contracts.shadow` set, every decision record carries each shadow
//! reading's verdict beside the one enforced ([`ShadowVerdict`]): the
//! class its rules give, whether it admits, the hosts it allows and the
//! host the router would pick among them, or, for an operation on held
//! state or a tool call, whether it would hold or use. This module
//! compares the two, decision by decision, with no replay (`simulate`
//! decides recorded requests again under any reading; this reads what was
//! decided live). On one decision a shadow reading:
//!
//! - **agrees**: both let it through to the same host (or both hold the
//!   state, or both use the tool), or both refuse it;
//! - **other_host**: both let it through, the shadow to a host the
//!   reading in force refuses, though it allows the host in force too
//!   (reading-aws sends a Frontier model step to Bedrock, which C1 and C3
//!   keep it from under reading-openai);
//! - **host_not_allowed**: both let it through, but the shadow does not
//!   allow the host the reading in force picked, so it sends it elsewhere;
//! - **would_refuse**: it refuses what the reading in force let through;
//! - **would_admit**: it lets through what the reading in force refused.
//!
//! The comparison is of what the readings decide, not of what routing or
//! the client did: two picks among hosts that both readings allow differ
//! by the router's weights, health or spend, so they agree; and a request
//! refused only for its preferred-host hint (shadow readings are decided
//! without hints), whose shadow pick the reading in force allows, agrees
//! too. The ledger does not record which host was preferred, so a pick
//! moved by a preference clause only one reading has reads as routing's.
//!
//! Decisions are grouped by shadow reading, reading in force, parting, the
//! host on each side, the class on each side, and the clauses on each side
//! behind the difference: the shadow's are those its verdict names
//! (refusing, or allowing its host, hold or use); the in-force ones are
//! those the reading in force names for the same thing (its verdict on the
//! shadow's host, the admission the shadow refuses, the hold, the use).
//! Agreements are grouped by reading and classes only. Each group carries
//! the usual counts of its requests as they went under the reading in
//! force (served, tokens, cost: what would have gone elsewhere). This
//! module only reads records.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::record::{DecisionRecord, OutcomeRecord, ShadowVerdict};
use crate::report::ReportRow;
use crate::scan;

/// How a shadow reading's verdict on one decision differs from the one
/// in force (module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Parting {
    Agrees,
    HostNotAllowed,
    OtherHost,
    WouldRefuse,
    WouldAdmit,
}

impl Parting {
    pub fn as_str(self) -> &'static str {
        match self {
            Parting::Agrees => "agrees",
            Parting::HostNotAllowed => "host_not_allowed",
            Parting::OtherHost => "other_host",
            Parting::WouldRefuse => "would_refuse",
            Parting::WouldAdmit => "would_admit",
        }
    }
}

/// One group of a divergence report: a shadow reading against the
/// reading in force, parting the same way for the same reasons.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Divergence {
    /// The shadow reading.
    pub shadow: String,
    /// The reading in force when the decisions were made.
    pub reading: String,
    pub parting: Parting,
    /// The host the reading in force picked; `None` when it refused, for
    /// operations on state and tool calls, and on agreements.
    pub host: Option<String>,
    /// The host the shadow reading would pick; `None` when it refuses,
    /// for operations on state and tool calls, and on agreements.
    pub shadow_host: Option<String>,
    /// The workload class in force.
    pub class: String,
    /// The class the shadow reading's rules give.
    pub shadow_class: String,
    /// The in-force reading's clauses behind the difference.
    pub clauses: Vec<String>,
    /// The shadow reading's clauses behind the difference.
    pub shadow_clauses: Vec<String>,
}

impl Divergence {
    /// How shadow verdict `s` parts from decision `d`.
    pub(crate) fn of(d: &DecisionRecord, s: &ShadowVerdict) -> Divergence {
        let hostless = scan::hostless(d);
        let through = d.admitted && d.refused.is_none();
        let host = d.chosen.as_deref().filter(|_| through && !hostless);
        let shadow_host = if s.allows() && s.held.is_none() && s.tool_allowed.is_none() {
            s.chosen
                .as_deref()
                .or(s.allowed.first().map(String::as_str))
        } else {
            None
        };
        let allowed_in_force = |host: &str| d.hosts.iter().any(|v| v.host == host && v.allowed);
        let parting = match (through, s.allows()) {
            (false, false) => Parting::Agrees,
            (true, false) => Parting::WouldRefuse,
            // Admitted, and the shadow's host allowed in force: refused
            // for the client's hint, not by the reading (module docs).
            (false, true) if d.admitted && shadow_host.is_some_and(allowed_in_force) => {
                Parting::Agrees
            }
            (false, true) => Parting::WouldAdmit,
            (true, true) => match (host, shadow_host) {
                (Some(a), Some(b)) if a != b => {
                    if !s.allowed.iter().any(|h| h == a) {
                        Parting::HostNotAllowed
                    } else if !allowed_in_force(b) {
                        Parting::OtherHost
                    } else {
                        Parting::Agrees
                    }
                }
                _ => Parting::Agrees,
            },
        };
        let agrees = parting == Parting::Agrees;
        let clauses = match parting {
            Parting::Agrees => Vec::new(),
            Parting::WouldRefuse if !s.admitted => d.admit_clauses.clone(),
            Parting::WouldRefuse => granting(d).to_vec(),
            Parting::WouldAdmit if !d.admitted || hostless => granting(d).to_vec(),
            Parting::WouldAdmit | Parting::OtherHost | Parting::HostNotAllowed => {
                match shadow_host.and_then(|h| d.hosts.iter().find(|v| v.host == h)) {
                    Some(v) => v.clauses.clone(),
                    None => scan::refusal_causes(d),
                }
            }
        };
        Divergence {
            shadow: s.reading.clone(),
            reading: d.reading.clone().unwrap_or_else(|| "(no contracts)".into()),
            parting,
            host: host.filter(|_| !agrees).map(str::to_owned),
            shadow_host: shadow_host.filter(|_| !agrees).map(str::to_owned),
            class: d.workload_class.clone(),
            shadow_class: s.workload_class.clone(),
            clauses,
            shadow_clauses: if agrees {
                Vec::new()
            } else {
                s.clauses.clone()
            },
        }
    }
}

/// The clauses the reading in force names for what it decided: the
/// admission when it refused it, else the tool's use, the hold, or the
/// chosen host.
fn granting(d: &DecisionRecord) -> &[String] {
    if !d.admitted {
        return &d.admit_clauses;
    }
    if let Some(tool) = &d.tool {
        return &tool.clauses;
    }
    if let Some(hold) = &d.runtime {
        return &hold.clauses;
    }
    d.chosen
        .as_deref()
        .and_then(|c| d.hosts.iter().find(|h| h.host == c))
        .map_or(&[], |h| h.clauses.as_slice())
}

/// Decisions grouped by how each shadow reading parts from the reading in
/// force.
#[derive(Debug, Default)]
pub(crate) struct Partings {
    groups: BTreeMap<Divergence, ReportRow>,
}

impl Partings {
    pub(crate) fn add(&mut self, d: &DecisionRecord, o: Option<&OutcomeRecord>) {
        for s in &d.shadow {
            self.groups
                .entry(Divergence::of(d, s))
                .or_insert_with_key(|k| ReportRow {
                    key: k.shadow.clone(),
                    ..ReportRow::default()
                })
                .add(d, o);
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// One row per group: per shadow and in-force reading, agreements
    /// first, then partings, the biggest first.
    pub(crate) fn rows(&self) -> Vec<ReportRow> {
        let mut rows: Vec<ReportRow> = self
            .groups
            .iter()
            .map(|(k, row)| ReportRow {
                divergence: Some(k.clone()),
                ..row.clone()
            })
            .collect();
        rows.sort_by(|a, b| {
            let (Some(x), Some(y)) = (&a.divergence, &b.divergence) else {
                return std::cmp::Ordering::Equal;
            };
            (&x.shadow, &x.reading, x.parting)
                .cmp(&(&y.shadow, &y.reading, y.parting))
                .then(b.requests.cmp(&a.requests))
                .then(x.cmp(y))
        });
        rows
    }
}

/// The divergence report in sentences: per shadow reading, on how many
/// decisions it agrees with the reading in force, then one sentence per
/// way it parts (groups differing only in the host in force read as one),
/// e.g. "reading-aws would have sent 120 requests to bedrock-useast1
/// instead of azure-eastus (classed non_api_product, not stateless_api;
/// reading-openai: C1, C3; reading-aws: C5)".
pub fn divergence_summary(rows: &[ReportRow]) -> Vec<String> {
    let mut lines = Vec::new();
    let mut i = 0;
    while i < rows.len() {
        let Some(first) = &rows[i].divergence else {
            i += 1;
            continue;
        };
        let same = |r: &ReportRow| {
            r.divergence
                .as_ref()
                .is_some_and(|v| v.shadow == first.shadow && v.reading == first.reading)
        };
        let end = i + rows[i..].iter().take_while(|r| same(r)).count();
        let group = &rows[i..end];
        let total: u64 = group.iter().map(|r| r.requests).sum();
        let agreeing = |f: &dyn Fn(&Divergence) -> bool| -> u64 {
            group
                .iter()
                .filter(|r| r.divergence.as_ref().is_some_and(f))
                .map(|r| r.requests)
                .sum()
        };
        let agree = agreeing(&|v| v.parting == Parting::Agrees);
        let reclassified = agreeing(&|v| v.parting == Parting::Agrees && v.class != v.shadow_class);
        lines.push(format!(
            "{} agrees with {} on {agree} of {total} decisions{}",
            first.shadow,
            first.reading,
            if reclassified > 0 {
                format!(" ({reclassified} of them classed differently)")
            } else {
                String::new()
            }
        ));
        // Merge groups that differ only in the host in force.
        let mut merged: Vec<Merged<'_>> = Vec::new();
        for row in group {
            let Some(v) = &row.divergence else {
                continue;
            };
            if v.parting == Parting::Agrees {
                continue;
            }
            let host = (v.host.as_deref(), row.requests);
            match merged.iter_mut().find(|m| m.like(v)) {
                Some(m) => {
                    m.requests += row.requests;
                    m.hosts.push(host);
                }
                None => merged.push(Merged {
                    v,
                    requests: row.requests,
                    hosts: vec![host],
                }),
            }
        }
        merged.sort_by(|a, b| {
            a.v.parting
                .cmp(&b.v.parting)
                .then(b.requests.cmp(&a.requests))
        });
        lines.extend(merged.iter().map(Merged::sentence));
        i = end;
    }
    lines
}

/// Parting groups that differ only in the host in force, for one sentence.
struct Merged<'a> {
    v: &'a Divergence,
    requests: u64,
    /// Each host in force with its requests.
    hosts: Vec<(Option<&'a str>, u64)>,
}

impl Merged<'_> {
    fn like(&self, v: &Divergence) -> bool {
        let a = self.v;
        (
            a.parting,
            &a.shadow_host,
            &a.class,
            &a.shadow_class,
            &a.clauses,
            &a.shadow_clauses,
        ) == (
            v.parting,
            &v.shadow_host,
            &v.class,
            &v.shadow_class,
            &v.clauses,
            &v.shadow_clauses,
        )
    }

    /// The hosts in force: "azure-eastus", or "azure-eastus (2) and
    /// azure-westus (1)"; `None` when none was picked.
    fn hosts(&self) -> Option<String> {
        let named: Vec<(&str, u64)> = self
            .hosts
            .iter()
            .filter_map(|(h, n)| h.map(|h| (h, *n)))
            .collect();
        match named.as_slice() {
            [] => None,
            [(h, _)] => Some((*h).to_owned()),
            [rest @ .., (last, n)] => {
                let rest: Vec<String> = rest.iter().map(|(h, n)| format!("{h} ({n})")).collect();
                Some(format!("{} and {last} ({n})", rest.join(", ")))
            }
        }
    }

    fn sentence(&self) -> String {
        let v = self.v;
        let requests = match self.requests {
            1 => "1 request".to_owned(),
            n => format!("{n} requests"),
        };
        let (shadow, reading) = (&v.shadow, &v.reading);
        let what = match (v.parting, self.hosts(), v.shadow_host.as_deref()) {
            (Parting::HostNotAllowed, Some(a), Some(b)) => format!(
                "{shadow} would have sent {requests} to {b} instead of {a}, which it does not allow"
            ),
            (_, Some(a), Some(b)) => {
                format!("{shadow} would have sent {requests} to {b} instead of {a}")
            }
            (Parting::WouldRefuse, Some(a), _) => {
                format!("{shadow} would have refused {requests} that {reading} let through to {a}")
            }
            (Parting::WouldRefuse, None, _) => {
                format!("{shadow} would have refused {requests} that {reading} let through")
            }
            (_, _, Some(b)) => {
                format!("{shadow} would have let through {requests} that {reading} refused, to {b}")
            }
            _ => format!("{shadow} would have let through {requests} that {reading} refused"),
        };
        let mut why = Vec::new();
        if v.class != v.shadow_class {
            why.push(format!("classed {}, not {}", v.shadow_class, v.class));
        }
        if !v.clauses.is_empty() {
            why.push(format!("{reading}: {}", v.clauses.join(", ")));
        }
        if !v.shadow_clauses.is_empty() {
            why.push(format!("{shadow}: {}", v.shadow_clauses.join(", ")));
        }
        if why.is_empty() {
            what
        } else {
            format!("{what} ({})", why.join("; "))
        }
    }
}
