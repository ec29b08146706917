//! The emulated MCP server on stdin/stdout, as a bare binary: what the
//! MCP client tests spawn as a child process (`treaty emulate --mcp-stdio`
//! is the same server for users; tests cannot depend on the CLI crate).

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    treaty_emulator::serve_mcp_stdio().await
}
