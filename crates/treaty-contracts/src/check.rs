//! `treaty contracts check`: what is wrong with a reading before any
//! request meets it.
//!
//! Two kinds of analysis. Enumeration over the configured entities and every
//! time segment (cheap: it walks the verdict table) finds dead zones, where
//! a request shape is admitted but has no allowed host, and stateful
//! runtimes refused for admitted first-party products. The symbolic part
//! (in [`symbolic`], needs the cvc5 solver) reasons over *all* possible
//! entities: clauses that can never apply, permits fully shadowed by
//! forbids, and permit/forbid pairs that can match the same request.
//!
//! Tool use (`use`) has no table to walk (tools are not configured
//! entities): enumeration only reports a reading that governs tool use with
//! no permit for it in force, and never calls a `use`-only clause unmatched;
//! the symbolic checks treat `use` like every other action.
//!
//! Severity: dead zones are errors (`check` exits 1); everything else is a
//! warning. Schema violations never reach this module: they stop loading.

mod symbolic;
pub(crate) use symbolic::probe;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::Serialize;
use time::Date;
use treaty_domain::{ProductKind, WorkloadClass};

use crate::clause::{ClauseId, ContractAction, Effect, format_date};
use crate::contracts::Contracts;
use crate::table::Coord;

/// How to run `check`.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// Run the symbolic checks (needs cvc5). When the solver is missing the
    /// report says they were skipped.
    pub use_solver: bool,
    /// The cvc5 executable; default: `$CVC5`, else `cvc5` on `PATH`.
    pub solver_path: Option<PathBuf>,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            use_solver: true,
            solver_path: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Error,
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// Admitted, but no host allowed (error).
    DeadZone,
    /// An admitted first-party product whose stateful runtime this
    /// instance may not hold.
    RuntimeRefused,
    /// A Cedar validator warning from loading.
    ValidatorWarning,
    /// The clause matches no request at all (symbolic).
    NeverApplies,
    /// The clause matches no request over the configured entities.
    NeverAppliesHere,
    /// Every request the permit matches is refused by a forbid in force.
    Shadowed,
    /// A permit and a forbid can match the same request (the forbid wins).
    Conflict,
    /// The clause can raise an evaluation error, and is then ignored.
    MayError,
    /// The reading governs tool use (a clause names `use`) but no permit
    /// for `use` is in force: every tool call is refused.
    ToolsRefused,
}

/// One finding, with the clauses involved and, where there is one, a
/// counterexample request.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub severity: Severity,
    pub kind: FindingKind,
    pub clauses: Vec<ClauseId>,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counterexample: Option<serde_json::Value>,
}

/// Whether the solver-backed part ran.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum SymbolicStatus {
    Ran { queries: usize },
    Skipped { reason: String },
    Failed { reason: String },
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    pub reading: String,
    pub clauses: usize,
    pub findings: Vec<Finding>,
    pub symbolic: SymbolicStatus,
}

impl CheckReport {
    pub fn has_errors(&self) -> bool {
        self.findings.iter().any(|f| f.severity == Severity::Error)
    }

    pub fn errors(&self) -> impl Iterator<Item = &Finding> {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
    }

    pub fn warnings(&self) -> impl Iterator<Item = &Finding> {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Warning)
    }
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{}: {} clauses, {} errors, {} warnings",
            self.reading,
            self.clauses,
            self.errors().count(),
            self.warnings().count()
        )?;
        for finding in &self.findings {
            write!(f, "{}: ", finding.severity)?;
            if !finding.clauses.is_empty() {
                let ids: Vec<&str> = finding.clauses.iter().map(ClauseId::as_str).collect();
                write!(f, "[{}] ", ids.join(", "))?;
            }
            writeln!(f, "{}", finding.message)?;
            if let Some(cex) = &finding.counterexample {
                writeln!(f, "    counterexample: {cex}")?;
            }
        }
        match &self.symbolic {
            SymbolicStatus::Ran { queries } => {
                writeln!(f, "symbolic checks: ran ({queries} solver queries)")
            }
            SymbolicStatus::Skipped { reason } => {
                writeln!(f, "symbolic checks: SKIPPED: {reason}")
            }
            SymbolicStatus::Failed { reason } => writeln!(f, "symbolic checks: FAILED: {reason}"),
        }
    }
}

const MS_PER_DAY: i64 = 86_400_000;
const UNIX_EPOCH_JULIAN_DAY: i64 = 2_440_588;

fn date_of_ms(ms: i64) -> Option<Date> {
    let day = ms.div_euclid(MS_PER_DAY) + UNIX_EPOCH_JULIAN_DAY;
    Date::from_julian_day(i32::try_from(day).ok()?).ok()
}

/// The request shape of a coordinate, as a counterexample.
fn shape(c: &Contracts, coord: &Coord, host: Option<&str>) -> serde_json::Value {
    let e = &c.entities;
    let group = c.table.tenant_groups.get(coord.tenant_group);
    let tenant = group
        .and_then(|g| g.first())
        .and_then(|&i| e.tenants.get(i))
        .map(|t| t.id.to_string());
    let from = c
        .table
        .segment_start(coord.segment)
        .and_then(date_of_ms)
        .map(format_date);
    let until = c
        .table
        .segment_end(coord.segment)
        .and_then(|end| date_of_ms(end - 1))
        .map(format_date);
    let mut v = serde_json::json!({
        "tenant": tenant,
        "channel": e.channels.get(coord.channel).map(|ch| ch.id.to_string()),
        "product": e.products.get(coord.product).map(|p| p.id.to_string()),
        "class": coord.class.as_str(),
        "from": from,
        "until": until,
    });
    if let Some(map) = v.as_object_mut() {
        if e.data_classifications.len() > 1 || c.table.data_classifications.len() > 1 {
            map.insert(
                "data_classification".into(),
                c.table
                    .data_classifications
                    .get(coord.data_classification)
                    .cloned()
                    .into(),
            );
        }
        if let Some(host) = host {
            map.insert("instance".into(), host.into());
        }
    }
    v
}

struct Zone {
    count: usize,
    example: Coord,
    segments: Vec<usize>,
}

/// The days a set of segments covers, contiguous segments merged.
fn days_of(c: &Contracts, segments: &[usize]) -> String {
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for &s in segments {
        match runs.last_mut() {
            Some((_, last)) if *last + 1 == s => *last = s,
            Some((_, last)) if *last == s => {}
            _ => runs.push((s, s)),
        }
    }
    runs.iter()
        .map(|&(first, last)| {
            let from = c.table.segment_start(first).and_then(date_of_ms);
            let until = c.table.segment_end(last).and_then(|e| date_of_ms(e - 1));
            match (from, until) {
                (None, None) => "at all times".to_owned(),
                (Some(f), None) => format!("from {}", format_date(f)),
                (None, Some(u)) => format!("until {}", format_date(u)),
                (Some(f), Some(u)) => format!("from {} to {}", format_date(f), format_date(u)),
            }
        })
        .collect::<Vec<_>>()
        .join(" and ")
}

fn tenant_label(c: &Contracts, group: usize) -> String {
    let ids: Vec<String> = c
        .table
        .tenant_groups
        .get(group)
        .map(|g| {
            g.iter()
                .filter_map(|&i| c.entities.tenants.get(i))
                .map(|t| t.id.to_string())
                .collect()
        })
        .unwrap_or_default();
    match ids.len() {
        0 => "no tenant".into(),
        1..=3 => format!("tenant {}", ids.join(", ")),
        n => format!(
            "tenants {} and {} more like them",
            ids.iter().take(3).cloned().collect::<Vec<_>>().join(", "),
            n - 3
        ),
    }
}

fn record(
    zones: &mut BTreeMap<(usize, Vec<ClauseId>), Zone>,
    coord: Coord,
    clauses: Vec<ClauseId>,
) {
    let zone = zones
        .entry((coord.tenant_group, clauses))
        .or_insert_with(|| Zone {
            count: 0,
            example: coord,
            segments: Vec::new(),
        });
    zone.count += 1;
    if zone.segments.last() != Some(&coord.segment) {
        zone.segments.push(coord.segment);
    }
}

fn dead_zones(c: &Contracts, findings: &mut Vec<Finding>) {
    // Grouped by tenant group and the clauses responsible, so one cause is
    // one finding however many shapes and time segments it covers.
    let mut zones: BTreeMap<(usize, Vec<ClauseId>), Zone> = BTreeMap::new();
    let mut runtime: BTreeMap<(usize, Vec<ClauseId>), Zone> = BTreeMap::new();
    for coord in c.table.coords() {
        let Some(cell) = c.table.cell(&coord) else {
            continue;
        };
        if !cell.admitted {
            continue;
        }
        if cell.allowed == 0 {
            let mut clauses: Vec<ClauseId> = c
                .table
                .row(cell.host_row)
                .iter()
                .flat_map(|l| l.iter().cloned())
                .collect();
            clauses.sort();
            clauses.dedup();
            record(&mut zones, coord, clauses);
        }
        let first_party = c
            .entities
            .products
            .get(coord.product)
            .is_some_and(|p| p.kind == ProductKind::FirstParty);
        if first_party && coord.class == WorkloadClass::StatefulAgent && !cell.runtime_allowed {
            record(
                &mut runtime,
                coord,
                c.table.list(cell.runtime_list).to_vec(),
            );
        }
    }
    for ((group, clauses), zone) in zones {
        let ex = shape(c, &zone.example, None);
        findings.push(Finding {
            severity: Severity::Error,
            kind: FindingKind::DeadZone,
            message: format!(
                "dead zone: {} has {} admitted request shape{} with no allowed host ({}), e.g. channel {}, product {}, class {}{}",
                tenant_label(c, group),
                zone.count,
                if zone.count == 1 { "" } else { "s" },
                days_of(c, &zone.segments),
                ex["channel"].as_str().unwrap_or("?"),
                ex["product"].as_str().unwrap_or("?"),
                ex["class"].as_str().unwrap_or("?"),
                refused_by(&clauses),
            ),
            clauses,
            counterexample: Some(ex),
        });
    }
    for ((group, clauses), zone) in runtime {
        let ex = shape(c, &zone.example, Some(&c.entities.instance.id));
        findings.push(Finding {
            severity: Severity::Warning,
            kind: FindingKind::RuntimeRefused,
            message: format!(
                "instance {} may not hold the stateful runtime of first-party product {} for {} ({}, {} admitted request shape{}){}",
                c.entities.instance.id,
                ex["product"].as_str().unwrap_or("?"),
                tenant_label(c, group),
                days_of(c, &zone.segments),
                zone.count,
                if zone.count == 1 { "" } else { "s" },
                refused_by(&clauses),
            ),
            clauses,
            counterexample: Some(ex),
        });
    }
}

fn refused_by(clauses: &[ClauseId]) -> String {
    if clauses.is_empty() {
        "; no clause permits it".into()
    } else {
        let ids: Vec<&str> = clauses.iter().map(ClauseId::as_str).collect();
        format!("; refused by {}", ids.join(", "))
    }
}

/// Tool use governed, but no permit for it in force: every call refused.
/// A warning, not an error: a reading may mean to refuse all tools.
fn tools_refused(c: &Contracts, findings: &mut Vec<Finding>) {
    if !c.tools.governed() {
        return;
    }
    let segments: Vec<usize> = (0..c.table.segments())
        .filter(|&s| !c.tools.permit_in_force(s))
        .collect();
    if segments.is_empty() {
        return;
    }
    let forbids: Vec<ClauseId> = c
        .clauses()
        .iter()
        .filter(|cl| cl.applies_to(ContractAction::Use) && cl.effect == Effect::Forbid)
        .map(|cl| cl.id.clone())
        .collect();
    findings.push(Finding {
        severity: Severity::Warning,
        kind: FindingKind::ToolsRefused,
        message: format!(
            "every tool call is refused {}: clauses name action \"use\", so tool use is no longer unrestricted, and no permit for it is in force (add e.g. permit (principal, action == Action::\"use\", resource);)",
            days_of(c, &segments)
        ),
        clauses: forbids,
        counterexample: None,
    });
}

pub(crate) fn run(c: &Contracts, opts: &CheckOptions) -> CheckReport {
    let mut findings = Vec::new();
    dead_zones(c, &mut findings);
    tools_refused(c, &mut findings);
    for w in &c.warnings {
        findings.push(Finding {
            severity: Severity::Warning,
            kind: FindingKind::ValidatorWarning,
            clauses: w
                .clause
                .as_deref()
                .map(|id| vec![ClauseId::new(id)])
                .unwrap_or_default(),
            message: w.to_string(),
            counterexample: None,
        });
    }
    let (symbolic, never) = symbolic::run(c, opts, &mut findings);
    for (i, clause) in c.clauses().iter().enumerate() {
        let matched = c
            .table
            .ever_matched
            .get(i / 64)
            .is_some_and(|w| w & (1 << (i % 64)) != 0);
        // The table holds no tool calls, so a clause only about `use`
        // matches none of it by construction.
        let tools_only = clause.actions == [ContractAction::Use];
        if !matched && !tools_only && !never.contains(&clause.id) {
            findings.push(Finding {
                severity: Severity::Warning,
                kind: FindingKind::NeverAppliesHere,
                clauses: vec![clause.id.clone()],
                message: format!(
                    "clause {} ({}:{}) matches no request over the configured tenants, channels, products, hosts and instance{}",
                    clause.id,
                    clause.file,
                    clause.line,
                    if clause.applies_to(ContractAction::Use) {
                        " (tool calls, which it may also match, are not enumerated)"
                    } else {
                        ""
                    }
                ),
                counterexample: None,
            });
        }
    }
    findings.sort_by_key(|f| f.severity);
    CheckReport {
        reading: c.reading().to_owned(),
        clauses: c.clauses().len(),
        findings,
        symbolic,
    }
}
