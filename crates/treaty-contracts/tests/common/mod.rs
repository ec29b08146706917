#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]
//! The Frontier example's entities, written from the scenario's tables, and
//! helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;

use treaty_contracts::{Contracts, Entities, Explanation, Query};
use treaty_domain::{
    Channel, ChannelId, ChannelKind, Host, HostId, Instance, Product, ProductId, ProductKind,
    ProviderKind, Tenant, TenantId, WorkloadClass,
};

pub struct World {
    pub tenants: Vec<Tenant>,
    pub channels: Vec<Channel>,
    pub products: Vec<Product>,
    pub hosts: Vec<Arc<Host>>,
    pub instance: Instance,
    pub data_classifications: Vec<String>,
}

impl World {
    pub fn entities(&self) -> Entities<'_> {
        Entities {
            tenants: &self.tenants,
            channels: &self.channels,
            products: &self.products,
            hosts: &self.hosts,
            instance: &self.instance,
            data_classifications: &self.data_classifications,
        }
    }
}

pub fn host(id: &str, cloud: &str, region: &str, provider: ProviderKind) -> Arc<Host> {
    Arc::new(Host {
        id: HostId::new(id).unwrap(),
        cloud: cloud.into(),
        region: region.into(),
        provider,
        certifications: vec![],
        models: vec![],
        weight: 1,
    })
}

pub fn tenant(id: &str, segment: &str, data_region: &str) -> Tenant {
    Tenant {
        id: TenantId::new(id).unwrap(),
        segment: segment.into(),
        data_region: data_region.into(),
    }
}

pub fn channel(id: &str, kind: ChannelKind, cloud: Option<&str>) -> Channel {
    Channel {
        id: ChannelId::new(id).unwrap(),
        kind,
        cloud: cloud.map(str::to_owned),
    }
}

pub fn product(id: &str, kind: ProductKind) -> Product {
    Product {
        id: ProductId::new(id).unwrap(),
        kind,
        models: None,
    }
}

/// The example as the scenario's tables describe it, with the instance on
/// Azure us-east.
pub fn frontier() -> World {
    World {
        tenants: vec![
            tenant("acme", "enterprise", "us"),
            tenant("dod", "national_security", "us"),
            tenant("eurobank", "enterprise", "eu"),
        ],
        channels: vec![
            channel("direct", ChannelKind::FirstParty, None),
            channel("aws-marketplace", ChannelKind::ThirdPartyCloud, Some("aws")),
            channel(
                "azure-marketplace",
                ChannelKind::ThirdPartyCloud,
                Some("azure"),
            ),
            channel("gcp-marketplace", ChannelKind::ThirdPartyCloud, Some("gcp")),
        ],
        products: vec![
            product("api", ProductKind::Api),
            product("frontier", ProductKind::FirstParty),
            product("chat", ProductKind::NonApi),
        ],
        hosts: vec![
            host(
                "azure-eastus",
                "azure",
                "us-east",
                ProviderKind::AzureOpenai,
            ),
            host(
                "azure-westus",
                "azure",
                "us-west",
                ProviderKind::AzureOpenai,
            ),
            host(
                "azure-westeurope",
                "azure",
                "eu-west",
                ProviderKind::AzureOpenai,
            ),
            host("bedrock-useast1", "aws", "us-east", ProviderKind::Bedrock),
            host(
                "gemini-uscentral1",
                "gcp",
                "us-central",
                ProviderKind::Gemini,
            ),
            host(
                "onprem-vllm",
                "onprem",
                "us-east",
                ProviderKind::OpenaiCompatible,
            ),
        ],
        instance: Instance {
            id: "treaty-azure-eastus".into(),
            cloud: "azure".into(),
            region: "us-east".into(),
        },
        data_classifications: vec![],
    }
}

pub fn contracts_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/frontier/contracts")
}

pub const READINGS: [&str; 3] = ["reading-microsoft", "reading-openai", "reading-aws"];

pub fn load(reading: &str, world: &World) -> Contracts {
    Contracts::load(&contracts_dir().join(reading), world.entities())
        .unwrap_or_else(|e| panic!("{reading}: {e}"))
}

/// Unix ms of `YYYY-MM-DD` at 00:00:00 UTC, plus `offset_ms`.
pub fn at(date: &str, offset_ms: i64) -> i64 {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let d = time::Date::parse(date, format).unwrap();
    d.midnight().assume_utc().unix_timestamp() * 1000 + offset_ms
}

pub fn explain(
    c: &Contracts,
    tenant: &str,
    channel: &str,
    product: &str,
    class: WorkloadClass,
    at_unix_ms: i64,
) -> Explanation {
    let tenant = TenantId::new(tenant).unwrap();
    let channel = ChannelId::new(channel).unwrap();
    let product = ProductId::new(product).unwrap();
    c.explain(&Query {
        tenant: &tenant,
        channel: &channel,
        product: &product,
        class,
        data_classification: "unclassified",
        at_unix_ms,
    })
}

pub fn solver_or_skip(test: &str) -> bool {
    match treaty_contracts::solver_available(&Default::default()) {
        Ok(()) => true,
        Err(reason) => {
            if std::env::var("TREATY_REQUIRE_SERVICES").as_deref() == Ok("1") {
                panic!("{test}: cvc5 required (TREATY_REQUIRE_SERVICES=1): {reason}");
            }
            println!("SKIPPED: {test}: {reason}");
            false
        }
    }
}
