//! The contracts and classification rules in force, and the shadow
//! readings evaluated beside them, loaded once from the config.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use treaty_classify::Classifier;
use treaty_config::Config;
use treaty_contracts::{Contracts, Entities, HostSet};

/// One reading of the contracts with the classification rules that go
/// with it.
pub struct Reading {
    /// `None` without `[contracts]`: every host is allowed.
    pub contracts: Option<Contracts>,
    pub classifier: Classifier,
    /// Where the rules came from, for people.
    pub classifier_source: String,
}

impl Reading {
    pub fn name(&self) -> Option<&str> {
        self.contracts.as_ref().map(Contracts::reading)
    }
}

/// Contracts, classification rules and the facts decisions read, loaded
/// once and shared by every request.
pub struct Policy {
    config: Arc<Config>,
    in_force: Reading,
    shadows: Vec<Reading>,
    pub(crate) data_classifications: Vec<String>,
    pub(crate) default_data_classification: String,
    /// The hosts serving each public model name.
    serving: HashMap<String, HostSet>,
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy")
            .field("reading", &self.reading())
            .field("classifier", &self.in_force.classifier_source)
            .field(
                "shadows",
                &self.shadows.iter().map(Reading::name).collect::<Vec<_>>(),
            )
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
    /// Loads the reading in force, then each shadow reading
    /// (`contracts.shadow`), each with its classification rules: the
    /// reading's own `classification.toml` first, then
    /// `classification.rules_file`, then Treaty's defaults.
    pub fn load(config: Arc<Config>) -> Result<Policy, PolicyError> {
        let (in_force, shadows, classes, default_class) = match &config.contracts {
            None => (
                Reading {
                    contracts: None,
                    ..rules_for(&config, None)?
                },
                Vec::new(),
                vec!["internal".to_owned()],
                "internal".to_owned(),
            ),
            Some(c) => {
                let in_force = load_reading(&config, &c.reading)?;
                let shadows = c
                    .shadow
                    .iter()
                    .map(|name| load_reading(&config, name))
                    .collect::<Result<Vec<_>, _>>()?;
                (
                    in_force,
                    shadows,
                    c.data_classifications.clone(),
                    c.default_data_classification.clone(),
                )
            }
        };
        let mut serving: HashMap<String, HostSet> = HashMap::new();
        for (i, h) in config.hosts.iter().enumerate() {
            for d in &h.host.models {
                serving.entry(d.name.clone()).or_default().insert(i);
            }
        }
        Ok(Policy {
            config,
            in_force,
            shadows,
            data_classifications: classes,
            default_data_classification: default_class,
            serving,
        })
    }

    pub fn config(&self) -> &Arc<Config> {
        &self.config
    }

    /// The reading in force; `None` without `[contracts]`.
    pub fn reading(&self) -> Option<&str> {
        self.in_force.name()
    }

    pub fn in_force(&self) -> &Reading {
        &self.in_force
    }

    pub fn contracts(&self) -> Option<&Contracts> {
        self.in_force.contracts.as_ref()
    }

    pub fn classifier(&self) -> &Classifier {
        &self.in_force.classifier
    }

    pub fn classifier_source(&self) -> &str {
        &self.in_force.classifier_source
    }

    /// Replaces the classification rules in force (`treaty contracts
    /// simulate --classification FILE`).
    pub fn set_classifier(&mut self, classifier: Classifier, source: String) {
        self.in_force.classifier = classifier;
        self.in_force.classifier_source = source;
    }

    /// The readings evaluated beside the one in force, never enforced.
    pub fn shadows(&self) -> &[Reading] {
        &self.shadows
    }

    /// The data classification of requests that declare none.
    pub fn default_data_classification(&self) -> &str {
        &self.default_data_classification
    }

    pub fn data_classifications(&self) -> &[String] {
        &self.data_classifications
    }

    /// The hosts serving a public model name (empty when none does).
    pub fn serving(&self, model: &str) -> HostSet {
        self.serving.get(model).copied().unwrap_or(HostSet::EMPTY)
    }
}

fn load_reading(config: &Config, name: &str) -> Result<Reading, PolicyError> {
    let Some(c) = &config.contracts else {
        return rules_for(config, None);
    };
    let dir = c.dir_of(name);
    let hosts: Vec<_> = config.hosts.iter().map(|h| h.host.clone()).collect();
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
        reading: name.to_owned(),
        source,
    })?;
    let own_rules = dir.join("classification.toml");
    Ok(Reading {
        contracts: Some(contracts),
        ..rules_for(config, own_rules.is_file().then_some(own_rules.as_path()))?
    })
}

/// The classification rules of a reading: its own file, else the
/// config's, else Treaty's defaults.
fn rules_for(config: &Config, reading_rules: Option<&Path>) -> Result<Reading, PolicyError> {
    let file = reading_rules.or(config.classification.rules_file.as_deref());
    let (classifier, classifier_source) = match file {
        Some(file) => (load_rules(file)?, file.display().to_string()),
        None => (Classifier::defaults(), "Treaty's default rules".to_owned()),
    };
    Ok(Reading {
        contracts: None,
        classifier,
        classifier_source,
    })
}

/// Reads a classification rules file.
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
