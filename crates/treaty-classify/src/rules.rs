//! Rules as written and as compiled.

use serde::Deserialize;
use treaty_domain::{ProductKind, WorkloadClass};

use crate::Input;

#[derive(Debug, thiserror::Error)]
pub enum ClassifyError {
    #[error("invalid classification rules: {0}")]
    Parse(String),
    #[error("invalid classification rule #{index}: {message}")]
    Invalid { index: usize, message: String },
}

/// A rules file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRules {
    #[serde(default)]
    pub rules: Vec<RawRule>,
}

/// One rule as written. Every condition given must hold; absent
/// conditions match anything.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    pub id: String,
    #[serde(default)]
    pub description: Option<String>,
    /// Route paths; a trailing `*` matches any path with that prefix.
    #[serde(default)]
    pub routes: Option<Vec<String>>,
    /// Product ids.
    #[serde(default)]
    pub products: Option<Vec<String>>,
    /// Product kinds: `api`, `first_party`, `non_api`.
    #[serde(default)]
    pub product_kinds: Option<Vec<ProductKind>>,
    /// Whether the body asks to keep or continue state.
    #[serde(default)]
    pub stateful: Option<bool>,
    /// Whether the request is a model step of an agent run.
    #[serde(default)]
    pub model_step: Option<bool>,
    /// Whether the client declared an (allowed) class.
    #[serde(default)]
    pub declared: Option<bool>,
    /// A workload class, or `declared` for the class the client declared.
    pub class: String,
}

#[derive(Debug, Clone)]
enum Route {
    Exact(String),
    Prefix(String),
}

#[derive(Debug, Clone)]
enum ClassSpec {
    Fixed(WorkloadClass),
    Declared,
}

#[derive(Debug, Clone)]
pub(crate) struct Rule {
    pub id: String,
    routes: Option<Vec<Route>>,
    products: Option<Vec<String>>,
    product_kinds: Option<Vec<ProductKind>>,
    stateful: Option<bool>,
    model_step: Option<bool>,
    declared: Option<bool>,
    class: ClassSpec,
}

impl Rule {
    pub(crate) fn compile(index: usize, raw: RawRule) -> Result<Rule, ClassifyError> {
        let invalid = |message: String| ClassifyError::Invalid { index, message };
        if raw.id.trim().is_empty() {
            return Err(invalid("`id` must not be empty".into()));
        }
        let class = if raw.class == "declared" {
            if raw.declared != Some(true) {
                return Err(invalid(format!(
                    "rule {:?}: class = \"declared\" needs declared = true",
                    raw.id
                )));
            }
            ClassSpec::Declared
        } else {
            ClassSpec::Fixed(raw.class.parse().map_err(|()| {
                let names: Vec<&str> = WorkloadClass::ALL.iter().map(|c| c.as_str()).collect();
                invalid(format!(
                    "rule {:?}: unknown class {:?} (expected one of {}, or \"declared\")",
                    raw.id,
                    raw.class,
                    names.join(", ")
                ))
            })?)
        };
        let routes = raw.routes.map(|rs| {
            rs.into_iter()
                .map(|r| match r.strip_suffix('*') {
                    Some(p) => Route::Prefix(p.to_owned()),
                    None => Route::Exact(r),
                })
                .collect()
        });
        Ok(Rule {
            id: raw.id,
            routes,
            products: raw.products,
            product_kinds: raw.product_kinds,
            stateful: raw.stateful,
            model_step: raw.model_step,
            declared: raw.declared,
            class,
        })
    }

    /// The class this rule gives `input`, if it matches.
    pub(crate) fn matches(&self, input: &Input<'_>) -> Option<WorkloadClass> {
        if let Some(routes) = &self.routes
            && !routes.iter().any(|r| match r {
                Route::Exact(p) => input.route == p,
                Route::Prefix(p) => input.route.starts_with(p.as_str()),
            })
        {
            return None;
        }
        if let Some(products) = &self.products
            && !products.iter().any(|p| p == input.product)
        {
            return None;
        }
        if let Some(kinds) = &self.product_kinds
            && !kinds.contains(&input.product_kind)
        {
            return None;
        }
        if self
            .stateful
            .is_some_and(|s| s != input.features.stateful())
        {
            return None;
        }
        if self.model_step.is_some_and(|m| m != input.model_step) {
            return None;
        }
        if self.declared.is_some_and(|d| d != input.declared.is_some()) {
            return None;
        }
        match self.class {
            ClassSpec::Fixed(c) => Some(c),
            ClassSpec::Declared => input.declared,
        }
    }
}
