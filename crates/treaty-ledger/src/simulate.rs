//! `simulate`: replay recorded decisions under two readings and count what
//! changes.
//!
//! The ledger does not know contracts or classification rules: the caller
//! passes two functions that decide a recorded request shape again (the
//! CLI builds them from `treaty_contracts::Contracts` and
//! `treaty_classify::Classifier`), which keeps this crate free of the
//! gateway and of Cedar, and lets a test replay with plain closures.
//! [`Redecision::from_verdicts`] turns a fresh verdict into a
//! [`Redecision`] with the rule below, and [`Redecision::recorded`] gives
//! the decision as it was recorded, for "what would change from today".
//!
//! The host a request lands on under a reading is the first of the
//! record's candidate hosts (the hosts that served the model, in the order
//! the gateway considered them) that is allowed and preferred, else the
//! first allowed. A request *keeps* its host when the host it had under
//! `from` is also the one `to` picks; it *moves* (from that host to the
//! one `to` picks) when the pick differs, because the old host is refused
//! or because a preference in force under `to` ranks another first; it
//! *becomes refused* or *becomes admitted* when it is served under one
//! reading and refused under the other. A decision to hold state (a
//! stored response, a conversation, an agent, a run) has no host: it
//! keeps when both readings let its instance hold the state and becomes
//! refused (or admitted) when one does not; so does an agent's tool call,
//! by the `use` verdict. Replays only
//! read, a page of decisions at a time.

use std::collections::BTreeMap;

use serde::Serialize;
use treaty_store::Store;

use crate::LedgerError;
use crate::record::{DecisionRecord, Entry, HostVerdict, Kind, RuntimeVerdict, ToolVerdict};
use crate::scan::{self, TimeRange};

/// A recorded request decided again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Redecision {
    /// Admitted by the contracts (channel × product × tenant).
    pub admitted: bool,
    pub workload_class: String,
    /// Permitting clauses if admitted, refusing ones if not.
    pub admit_clauses: Vec<String>,
    /// Every host's verdict with its clauses.
    pub hosts: Vec<HostVerdict>,
    /// Where it would run; `None` when refused, and for a hold.
    pub chosen: Option<String>,
    /// For a decision to hold state (a stored response, a conversation,
    /// an agent or a run): may the recorded instance hold it. Such a
    /// decision runs nowhere; it is served when this allows it.
    pub runtime: Option<RuntimeVerdict>,
    /// For a tool call of an agent run: may it be made. Such a decision
    /// runs nowhere either; it is served when admitted and this allows it.
    pub tool: Option<ToolVerdict>,
}

/// A fresh verdict for one request, as the contracts give it.
#[derive(Debug, Clone, Copy)]
pub struct Verdicts<'a> {
    pub admitted: bool,
    pub workload_class: &'a str,
    /// Permitting clauses if admitted, refusing ones if not.
    pub admit_clauses: &'a [String],
    /// Host verdicts, any order, any superset of the candidates.
    pub hosts: &'a [HostVerdict],
    /// Allowed hosts that preference clauses rank first.
    pub preferred: &'a [String],
}

impl Redecision {
    /// The decision as the ledger recorded it.
    pub fn recorded(d: &DecisionRecord) -> Redecision {
        let runs = d.admitted && d.refused.is_none();
        Redecision {
            admitted: d.admitted,
            workload_class: d.workload_class.clone(),
            admit_clauses: d.admit_clauses.clone(),
            hosts: d.hosts.clone(),
            chosen: if runs { d.chosen.clone() } else { None },
            runtime: d.runtime.clone(),
            tool: d.tool.clone(),
        }
    }

    /// Makes a fresh verdict about hosts one about a tool call: the `use`
    /// verdict replaces any host choice.
    pub fn using(mut self, tool: ToolVerdict) -> Redecision {
        self.hosts.clear();
        self.chosen = None;
        self.tool = Some(tool);
        self
    }

    /// Makes a fresh verdict about hosts one about holding state: the
    /// hold's verdict replaces any host choice.
    pub fn holding(mut self, runtime: RuntimeVerdict) -> Redecision {
        self.hosts.clear();
        self.chosen = None;
        self.runtime = Some(runtime);
        self
    }

    /// Applies the choice rule (module docs) to a fresh verdict.
    pub fn from_verdicts(d: &DecisionRecord, v: Verdicts<'_>) -> Redecision {
        let allowed = |host: &str| v.hosts.iter().any(|h| h.host == host && h.allowed);
        let candidates: Vec<&str> = if d.hosts.is_empty() {
            v.hosts.iter().map(|h| h.host.as_str()).collect()
        } else {
            d.hosts.iter().map(|h| h.host.as_str()).collect()
        };
        let chosen = if v.admitted {
            candidates
                .iter()
                .find(|h| allowed(h) && v.preferred.iter().any(|p| p == *h))
                .or_else(|| candidates.iter().find(|h| allowed(h)))
                .map(|h| (*h).to_owned())
        } else {
            None
        };
        Redecision {
            admitted: v.admitted,
            workload_class: v.workload_class.to_owned(),
            admit_clauses: v.admit_clauses.to_vec(),
            hosts: v
                .hosts
                .iter()
                .filter(|h| candidates.contains(&h.host.as_str()))
                .cloned()
                .collect(),
            chosen,
            runtime: None,
            tool: None,
        }
    }

    /// Whether it is served: it runs somewhere, or its state may be held.
    pub fn runs(&self) -> bool {
        match (&self.tool, &self.runtime) {
            (Some(tool), _) => self.admitted && tool.allowed,
            (None, Some(hold)) => self.admitted && hold.allowed,
            (None, None) => self.admitted && self.chosen.is_some(),
        }
    }

    pub fn allows(&self, host: &str) -> bool {
        self.hosts.iter().any(|h| h.host == host && h.allowed)
    }

    /// The clauses behind a host's verdict.
    pub fn clauses_for(&self, host: &str) -> &[String] {
        self.hosts
            .iter()
            .find(|h| h.host == host)
            .map_or(&[], |h| h.clauses.as_slice())
    }

    /// The clauses behind the verdict: admission and the chosen host's
    /// permits when it runs; the refusing admission clauses, or every
    /// refused host's clauses, when it does not.
    pub fn reasons(&self) -> Vec<&str> {
        let mut ids: Vec<&str> = self.admit_clauses.iter().map(String::as_str).collect();
        if let Some(tool) = &self.tool {
            ids.extend(tool.clauses.iter().map(String::as_str));
        } else if let Some(hold) = &self.runtime {
            ids.extend(hold.clauses.iter().map(String::as_str));
        } else if self.admitted {
            match &self.chosen {
                Some(host) => ids.extend(self.clauses_for(host).iter().map(String::as_str)),
                None => {
                    ids = self
                        .hosts
                        .iter()
                        .filter(|h| !h.allowed)
                        .flat_map(|h| h.clauses.iter().map(String::as_str))
                        .collect()
                }
            }
        }
        ids.sort_unstable();
        ids.dedup();
        ids
    }
}

/// Counts of what happens to requests between the two readings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Impact {
    pub requests: u64,
    pub keep: u64,
    pub moved: u64,
    pub became_refused: u64,
    pub became_admitted: u64,
    pub stayed_refused: u64,
    /// Requests whose workload class differs between the readings.
    pub reclassified: u64,
}

impl Impact {
    /// Requests that keep neither their host nor their verdict.
    pub fn changed(&self) -> u64 {
        self.moved + self.became_refused + self.became_admitted
    }
}

/// Requests moving from one host to another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostMove {
    pub from: String,
    pub to: String,
    pub requests: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClauseImpact {
    pub clause: String,
    #[serde(flatten)]
    pub impact: Impact,
    pub moves: Vec<HostMove>,
}

/// One tenant × channel × product × class (the class under `from`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupImpact {
    pub tenant: String,
    pub channel: String,
    pub product: String,
    pub class: String,
    #[serde(flatten)]
    pub impact: Impact,
    pub moves: Vec<HostMove>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SimulationReport {
    #[serde(flatten)]
    pub total: Impact,
    pub moves: Vec<HostMove>,
    /// Every clause behind either reading's verdict of a request (and, for
    /// a move, the clauses refusing the old host).
    pub by_clause: Vec<ClauseImpact>,
    pub by_group: Vec<GroupImpact>,
}

#[derive(Default)]
struct Tally {
    impact: Impact,
    moves: BTreeMap<(String, String), u64>,
}

#[derive(Clone, Copy)]
enum Change {
    Keep,
    Moved,
    BecameRefused,
    BecameAdmitted,
    StayedRefused,
}

impl Tally {
    fn add(&mut self, change: Change, reclassified: bool, hosts: Option<(&str, &str)>) {
        let i = &mut self.impact;
        i.requests += 1;
        i.reclassified += u64::from(reclassified);
        match change {
            Change::Keep => i.keep += 1,
            Change::Moved => i.moved += 1,
            Change::BecameRefused => i.became_refused += 1,
            Change::BecameAdmitted => i.became_admitted += 1,
            Change::StayedRefused => i.stayed_refused += 1,
        }
        if let Some((from, to)) = hosts {
            *self
                .moves
                .entry((from.to_owned(), to.to_owned()))
                .or_default() += 1;
        }
    }

    fn moves(&self) -> Vec<HostMove> {
        let mut moves: Vec<HostMove> = self
            .moves
            .iter()
            .map(|((from, to), n)| HostMove {
                from: from.clone(),
                to: to.clone(),
                requests: *n,
            })
            .collect();
        moves.sort_by(|a, b| {
            b.requests
                .cmp(&a.requests)
                .then(a.from.cmp(&b.from))
                .then(a.to.cmp(&b.to))
        });
        moves
    }
}

/// Replays every recorded decision under `from` and `to`;
/// `progress(done, total)` is called after each page.
pub async fn simulate(
    store: &Store,
    from: &(dyn Fn(&DecisionRecord) -> Redecision + Sync),
    to: &(dyn Fn(&DecisionRecord) -> Redecision + Sync),
    progress: impl FnMut(u64, u64),
) -> Result<SimulationReport, LedgerError> {
    simulate_in(store, TimeRange::default(), from, to, progress).await
}

/// [`simulate`] over the decisions recorded in `range` only.
pub async fn simulate_in(
    store: &Store,
    range: TimeRange,
    from: &(dyn Fn(&DecisionRecord) -> Redecision + Sync),
    to: &(dyn Fn(&DecisionRecord) -> Redecision + Sync),
    mut progress: impl FnMut(u64, u64),
) -> Result<SimulationReport, LedgerError> {
    let (since, until) = range.bounds();
    let (total, _, _) = store
        .ledger_span(Kind::Decision.as_str(), since, until)
        .await?;
    let total = total.max(0) as u64;
    let mut all = Tally::default();
    let mut clauses: BTreeMap<String, Tally> = BTreeMap::new();
    let mut groups: BTreeMap<(String, String, String, String), Tally> = BTreeMap::new();
    scan::each_row(
        store,
        Some(Kind::Decision),
        range,
        |row| {
            let Entry::Decision(d) = scan::decode(row)? else {
                return Ok(());
            };
            let a = from(&d);
            let b = to(&d);
            let (change, hosts) = match (a.runs(), b.runs()) {
                (true, true) => {
                    // A move is a change of the host routing would pick
                    // (allowed set and preferences), not only the loss of
                    // the old host: a preference clause in force under
                    // `to` moves traffic too.
                    let old = a.chosen.as_deref().unwrap_or_default();
                    let new = b.chosen.as_deref().unwrap_or_default();
                    if old == new {
                        (Change::Keep, None)
                    } else {
                        (Change::Moved, Some((old, new)))
                    }
                }
                (true, false) => (Change::BecameRefused, None),
                (false, true) => (Change::BecameAdmitted, None),
                (false, false) => (Change::StayedRefused, None),
            };
            let reclassified = a.workload_class != b.workload_class;
            all.add(change, reclassified, hosts);
            // The clauses behind both verdicts, and for a move the ones
            // that no longer allow the old host.
            let mut named = a.reasons();
            named.extend(b.reasons());
            if let Some((old, _)) = hosts {
                named.extend(b.clauses_for(old).iter().map(String::as_str));
            }
            named.sort_unstable();
            named.dedup();
            for id in named {
                clauses
                    .entry(id.to_owned())
                    .or_default()
                    .add(change, reclassified, hosts);
            }
            groups
                .entry((
                    d.tenant.clone(),
                    d.channel.clone(),
                    d.product.clone(),
                    a.workload_class.clone(),
                ))
                .or_default()
                .add(change, reclassified, hosts);
            Ok(())
        },
        |done| progress(done, total),
    )
    .await?;
    Ok(SimulationReport {
        moves: all.moves(),
        total: all.impact,
        by_clause: clauses
            .into_iter()
            .map(|(clause, t)| ClauseImpact {
                clause,
                moves: t.moves(),
                impact: t.impact,
            })
            .collect(),
        by_group: groups
            .into_iter()
            .map(|((tenant, channel, product, class), t)| GroupImpact {
                tenant,
                channel,
                product,
                class,
                moves: t.moves(),
                impact: t.impact,
            })
            .collect(),
    })
}
