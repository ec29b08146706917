//! Host sets and plans.

use crate::HostIndex;

/// Hosts a mask can hold: one bit each.
pub const MAX_HOSTS: usize = 64;

/// A set of host indices (at most 64 hosts), as contracts hand it over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct HostMask(pub u64);

impl HostMask {
    pub const EMPTY: HostMask = HostMask(0);

    pub fn all(n: usize) -> HostMask {
        if n >= 64 {
            HostMask(u64::MAX)
        } else {
            HostMask((1u64 << n) - 1)
        }
    }

    pub fn insert(&mut self, i: HostIndex) {
        if i < 64 {
            self.0 |= 1 << i;
        }
    }

    pub fn contains(self, i: HostIndex) -> bool {
        i < 64 && self.0 & (1 << i) != 0
    }

    pub fn intersect(self, other: HostMask) -> HostMask {
        HostMask(self.0 & other.0)
    }

    pub fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn iter(self) -> impl Iterator<Item = HostIndex> {
        let mut bits = self.0;
        std::iter::from_fn(move || {
            if bits == 0 {
                return None;
            }
            let i = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            Some(i)
        })
    }
}

/// The hosts to try, first choice first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Allowed, serving the model, circuit not open: the attempt order.
    pub hosts: Vec<HostIndex>,
    /// Every allowed host serving the model, healthy or not.
    pub candidates: HostMask,
    /// Candidates left out because their circuit is open.
    pub down: HostMask,
}
