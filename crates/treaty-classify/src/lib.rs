//! Workload classification: which class a request belongs to, and which
//! rule said so.
//!
//! Contract disputes start here ("is this call stateless API or a stateful
//! agent?"), so classification is explicit configuration, never guesswork:
//! an ordered list of rules, each with an id, each matching on the route,
//! the key's product, a few body features and a client's declaration; the
//! first rule that matches decides, and the decision carries its id into
//! the contract decision and the ledger. [`Classifier::defaults`] are the
//! rules of the shipped scenario. A client may declare a class (header
//! `x-treaty-workload-class`) only where its key allows it; that check is
//! the gateway's, and a declaration reaches the rules only once allowed.
//!
//! Classification is pure and allocation-free per request: rules are
//! compiled at load, and matching is a walk over them.

mod rules;

pub use rules::{ClassifyError, RawRule, RawRules};
use treaty_domain::{ProductKind, WorkloadClass};

/// What classification looks at.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    /// The request path, e.g. `/v1/chat/completions`.
    pub route: &'a str,
    pub product: &'a str,
    pub product_kind: ProductKind,
    pub features: Features,
    /// A class the client declared and its key may declare.
    pub declared: Option<WorkloadClass>,
    /// A model step made by the agent runtime on behalf of a run.
    pub model_step: bool,
}

/// Body features that decide statefulness.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Features {
    /// `store` as sent; absent means the route's default.
    pub store: Option<bool>,
    pub previous_response_id: bool,
    pub conversation: bool,
}

impl Features {
    /// Whether the request asks the server to keep or continue state.
    /// The Responses API stores by default, so an absent `store` counts.
    pub fn stateful(&self) -> bool {
        self.store != Some(false) || self.previous_response_id || self.conversation
    }
}

/// The class and the id of the rule that set it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Classification<'a> {
    pub class: WorkloadClass,
    pub rule: &'a str,
}

/// An ordered, compiled rule list.
#[derive(Debug, Clone)]
pub struct Classifier {
    rules: Vec<rules::Rule>,
}

/// The id reported when no rule matches (the list had no catch-all).
pub const FALLBACK_RULE: &str = "fallback";

impl Classifier {
    /// The scenario's default rules (see `defaults.toml` beside this file).
    pub fn defaults() -> Classifier {
        // The shipped defaults are tested to parse; a failure here is a
        // build defect, reported as an empty list rather than a panic.
        Classifier::from_toml(DEFAULTS).unwrap_or(Classifier { rules: Vec::new() })
    }

    /// Parses a rules file: `[[rules]]` tables, first match wins.
    pub fn from_toml(text: &str) -> Result<Classifier, ClassifyError> {
        let raw: RawRules =
            toml::from_str(text).map_err(|e| ClassifyError::Parse(e.to_string()))?;
        Classifier::from_raw(raw.rules)
    }

    /// Compiles rules, checking ids are unique and classes are known.
    pub fn from_raw(raw: Vec<RawRule>) -> Result<Classifier, ClassifyError> {
        let mut rules: Vec<rules::Rule> = Vec::with_capacity(raw.len());
        for (i, r) in raw.into_iter().enumerate() {
            let rule = rules::Rule::compile(i, r)?;
            if rules.iter().any(|x| x.id == rule.id) {
                return Err(ClassifyError::Invalid {
                    index: i,
                    message: format!("duplicate rule id {:?}", rule.id),
                });
            }
            rules.push(rule);
        }
        Ok(Classifier { rules })
    }

    pub fn rule_ids(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().map(|r| r.id.as_str())
    }

    /// Classifies one request. Without a matching rule the request is
    /// `stateless_api` under [`FALLBACK_RULE`], the most restricted class
    /// the contracts know, so a gap in the rules never widens placement.
    pub fn classify(&self, input: &Input<'_>) -> Classification<'_> {
        for rule in &self.rules {
            if let Some(class) = rule.matches(input) {
                return Classification {
                    class,
                    rule: &rule.id,
                };
            }
        }
        Classification {
            class: WorkloadClass::StatelessApi,
            rule: FALLBACK_RULE,
        }
    }
}

/// The shipped default rules, as a user would write them.
pub const DEFAULTS: &str = include_str!("defaults.toml");

#[cfg(test)]
mod tests;
