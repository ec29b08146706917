//! The emulated MCP server: two deterministic tools, `lookup_order` and
//! `check_inventory`, built with the official SDK's (`rmcp`) macros and
//! served over Streamable HTTP at `/mcp` and over stdin/stdout. Answers
//! depend only on the arguments, so tests can assert them exactly. It
//! holds no data and no credentials, and says it is an emulation.

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{Implementation, ServerCapabilities, ServerConfig};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ServerHandler, ServiceExt as _, schemars, tool, tool_handler, tool_router};
use serde::Deserialize;
use std::sync::Arc;

/// `lookup_order` arguments.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
struct LookupOrder {
    /// The order's id, e.g. `A-1001`.
    order_id: String,
}

/// `check_inventory` arguments.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
struct CheckInventory {
    /// The stock keeping unit, e.g. `SKU-42`.
    sku: String,
}

/// The tools; one value per MCP session.
#[derive(Debug, Clone)]
pub(crate) struct EmulatedTools {
    // Built once per session, not per request (the macro's default).
    tool_router: ToolRouter<Self>,
}

#[tool_router]
impl EmulatedTools {
    fn new() -> Self {
        Self {
            tool_router: Self::tool_router(),
        }
    }

    #[tool(
        description = "Look up an order by id (emulated): item count and where it shipped from."
    )]
    fn lookup_order(
        &self,
        Parameters(LookupOrder { order_id }): Parameters<LookupOrder>,
    ) -> Result<String, String> {
        let order_id = order_id.trim();
        if order_id.is_empty() {
            return Err("order_id must not be empty".to_owned());
        }
        Ok(format!("order {order_id}: 3 items, shipped from us-east"))
    }

    #[tool(description = "Check how many units of a SKU are in stock (emulated).")]
    fn check_inventory(
        &self,
        Parameters(CheckInventory { sku }): Parameters<CheckInventory>,
    ) -> Result<String, String> {
        let sku = sku.trim();
        if sku.is_empty() {
            return Err("sku must not be empty".to_owned());
        }
        Ok(format!(
            "sku {sku}: {} in stock at us-east",
            units_in_stock(sku)
        ))
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for EmulatedTools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new(
                "treaty-emulator",
                env!("CARGO_PKG_VERSION"),
            ))
            .with_instructions("Treaty's EMULATED MCP server: deterministic answers, no real data.")
    }
}

/// A stable count in 0..100 derived from the SKU (FNV-1a), so every SKU
/// has its own answer and the same one each time.
fn units_in_stock(sku: &str) -> u64 {
    let hash = sku.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    });
    hash % 100
}

/// The `/mcp` endpoint: Streamable HTTP with sessions kept in memory.
pub(crate) fn http_service() -> StreamableHttpService<EmulatedTools, LocalSessionManager> {
    // The loopback-only Host check guards real local servers against DNS
    // rebinding; the emulator holds nothing worth stealing and is often
    // reached by a container or host name, so it takes any Host.
    let config = StreamableHttpServerConfig::default().disable_allowed_hosts();
    StreamableHttpService::new(
        || Ok(EmulatedTools::new()),
        Arc::new(LocalSessionManager::default()),
        config,
    )
}

/// Serves the emulated MCP tools on stdin/stdout until stdin closes (for
/// `treaty emulate --mcp-stdio`, which an MCP client starts as a child
/// process). Nothing else may write to stdout meanwhile.
pub async fn serve_mcp_stdio() -> std::io::Result<()> {
    let running = EmulatedTools::new()
        .serve(rmcp::transport::stdio())
        .await
        .map_err(std::io::Error::other)?;
    running.waiting().await.map_err(std::io::Error::other)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stock_counts_are_stable_and_differ_by_sku() {
        assert_eq!(units_in_stock("SKU-42"), units_in_stock("SKU-42"));
        assert_ne!(units_in_stock("SKU-42"), units_in_stock("SKU-43"));
        assert!(units_in_stock("anything") < 100);
    }
}
