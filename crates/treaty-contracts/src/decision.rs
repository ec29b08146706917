//! What one request asks of the contracts, and what they answer.
//!
//! [`Decision`] borrows everything from the loaded [`crate::Contracts`], so
//! deciding allocates nothing; [`Explanation`] is the owned, serializable
//! form used by `treaty contracts explain`, `/admin/explain` and the ledger.
//! [`ToolRef`] and [`ToolVerdict`] are the same for one tool call.

use std::fmt;

use serde::{Deserialize, Serialize};
use treaty_domain::{ChannelId, HostId, ProductId, TenantId, WorkloadClass};

use crate::clause::ClauseId;

/// One request as the contracts see it.
#[derive(Debug, Clone, Copy)]
pub struct Query<'a> {
    pub tenant: &'a TenantId,
    pub channel: &'a ChannelId,
    pub product: &'a ProductId,
    pub class: WorkloadClass,
    /// One of the configured data classifications (ignored when no clause
    /// reads it).
    pub data_classification: &'a str,
    /// The instant the request is decided at; clause windows are UTC days.
    pub at_unix_ms: i64,
}

/// A set of host indices (positions in [`crate::Entities::hosts`]).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct HostSet(u64);

impl HostSet {
    pub const EMPTY: HostSet = HostSet(0);

    pub fn from_bits(bits: u64) -> Self {
        HostSet(bits)
    }

    pub fn bits(self) -> u64 {
        self.0
    }

    pub fn contains(self, index: usize) -> bool {
        index < 64 && self.0 & (1 << index) != 0
    }

    pub fn insert(&mut self, index: usize) {
        if index < 64 {
            self.0 |= 1 << index;
        }
    }

    pub fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn intersection(self, other: HostSet) -> HostSet {
        HostSet(self.0 & other.0)
    }

    pub fn is_subset(self, other: HostSet) -> bool {
        self.0 & !other.0 == 0
    }

    /// Host indices in increasing order.
    pub fn iter(self) -> impl Iterator<Item = usize> {
        let mut rest = self.0;
        std::iter::from_fn(move || {
            if rest == 0 {
                return None;
            }
            let i = rest.trailing_zeros() as usize;
            rest &= rest - 1;
            Some(i)
        })
    }
}

impl fmt::Debug for HostSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl FromIterator<usize> for HostSet {
    fn from_iter<I: IntoIterator<Item = usize>>(iter: I) -> Self {
        let mut set = HostSet::EMPTY;
        for i in iter {
            set.insert(i);
        }
        set
    }
}

/// The contracts' answer for one request: a table lookup.
///
/// Host verdicts are given whether or not the request is admitted, so that
/// an explanation shows both; the gateway refuses a request that is not
/// admitted before it looks at hosts. A query naming an unknown tenant,
/// channel, product or data classification is not admitted, has no allowed
/// host, and every clause list is empty.
#[derive(Debug, Clone, Copy)]
pub struct Decision<'a> {
    pub admitted: bool,
    /// The permitting clauses if admitted, the refusing forbids if not
    /// (empty when nothing permitted it).
    pub admit_clauses: &'a [ClauseId],
    pub allowed_hosts: HostSet,
    /// The allowed hosts matched by preference clauses in force.
    pub preferred_hosts: HostSet,
    /// Per host index: permitting clauses if allowed, refusing clauses if not.
    pub host_clauses: &'a [Box<[ClauseId]>],
    /// May the instance hold the stateful runtime for this request's product.
    pub runtime_allowed: bool,
    pub runtime_clauses: &'a [ClauseId],
}

impl Decision<'_> {
    /// The clauses behind one host's verdict.
    pub fn clauses_for_host(&self, index: usize) -> &[ClauseId] {
        self.host_clauses.get(index).map_or(&[], |c| c)
    }
}

/// One host's verdict in an [`Explanation`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostVerdict {
    pub id: HostId,
    pub allowed: bool,
    pub clauses: Vec<ClauseId>,
}

/// The runtime verdict in an [`Explanation`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeVerdict {
    pub allowed: bool,
    pub clauses: Vec<ClauseId>,
}

/// A decision as data, with every configured host in config order.
///
/// Serializes to `{"admitted", "admit_clauses", "hosts": [{"id", "allowed",
/// "clauses"}], "runtime": {"allowed", "clauses"}, "preferred_hosts"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Explanation {
    pub admitted: bool,
    pub admit_clauses: Vec<ClauseId>,
    pub hosts: Vec<HostVerdict>,
    pub runtime: RuntimeVerdict,
    pub preferred_hosts: Vec<HostId>,
}

/// A tool an agent wants to call, as the `use` action sees it (the `Tool`
/// entity of the schema).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ToolRef<'a> {
    /// `function` (a client function tool), `webhook` (an HTTP tool) or
    /// `mcp` (a tool of an MCP connector).
    pub kind: &'a str,
    /// The MCP connector id; for a webhook tool its configured name; for
    /// function tools `"client"`.
    pub connector: &'a str,
    /// The tool's name as the model calls it.
    pub name: &'a str,
}

/// The contracts' answer to one tool call ([`crate::Contracts::may_use`]).
///
/// Serializes to `{"allowed", "clauses", "unrestricted"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolVerdict {
    pub allowed: bool,
    /// The permitting clauses if allowed, the refusing forbids if not
    /// (empty when nothing permitted it, and when unrestricted); in clause
    /// order.
    pub clauses: Vec<ClauseId>,
    /// No clause of the reading names `use`, so tool use is not governed
    /// and every call is allowed.
    pub unrestricted: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_sets_iterate_in_order() {
        let set: HostSet = [5, 0, 63].into_iter().collect();
        assert_eq!(set.iter().collect::<Vec<_>>(), vec![0, 5, 63]);
        assert_eq!(set.len(), 3);
        assert!(set.contains(63) && !set.contains(64) && !set.contains(1));
        assert!(HostSet::EMPTY.is_empty());
        assert!(HostSet::from_bits(1).is_subset(set));
    }
}
