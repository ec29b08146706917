//! The readings of the contracts the explorer and what-if can switch
//! between: every directory under `contracts.dir`, each loaded once into
//! a [`Policy`] over the running config, on first use.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use treaty_config::Config;
use treaty_policy::Policy;

#[derive(Debug)]
pub struct Readings {
    config: Arc<Config>,
    loaded: Mutex<HashMap<String, Arc<Policy>>>,
}

impl Readings {
    pub fn new(config: Arc<Config>) -> Readings {
        Readings {
            config,
            loaded: Mutex::default(),
        }
    }

    /// The reading in force, if the config has contracts.
    pub fn in_force(&self) -> Option<&str> {
        self.config.contracts.as_ref().map(|c| c.reading.as_str())
    }

    /// Every reading's name, sorted.
    pub fn names(&self) -> Vec<String> {
        let Some(contracts) = &self.config.contracts else {
            return Vec::new();
        };
        let mut names: Vec<String> = std::fs::read_dir(&contracts.dir)
            .map(|dir| {
                dir.filter_map(Result::ok)
                    .filter(|e| e.path().is_dir())
                    .filter_map(|e| e.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    /// The policy of reading `name`, loaded once.
    pub fn policy(&self, name: &str) -> Result<Arc<Policy>, String> {
        if !self.names().iter().any(|n| n == name) {
            return Err(format!("No reading named {name:?}."));
        }
        if let Ok(loaded) = self.loaded.lock()
            && let Some(p) = loaded.get(name)
        {
            return Ok(p.clone());
        }
        let mut config = (*self.config).clone();
        if let Some(c) = config.contracts.as_mut() {
            c.reading = name.to_owned();
            // Shadows are for live traffic; a replay needs only the one.
            c.shadow.clear();
        }
        let policy = Arc::new(Policy::load(Arc::new(config)).map_err(|e| e.to_string())?);
        if let Ok(mut loaded) = self.loaded.lock() {
            loaded.insert(name.to_owned(), policy.clone());
        }
        Ok(policy)
    }
}
