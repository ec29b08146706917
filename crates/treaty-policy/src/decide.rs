//! Deciding one [`Ask`]: classify, look the request up in the contracts'
//! table (the reading in force, then each shadow reading), and say what is
//! refused and by which clauses.
//!
//! The success path allocates nothing without shadow readings (a refusal
//! builds its message; shadow readings one small vector).

use treaty_classify::{Classification, Input};
use treaty_contracts::{ClauseId, Contracts, Decision, HostSet, Query, ToolVerdict};
use treaty_domain::WorkloadClass;

use crate::ask::{Ask, AskError, What};
use crate::policy::{Policy, Reading};

/// What the contracts refused, and the clauses that did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalKind {
    /// The channel may not sell the product to the tenant (`admit`).
    NotAdmitted,
    /// No host serving the model may run the request (`host`).
    NoAllowedHost,
    /// The client's preferred host may not run it (`host`).
    PreferredHostRefused,
    /// This instance may not hold the product's state (`hold`).
    HoldRefused,
    /// The run may not use the tool (`use`).
    ToolRefused,
}

/// A contract refusal: a decision, recorded like any other, whose answer
/// is a 403 naming the clauses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub kind: RefusalKind,
    /// For people, naming the reading and the clauses.
    pub message: String,
    /// The refusing clauses (empty when nothing permitted the request).
    pub clauses: Vec<ClauseId>,
}

impl Refusal {
    /// The clause ids, comma-separated (the `x-treaty-clauses` header).
    pub fn clause_list(&self) -> String {
        join_clauses(&self.clauses)
    }
}

/// The `hold` verdict for this instance.
#[derive(Debug, Clone, Copy)]
pub struct Hold<'p> {
    pub allowed: bool,
    /// The `hold` clauses if admitted, the refusing `admit` clauses if not.
    pub clauses: &'p [ClauseId],
}

/// A tool call's `use` verdict.
#[derive(Debug, Clone)]
pub struct Tool {
    pub verdict: ToolVerdict,
}

/// The same request under a shadow reading: evaluated, never enforced.
#[derive(Debug, Clone, Copy)]
pub struct Shadow<'p> {
    pub reading: &'p str,
    pub class: WorkloadClass,
    pub rule: &'p str,
    pub decision: Decision<'p>,
    /// The hosts serving the model, whatever the reading says.
    pub serving: HostSet,
    /// For a model call: the hosts serving the model the reading allows.
    pub allowed: HostSet,
    pub preferred: HostSet,
    /// For a state operation: may this instance hold the state.
    pub held: Option<bool>,
    /// For a tool call: may the tool be used.
    pub tool_allowed: Option<bool>,
}

impl Shadow<'_> {
    /// Whether the reading would let the request through.
    pub fn allows(&self) -> bool {
        self.decision.admitted
            && match (self.held, self.tool_allowed) {
                (Some(held), _) => held,
                (None, Some(used)) => used,
                (None, None) => !self.allowed.is_empty(),
            }
    }
}

/// The decision core's answer for one [`Ask`].
#[derive(Debug, Clone)]
pub struct Decided<'p> {
    pub class: WorkloadClass,
    /// The classification rule that set the class.
    pub rule: &'p str,
    pub data_classification: &'p str,
    pub declared: Option<WorkloadClass>,
    /// The contracts' answer; `None` without contracts (everything
    /// allowed).
    pub decision: Option<Decision<'p>>,
    /// For a model call: the hosts that may run it (allowed by the
    /// contracts, narrowed to the preferred host when one was asked for);
    /// empty when refused.
    pub allowed: HostSet,
    /// The allowed hosts a preference clause ranks first.
    pub preferred: HostSet,
    /// For a state operation: may this instance hold the state.
    pub hold: Option<Hold<'p>>,
    /// For a tool call: may it be used.
    pub tool: Option<Tool>,
    /// Set when the contracts refuse: the caller records the decision,
    /// then answers 403 with it.
    pub refusal: Option<Refusal>,
    /// The request under each shadow reading, in `contracts.shadow` order.
    pub shadows: Vec<Shadow<'p>>,
}

impl Decided<'_> {
    /// The clauses behind one host's verdict, comma-separated.
    pub fn clauses_for(&self, host: usize) -> String {
        self.decision
            .as_ref()
            .map(|d| join_clauses(d.clauses_for_host(host)))
            .unwrap_or_default()
    }
}

/// Clause ids, comma-separated.
pub fn join_clauses(ids: &[ClauseId]) -> String {
    let mut out = String::new();
    for (i, id) in ids.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(id.as_str());
    }
    out
}

fn clause_suffix(ids: &[ClauseId]) -> String {
    if ids.is_empty() {
        " (no clause permits it)".to_owned()
    } else {
        format!(" [clauses: {}]", join_clauses(ids))
    }
}

impl Policy {
    /// Decides one request: class, admission, then per [`What`] the hosts,
    /// the hold or the tool use; then each shadow reading. `Err` when the
    /// request's hints cannot be honoured (nothing is decided); a contract
    /// refusal is a decision, in [`Decided::refusal`].
    pub fn decide<'p>(&'p self, ask: &Ask<'_>) -> Result<Decided<'p>, AskError> {
        let declared = self.declared_class(ask)?;
        let data_class = self.data_class(ask)?;
        let product_kind = self
            .config()
            .product(ask.subject.product.as_str())
            .map(|p| p.kind)
            .ok_or(AskError::UnconfiguredProduct)?;
        let input = Input {
            route: ask.what.route().path(),
            product: ask.subject.product.as_str(),
            product_kind,
            features: ask.features,
            declared,
            model_step: ask.model_step,
        };
        let classified = classify(self.in_force(), &input, &ask.what);
        let mut decided = Decided {
            class: classified.class,
            rule: classified.rule,
            data_classification: data_class,
            declared,
            decision: None,
            allowed: HostSet::EMPTY,
            preferred: HostSet::EMPTY,
            hold: None,
            tool: None,
            refusal: None,
            shadows: Vec::new(),
        };
        let serving = self.serving(ask.what.model());
        match self.contracts() {
            None => self.open_verdicts(ask, serving, &mut decided),
            Some(contracts) => {
                let query = query(ask, classified.class, data_class);
                let decision = contracts.decide(&query);
                decided.decision = Some(decision);
                self.verdicts(contracts, ask, &query, decision, serving, &mut decided);
            }
        }
        if !self.shadows().is_empty() {
            decided.shadows = self
                .shadows()
                .iter()
                .filter_map(|reading| shadow(reading, ask, &input, data_class, serving))
                .collect();
        }
        if let (What::Call { .. }, None) = (&ask.what, &decided.refusal) {
            self.prefer(ask, &mut decided)?;
        }
        Ok(decided)
    }

    /// Without contracts every host serving the model is allowed, every
    /// instance may hold any state, and every tool may be used.
    fn open_verdicts(&self, ask: &Ask<'_>, serving: HostSet, d: &mut Decided<'_>) {
        match &ask.what {
            What::Call { .. } => d.allowed = serving,
            What::State { .. } => {
                d.hold = Some(Hold {
                    allowed: true,
                    clauses: &[],
                })
            }
            What::Tool { .. } => {
                d.tool = Some(Tool {
                    verdict: ToolVerdict {
                        allowed: true,
                        clauses: Vec::new(),
                        unrestricted: true,
                    },
                })
            }
        }
    }

    fn verdicts<'p>(
        &'p self,
        contracts: &'p Contracts,
        ask: &Ask<'_>,
        query: &Query<'_>,
        decision: Decision<'p>,
        serving: HostSet,
        d: &mut Decided<'p>,
    ) {
        let s = &ask.subject;
        let not_admitted = || Refusal {
            kind: RefusalKind::NotAdmitted,
            message: format!(
                "Refused by contract (reading {}): channel '{}' may not sell product '{}' to tenant '{}'{}.",
                contracts.reading(),
                s.channel,
                s.product,
                s.tenant,
                clause_suffix(decision.admit_clauses)
            ),
            clauses: decision.admit_clauses.to_vec(),
        };
        match &ask.what {
            What::Call { model, .. } => {
                d.allowed = decision.allowed_hosts.intersection(serving);
                d.preferred = decision.preferred_hosts.intersection(d.allowed);
                if !decision.admitted {
                    d.allowed = HostSet::EMPTY;
                    d.refusal = Some(not_admitted());
                } else if d.allowed.is_empty() {
                    // Every host serving the model is refused: name what
                    // refused them.
                    let mut ids: Vec<ClauseId> = serving
                        .iter()
                        .flat_map(|i| decision.clauses_for_host(i).iter().cloned())
                        .collect();
                    ids.sort();
                    ids.dedup();
                    d.refusal = Some(Refusal {
                        kind: RefusalKind::NoAllowedHost,
                        message: format!(
                            "No host may run this request under the contract (reading {}): {} request of tenant '{}' through '{}' for model '{}'{}.",
                            contracts.reading(),
                            d.class,
                            s.tenant,
                            s.channel,
                            model,
                            clause_suffix(&ids)
                        ),
                        clauses: ids,
                    });
                }
            }
            What::State { op, .. } => {
                let allowed = decision.admitted && decision.runtime_allowed;
                d.hold = Some(Hold {
                    allowed,
                    clauses: if decision.admitted {
                        decision.runtime_clauses
                    } else {
                        decision.admit_clauses
                    },
                });
                if !decision.admitted {
                    d.refusal = Some(not_admitted());
                } else if !decision.runtime_allowed {
                    let i = &self.config().instance;
                    d.refusal = Some(Refusal {
                        kind: RefusalKind::HoldRefused,
                        message: format!(
                            "This Treaty instance ('{}', {} {}) may not hold the state of product '{}' for tenant '{}' under the contract (reading {}), so it cannot {}{}.",
                            i.id,
                            i.cloud,
                            i.region,
                            s.product,
                            s.tenant,
                            contracts.reading(),
                            op.as_str(),
                            clause_suffix(decision.runtime_clauses)
                        ),
                        clauses: decision.runtime_clauses.to_vec(),
                    });
                }
            }
            What::Tool { tool, .. } => {
                let verdict = contracts.may_use(query, tool);
                if !decision.admitted {
                    d.refusal = Some(not_admitted());
                } else if !verdict.allowed {
                    d.refusal = Some(Refusal {
                        kind: RefusalKind::ToolRefused,
                        message: format!(
                            "Refused by contract (reading {}): tool '{}' may not be used by this tenant's agents{}.",
                            contracts.reading(),
                            tool.name,
                            clause_suffix(&verdict.clauses)
                        ),
                        clauses: verdict.clauses.clone(),
                    });
                }
                d.tool = Some(Tool { verdict });
            }
        }
    }

    /// A declared class is honoured only where the key allows it.
    fn declared_class(&self, ask: &Ask<'_>) -> Result<Option<WorkloadClass>, AskError> {
        let Some(name) = ask.hints.declared_class.as_deref() else {
            return Ok(None);
        };
        let class: WorkloadClass = name
            .parse()
            .map_err(|()| AskError::UnknownDeclaredClass(name.to_owned()))?;
        if !ask.subject.may_declare.contains(&class) {
            return Err(AskError::ClassDeclarationRefused(class));
        }
        Ok(Some(class))
    }

    fn data_class<'p>(&'p self, ask: &Ask<'_>) -> Result<&'p str, AskError> {
        match ask.hints.data_classification.as_deref() {
            None => Ok(self.default_data_classification.as_str()),
            Some(v) => self
                .data_classifications
                .iter()
                .find(|d| d.as_str() == v)
                .map(String::as_str)
                .ok_or_else(|| AskError::UnknownDataClassification {
                    given: v.to_owned(),
                    expected: self.data_classifications.join(", "),
                }),
        }
    }

    /// `x-treaty-prefer-host`: honoured when allowed (then only that host
    /// is tried), refused with the refusing clauses when not. Never a way
    /// around a clause.
    fn prefer(&self, ask: &Ask<'_>, d: &mut Decided<'_>) -> Result<(), AskError> {
        let Some(id) = ask.hints.prefer_host.as_deref() else {
            return Ok(());
        };
        let Some(index) = self
            .config()
            .hosts
            .iter()
            .position(|h| h.id().as_str() == id)
        else {
            return Err(AskError::UnknownPreferredHost(id.to_owned()));
        };
        if !self.serving(ask.what.model()).contains(index) {
            return Err(AskError::PreferredHostDoesNotServe {
                host: id.to_owned(),
                model: ask.what.model().to_owned(),
            });
        }
        if d.allowed.contains(index) {
            d.allowed = HostSet::from_bits(1 << index);
            d.preferred = d.preferred.intersection(d.allowed);
            return Ok(());
        }
        let clauses: Vec<ClauseId> = d
            .decision
            .as_ref()
            .map(|dec| dec.clauses_for_host(index).to_vec())
            .unwrap_or_default();
        d.allowed = HostSet::EMPTY;
        d.refusal = Some(Refusal {
            kind: RefusalKind::PreferredHostRefused,
            message: format!(
                "Host '{id}' may not run this {} request under the contract{}.",
                d.class,
                if clauses.is_empty() {
                    String::new()
                } else {
                    format!(" [clauses: {}]", join_clauses(&clauses))
                }
            ),
            clauses,
        });
        Ok(())
    }
}

/// The rule recorded as classifying a tool call.
pub(crate) const TOOL_CALL_RULE: &str = "tool_call";

/// The class of a request under one reading's rules. A tool call is not
/// classified by rules: it acts for held state.
fn classify<'p>(reading: &'p Reading, input: &Input<'_>, what: &What<'_>) -> Classification<'p> {
    match what {
        What::Tool { .. } => Classification {
            class: WorkloadClass::StatefulAgent,
            rule: TOOL_CALL_RULE,
        },
        _ => reading.classifier.classify(input),
    }
}

fn query<'a>(ask: &Ask<'a>, class: WorkloadClass, data_class: &'a str) -> Query<'a> {
    Query {
        tenant: ask.subject.tenant,
        channel: ask.subject.channel,
        product: ask.subject.product,
        class,
        data_classification: data_class,
        at_unix_ms: ask.at_ms,
    }
}

fn shadow<'p>(
    reading: &'p Reading,
    ask: &Ask<'_>,
    input: &Input<'_>,
    data_class: &str,
    serving: HostSet,
) -> Option<Shadow<'p>> {
    let contracts = reading.contracts.as_ref()?;
    let classified = classify(reading, input, &ask.what);
    let q = query(ask, classified.class, data_class);
    let decision = contracts.decide(&q);
    let mut s = Shadow {
        reading: contracts.reading(),
        class: classified.class,
        rule: classified.rule,
        decision,
        serving,
        allowed: HostSet::EMPTY,
        preferred: HostSet::EMPTY,
        held: None,
        tool_allowed: None,
    };
    match &ask.what {
        What::Call { .. } => {
            if decision.admitted {
                s.allowed = decision.allowed_hosts.intersection(serving);
                s.preferred = decision.preferred_hosts.intersection(s.allowed);
            }
        }
        What::State { .. } => s.held = Some(decision.admitted && decision.runtime_allowed),
        What::Tool { tool, .. } => {
            s.tool_allowed = Some(decision.admitted && contracts.may_use(&q, tool).allowed)
        }
    }
    Some(s)
}
