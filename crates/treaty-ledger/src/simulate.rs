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
//! by the `use` verdict.
//!
//! What separates the readings is named per request, then counted per
//! clause, per group and in total: the clauses that *stop applying* (named
//! by `from`'s verdicts on the request, admission, every candidate host,
//! the hold or the use, and by none of `to`'s) and those that *start
//! applying* (the other way round), e.g. C1 and C3 against C5 for a
//! Frontier model step between reading-openai and reading-aws, C2 against
//! C2a for a Frontier agent held on AWS; and the classification rule that
//! changed (rule id and class under each reading). [`Simulation`] does the
//! counting from decisions already decided twice, so a caller holding
//! records and readings in memory needs no store. Replays only read, a
//! page of decisions at a time.

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
    /// The id of the classification rule that set the class.
    pub classified_by: String,
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
    /// The id of the classification rule that set the class.
    pub classified_by: &'a str,
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
            classified_by: d.classified_by.clone(),
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
            classified_by: v.classified_by.to_owned(),
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

    /// Every clause the verdict names, in any role: admission, then the
    /// tool's use, else the hold, else every candidate host's verdict. A
    /// clause applies to the request when it is named here.
    pub fn applying(&self) -> Vec<&str> {
        let mut ids: Vec<&str> = self.admit_clauses.iter().map(String::as_str).collect();
        if let Some(tool) = &self.tool {
            ids.extend(tool.clauses.iter().map(String::as_str));
        } else if let Some(hold) = &self.runtime {
            ids.extend(hold.clauses.iter().map(String::as_str));
        } else {
            ids.extend(
                self.hosts
                    .iter()
                    .flat_map(|h| h.clauses.iter().map(String::as_str)),
            );
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
    /// Requests the clause applies to under `from` and not under `to`.
    pub stopped: u64,
    /// Requests the clause applies to under `to` and not under `from`.
    pub started: u64,
}

/// A clause and the requests it stops (or starts) applying to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClauseCount {
    pub clause: String,
    pub requests: u64,
}

/// Requests whose classification differs between the readings: the rule
/// and class under `from`, then under `to`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleChange {
    pub from_rule: String,
    pub from_class: String,
    pub to_rule: String,
    pub to_class: String,
    pub requests: u64,
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
    /// What separates the readings on this group: the clauses that stop
    /// applying and those that start, the most requests first.
    pub stop_applying: Vec<ClauseCount>,
    pub start_applying: Vec<ClauseCount>,
    /// The classification rules that changed, the most requests first.
    pub rules: Vec<RuleChange>,
}

impl GroupImpact {
    /// Whether anything separates the readings on this group.
    pub fn separated(&self) -> bool {
        self.impact.changed() > 0
            || !self.stop_applying.is_empty()
            || !self.start_applying.is_empty()
            || !self.rules.is_empty()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SimulationReport {
    #[serde(flatten)]
    pub total: Impact,
    pub moves: Vec<HostMove>,
    /// The classification rules that changed, over all requests.
    pub rules: Vec<RuleChange>,
    /// Every clause behind either reading's verdict of a request (and, for
    /// a move, the clauses refusing the old host), and every clause that
    /// stops or starts applying.
    pub by_clause: Vec<ClauseImpact>,
    pub by_group: Vec<GroupImpact>,
}

/// Rule and class under `from`, then under `to`.
type RuleKey = (String, String, String, String);

#[derive(Default)]
struct Tally {
    impact: Impact,
    moves: BTreeMap<(String, String), u64>,
    stops: BTreeMap<String, u64>,
    starts: BTreeMap<String, u64>,
    rules: BTreeMap<RuleKey, u64>,
}

/// A reading's clauses: their ids, the actions their scope covers and
/// when they are in force. Given to [`Simulation::between`] so a replay
/// can name the clause of one reading that takes the place of another's
/// even where no verdict names it: a forbid whose `unless` exempts the
/// request (C2a for an agent held on AWS) is not named by the verdict it
/// lets through.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadingClauses(pub Vec<ScopedClause>);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopedClause {
    pub id: String,
    /// The actions its scope covers (`admit`, `host`, `hold`, `prefer`,
    /// `use`).
    pub actions: Vec<String>,
    /// In force from this instant (unix ms, inclusive); `None`: always.
    pub from_ms: Option<i64>,
    /// In force until this instant (unix ms, exclusive); `None`: always.
    pub until_ms: Option<i64>,
}

impl ScopedClause {
    fn in_force(&self, at_ms: i64) -> bool {
        self.from_ms.is_none_or(|f| f <= at_ms) && self.until_ms.is_none_or(|u| at_ms < u)
    }
}

impl ReadingClauses {
    fn get(&self, id: &str) -> Option<&ScopedClause> {
        self.0.iter().find(|c| c.id == id)
    }

    /// This reading's clauses in force at `at_ms` that govern one of
    /// `actions` and that `other` does not have.
    fn own<'a>(
        &'a self,
        actions: &'a [String],
        other: &'a ReadingClauses,
        at_ms: i64,
    ) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |c| {
                c.in_force(at_ms)
                    && c.actions.iter().any(|a| actions.contains(a))
                    && other.get(&c.id).is_none()
            })
            .map(|c| c.id.as_str())
    }
}

/// What separates the two verdicts on one request.
struct Separation<'a> {
    stops: Vec<&'a str>,
    starts: Vec<&'a str>,
    rule: Option<(&'a Redecision, &'a Redecision)>,
}

impl<'a> Separation<'a> {
    /// The clauses named by one verdict and not the other; then, for each
    /// clause that stops (starts) applying, the clauses governing the same
    /// action that only the other reading has, as taking its place.
    fn of(
        a: &'a Redecision,
        b: &'a Redecision,
        at_ms: i64,
        (from_clauses, to_clauses): (&'a ReadingClauses, &'a ReadingClauses),
    ) -> Separation<'a> {
        let (from, to) = (a.applying(), b.applying());
        let mut stops: Vec<&str> = from.iter().filter(|c| !to.contains(c)).copied().collect();
        let mut starts: Vec<&str> = to.iter().filter(|c| !from.contains(c)).copied().collect();
        let replacing_starts: Vec<&str> = stops
            .iter()
            .filter_map(|id| from_clauses.get(id))
            .flat_map(|c| to_clauses.own(&c.actions, from_clauses, at_ms))
            .collect();
        let replaced_stops: Vec<&str> = starts
            .iter()
            .filter_map(|id| to_clauses.get(id))
            .flat_map(|c| from_clauses.own(&c.actions, to_clauses, at_ms))
            .collect();
        stops.extend(replaced_stops);
        starts.extend(replacing_starts);
        for list in [&mut stops, &mut starts] {
            list.sort_unstable();
            list.dedup();
        }
        let reclassified =
            a.classified_by != b.classified_by || a.workload_class != b.workload_class;
        Separation {
            stops,
            starts,
            rule: reclassified.then_some((a, b)),
        }
    }
}

fn counts(map: &BTreeMap<String, u64>) -> Vec<ClauseCount> {
    let mut out: Vec<ClauseCount> = map
        .iter()
        .map(|(clause, n)| ClauseCount {
            clause: clause.clone(),
            requests: *n,
        })
        .collect();
    out.sort_by(|a, b| b.requests.cmp(&a.requests).then(a.clause.cmp(&b.clause)));
    out
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

    fn separate(&mut self, s: &Separation<'_>) {
        for id in &s.stops {
            *self.stops.entry((*id).to_owned()).or_default() += 1;
        }
        for id in &s.starts {
            *self.starts.entry((*id).to_owned()).or_default() += 1;
        }
        if let Some((a, b)) = s.rule {
            *self
                .rules
                .entry((
                    a.classified_by.clone(),
                    a.workload_class.clone(),
                    b.classified_by.clone(),
                    b.workload_class.clone(),
                ))
                .or_default() += 1;
        }
    }

    fn rules(&self) -> Vec<RuleChange> {
        let mut out: Vec<RuleChange> = self
            .rules
            .iter()
            .map(
                |((from_rule, from_class, to_rule, to_class), n)| RuleChange {
                    from_rule: from_rule.clone(),
                    from_class: from_class.clone(),
                    to_rule: to_rule.clone(),
                    to_class: to_class.clone(),
                    requests: *n,
                },
            )
            .collect();
        out.sort_by(|a, b| {
            b.requests
                .cmp(&a.requests)
                .then_with(|| (&a.from_rule, &a.to_rule).cmp(&(&b.from_rule, &b.to_rule)))
        });
        out
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

/// The counts of a replay, fed one request decided under both readings
/// at a time.
#[derive(Default)]
pub struct Simulation {
    readings: (ReadingClauses, ReadingClauses),
    all: Tally,
    clauses: BTreeMap<String, Tally>,
    groups: BTreeMap<(String, String, String, String), Tally>,
}

impl Simulation {
    /// A simulation between readings with these clauses, which it names
    /// where one takes another's place (see [`ReadingClauses`]). Without
    /// them ([`Simulation::default`]) only the clauses the verdicts name
    /// are compared.
    pub fn between(from: ReadingClauses, to: ReadingClauses) -> Simulation {
        Simulation {
            readings: (from, to),
            ..Simulation::default()
        }
    }

    /// Counts recorded decision `d`, decided `a` under `from` and `b`
    /// under `to`.
    pub fn add(&mut self, d: &DecisionRecord, a: &Redecision, b: &Redecision) {
        let (change, hosts) = match (a.runs(), b.runs()) {
            (true, true) => {
                // A move is a change of the host routing would pick
                // (allowed set and preferences), not only the loss of
                // the old host: a preference clause in force under `to`
                // moves traffic too.
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
        let separation = Separation::of(a, b, d.at_ms, (&self.readings.0, &self.readings.1));
        self.all.add(change, reclassified, hosts);
        self.all.separate(&separation);
        // The clauses behind both verdicts, for a move the ones that no
        // longer allow the old host, and those that stop or start
        // applying.
        let mut named = a.reasons();
        named.extend(b.reasons());
        if let Some((old, _)) = hosts {
            named.extend(b.clauses_for(old).iter().map(String::as_str));
        }
        named.extend(&separation.stops);
        named.extend(&separation.starts);
        named.sort_unstable();
        named.dedup();
        for id in named {
            let tally = self.clauses.entry(id.to_owned()).or_default();
            tally.add(change, reclassified, hosts);
            if separation.stops.contains(&id) {
                *tally.stops.entry(id.to_owned()).or_default() += 1;
            }
            if separation.starts.contains(&id) {
                *tally.starts.entry(id.to_owned()).or_default() += 1;
            }
        }
        let group = self
            .groups
            .entry((
                d.tenant.clone(),
                d.channel.clone(),
                d.product.clone(),
                a.workload_class.clone(),
            ))
            .or_default();
        group.add(change, reclassified, hosts);
        group.separate(&separation);
    }

    pub fn finish(self) -> SimulationReport {
        SimulationReport {
            moves: self.all.moves(),
            rules: self.all.rules(),
            total: self.all.impact,
            by_clause: self
                .clauses
                .into_iter()
                .map(|(clause, t)| ClauseImpact {
                    moves: t.moves(),
                    stopped: t.stops.values().sum(),
                    started: t.starts.values().sum(),
                    clause,
                    impact: t.impact,
                })
                .collect(),
            by_group: self
                .groups
                .into_iter()
                .map(|((tenant, channel, product, class), t)| GroupImpact {
                    tenant,
                    channel,
                    product,
                    class,
                    moves: t.moves(),
                    stop_applying: counts(&t.stops),
                    start_applying: counts(&t.starts),
                    rules: t.rules(),
                    impact: t.impact,
                })
                .collect(),
        }
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
    progress: impl FnMut(u64, u64),
) -> Result<SimulationReport, LedgerError> {
    Simulation::default()
        .replay(store, range, from, to, progress)
        .await
}

impl Simulation {
    /// Replays every recorded decision in `store` under `from` and `to`
    /// into this simulation; `progress(done, total)` is called after each
    /// page.
    pub async fn replay(
        mut self,
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
        scan::each_row(
            store,
            Some(Kind::Decision),
            range,
            |row| {
                if let Entry::Decision(d) = scan::decode(row)? {
                    self.add(&d, &from(&d), &to(&d));
                }
                Ok(())
            },
            |done| progress(done, total),
        )
        .await?;
        Ok(self.finish())
    }
}
