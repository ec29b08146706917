//! [`Contracts`]: one loaded reading, ready to decide.
//!
//! Loading parses and validates the reading's `.cedar` files, then computes
//! the verdict table over the configured entities. After that the value is
//! immutable, `Send + Sync`, and deciding is a lookup; deciding a tool call
//! (`may_use`) is one Cedar call.

use std::path::Path;

use cedar_policy::{Policy, Schema};
use treaty_domain::{Channel, HostId, Instance, Product, Tenant};

use crate::check::{self, CheckOptions, CheckReport};
use crate::clause::Clause;
use crate::decision::{
    Decision, Explanation, HostSet, HostVerdict, Query, RuntimeVerdict, ToolRef, ToolVerdict,
};
use crate::entities::{self, Entities};
use crate::error::{ContractError, SourceError};
use crate::schema;
use crate::source;
use crate::table::Table;
use crate::tools::ToolRules;

/// The configured entities, owned, for `check` and for explanations.
#[derive(Debug, Clone)]
pub(crate) struct OwnedEntities {
    pub tenants: Vec<Tenant>,
    pub channels: Vec<Channel>,
    pub products: Vec<Product>,
    pub instance: Instance,
    pub data_classifications: Vec<String>,
}

/// One reading of the contracts, compiled into a verdict table.
#[derive(Debug)]
pub struct Contracts {
    reading: String,
    clauses: Vec<Clause>,
    pub(crate) policies: Vec<Policy>,
    pub(crate) schema: Schema,
    pub(crate) table: Table,
    pub(crate) tools: ToolRules,
    pub(crate) entities: OwnedEntities,
    host_ids: Vec<HostId>,
    pub(crate) warnings: Vec<SourceError>,
}

impl Contracts {
    /// Loads every `.cedar` file in `dir` (a reading directory), in file
    /// name order; the reading's name is the directory's name.
    pub fn load(dir: &Path, entities: Entities<'_>) -> Result<Contracts, ContractError> {
        let io = |source| ContractError::Io {
            path: dir.to_owned(),
            source,
        };
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io)? {
            let path = entry.map_err(io)?.path();
            if path.extension().is_some_and(|e| e == "cedar") && path.is_file() {
                files.push(path);
            }
        }
        files.sort();
        let mut sources = Vec::new();
        for path in files {
            let text = std::fs::read_to_string(&path).map_err(|source| ContractError::Io {
                path: path.clone(),
                source,
            })?;
            sources.push((path.display().to_string(), text));
        }
        let reading = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| dir.display().to_string());
        Self::from_sources(&reading, &sources, entities)
    }

    /// Same from in-memory sources `[(file label, text)]`.
    pub fn from_sources(
        reading: &str,
        sources: &[(String, String)],
        entities: Entities<'_>,
    ) -> Result<Contracts, ContractError> {
        entities::validate(&entities)?;
        let schema = schema::schema()?;
        let parsed = source::parse_sources(&schema, sources)?;
        if parsed.clauses.is_empty() {
            return Err(ContractError::Empty {
                reading: reading.to_owned(),
            });
        }
        let table = Table::build(&parsed.clauses, &parsed.policies, &entities, &schema)?;
        let tools = ToolRules::build(&parsed.clauses, &parsed.policies, &entities)?;
        Ok(Contracts {
            reading: reading.to_owned(),
            clauses: parsed.clauses,
            policies: parsed.policies,
            schema,
            table,
            tools,
            host_ids: entities.hosts.iter().map(|h| h.id.clone()).collect(),
            entities: OwnedEntities {
                tenants: entities.tenants.to_vec(),
                channels: entities.channels.to_vec(),
                products: entities.products.to_vec(),
                instance: entities.instance.clone(),
                data_classifications: entities.data_classifications.to_vec(),
            },
            warnings: parsed.warnings,
        })
    }

    /// The reading's name, e.g. `reading-openai`.
    pub fn reading(&self) -> &str {
        &self.reading
    }

    /// Every clause, in file order then source order.
    pub fn clauses(&self) -> &[Clause] {
        &self.clauses
    }

    /// One clause by id.
    pub fn clause(&self, id: &str) -> Option<&Clause> {
        self.clauses.iter().find(|c| c.id.as_str() == id)
    }

    /// The hosts verdicts are about, in config order (bit `i` of a
    /// [`HostSet`] is `host_ids()[i]`).
    pub fn host_ids(&self) -> &[HostId] {
        &self.host_ids
    }

    /// Cedar validator warnings from loading (not errors; `check` reports
    /// them).
    pub fn load_warnings(&self) -> &[SourceError] {
        &self.warnings
    }

    /// The decision for one request. A table lookup: no allocation, no
    /// Cedar call.
    #[inline]
    pub fn decide(&self, q: &Query<'_>) -> Decision<'_> {
        match self.table.lookup(
            q.tenant,
            q.channel,
            q.product,
            q.class,
            q.data_classification,
            q.at_unix_ms,
        ) {
            Some(cell) => Decision {
                admitted: cell.admitted,
                admit_clauses: self.table.list(cell.admit_list),
                allowed_hosts: HostSet::from_bits(cell.allowed),
                preferred_hosts: HostSet::from_bits(cell.preferred),
                host_clauses: self.table.row(cell.host_row),
                runtime_allowed: cell.runtime_allowed,
                runtime_clauses: self.table.list(cell.runtime_list),
            },
            None => Decision {
                admitted: false,
                admit_clauses: &[],
                allowed_hosts: HostSet::EMPTY,
                preferred_hosts: HostSet::EMPTY,
                host_clauses: self.table.row(self.table.unknown_row),
                runtime_allowed: false,
                runtime_clauses: &[],
            },
        }
    }

    /// The decision as data, with every configured host in config order.
    pub fn explain(&self, q: &Query<'_>) -> Explanation {
        let d = self.decide(q);
        Explanation {
            admitted: d.admitted,
            admit_clauses: d.admit_clauses.to_vec(),
            hosts: self
                .host_ids
                .iter()
                .enumerate()
                .map(|(i, id)| HostVerdict {
                    id: id.clone(),
                    allowed: d.allowed_hosts.contains(i),
                    clauses: d.clauses_for_host(i).to_vec(),
                })
                .collect(),
            runtime: RuntimeVerdict {
                allowed: d.runtime_allowed,
                clauses: d.runtime_clauses.to_vec(),
            },
            preferred_hosts: d
                .preferred_hosts
                .iter()
                .filter_map(|i| self.host_ids.get(i).cloned())
                .collect(),
        }
    }

    /// May the query's tenant's agent call `tool` during this request (an
    /// agent run's tool step)? One Cedar evaluation of the clauses applying
    /// to action `use` in force at `q.at_unix_ms`, windows applied as for
    /// every other action.
    ///
    /// If no clause of the reading names `use`, tool use is unrestricted:
    /// allowed, `unrestricted: true`, no clause. Otherwise Cedar's rules
    /// hold (forbid wins, no permit means refused), and a query naming an
    /// unknown tenant, channel, product or data classification is refused
    /// with no clause, as [`Contracts::decide`] does.
    pub fn may_use(&self, q: &Query<'_>, tool: &ToolRef<'_>) -> ToolVerdict {
        let known = self.table.knows_data_classification(q.data_classification);
        self.tools.decide(&self.schema, q, tool, known)
    }

    /// Static analysis for `treaty contracts check`: dead zones by
    /// enumeration, and (with cvc5) symbolic findings on the clauses.
    pub fn check(&self, opts: &CheckOptions) -> CheckReport {
        check::run(self, opts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contracts_can_be_shared_across_threads() {
        fn shareable<T: Send + Sync>() {}
        shareable::<Contracts>();
        shareable::<std::sync::Arc<Contracts>>();
    }
}
