//! The decision step: classify the request, then ask the contracts.
//!
//! Runs after authentication and before routing. It owns the three
//! refusals that come from contracts, each naming the clauses behind it:
//! a class declaration the key may not make, a request the contracts do
//! not admit (channel × product × tenant), and a request no allowed host
//! can serve. What it hands the router is the allowed set (and the
//! preferred subset) as a host mask: routing may narrow it, never widen it.
//! Without `[contracts]` in the config every host is allowed.
//!
//! Decisions are table lookups (see `treaty-contracts`): nothing here
//! allocates on the success path except the clause header.

use std::path::Path;

use axum::http::HeaderMap;
use treaty_classify::{Classifier, Features, Input};
use treaty_config::Config;
use treaty_contracts::{ClauseId, Contracts, Decision, Entities, Query};
use treaty_domain::{RequestContext, WorkloadClass};
use treaty_keys::VerifiedKey;
use treaty_router::HostMask;

use crate::error::{ApiError, Code};
use crate::state::Gateway;

pub const DECLARED_CLASS_HEADER: &str = "x-treaty-workload-class";
pub const DATA_CLASSIFICATION_HEADER: &str = "x-treaty-data-classification";
pub const PREFER_HOST_HEADER: &str = "x-treaty-prefer-host";

/// Contracts and classification rules, loaded once.
pub struct Policy {
    pub contracts: Option<Contracts>,
    pub classifier: Classifier,
    /// Where the rules came from, for people.
    pub classifier_source: String,
    data_classifications: Vec<String>,
    default_data_classification: String,
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy")
            .field("reading", &self.reading())
            .field("classifier", &self.classifier_source)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("contracts of reading {reading:?}: {source}")]
    Contracts {
        reading: String,
        #[source]
        source: treaty_contracts::ContractError,
    },
    #[error("classification rules {file}: {source}")]
    Classification {
        file: String,
        #[source]
        source: treaty_classify::ClassifyError,
    },
    #[error("cannot read {file}: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
}

impl Policy {
    /// Loads the reading in force and its classification rules: the
    /// reading's own `classification.toml` first, then
    /// `classification.rules_file`, then Treaty's defaults.
    pub fn load(config: &Config) -> Result<Policy, PolicyError> {
        let hosts: Vec<_> = config.hosts.iter().map(|h| h.host.clone()).collect();
        let (contracts, classes, default_class, reading_rules) = match &config.contracts {
            None => (
                None,
                vec!["internal".to_owned()],
                "internal".to_owned(),
                None,
            ),
            Some(c) => {
                let dir = c.reading_dir();
                let contracts = Contracts::load(
                    &dir,
                    Entities {
                        tenants: &config.tenants,
                        channels: &config.channels,
                        products: &config.products,
                        hosts: &hosts,
                        instance: &config.instance,
                        data_classifications: &c.data_classifications,
                    },
                )
                .map_err(|source| PolicyError::Contracts {
                    reading: c.reading.clone(),
                    source,
                })?;
                let rules = dir.join("classification.toml");
                (
                    Some(contracts),
                    c.data_classifications.clone(),
                    c.default_data_classification.clone(),
                    rules.is_file().then_some(rules),
                )
            }
        };
        let rules_file = reading_rules.or_else(|| config.classification.rules_file.clone());
        let (classifier, classifier_source) = match rules_file {
            Some(file) => (load_rules(&file)?, file.display().to_string()),
            None => (Classifier::defaults(), "Treaty's default rules".to_owned()),
        };
        Ok(Policy {
            contracts,
            classifier,
            classifier_source,
            data_classifications: classes,
            default_data_classification: default_class,
        })
    }

    /// The data classification of requests that declare none.
    pub fn default_data_classification(&self) -> &str {
        &self.default_data_classification
    }

    pub fn reading(&self) -> Option<&str> {
        self.contracts.as_ref().map(Contracts::reading)
    }
}

pub fn load_rules(file: &Path) -> Result<Classifier, PolicyError> {
    let text = std::fs::read_to_string(file).map_err(|source| PolicyError::Io {
        file: file.display().to_string(),
        source,
    })?;
    Classifier::from_toml(&text).map_err(|source| PolicyError::Classification {
        file: file.display().to_string(),
        source,
    })
}

/// What the decision step hands on: the decision, and the refusal when
/// the contracts refused the request (recorded, then returned).
pub(crate) struct Placement<'g> {
    pub class: WorkloadClass,
    pub decision: Option<Decision<'g>>,
    /// Hosts the contracts allow (all hosts without contracts), narrowed
    /// to one by an allowed `x-treaty-prefer-host`.
    pub allowed: HostMask,
    pub preferred: HostMask,
    pub data_classification: &'g str,
    pub declared: Option<WorkloadClass>,
    pub features: Features,
    /// Set when the contracts refuse the request: a 403 naming clauses.
    pub refusal: Option<ApiError>,
}

impl Placement<'_> {
    /// The clause ids behind a host's verdict, comma-separated.
    pub fn clauses_for(&self, host: usize) -> String {
        self.decision
            .as_ref()
            .map(|d| join(d.clauses_for_host(host)))
            .unwrap_or_default()
    }
}

pub(crate) fn join(ids: &[ClauseId]) -> String {
    let mut out = String::new();
    for (i, id) in ids.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(id.as_str());
    }
    out
}

/// Classifies a request: its class, data classification and declared
/// class; sets `ctx.workload_class` and `ctx.classified_by`.
fn classify<'g>(
    gw: &'g Gateway,
    key: &VerifiedKey,
    ctx: &mut RequestContext,
    headers: &HeaderMap,
    route: &str,
    features: Features,
    model_step: bool,
) -> Result<Classified<'g>, ApiError> {
    let policy = &gw.policy;
    let declared = declared_class(key, headers)?;
    let data_class: &'g str = match headers.get(DATA_CLASSIFICATION_HEADER) {
        None => policy.default_data_classification.as_str(),
        Some(v) => {
            let v = v.to_str().unwrap_or("");
            policy
                .data_classifications
                .iter()
                .find(|d| d.as_str() == v)
                .map(String::as_str)
                .ok_or_else(|| {
                    ApiError::invalid(
                        format!(
                            "Unknown data classification '{v}'; expected one of: {}.",
                            policy.data_classifications.join(", ")
                        ),
                        None,
                    )
                })?
        }
    };
    let product_kind = gw
        .config
        .product(ctx.product.as_str())
        .map(|p| p.kind)
        .ok_or_else(|| {
            ApiError::new(
                Code::InvalidApiKey,
                "This API key's product is not configured.",
            )
        })?;
    let classified = policy.classifier.classify(&Input {
        route,
        product: ctx.product.as_str(),
        product_kind,
        features,
        declared,
        model_step,
    });
    ctx.workload_class = Some(classified.class);
    ctx.classified_by = Some(classified.rule.to_owned());

    Ok(Classified {
        class: classified.class,
        data_class,
        declared,
    })
}

/// A request's class and the facts decided with it.
struct Classified<'g> {
    class: WorkloadClass,
    data_class: &'g str,
    declared: Option<WorkloadClass>,
}

fn query<'a>(ctx: &'a RequestContext, c: &Classified<'a>) -> Query<'a> {
    Query {
        tenant: &ctx.tenant,
        channel: &ctx.channel,
        product: &ctx.product,
        class: c.class,
        data_classification: c.data_class,
        at_unix_ms: treaty_keys::now_ms(),
    }
}

/// Classifies and decides one request; sets `ctx.workload_class` and
/// `ctx.classified_by`. `Err` is for bad request headers (no decision was
/// made); a contract refusal is a decision, returned in
/// [`Placement::refusal`].
pub(crate) fn place<'g>(
    gw: &'g Gateway,
    key: &VerifiedKey,
    ctx: &mut RequestContext,
    headers: &HeaderMap,
    route: &str,
    features: Features,
    model_step: bool,
) -> Result<Placement<'g>, ApiError> {
    let policy = &gw.policy;
    let c = classify(gw, key, ctx, headers, route, features, model_step)?;
    let classified_class = c.class;
    let data_class = c.data_class;
    let declared = c.declared;
    let serving = gw.router.serving(&ctx.model);
    let Some(contracts) = &policy.contracts else {
        return prefer(
            gw,
            headers,
            Placement {
                class: classified_class,
                decision: None,
                allowed: HostMask::all(gw.config.hosts.len()),
                preferred: HostMask::EMPTY,
                data_classification: data_class,
                declared,
                features,
                refusal: None,
            },
        );
    };
    let decision = contracts.decide(&query(ctx, &c));
    let mut placement = Placement {
        class: classified_class,
        allowed: HostMask(decision.allowed_hosts.bits()),
        preferred: HostMask(decision.preferred_hosts.bits()),
        decision: Some(decision),
        data_classification: data_class,
        declared,
        features,
        refusal: None,
    };
    if !decision.admitted {
        placement.allowed = HostMask::EMPTY;
        placement.refusal = Some(not_admitted(contracts, ctx, &decision));
        return Ok(placement);
    }
    if placement.allowed.intersect(serving).is_empty() {
        // Every host serving the model is refused: name what refused them.
        let mut refusing: Vec<&ClauseId> = serving
            .iter()
            .flat_map(|i| decision.clauses_for_host(i).iter())
            .collect();
        refusing.sort();
        refusing.dedup();
        let ids: Vec<ClauseId> = refusing.into_iter().cloned().collect();
        placement.refusal = Some(ApiError::new(
            Code::ContractRefused,
            format!(
                "No host may run this request under the contract (reading {}): {} request of tenant '{}' through '{}' for model '{}'{}.",
                contracts.reading(),
                classified_class,
                ctx.tenant,
                ctx.channel,
                ctx.model,
                clause_suffix(&ids)
            ),
        )
        .with_clauses(join(&ids)));
        return Ok(placement);
    }
    prefer(gw, headers, placement)
}

/// Decides whether this instance may hold a request's state (a stored
/// response, a conversation, an agent run): the request must be admitted
/// and the contracts must let this instance hold the product's runtime
/// (the `hold` action). The placement has no hosts: state is not sent
/// anywhere. Sets `ctx.workload_class` like [`place`].
pub(crate) fn hold<'g>(
    gw: &'g Gateway,
    key: &VerifiedKey,
    ctx: &mut RequestContext,
    headers: &HeaderMap,
    route: &str,
    features: Features,
) -> Result<Placement<'g>, ApiError> {
    let c = classify(gw, key, ctx, headers, route, features, false)?;
    let mut placement = Placement {
        class: c.class,
        decision: None,
        allowed: HostMask::EMPTY,
        preferred: HostMask::EMPTY,
        data_classification: c.data_class,
        declared: c.declared,
        features,
        refusal: None,
    };
    let Some(contracts) = &gw.policy.contracts else {
        return Ok(placement);
    };
    let decision = contracts.decide(&query(ctx, &c));
    placement.decision = Some(decision);
    if !decision.admitted {
        placement.refusal = Some(not_admitted(contracts, ctx, &decision));
    } else if !decision.runtime_allowed {
        let i = &gw.config.instance;
        placement.refusal = Some(
            ApiError::new(
                Code::ContractRefused,
                format!(
                    "This Treaty instance ('{}', {} {}) may not hold the state of product '{}' for tenant '{}' under the contract (reading {}){}.",
                    i.id,
                    i.cloud,
                    i.region,
                    ctx.product,
                    ctx.tenant,
                    contracts.reading(),
                    clause_suffix(decision.runtime_clauses)
                ),
            )
            .with_clauses(join(decision.runtime_clauses)),
        );
    }
    Ok(placement)
}

fn not_admitted(contracts: &Contracts, ctx: &RequestContext, decision: &Decision<'_>) -> ApiError {
    ApiError::new(
        Code::ContractRefused,
        format!(
            "Refused by contract (reading {}): channel '{}' may not sell product '{}' to tenant '{}'{}.",
            contracts.reading(),
            ctx.channel,
            ctx.product,
            ctx.tenant,
            clause_suffix(decision.admit_clauses)
        ),
    )
    .with_clauses(join(decision.admit_clauses))
}

fn clause_suffix(ids: &[ClauseId]) -> String {
    if ids.is_empty() {
        " (no clause permits it)".to_owned()
    } else {
        format!(" [clauses: {}]", join(ids))
    }
}

/// A declared class is honoured only where the key allows it.
fn declared_class(
    key: &VerifiedKey,
    headers: &HeaderMap,
) -> Result<Option<WorkloadClass>, ApiError> {
    let Some(v) = headers.get(DECLARED_CLASS_HEADER) else {
        return Ok(None);
    };
    let name = v.to_str().unwrap_or("");
    let class: WorkloadClass = name.parse().map_err(|()| {
        ApiError::invalid(
            format!("Unknown workload class '{name}' in {DECLARED_CLASS_HEADER}."),
            None,
        )
    })?;
    if !key.may_declare(class) {
        return Err(ApiError::new(
            Code::ClassDeclarationRefused,
            format!("This API key may not declare the workload class '{class}'."),
        ));
    }
    Ok(Some(class))
}

/// `x-treaty-prefer-host`: honoured when allowed (then only that host is
/// tried), refused with the refusing clauses when not. Never a way around
/// a clause.
fn prefer<'g>(
    gw: &'g Gateway,
    headers: &HeaderMap,
    mut p: Placement<'g>,
) -> Result<Placement<'g>, ApiError> {
    let Some(v) = headers.get(PREFER_HOST_HEADER) else {
        return Ok(p);
    };
    let id = v.to_str().unwrap_or("");
    let Some(index) = gw.config.hosts.iter().position(|h| h.id().as_str() == id) else {
        return Err(ApiError::invalid(
            format!("Unknown host '{id}' in {PREFER_HOST_HEADER}."),
            None,
        ));
    };
    if !p.allowed.contains(index) {
        let clauses = p.clauses_for(index);
        p.allowed = HostMask::EMPTY;
        p.refusal = Some(
            ApiError::new(
                Code::ContractRefused,
                format!(
                    "Host '{id}' may not run this {} request under the contract{}.",
                    p.class,
                    if clauses.is_empty() {
                        String::new()
                    } else {
                        format!(" [clauses: {clauses}]")
                    }
                ),
            )
            .with_clauses(clauses),
        );
        return Ok(p);
    }
    let mut only = HostMask::EMPTY;
    only.insert(index);
    p.allowed = only;
    Ok(p)
}

/// A request described for `treaty contracts explain` and
/// `POST /admin/explain`.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExplainRequest {
    pub tenant: String,
    pub channel: String,
    pub product: String,
    /// The route the request is made on, e.g. `/v1/chat/completions`.
    pub route: String,
    /// The request body (for `store`, `previous_response_id`, ...).
    #[serde(default)]
    pub body: serde_json::Value,
    /// RFC 3339; default now.
    #[serde(default)]
    pub at: Option<String>,
    #[serde(default)]
    pub data_classification: Option<String>,
    /// A class the client declares (as with `x-treaty-workload-class`).
    #[serde(default)]
    pub declared_class: Option<String>,
    /// Explain a model step of an agent run.
    #[serde(default)]
    pub model_step: bool,
}

/// The explanation of one request, as JSON: `{"admitted", "admit_clauses",
/// "workload_class", "classified_by", "hosts": [{"id", "allowed",
/// "clauses"}], "runtime": {"allowed", "clauses"}}` with every configured
/// host, in config order.
pub fn explain(
    config: &Config,
    policy: &Policy,
    req: &ExplainRequest,
) -> Result<serde_json::Value, String> {
    config.check_binding(&req.tenant, &req.channel, &req.product)?;
    let product = config
        .product(&req.product)
        .ok_or_else(|| format!("unknown product {:?}", req.product))?;
    let at_unix_ms = match &req.at {
        None => treaty_keys::now_ms(),
        Some(text) => {
            let t =
                time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
                    .map_err(|e| format!("`at` must be an RFC 3339 time ({text:?}: {e})"))?;
            (t.unix_timestamp_nanos() / 1_000_000) as i64
        }
    };
    let declared = match &req.declared_class {
        None => None,
        Some(name) => Some(
            name.parse::<WorkloadClass>()
                .map_err(|()| format!("unknown workload class {name:?}"))?,
        ),
    };
    let features = features_of(&req.route, &req.body);
    let classified = policy.classifier.classify(&Input {
        route: &req.route,
        product: &req.product,
        product_kind: product.kind,
        features,
        declared,
        model_step: req.model_step,
    });
    let data_class = req
        .data_classification
        .clone()
        .unwrap_or_else(|| policy.default_data_classification.clone());
    if !policy.data_classifications.contains(&data_class) {
        return Err(format!(
            "unknown data classification {data_class:?}; expected one of: {}",
            policy.data_classifications.join(", ")
        ));
    }
    let (admitted, admit_clauses, hosts, runtime) = match &policy.contracts {
        None => (
            true,
            serde_json::json!([]),
            config
                .hosts
                .iter()
                .map(|h| serde_json::json!({"id": h.id(), "allowed": true, "clauses": []}))
                .collect::<Vec<_>>()
                .into(),
            serde_json::json!({"allowed": true, "clauses": []}),
        ),
        Some(contracts) => {
            let tenant = req
                .tenant
                .parse()
                .map_err(|e: treaty_domain::IdError| e.to_string())?;
            let channel = req
                .channel
                .parse()
                .map_err(|e: treaty_domain::IdError| e.to_string())?;
            let product_id = req
                .product
                .parse()
                .map_err(|e: treaty_domain::IdError| e.to_string())?;
            let e = contracts.explain(&Query {
                tenant: &tenant,
                channel: &channel,
                product: &product_id,
                class: classified.class,
                data_classification: &data_class,
                at_unix_ms,
            });
            (
                e.admitted,
                serde_json::to_value(&e.admit_clauses).map_err(|e| e.to_string())?,
                serde_json::to_value(&e.hosts).map_err(|e| e.to_string())?,
                serde_json::to_value(&e.runtime).map_err(|e| e.to_string())?,
            )
        }
    };
    Ok(serde_json::json!({
        "admitted": admitted,
        "admit_clauses": admit_clauses,
        "workload_class": classified.class,
        "classified_by": classified.rule,
        "hosts": hosts,
        "runtime": runtime,
    }))
}

/// Statefulness features of a body on a route: only the Responses API
/// holds state through its body.
pub fn features_of(route: &str, body: &serde_json::Value) -> Features {
    if !route.starts_with("/v1/responses") {
        return crate::routes::stateless();
    }
    Features {
        store: body.get("store").and_then(serde_json::Value::as_bool),
        previous_response_id: body
            .get("previous_response_id")
            .is_some_and(|v| v.as_str().is_some_and(|s| !s.is_empty())),
        conversation: body.get("conversation").is_some_and(|v| !v.is_null()),
    }
}

/// Decides a recorded request again under `policy`: the same shape
/// (route, product, body features, declared class, data classification,
/// time), this policy's classification rules and contracts. A decision
/// to hold state is decided for `config.instance` (the caller passes a
/// config whose instance is the recorded one to replay it where it was
/// made). Used by `treaty contracts simulate`.
pub fn redecide(
    config: &Config,
    policy: &Policy,
    d: &treaty_ledger::DecisionRecord,
) -> treaty_ledger::Redecision {
    use treaty_ledger::{HostVerdict as Recorded, Redecision, Verdicts};
    let refused = || Redecision {
        admitted: false,
        workload_class: d.workload_class.clone(),
        admit_clauses: Vec::new(),
        hosts: Vec::new(),
        chosen: None,
        runtime: None,
        tool: None,
    };
    let Some(product) = config.product(&d.product) else {
        return refused();
    };
    let classified = policy.classifier.classify(&Input {
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
    let class = classified.class.as_str();
    let Some(contracts) = &policy.contracts else {
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
                admit_clauses: &[],
                hosts: &hosts,
                preferred: &[],
            },
        );
        // Without contracts every instance may hold any state, and every
        // tool may be used.
        if let Some(tool) = &d.tool {
            return fresh.using(treaty_ledger::ToolVerdict {
                allowed: true,
                clauses: Vec::new(),
                ..tool.clone()
            });
        }
        return match &d.runtime {
            Some(hold) => fresh.holding(treaty_ledger::RuntimeVerdict {
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
        class: classified.class,
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
        return fresh.using(treaty_ledger::ToolVerdict {
            allowed: verdict.allowed,
            clauses: ids(&verdict.clauses),
            ..tool.clone()
        });
    }
    if d.runtime.is_none() {
        return fresh;
    }
    // A hold: may this config's instance hold the state, as the gateway
    // records it (the refusing admission clauses when not admitted).
    let i = &config.instance;
    fresh.holding(treaty_ledger::RuntimeVerdict {
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
