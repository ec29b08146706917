//! The solver-backed checks: what is true of the clauses for *every*
//! possible tenant, host, channel and product, not only the configured ones.
//!
//! Uses `cedar-policy-symcc`, which compiles policies to SMT and asks cvc5.
//! Time windows are Treaty annotations, not Cedar, so pairs and shadowing are
//! only considered where the clauses' windows overlap. A forbid overlapping
//! an open default (an unconditional permit such as A0 and H0) is how
//! contracts are written, not a finding. The solver runs in its own thread
//! with its own runtime, so `check` can be called from async code too.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::str::FromStr;

use cedar_policy::{
    EntityTypeName, Policy, PolicySet, PrincipalConstraint, RequestEnv, ResourceConstraint,
};
use cedar_policy_symcc::solver::LocalSolver;
use cedar_policy_symcc::{CedarSymCompiler, CompiledPolicy, CompiledPolicySet, Env};

use super::{CheckOptions, Finding, FindingKind, Severity, SymbolicStatus};
use crate::clause::{Clause, ClauseId, ContractAction, Effect, Window};
use crate::contracts::Contracts;
use crate::entities;

/// Per-query solver limit: a contract clause is small; a query that runs
/// longer than this is reported, not waited on.
const SOLVER_MS_PER_QUERY: u32 = 20_000;

fn solver_path(opts: &CheckOptions) -> PathBuf {
    opts.solver_path
        .clone()
        .or_else(|| std::env::var_os("CVC5").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("cvc5"))
}

/// Whether a cvc5 executable answers `--version`; the reason if not.
pub(crate) fn probe(opts: &CheckOptions) -> Result<PathBuf, String> {
    let path = solver_path(opts);
    match std::process::Command::new(&path).arg("--version").output() {
        Ok(out) if out.status.success() => Ok(path),
        Ok(out) => Err(format!(
            "{} --version exited with {}",
            path.display(),
            out.status
        )),
        Err(e) => Err(format!(
            "cvc5 not found at {:?} ({e}); install it (Debian package cvc5) or set CVC5 to its path",
            path.display().to_string()
        )),
    }
}

/// An unconditional permit (A0, H0): the open default every forbid narrows.
fn is_open_default(clause: &Clause, policy: &Policy) -> bool {
    if clause.effect != Effect::Permit {
        return false;
    }
    let scope_open = matches!(
        policy.principal_constraint(),
        PrincipalConstraint::Any | PrincipalConstraint::Is(_)
    ) && matches!(
        policy.resource_constraint(),
        ResourceConstraint::Any | ResourceConstraint::Is(_)
    );
    let unconditional = policy
        .to_json()
        .ok()
        .and_then(|j| {
            j.get("conditions")
                .and_then(|c| c.as_array())
                .map(Vec::is_empty)
        })
        .unwrap_or(false);
    scope_open && unconditional
}

fn windows_overlap(a: &Window, b: &Window) -> bool {
    let starts_before_end = |x: &Window, y: &Window| match (x.from, y.until) {
        (Some(from), Some(until)) => from <= until,
        _ => true,
    };
    starts_before_end(a, b) && starts_before_end(b, a)
}

/// A counterexample as JSON: the request, with the entities it names
/// resolved to their attributes.
fn counterexample(env: &Env) -> serde_json::Value {
    let entities = env.entities.to_json_value().unwrap_or_default();
    let mut attrs: HashMap<String, serde_json::Value> = HashMap::new();
    for e in entities.as_array().into_iter().flatten() {
        let ty = e["uid"]["type"].as_str().unwrap_or_default();
        let id = e["uid"]["id"].as_str().unwrap_or_default();
        attrs.insert(format!("{ty}::{id:?}"), e["attrs"].clone());
    }
    let resolve = |uid: Option<&cedar_policy::EntityUid>| -> serde_json::Value {
        match uid {
            Some(uid) => {
                let key = format!("{}::{:?}", uid.type_name(), uid.id().unescaped());
                serde_json::json!({
                    "type": uid.type_name().to_string(),
                    "id": uid.id().unescaped(),
                    "attrs": attrs.get(&key).cloned().unwrap_or_default(),
                })
            }
            None => serde_json::Value::Null,
        }
    };
    let mut context = env
        .request
        .context()
        .and_then(|c| c.to_json_value().ok())
        .unwrap_or_default();
    if let Some(map) = context.as_object_mut() {
        for value in map.values_mut() {
            if let Some(e) = value.get("__entity") {
                let ty = e["type"].as_str().unwrap_or_default();
                let id = e["id"].as_str().unwrap_or_default();
                if let Some(a) = attrs.get(&format!("{ty}::{id:?}")) {
                    *value = a.clone();
                }
            }
        }
    }
    serde_json::json!({
        "principal": resolve(env.request.principal()),
        "action": env.request.action().map(|a| a.id().unescaped().to_owned()),
        "resource": resolve(env.request.resource()),
        "context": context,
    })
}

struct Analysis<'a> {
    c: &'a Contracts,
    compiler: CedarSymCompiler<LocalSolver>,
    envs: HashMap<ContractAction, RequestEnv>,
    compiled: HashMap<(usize, ContractAction), CompiledPolicy>,
    queries: usize,
}

type SymResult<T> = Result<T, String>;

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

impl Analysis<'_> {
    fn compiled(&self, clause: usize, action: ContractAction) -> SymResult<&CompiledPolicy> {
        self.compiled
            .get(&(clause, action))
            .ok_or_else(|| "clause not compiled".to_owned())
    }

    async fn never_matches(
        &mut self,
        clause: usize,
        actions: &[ContractAction],
    ) -> SymResult<bool> {
        for &a in actions {
            let policy = self.compiled(clause, a)?.clone();
            self.queries += 1;
            if !self
                .compiler
                .check_never_matches_opt(&policy)
                .await
                .map_err(err)?
            {
                return Ok(false);
            }
        }
        Ok(true)
    }

    async fn may_error(
        &mut self,
        clause: usize,
        actions: &[ContractAction],
    ) -> SymResult<Option<Env>> {
        for &a in actions {
            let policy = self.compiled(clause, a)?.clone();
            self.queries += 1;
            if let Some(env) = self
                .compiler
                .check_never_errors_with_counterexample_opt(&policy)
                .await
                .map_err(err)?
            {
                return Ok(Some(env));
            }
        }
        Ok(None)
    }

    async fn overlap(
        &mut self,
        p: usize,
        f: usize,
        action: ContractAction,
    ) -> SymResult<Option<Env>> {
        let (pp, fp) = (
            self.compiled(p, action)?.clone(),
            self.compiled(f, action)?.clone(),
        );
        self.queries += 1;
        self.compiler
            .check_matches_disjoint_with_counterexample_opt(&pp, &fp)
            .await
            .map_err(err)
    }

    /// Whether `{permit} ∪ forbids` denies every request of `action`.
    async fn always_denied(
        &mut self,
        permit: usize,
        forbids: &[usize],
        action: ContractAction,
    ) -> SymResult<bool> {
        let mut set = PolicySet::new();
        for &i in std::iter::once(&permit).chain(forbids) {
            if let Some(p) = self.c.policies.get(i) {
                set.add(p.clone()).map_err(err)?;
            }
        }
        let env = self
            .envs
            .get(&action)
            .ok_or_else(|| "no request environment".to_owned())?;
        let compiled = CompiledPolicySet::compile(&set, env, &self.c.schema).map_err(err)?;
        self.queries += 1;
        self.compiler
            .check_always_denies_opt(&compiled)
            .await
            .map_err(err)
    }
}

async fn analyze(
    c: &Contracts,
    path: PathBuf,
) -> SymResult<(Vec<Finding>, usize, HashSet<ClauseId>)> {
    let solver = LocalSolver::from_command(
        tokio::process::Command::new(&path)
            .arg("--lang")
            .arg("smt")
            .arg(format!("--tlimit-per={SOLVER_MS_PER_QUERY}")),
    )
    .map_err(err)?;
    let compiler = CedarSymCompiler::new(solver).map_err(err)?;
    let tenant = EntityTypeName::from_str("Tenant").map_err(err)?;
    let mut envs = HashMap::new();
    for action in ContractAction::ALL {
        let resource = match action {
            ContractAction::Admit => "Product",
            ContractAction::Host | ContractAction::Prefer => "Host",
            ContractAction::Hold => "Instance",
            ContractAction::Use => "Tool",
        };
        envs.insert(
            action,
            RequestEnv::new(
                tenant.clone(),
                entities::action_uid(action).map_err(err)?,
                EntityTypeName::from_str(resource).map_err(err)?,
            ),
        );
    }
    let clauses = c.clauses();
    let mut compiled = HashMap::new();
    for (i, (clause, policy)) in clauses.iter().zip(&c.policies).enumerate() {
        for &action in &clause.actions {
            if let Some(env) = envs.get(&action) {
                let p = CompiledPolicy::compile(policy, env, &c.schema)
                    .map_err(|e| format!("clause {}: {e}", clause.id))?;
                compiled.insert((i, action), p);
            }
        }
    }
    let mut a = Analysis {
        c,
        compiler,
        envs,
        compiled,
        queries: 0,
    };
    let mut findings = Vec::new();
    let mut never = HashSet::new();

    for (i, clause) in clauses.iter().enumerate() {
        if a.never_matches(i, &clause.actions).await? {
            never.insert(clause.id.clone());
            findings.push(Finding {
                severity: Severity::Warning,
                kind: FindingKind::NeverApplies,
                clauses: vec![clause.id.clone()],
                message: format!(
                    "clause {} ({}:{}) can never apply: no request of any tenant, channel, product or host matches it",
                    clause.id, clause.file, clause.line
                ),
                counterexample: None,
            });
            continue;
        }
        if let Some(env) = a.may_error(i, &clause.actions).await? {
            findings.push(Finding {
                severity: Severity::Warning,
                kind: FindingKind::MayError,
                clauses: vec![clause.id.clone()],
                message: format!(
                    "clause {} can fail to evaluate, and Cedar then ignores it{}",
                    clause.id,
                    if clause.effect == Effect::Forbid {
                        " (a forbid that does not refuse)"
                    } else {
                        ""
                    }
                ),
                counterexample: Some(counterexample(&env)),
            });
        }
    }

    // Pairs of opposite effects that can match one request, where both can
    // be in force at once.
    let mut conflicts: HashMap<usize, Vec<usize>> = HashMap::new();
    for (p, permit) in clauses.iter().enumerate() {
        let open = c
            .policies
            .get(p)
            .is_some_and(|pol| is_open_default(permit, pol));
        if permit.effect != Effect::Permit || open || never.contains(&permit.id) {
            continue;
        }
        for (f, forbid) in clauses.iter().enumerate() {
            if forbid.effect != Effect::Forbid
                || never.contains(&forbid.id)
                || !windows_overlap(&permit.window, &forbid.window)
            {
                continue;
            }
            for &action in &permit.actions {
                if !forbid.applies_to(action) {
                    continue;
                }
                if let Some(env) = a.overlap(p, f, action).await? {
                    conflicts.entry(p).or_default().push(f);
                    findings.push(Finding {
                        severity: Severity::Warning,
                        kind: FindingKind::Conflict,
                        clauses: vec![permit.id.clone(), forbid.id.clone()],
                        message: format!(
                            "permit {} and forbid {} can match the same {} request; {} wins there",
                            permit.id,
                            forbid.id,
                            action.as_str(),
                            forbid.id
                        ),
                        counterexample: Some(counterexample(&env)),
                    });
                    break;
                }
            }
        }
    }

    // A permit is fully shadowed when, in every time segment where it is in
    // force, the forbids in force there deny everything it matches.
    let segments = c.table.segments();
    for (p, forbids) in &conflicts {
        let Some(permit) = clauses.get(*p) else {
            continue;
        };
        let mut shadowed = true;
        let mut tried: HashSet<(ContractAction, Vec<usize>)> = HashSet::new();
        'segments: for segment in 0..segments {
            let at = c.table.segment_start(segment).unwrap_or(i64::MIN);
            if !permit.window.contains(at) {
                continue;
            }
            for &action in &permit.actions {
                let in_force: Vec<usize> = clauses
                    .iter()
                    .enumerate()
                    .filter(|(_, f)| {
                        f.effect == Effect::Forbid && f.applies_to(action) && f.window.contains(at)
                    })
                    .map(|(i, _)| i)
                    .collect();
                if !tried.insert((action, in_force.clone())) {
                    continue;
                }
                if in_force.is_empty() || !a.always_denied(*p, &in_force, action).await? {
                    shadowed = false;
                    break 'segments;
                }
            }
        }
        if shadowed {
            let mut ids = vec![permit.id.clone()];
            ids.extend(
                forbids
                    .iter()
                    .filter_map(|&f| clauses.get(f))
                    .map(|f| f.id.clone()),
            );
            findings.push(Finding {
                severity: Severity::Warning,
                kind: FindingKind::Shadowed,
                message: format!(
                    "permit {} is fully shadowed: every request it matches is refused by a forbid in force ({})",
                    permit.id,
                    ids.iter().skip(1).map(ClauseId::as_str).collect::<Vec<_>>().join(", ")
                ),
                clauses: ids,
                counterexample: None,
            });
        }
    }

    let queries = a.queries;
    // End the solver process now rather than when the runtime drops it.
    let _ = a.compiler.solver_mut().clean_up().await;
    Ok((findings, queries, never))
}

pub(super) fn run(
    c: &Contracts,
    opts: &CheckOptions,
    findings: &mut Vec<Finding>,
) -> (SymbolicStatus, HashSet<ClauseId>) {
    if !opts.use_solver {
        return (
            SymbolicStatus::Skipped {
                reason: "disabled by the caller".into(),
            },
            HashSet::new(),
        );
    }
    let path = match probe(opts) {
        Ok(path) => path,
        Err(reason) => return (SymbolicStatus::Skipped { reason }, HashSet::new()),
    };
    let outcome = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(err)?;
                runtime.block_on(analyze(c, path))
            })
            .join()
            .unwrap_or_else(|_| Err("the symbolic analysis thread failed".into()))
    });
    match outcome {
        Ok((mut found, queries, never)) => {
            findings.append(&mut found);
            (SymbolicStatus::Ran { queries }, never)
        }
        Err(reason) => (SymbolicStatus::Failed { reason }, HashSet::new()),
    }
}
