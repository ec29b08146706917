//! Request counters per host label. Only API routes are counted; control
//! routes never are. The lock is a std mutex held for one map lookup and
//! never across an await.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, PoisonError};

#[derive(Debug, Default)]
pub(crate) struct Stats {
    requests: Mutex<HashMap<Box<str>, u64>>,
}

impl Stats {
    pub(crate) fn hit(&self, host: &str) {
        let mut requests = self.requests.lock().unwrap_or_else(PoisonError::into_inner);
        match requests.get_mut(host) {
            Some(count) => *count += 1,
            // Allocates once per new host label, not per request.
            None => {
                requests.insert(host.into(), 1);
            }
        }
    }

    pub(crate) fn requests_for(&self, host: &str) -> u64 {
        let requests = self.requests.lock().unwrap_or_else(PoisonError::into_inner);
        requests.get(host).copied().unwrap_or(0)
    }

    /// A sorted copy, so the stats endpoint prints hosts in a stable order.
    pub(crate) fn snapshot(&self) -> BTreeMap<Box<str>, u64> {
        let requests = self.requests.lock().unwrap_or_else(PoisonError::into_inner);
        requests
            .iter()
            .map(|(host, count)| (host.clone(), *count))
            .collect()
    }

    pub(crate) fn reset(&self) {
        self.requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}
