//! Tool use (`Action::"use"`): may this tenant's agents call this tool?
//!
//! Decided by Cedar when the agent runtime calls a tool, not tabulated:
//! tools are not configured entities (any MCP connector, webhook or client
//! function may be named), so there is nothing finite to enumerate, and
//! calls are rare, a few per agent run. Loading prepares what a call needs:
//! for each of the verdict table's time segments, the clauses applying to
//! `use` that are in force there, as one policy set; and the configured
//! entities Cedar may read. A call then builds one `Tool` entity and asks
//! Cedar once.
//!
//! This module owns the `use` default (unrestricted until a clause names
//! `use`; the `schema` module documents it) and never decides another
//! action. It never fails a call: what cannot be evaluated is refused.

use std::collections::HashMap;

use cedar_policy::{
    ActionConstraint, Authorizer, Decision as CedarDecision, Entity, EntityUid, Policy, PolicyId,
    PolicySet, Request, Schema,
};
use treaty_domain::{ChannelId, ProductId, TenantId};

use crate::clause::{Clause, ClauseId, ContractAction, Effect};
use crate::decision::{Query, ToolRef, ToolVerdict};
use crate::entities::{self, Entities};
use crate::error::ContractError;
use crate::table::{self, bits, set_bit};

/// The clauses applying to `use` in force in one or more time segments.
#[derive(Debug)]
struct InForce {
    policies: PolicySet,
    /// Whether any of them is a permit; if none is, every call is refused.
    has_permit: bool,
}

/// What deciding a tool call needs, prepared when the contracts load.
#[derive(Debug)]
pub(crate) struct ToolRules {
    /// Whether some clause names `Action::"use"` in its scope. When none
    /// does, tool use is unrestricted and nothing below is filled in.
    governed: bool,
    /// The verdict table's edges (every clause's window edges), so segment
    /// `k` here is segment `k` there.
    edges: Vec<i64>,
    /// Per segment, an index into `in_force`.
    segment_set: Vec<usize>,
    in_force: Vec<InForce>,
    /// Clause position in the reading and id, to name clauses in order.
    clause_of: HashMap<PolicyId, (usize, ClauseId)>,
    tenants: HashMap<TenantId, Entity>,
    channels: HashMap<ChannelId, EntityUid>,
    products: HashMap<ProductId, EntityUid>,
    /// Every channel, product and host, and the instance: what a clause's
    /// entity literals can read.
    others: Vec<Entity>,
    action: Option<EntityUid>,
}

/// Whether a clause's action scope names `use` (an open scope does not:
/// see the `schema` module).
fn names_use(policy: &Policy) -> bool {
    let is_use = |uid: &EntityUid| uid.id().unescaped() == ContractAction::Use.as_str();
    match policy.action_constraint() {
        ActionConstraint::Any => false,
        ActionConstraint::Eq(uid) => is_use(&uid),
        ActionConstraint::In(uids) => uids.iter().any(is_use),
    }
}

impl ToolRules {
    pub(crate) fn build(
        clauses: &[Clause],
        policies: &[Policy],
        e: &Entities<'_>,
    ) -> Result<ToolRules, ContractError> {
        let mut rules = ToolRules {
            governed: policies.iter().any(names_use),
            edges: Vec::new(),
            segment_set: Vec::new(),
            in_force: Vec::new(),
            clause_of: HashMap::new(),
            tenants: HashMap::new(),
            channels: HashMap::new(),
            products: HashMap::new(),
            others: Vec::new(),
            action: None,
        };
        if !rules.governed {
            return Ok(rules);
        }

        // The table's segments, with only the clauses applying to `use`
        // kept in each; segments with the same clauses share a policy set.
        let (edges, in_force) = table::segments(clauses);
        let mut set_of: HashMap<Vec<u64>, usize> = HashMap::new();
        for words in in_force {
            let applying: Vec<usize> = bits(&words)
                .filter(|&i| {
                    clauses
                        .get(i)
                        .is_some_and(|c| c.applies_to(ContractAction::Use))
                })
                .collect();
            let mut key = vec![0u64; words.len()];
            for &i in &applying {
                set_bit(&mut key, i);
            }
            let next = rules.in_force.len();
            let index = *set_of.entry(key).or_insert(next);
            if index == next {
                let mut set = PolicySet::new();
                let mut has_permit = false;
                for &i in &applying {
                    if let (Some(clause), Some(policy)) = (clauses.get(i), policies.get(i)) {
                        set.add(policy.clone())
                            .map_err(|err| ContractError::Internal(err.to_string()))?;
                        has_permit |= clause.effect == Effect::Permit;
                    }
                }
                rules.in_force.push(InForce {
                    policies: set,
                    has_permit,
                });
            }
            rules.segment_set.push(index);
        }
        rules.edges = edges;
        rules.clause_of = clauses
            .iter()
            .enumerate()
            .map(|(i, c)| (PolicyId::new(c.id.as_str()), (i, c.id.clone())))
            .collect();

        for t in e.tenants {
            rules
                .tenants
                .insert(t.id.clone(), entities::tenant_entity(t)?);
        }
        for c in e.channels {
            rules
                .channels
                .insert(c.id.clone(), entities::uid("Channel", c.id.as_str())?);
            rules.others.push(entities::channel_entity(c)?);
        }
        for p in e.products {
            rules
                .products
                .insert(p.id.clone(), entities::uid("Product", p.id.as_str())?);
            rules.others.push(entities::product_entity(p)?);
        }
        for h in e.hosts {
            rules.others.push(entities::host_entity(h)?);
        }
        rules.others.push(entities::instance_entity(e.instance)?);
        rules.action = Some(entities::action_uid(ContractAction::Use)?);
        Ok(rules)
    }

    /// Whether some clause names `use`; if not, every call is allowed.
    pub(crate) fn governed(&self) -> bool {
        self.governed
    }

    /// Whether a permit applying to `use` is in force in a segment of the
    /// verdict table (always true when tool use is not governed).
    pub(crate) fn permit_in_force(&self, segment: usize) -> bool {
        !self.governed
            || self
                .segment_set
                .get(segment)
                .and_then(|&i| self.in_force.get(i))
                .is_some_and(|s| s.has_permit)
    }

    /// One tool call. `data_classification_known` is the table's rule for
    /// the query's data classification, so that a query the table would
    /// refuse as unknown is refused here too.
    pub(crate) fn decide(
        &self,
        schema: &Schema,
        q: &Query<'_>,
        tool: &ToolRef<'_>,
        data_classification_known: bool,
    ) -> ToolVerdict {
        if !self.governed {
            return ToolVerdict {
                allowed: true,
                clauses: Vec::new(),
                unrestricted: true,
            };
        }
        let refused = ToolVerdict {
            allowed: false,
            clauses: Vec::new(),
            unrestricted: false,
        };
        if !data_classification_known {
            return refused;
        }
        // Errors here are Cedar refusing what Treaty built from validated
        // parts; refusing the call is the safe answer, as for unknown ids.
        self.evaluate(schema, q, tool)
            .ok()
            .flatten()
            .unwrap_or(refused)
    }

    /// `None` when the query names an unknown tenant, channel or product.
    fn evaluate(
        &self,
        schema: &Schema,
        q: &Query<'_>,
        tool: &ToolRef<'_>,
    ) -> Result<Option<ToolVerdict>, ContractError> {
        let (Some(tenant), Some(channel), Some(product), Some(action)) = (
            self.tenants.get(q.tenant),
            self.channels.get(q.channel),
            self.products.get(q.product),
            self.action.as_ref(),
        ) else {
            return Ok(None);
        };
        let segment = table::segment_of(&self.edges, q.at_unix_ms);
        let Some(in_force) = self
            .segment_set
            .get(segment)
            .and_then(|&i| self.in_force.get(i))
        else {
            return Ok(None);
        };
        let tool_entity = entities::tool_entity(tool)?;
        let resource = tool_entity.uid();
        let principal = tenant.uid();
        let store = cedar_policy::Entities::from_entities(
            self.others
                .iter()
                .cloned()
                .chain([tenant.clone(), tool_entity]),
            Some(schema),
        )
        .map_err(|err| ContractError::Entities(err.to_string()))?;
        let context = entities::context_of(
            q.class.as_str(),
            channel.clone(),
            product.clone(),
            q.data_classification,
        )?;
        let request = Request::new(principal, action.clone(), resource, context, None)
            .map_err(|err| ContractError::Internal(err.to_string()))?;
        let response = Authorizer::new().is_authorized(&request, &in_force.policies, &store);
        // Cedar's reasons: the satisfied permits when it allows, the
        // satisfied forbids when it denies (none when nothing permitted).
        let mut named: Vec<&(usize, ClauseId)> = response
            .diagnostics()
            .reason()
            .filter_map(|id| self.clause_of.get(id))
            .collect();
        named.sort_by_key(|(i, _)| *i);
        Ok(Some(ToolVerdict {
            allowed: response.decision() == CedarDecision::Allow,
            clauses: named.into_iter().map(|(_, id)| id.clone()).collect(),
            unrestricted: false,
        }))
    }
}
