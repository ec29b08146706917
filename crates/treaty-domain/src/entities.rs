//! Tenants, channels, products, hosts and instances as validated data.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{ChannelId, HostId, ProductId, TenantId};

/// A broad jurisdiction derived from a region or a data region: `us`, `eu`, ...
///
/// Residency clauses speak of "a U.S. region" or "an EU region"; a host's
/// region `us-east` belongs to geography `us`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Geography(pub String);

impl Geography {
    /// The geography of a region name: the part before the first `-`.
    pub fn of_region(region: &str) -> Self {
        Geography(region.split('-').next().unwrap_or(region).to_owned())
    }
}

/// A customer behind one or more keys.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Tenant {
    pub id: TenantId,
    /// e.g. `enterprise`, `national_security`.
    pub segment: String,
    /// Where the tenant's data must stay, e.g. `us`, `eu`.
    pub data_region: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelKind {
    /// Sold by the model maker itself.
    FirstParty,
    /// Sold through a cloud provider's marketplace.
    ThirdPartyCloud,
    /// Sold by another reseller or partner.
    Reseller,
}

impl ChannelKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::FirstParty => "first_party",
            ChannelKind::ThirdPartyCloud => "third_party_cloud",
            ChannelKind::Reseller => "reseller",
        }
    }
}

/// Who sold the access. Hosting and distribution are separate facts: a
/// request sold through the AWS marketplace may run on Azure.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Channel {
    pub id: ChannelId,
    pub kind: ChannelKind,
    /// The cloud whose marketplace this is, if any.
    pub cloud: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProductKind {
    /// A stateless API product.
    Api,
    /// A first-party platform (such as an agent platform).
    FirstParty,
    /// A product that is not an API (a chat app, say).
    NonApi,
}

impl ProductKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProductKind::Api => "api",
            ProductKind::FirstParty => "first_party",
            ProductKind::NonApi => "non_api",
        }
    }
}

/// What was sold, and which public model names it grants.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Product {
    pub id: ProductId,
    pub kind: ProductKind,
    /// Public model names this product may use; `None` means every model
    /// some host serves.
    pub models: Option<Vec<String>>,
}

impl Product {
    pub fn allows_model(&self, model: &str) -> bool {
        self.models
            .as_ref()
            .is_none_or(|models| models.iter().any(|m| m == model))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    Openai,
    AzureOpenai,
    OpenaiCompatible,
    Bedrock,
    Anthropic,
    Gemini,
}

impl ProviderKind {
    pub const ALL: [ProviderKind; 6] = [
        ProviderKind::Openai,
        ProviderKind::AzureOpenai,
        ProviderKind::OpenaiCompatible,
        ProviderKind::Bedrock,
        ProviderKind::Anthropic,
        ProviderKind::Gemini,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Openai => "openai",
            ProviderKind::AzureOpenai => "azure_openai",
            ProviderKind::OpenaiCompatible => "openai_compatible",
            ProviderKind::Bedrock => "bedrock",
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::Gemini => "gemini",
        }
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ProviderKind {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        ProviderKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or(())
    }
}

/// How one public model name is served on one host.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelDeployment {
    /// The public name clients send, e.g. `gpt-4o`.
    pub name: String,
    /// The host's own id for it: an Azure deployment name, a Bedrock model
    /// id, a vLLM served model name.
    pub target: String,
    /// Price per million input tokens, in the deployment's currency unit.
    pub input_cost_per_mtok: f64,
    /// Price per million output tokens.
    pub output_cost_per_mtok: f64,
}

impl ModelDeployment {
    pub fn cost(&self, input_tokens: u64, output_tokens: u64) -> f64 {
        (input_tokens as f64 * self.input_cost_per_mtok
            + output_tokens as f64 * self.output_cost_per_mtok)
            / 1_000_000.0
    }
}

/// Where a request may run. Connection details (URLs, secrets) live in the
/// configuration crate; this is what contracts and routing reason about.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Host {
    pub id: HostId,
    pub cloud: String,
    pub region: String,
    pub provider: ProviderKind,
    pub certifications: Vec<String>,
    pub models: Vec<ModelDeployment>,
    /// Relative share of traffic for weighted routing.
    pub weight: u32,
}

impl Host {
    pub fn geography(&self) -> Geography {
        Geography::of_region(&self.region)
    }

    pub fn deployment(&self, model: &str) -> Option<&ModelDeployment> {
        self.models.iter().find(|m| m.name == model)
    }
}

/// A running Treaty instance: where it holds stateful runtimes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Instance {
    pub id: String,
    pub cloud: String,
    pub region: String,
}

/// The workload class of a request. Classification is where contract
/// disputes start, so the set is closed and named in every decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkloadClass {
    StatelessApi,
    StatefulAgent,
    Embeddings,
    Batch,
    FineTune,
    Training,
    NonApiProduct,
}

impl WorkloadClass {
    pub const ALL: [WorkloadClass; 7] = [
        WorkloadClass::StatelessApi,
        WorkloadClass::StatefulAgent,
        WorkloadClass::Embeddings,
        WorkloadClass::Batch,
        WorkloadClass::FineTune,
        WorkloadClass::Training,
        WorkloadClass::NonApiProduct,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            WorkloadClass::StatelessApi => "stateless_api",
            WorkloadClass::StatefulAgent => "stateful_agent",
            WorkloadClass::Embeddings => "embeddings",
            WorkloadClass::Batch => "batch",
            WorkloadClass::FineTune => "fine_tune",
            WorkloadClass::Training => "training",
            WorkloadClass::NonApiProduct => "non_api_product",
        }
    }
}

impl fmt::Display for WorkloadClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for WorkloadClass {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        WorkloadClass::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geography_is_the_region_prefix() {
        assert_eq!(Geography::of_region("us-east").0, "us");
        assert_eq!(Geography::of_region("eu-west").0, "eu");
        assert_eq!(Geography::of_region("us").0, "us");
    }

    #[test]
    fn names_round_trip() {
        for c in WorkloadClass::ALL {
            assert_eq!(c.as_str().parse::<WorkloadClass>(), Ok(c));
        }
        for p in ProviderKind::ALL {
            assert_eq!(p.as_str().parse::<ProviderKind>(), Ok(p));
        }
    }

    #[test]
    fn cost_is_per_million_tokens() {
        let d = ModelDeployment {
            name: "m".into(),
            target: "m".into(),
            input_cost_per_mtok: 2.0,
            output_cost_per_mtok: 8.0,
        };
        assert!((d.cost(1_000_000, 500_000) - 6.0).abs() < 1e-9);
    }
}
