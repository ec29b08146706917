//! The verdict table: every decision a reading can make, computed by Cedar
//! when the contracts load, then looked up per request.
//!
//! Every attribute a clause reads is a small finite set: tenants (grouped by
//! what the clauses can tell apart), channels, products, the seven workload
//! classes, the configured data classifications, hosts and the instance.
//! Whether a clause is in force depends only on time, and only changes at
//! effective-window edges. So loading asks Cedar once per action, tenant
//! group, channel, product, class, data classification and host which
//! clauses *match* (with every clause turned into a permit, Cedar's `reason`
//! lists exactly the matching ones), and then combines those matches per
//! time segment the way Cedar does: a matching forbid in force refuses, else
//! a matching permit in force allows, else refused. The property tests check
//! this table against direct Cedar evaluation of the real policy set.
//!
//! The `use` action (tool calls) is not tabulated: tools are not configured
//! entities, so there is nothing finite to enumerate; `crate::tools` asks
//! Cedar per call, over the same time segments ([`segments`],
//! [`segment_of`]).
//!
//! This module must never call Cedar on the hot path: [`Table::lookup`] is
//! three hash lookups, a binary search over a handful of edges and an index.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;

use cedar_policy::{
    Authorizer, Entities as CedarEntities, EntityUid, Policy, PolicyId, PolicySet,
    PrincipalConstraint, Request, ResourceConstraint, Schema,
};
use treaty_domain::{ChannelId, ProductId, TenantId, WorkloadClass};

use crate::clause::{Clause, ClauseId, ContractAction, Effect};
use crate::entities::{self, Entities};
use crate::error::ContractError;

/// Clause bitsets during the build: one bit per clause index.
type Words = Vec<u64>;

fn words_for(n: usize) -> usize {
    n.div_ceil(64).max(1)
}

pub(crate) fn set_bit(words: &mut [u64], i: usize) {
    if let Some(w) = words.get_mut(i / 64) {
        *w |= 1 << (i % 64);
    }
}

pub(crate) fn bits(words: &[u64]) -> impl Iterator<Item = usize> + '_ {
    words.iter().enumerate().flat_map(|(wi, &w)| {
        (0..64)
            .filter(move |b| w & (1 << b) != 0)
            .map(move |b| wi * 64 + b)
    })
}

pub(crate) fn class_index(class: WorkloadClass) -> usize {
    match class {
        WorkloadClass::StatelessApi => 0,
        WorkloadClass::StatefulAgent => 1,
        WorkloadClass::Embeddings => 2,
        WorkloadClass::Batch => 3,
        WorkloadClass::FineTune => 4,
        WorkloadClass::Training => 5,
        WorkloadClass::NonApiProduct => 6,
    }
}

const CLASSES: usize = WorkloadClass::ALL.len();

/// One precomputed decision. Lists are indices into [`Table::lists`] and
/// [`Table::rows`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cell {
    pub allowed: u64,
    pub preferred: u64,
    pub admit_list: u32,
    pub host_row: u32,
    pub runtime_list: u32,
    pub admitted: bool,
    pub runtime_allowed: bool,
}

/// Coordinates of a cell, for `check`'s enumeration.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Coord {
    pub tenant_group: usize,
    pub segment: usize,
    pub channel: usize,
    pub product: usize,
    pub class: WorkloadClass,
    pub data_classification: usize,
}

#[derive(Debug)]
pub(crate) struct Table {
    /// Instants (Unix ms) where some clause enters or leaves force, sorted.
    /// Segment `k` is `[edges[k-1], edges[k])`, open at both far ends.
    pub edges: Vec<i64>,
    /// Tenant indices per group; the first is the one Cedar evaluated.
    pub tenant_groups: Vec<Vec<usize>>,
    tenant_group_of: HashMap<TenantId, u32>,
    channel_index: HashMap<ChannelId, u32>,
    product_index: HashMap<ProductId, u32>,
    /// The data classifications the table distinguishes; one placeholder
    /// when no clause reads `context.data_classification`.
    pub data_classifications: Vec<String>,
    data_classification_matters: bool,
    channels: usize,
    products: usize,
    cells: Vec<Cell>,
    lists: Vec<Box<[ClauseId]>>,
    rows: Vec<Box<[Box<[ClauseId]>]>>,
    /// A row of empty lists, one per host, for queries naming unknown ids.
    pub unknown_row: u32,
    /// Clauses that matched at least one configured request (ignoring
    /// time: matching does not depend on it).
    pub ever_matched: Vec<u64>,
}

/// Entity ids a policy names, by entity type.
fn named_ids(policy: &Policy) -> Vec<EntityUid> {
    let mut uids = policy.entity_literals();
    match policy.principal_constraint() {
        PrincipalConstraint::Eq(u)
        | PrincipalConstraint::In(u)
        | PrincipalConstraint::IsIn(_, u) => uids.push(u),
        PrincipalConstraint::Any | PrincipalConstraint::Is(_) => {}
    }
    match policy.resource_constraint() {
        ResourceConstraint::Eq(u) | ResourceConstraint::In(u) | ResourceConstraint::IsIn(_, u) => {
            uids.push(u)
        }
        ResourceConstraint::Any | ResourceConstraint::Is(_) => {}
    }
    uids
}

/// Groups items by key, keeping first-appearance order.
fn group_by<K: Hash + Eq>(keys: impl Iterator<Item = K>) -> (Vec<Vec<usize>>, Vec<u32>) {
    let mut index: HashMap<K, u32> = HashMap::new();
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut group_of = Vec::new();
    for (i, key) in keys.enumerate() {
        let g = *index.entry(key).or_insert_with(|| {
            groups.push(Vec::new());
            (groups.len() - 1) as u32
        });
        if let Some(group) = groups.get_mut(g as usize) {
            group.push(i);
        }
        group_of.push(g);
    }
    (groups, group_of)
}

/// The time segments of a clause set: edges, and for each segment the
/// clauses in force (bit `i` is `clauses[i]`).
pub(crate) fn segments(clauses: &[Clause]) -> (Vec<i64>, Vec<Words>) {
    let mut edges: Vec<i64> = clauses
        .iter()
        .flat_map(|c| [c.window.start_ms(), c.window.end_ms()])
        .flatten()
        .collect();
    edges.sort_unstable();
    edges.dedup();
    let w = words_for(clauses.len());
    let in_force = (0..=edges.len())
        .map(|seg| {
            let at = if seg == 0 {
                i64::MIN
            } else {
                edges.get(seg - 1).copied().unwrap_or(i64::MIN)
            };
            let mut words = vec![0; w];
            for (i, c) in clauses.iter().enumerate() {
                if c.window.contains(at) {
                    set_bit(&mut words, i);
                }
            }
            words
        })
        .collect();
    (edges, in_force)
}

/// The segment of `edges` (as [`segments`] returns them) that holds
/// `at_unix_ms`.
pub(crate) fn segment_of(edges: &[i64], at_unix_ms: i64) -> usize {
    edges.partition_point(|&e| e <= at_unix_ms)
}

/// The request dimensions a clause can depend on.
mod dep {
    pub const TENANT: u8 = 1;
    pub const CHANNEL: u8 = 2;
    pub const PRODUCT: u8 = 4;
    pub const CLASS: u8 = 8;
    pub const DATA_CLASSIFICATION: u8 = 16;
    pub const RESOURCE: u8 = 32;
    pub const CONTEXT: u8 = CHANNEL | PRODUCT | CLASS | DATA_CLASSIFICATION;
}

/// Which dimensions a policy reads, from its JSON form: `principal` in the
/// scope or the conditions is the tenant, `resource` the resource, and each
/// `context.<attr>` its own dimension (any other use of `context`: all of
/// them). Over-approximating is always safe; it only costs load time.
fn dependencies(policy: &Policy) -> Result<u8, ContractError> {
    fn walk(v: &serde_json::Value, deps: &mut u8) {
        match v {
            serde_json::Value::Object(map) => {
                for key in [".", "has"] {
                    if let Some(access) = map.get(key)
                        && access
                            .get("left")
                            .and_then(|l| l.get("Var"))
                            .and_then(|v| v.as_str())
                            == Some("context")
                    {
                        *deps |= match access.get("attr").and_then(|a| a.as_str()) {
                            Some("channel") => dep::CHANNEL,
                            Some("product") => dep::PRODUCT,
                            Some("class") => dep::CLASS,
                            Some("data_classification") => dep::DATA_CLASSIFICATION,
                            _ => dep::CONTEXT,
                        };
                        return;
                    }
                }
                if let Some(var) = map.get("Var").and_then(|v| v.as_str()) {
                    *deps |= match var {
                        "principal" => dep::TENANT,
                        "resource" => dep::RESOURCE,
                        "context" => dep::CONTEXT,
                        _ => 0,
                    };
                }
                for value in map.values() {
                    walk(value, deps);
                }
            }
            serde_json::Value::Array(items) => {
                for item in items {
                    walk(item, deps);
                }
            }
            _ => {}
        }
    }
    let json = policy
        .to_json()
        .map_err(|e| ContractError::Internal(e.to_string()))?;
    let mut deps = 0;
    let scoped = |side: &str| {
        json.get(side)
            .and_then(|s| s.get("op"))
            .and_then(|o| o.as_str())
            != Some("All")
    };
    if scoped("principal") {
        deps |= dep::TENANT;
    }
    if scoped("resource") {
        deps |= dep::RESOURCE;
    }
    if let Some(conditions) = json.get("conditions") {
        walk(conditions, &mut deps);
    }
    Ok(deps)
}

/// The same policy as a permit, so that Cedar's `reason` names it whenever
/// it matches, whatever its effect.
fn as_permit(clause: &Clause, policy: &Policy) -> Result<Policy, ContractError> {
    let mut json = policy
        .to_json()
        .map_err(|e| ContractError::Internal(e.to_string()))?;
    if let Some(effect) = json.get_mut("effect") {
        *effect = serde_json::Value::String("permit".into());
    }
    Policy::from_json(Some(PolicyId::new(clause.id.as_str())), json)
        .map_err(|e| ContractError::Internal(e.to_string()))
}

/// Dimension sizes, in the order tenant group, channel, product, class,
/// data classification, resource.
#[derive(Debug, Clone, Copy)]
struct Dims([usize; 6]);

const DEP_ORDER: [u8; 6] = [
    dep::TENANT,
    dep::CHANNEL,
    dep::PRODUCT,
    dep::CLASS,
    dep::DATA_CLASSIFICATION,
    dep::RESOURCE,
];

/// Clauses of one action that read the same dimensions, with which of them
/// match at every point of those dimensions.
struct Group {
    deps: u8,
    /// Per point (mixed radix over the dimensions in `deps`), the matching
    /// clauses as a clause bitset.
    matches: Vec<u64>,
}

impl Group {
    /// The point of a full coordinate `[tg, ch, pr, cl, dc, res]`.
    fn point(&self, dims: &Dims, at: &[usize; 6]) -> usize {
        let mut p = 0;
        for ((d, size), i) in DEP_ORDER.iter().zip(dims.0).zip(at) {
            if self.deps & d != 0 {
                p = p * size + i;
            }
        }
        p
    }
}

/// What the build asks Cedar, arranged so that each clause is evaluated only
/// over the dimensions it reads.
struct Evaluator {
    entities: CedarEntities,
    clause_index: HashMap<PolicyId, usize>,
    words: usize,
    tenant_reps: Vec<EntityUid>,
    host_reps: Vec<EntityUid>,
    product_uids: Vec<EntityUid>,
    instance_uid: EntityUid,
    /// `[channel][product][class][dc]`, flattened.
    contexts: Vec<cedar_policy::Context>,
    /// Per action (schema order), its clause groups.
    groups: Vec<Vec<Group>>,
    channels: usize,
    products: usize,
    data_classifications: usize,
}

impl Evaluator {
    fn dims(&self, action: ContractAction) -> Dims {
        let resources = match action {
            // For admit the resource is the product itself.
            ContractAction::Admit => 1,
            ContractAction::Host | ContractAction::Prefer => self.host_reps.len(),
            ContractAction::Hold => 1,
            // Not tabulated (see the module comment); `evaluate` skips it.
            ContractAction::Use => 0,
        };
        Dims([
            self.tenant_reps.len(),
            self.channels,
            self.products,
            CLASSES,
            self.data_classifications,
            resources,
        ])
    }

    fn context(
        &self,
        ch: usize,
        pr: usize,
        cl: usize,
        dc: usize,
    ) -> Option<&cedar_policy::Context> {
        self.contexts
            .get(((ch * self.products + pr) * CLASSES + cl) * self.data_classifications + dc)
    }

    fn resource(&self, action: ContractAction, product: usize, res: usize) -> Option<&EntityUid> {
        match action {
            ContractAction::Admit => self.product_uids.get(product),
            ContractAction::Host | ContractAction::Prefer => self.host_reps.get(res),
            ContractAction::Hold => Some(&self.instance_uid),
            ContractAction::Use => None,
        }
    }

    /// Evaluates every group of every action at every point of its
    /// dimensions.
    fn evaluate(&mut self, clauses: &[Clause], policies: &[Policy]) -> Result<(), ContractError> {
        let authorizer = Authorizer::new();
        let mut all_groups = Vec::new();
        for action in ContractAction::ALL {
            if action == ContractAction::Use {
                // Tool calls are decided per call (`crate::tools`); an empty
                // group list keeps `groups` indexed by action.
                all_groups.push(Vec::new());
                continue;
            }
            let mut by_deps: Vec<(u8, PolicySet)> = Vec::new();
            for (clause, policy) in clauses.iter().zip(policies) {
                if !clause.applies_to(action) {
                    continue;
                }
                let mut deps = dependencies(policy)?;
                if action == ContractAction::Admit && deps & dep::RESOURCE != 0 {
                    deps = (deps & !dep::RESOURCE) | dep::PRODUCT;
                }
                let permit = as_permit(clause, policy)?;
                let set = match by_deps.iter_mut().find(|(d, _)| *d == deps) {
                    Some((_, set)) => set,
                    None => {
                        by_deps.push((deps, PolicySet::new()));
                        match by_deps.last_mut() {
                            Some((_, set)) => set,
                            None => continue,
                        }
                    }
                };
                set.add(permit)
                    .map_err(|e| ContractError::Internal(e.to_string()))?;
            }
            let dims = self.dims(action);
            let action_uid = entities::action_uid(action)?;
            let mut groups = Vec::new();
            for (deps, set) in by_deps {
                let sizes: Vec<usize> = DEP_ORDER
                    .iter()
                    .zip(dims.0)
                    .map(|(d, size)| if deps & d != 0 { size } else { 1 })
                    .collect();
                let points: usize = sizes.iter().product();
                let mut matches = vec![0u64; points * self.words];
                for (point, out) in matches.chunks_mut(self.words).enumerate() {
                    // Mixed-radix decode, last dimension fastest.
                    let mut at = [0usize; 6];
                    let mut rest = point;
                    for (slot, size) in at.iter_mut().zip(&sizes).rev() {
                        *slot = rest % size;
                        rest /= size;
                    }
                    let [tg, ch, pr, cl, dc, res] = at;
                    let (Some(principal), Some(resource), Some(context)) = (
                        self.tenant_reps.get(tg),
                        self.resource(action, pr, res),
                        self.context(ch, pr, cl, dc),
                    ) else {
                        continue;
                    };
                    // No schema check per request: Treaty builds these from
                    // validated entities.
                    let request = Request::new(
                        principal.clone(),
                        action_uid.clone(),
                        resource.clone(),
                        context.clone(),
                        None,
                    )
                    .map_err(|e| ContractError::Internal(e.to_string()))?;
                    let response = authorizer.is_authorized(&request, &set, &self.entities);
                    for id in response.diagnostics().reason() {
                        if let Some(&i) = self.clause_index.get(id) {
                            set_bit(out, i);
                        }
                    }
                }
                groups.push(Group { deps, matches });
            }
            all_groups.push(groups);
        }
        self.groups = all_groups;
        Ok(())
    }

    /// The clauses of `action` matching at a full coordinate, OR-ed into
    /// `out`.
    fn matches(&self, action: ContractAction, at: &[usize; 6], out: &mut [u64]) {
        let dims = self.dims(action);
        let Some(groups) = self.groups.get(action.index()) else {
            return;
        };
        for group in groups {
            let p = group.point(&dims, at);
            if let Some(words) = group.matches.get(p * self.words..(p + 1) * self.words) {
                for (o, w) in out.iter_mut().zip(words) {
                    *o |= w;
                }
            }
        }
    }

    /// Slots per (tenant group, channel, product, class, dc): admit, hold,
    /// then host and prefer per host group.
    fn slots(&self) -> usize {
        2 + 2 * self.host_reps.len()
    }

    /// Match bits laid out `[tg][channel][product][class][dc][slot][word]`.
    fn assemble(&self) -> Vec<u64> {
        let w = self.words;
        let slots = self.slots();
        let hg = self.host_reps.len();
        let cells = self.tenant_reps.len()
            * self.channels
            * self.products
            * CLASSES
            * self.data_classifications;
        let mut out = vec![0u64; cells * slots * w];
        let mut chunks = out.chunks_mut(slots * w);
        for tg in 0..self.tenant_reps.len() {
            for ch in 0..self.channels {
                for pr in 0..self.products {
                    for cl in 0..CLASSES {
                        for dc in 0..self.data_classifications {
                            let Some(chunk) = chunks.next() else {
                                return out;
                            };
                            let (admit, rest) = chunk.split_at_mut(w);
                            let (hold, rest) = rest.split_at_mut(w);
                            let (hosts, prefers) = rest.split_at_mut(hg * w);
                            self.matches(ContractAction::Admit, &[tg, ch, pr, cl, dc, 0], admit);
                            self.matches(ContractAction::Hold, &[tg, ch, pr, cl, dc, 0], hold);
                            for (g, (h_out, p_out)) in
                                hosts.chunks_mut(w).zip(prefers.chunks_mut(w)).enumerate()
                            {
                                self.matches(ContractAction::Host, &[tg, ch, pr, cl, dc, g], h_out);
                                self.matches(
                                    ContractAction::Prefer,
                                    &[tg, ch, pr, cl, dc, g],
                                    p_out,
                                );
                            }
                        }
                    }
                }
            }
        }
        out
    }
}

/// Deduplicates clause lists and host rows so that a cell is a few indices.
struct Interner<'a> {
    ids: &'a [ClauseId],
    lists: Vec<Box<[ClauseId]>>,
    list_index: HashMap<Words, u32>,
    rows: Vec<Box<[Box<[ClauseId]>]>>,
    row_index: HashMap<Vec<u32>, u32>,
}

impl Interner<'_> {
    fn list(&mut self, words: &[u64]) -> u32 {
        if let Some(&i) = self.list_index.get(words) {
            return i;
        }
        let list: Box<[ClauseId]> = bits(words)
            .filter_map(|i| self.ids.get(i).cloned())
            .collect();
        self.lists.push(list);
        let i = (self.lists.len() - 1) as u32;
        self.list_index.insert(words.to_vec(), i);
        i
    }

    fn row(&mut self, lists: &[u32]) -> u32 {
        if let Some(&i) = self.row_index.get(lists) {
            return i;
        }
        let row: Box<[Box<[ClauseId]>]> = lists
            .iter()
            .map(|&l| self.lists.get(l as usize).cloned().unwrap_or_default())
            .collect();
        self.rows.push(row);
        let i = (self.rows.len() - 1) as u32;
        self.row_index.insert(lists.to_vec(), i);
        i
    }
}

/// Cedar's combination: a matching forbid in force refuses (and names the
/// forbids), else a matching permit in force allows (and names the
/// permits), else refused with no clause.
fn combine(matched: &[u64], in_force: &[u64], forbid: &[u64], out: &mut [u64]) -> bool {
    let mut any_forbid = false;
    for (((o, m), f), fb) in out.iter_mut().zip(matched).zip(in_force).zip(forbid) {
        *o = m & f & fb;
        any_forbid |= *o != 0;
    }
    if any_forbid {
        return false;
    }
    let mut any_permit = false;
    for (((o, m), f), fb) in out.iter_mut().zip(matched).zip(in_force).zip(forbid) {
        *o = m & f & !fb;
        any_permit |= *o != 0;
    }
    any_permit
}

impl Table {
    pub(crate) fn build(
        clauses: &[Clause],
        policies: &[Policy],
        e: &Entities<'_>,
        schema: &Schema,
    ) -> Result<Table, ContractError> {
        let named: HashSet<EntityUid> = policies.iter().flat_map(named_ids).collect();
        let is_named = |ty: &str, id: &str| -> Result<bool, ContractError> {
            Ok(named.contains(&entities::uid(ty, id)?))
        };

        // Tenants the clauses cannot tell apart share one evaluation.
        let mut tenant_keys = Vec::new();
        for t in e.tenants {
            tenant_keys.push(if is_named("Tenant", t.id.as_str())? {
                (true, t.id.as_str().to_owned(), String::new())
            } else {
                (false, t.segment.clone(), t.data_region.clone())
            });
        }
        let (tenant_groups, tenant_group_of) = group_by(tenant_keys.into_iter());
        let mut host_keys = Vec::new();
        for h in e.hosts {
            let mut certs = h.certifications.clone();
            certs.sort();
            certs.dedup();
            host_keys.push(if is_named("Host", h.id.as_str())? {
                (
                    true,
                    h.id.as_str().to_owned(),
                    String::new(),
                    String::new(),
                    Vec::new(),
                )
            } else {
                (
                    false,
                    h.cloud.clone(),
                    h.region.clone(),
                    h.provider.as_str().to_owned(),
                    certs,
                )
            });
        }
        let (host_groups, host_group_of) = group_by(host_keys.into_iter());

        let reads_data_classification = policies
            .iter()
            .zip(clauses)
            .find(|(p, _)| p.to_string().contains("data_classification"));
        let data_classifications: Vec<String> = match reads_data_classification {
            Some((_, clause)) if e.data_classifications.is_empty() => {
                return Err(ContractError::Entities(format!(
                    "clause {} ({}:{}) reads context.data_classification but no data classifications are configured",
                    clause.id, clause.file, clause.line
                )));
            }
            Some(_) => e.data_classifications.to_vec(),
            None => vec![
                e.data_classifications
                    .first()
                    .cloned()
                    .unwrap_or_else(|| "unclassified".into()),
            ],
        };

        let words = words_for(clauses.len());
        let clause_index: HashMap<PolicyId, usize> = clauses
            .iter()
            .enumerate()
            .map(|(i, c)| (PolicyId::new(c.id.as_str()), i))
            .collect();
        let tenant_reps = tenant_groups
            .iter()
            .filter_map(|g| g.first().and_then(|&i| e.tenants.get(i)))
            .map(|t| entities::uid("Tenant", t.id.as_str()))
            .collect::<Result<Vec<_>, _>>()?;
        let host_reps = host_groups
            .iter()
            .filter_map(|g| g.first().and_then(|&i| e.hosts.get(i)))
            .map(|h| entities::uid("Host", h.id.as_str()))
            .collect::<Result<Vec<_>, _>>()?;
        let mut contexts = Vec::new();
        for channel in e.channels {
            for product in e.products {
                for class in WorkloadClass::ALL {
                    for dc in &data_classifications {
                        contexts.push(entities::context(class.as_str(), channel, product, dc)?);
                    }
                }
            }
        }
        let rep_tenants = tenant_groups
            .iter()
            .filter_map(|g| g.first().and_then(|&i| e.tenants.get(i)));
        let mut evaluator = Evaluator {
            entities: entities::cedar_entities(rep_tenants, e, schema)?,
            clause_index,
            words,
            tenant_reps,
            host_reps,
            product_uids: e
                .products
                .iter()
                .map(|p| entities::uid("Product", p.id.as_str()))
                .collect::<Result<_, _>>()?,
            instance_uid: entities::uid("Instance", &e.instance.id)?,
            contexts,
            groups: Vec::new(),
            channels: e.channels.len(),
            products: e.products.len(),
            data_classifications: data_classifications.len(),
        };
        evaluator.evaluate(clauses, policies)?;
        let matches = evaluator.assemble();
        let groups = tenant_groups.len();

        let mut ever_matched = vec![0u64; words];
        for chunk in matches.chunks(words) {
            for (acc, w) in ever_matched.iter_mut().zip(chunk) {
                *acc |= w;
            }
        }

        // Combine per time segment.
        let (edges, in_force) = segments(clauses);
        let mut forbid = vec![0u64; words];
        for (i, c) in clauses.iter().enumerate() {
            if c.effect == Effect::Forbid {
                set_bit(&mut forbid, i);
            }
        }
        let ids: Vec<ClauseId> = clauses.iter().map(|c| c.id.clone()).collect();
        let mut interner = Interner {
            ids: &ids,
            lists: Vec::new(),
            list_index: HashMap::new(),
            rows: Vec::new(),
            row_index: HashMap::new(),
        };
        let empty = interner.list(&vec![0u64; words]);
        let unknown_row = interner.row(&vec![empty; e.hosts.len()]);

        let (c, p, d) = (
            e.channels.len(),
            e.products.len(),
            data_classifications.len(),
        );
        let slots = evaluator.slots();
        let hg = host_groups.len();
        let mut cells = Vec::with_capacity(groups * in_force.len() * c * p * CLASSES * d);
        let mut scratch = vec![0u64; words];
        let mut host_allowed = vec![false; hg];
        let mut host_list = vec![0u32; hg];
        let mut row = vec![0u32; e.hosts.len()];
        let shape = matches.chunks(slots * words).len();
        let per_tg = c * p * CLASSES * d;
        if shape != groups * per_tg {
            return Err(ContractError::Internal("match table shape".into()));
        }
        let all_matches: Vec<&[u64]> = matches.chunks(slots * words).collect();
        for tg in 0..groups {
            for force in &in_force {
                let tg_matches = all_matches
                    .get(tg * per_tg..(tg + 1) * per_tg)
                    .unwrap_or(&[]);
                for m in tg_matches {
                    let mut slot = m.chunks(words);
                    let mut next = || slot.next().unwrap_or(&[]);
                    let admit = next();
                    let admitted = combine(admit, force, &forbid, &mut scratch);
                    let admit_list = interner.list(&scratch);
                    let hold = next();
                    let runtime_allowed = combine(hold, force, &forbid, &mut scratch);
                    let runtime_list = interner.list(&scratch);
                    for (allowed, list) in host_allowed.iter_mut().zip(host_list.iter_mut()) {
                        *allowed = combine(next(), force, &forbid, &mut scratch);
                        *list = interner.list(&scratch);
                    }
                    let mut prefer_group = 0u64;
                    for (g, &allowed) in host_allowed.iter().enumerate() {
                        if combine(next(), force, &forbid, &mut scratch) && allowed {
                            prefer_group |= 1 << g;
                        }
                    }
                    let (mut allowed, mut preferred) = (0u64, 0u64);
                    for (h, &g) in host_group_of.iter().enumerate() {
                        let g = g as usize;
                        if host_allowed.get(g).copied().unwrap_or(false) {
                            allowed |= 1 << h;
                        }
                        if prefer_group & (1 << g) != 0 {
                            preferred |= 1 << h;
                        }
                        if let Some(r) = row.get_mut(h) {
                            *r = host_list.get(g).copied().unwrap_or(empty);
                        }
                    }
                    let host_row = interner.row(&row);
                    cells.push(Cell {
                        allowed,
                        preferred,
                        admit_list,
                        host_row,
                        runtime_list,
                        admitted,
                        runtime_allowed,
                    });
                }
            }
        }

        let mut tenant_index = HashMap::new();
        for (t, g) in e.tenants.iter().zip(&tenant_group_of) {
            tenant_index.insert(t.id.clone(), *g);
        }
        Ok(Table {
            edges,
            tenant_groups,
            tenant_group_of: tenant_index,
            channel_index: e
                .channels
                .iter()
                .enumerate()
                .map(|(i, ch)| (ch.id.clone(), i as u32))
                .collect(),
            product_index: e
                .products
                .iter()
                .enumerate()
                .map(|(i, pr)| (pr.id.clone(), i as u32))
                .collect(),
            data_classification_matters: reads_data_classification.is_some(),
            data_classifications,
            channels: c,
            products: p,
            cells,
            lists: interner.lists,
            rows: interner.rows,
            unknown_row,
            ever_matched,
        })
    }

    pub(crate) fn segments(&self) -> usize {
        self.edges.len() + 1
    }

    fn index(&self, c: &Coord) -> usize {
        let d = self.data_classifications.len();
        ((((c.tenant_group * self.segments() + c.segment) * self.channels + c.channel)
            * self.products
            + c.product)
            * CLASSES
            + class_index(c.class))
            * d
            + c.data_classification
    }

    /// The cell for a query, or `None` when it names an unknown tenant,
    /// channel, product or data classification.
    #[inline]
    pub(crate) fn lookup(
        &self,
        tenant: &TenantId,
        channel: &ChannelId,
        product: &ProductId,
        class: WorkloadClass,
        data_classification: &str,
        at_unix_ms: i64,
    ) -> Option<&Cell> {
        let tenant_group = *self.tenant_group_of.get(tenant)? as usize;
        let channel = *self.channel_index.get(channel)? as usize;
        let product = *self.product_index.get(product)? as usize;
        let data_classification = if self.data_classification_matters {
            self.data_classifications
                .iter()
                .position(|d| d == data_classification)?
        } else {
            0
        };
        let segment = segment_of(&self.edges, at_unix_ms);
        self.cells.get(self.index(&Coord {
            tenant_group,
            segment,
            channel,
            product,
            class,
            data_classification,
        }))
    }

    /// Whether a query's data classification is one the table knows (any
    /// is, when no clause reads it): [`Table::lookup`]'s rule, for the
    /// decisions made outside the table.
    pub(crate) fn knows_data_classification(&self, data_classification: &str) -> bool {
        !self.data_classification_matters
            || self
                .data_classifications
                .iter()
                .any(|d| d == data_classification)
    }

    pub(crate) fn cell(&self, c: &Coord) -> Option<&Cell> {
        self.cells.get(self.index(c))
    }

    /// Every coordinate of the table, in storage order.
    pub(crate) fn coords(&self) -> impl Iterator<Item = Coord> + '_ {
        let d = self.data_classifications.len();
        (0..self.tenant_groups.len()).flat_map(move |tenant_group| {
            (0..self.segments()).flat_map(move |segment| {
                (0..self.channels).flat_map(move |channel| {
                    (0..self.products).flat_map(move |product| {
                        WorkloadClass::ALL.into_iter().flat_map(move |class| {
                            (0..d).map(move |data_classification| Coord {
                                tenant_group,
                                segment,
                                channel,
                                product,
                                class,
                                data_classification,
                            })
                        })
                    })
                })
            })
        })
    }

    pub(crate) fn list(&self, i: u32) -> &[ClauseId] {
        self.lists.get(i as usize).map_or(&[], |l| l)
    }

    pub(crate) fn row(&self, i: u32) -> &[Box<[ClauseId]>] {
        self.rows.get(i as usize).map_or(&[], |r| r)
    }

    /// The first instant of a segment, `None` for the one before every edge.
    pub(crate) fn segment_start(&self, segment: usize) -> Option<i64> {
        segment
            .checked_sub(1)
            .and_then(|i| self.edges.get(i).copied())
    }

    /// The last instant of a segment (exclusive end), `None` for the last.
    pub(crate) fn segment_end(&self, segment: usize) -> Option<i64> {
        self.edges.get(segment).copied()
    }
}
