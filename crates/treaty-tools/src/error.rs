//! The one error a tool call can end with. Each variant names the tool (or
//! connector) and what failed in words an operator or a model can act on;
//! none carries a header, a secret or a URL, so any of them may be logged
//! or shown to the model as the tool's answer.

/// Why a tool call produced no answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ToolError {
    /// The tool could not be reached (connection refused, reset, DNS, ...)
    /// on any attempt.
    #[error("tool `{tool}` could not be reached after {attempts} attempt(s): {reason}")]
    Unreachable {
        /// The webhook or MCP tool name.
        tool: String,
        /// Attempts made, retries included.
        attempts: u32,
        /// The last failure, without its URL.
        reason: String,
    },
    /// Every attempt ran out of time.
    #[error("tool `{tool}` timed out after {attempts} attempt(s)")]
    TimedOut {
        /// The webhook or MCP tool name.
        tool: String,
        /// Attempts made, retries included.
        attempts: u32,
    },
    /// The webhook answered with a status that is final (a 4xx other than
    /// 408 and 429) or kept failing until the attempts ran out.
    #[error("tool `{tool}` answered HTTP {status} after {attempts} attempt(s){detail}")]
    Status {
        /// The webhook name.
        tool: String,
        /// The last HTTP status.
        status: u16,
        /// Attempts made, retries included.
        attempts: u32,
        /// `: ` and the start of the response body, or empty.
        detail: String,
    },
    /// The answer was larger than the cap.
    #[error("tool `{tool}` answered more than {limit} bytes")]
    TooLarge {
        /// The webhook name.
        tool: String,
        /// The cap, in bytes.
        limit: usize,
    },
    /// The tool's definition cannot be used as written (bad URL, header,
    /// command); retrying will not help.
    #[error("tool `{tool}` is misconfigured: {reason}")]
    Config {
        /// The webhook name or MCP connector id.
        tool: String,
        /// What is wrong, without the offending value.
        reason: String,
    },
    /// The model's arguments are not what the tool takes.
    #[error("invalid arguments for tool `{tool}`: {reason}")]
    InvalidArguments {
        /// The tool name.
        tool: String,
        /// What is wrong with them.
        reason: String,
    },
    /// No MCP connector has this id.
    #[error("no MCP connector `{0}`")]
    UnknownConnector(String),
    /// The MCP session failed: it could not start, the transport broke, or
    /// the server broke the protocol.
    #[error("MCP connector `{connector}`: {reason}")]
    Mcp {
        /// The connector id.
        connector: String,
        /// What failed, without URLs or headers.
        reason: String,
    },
    /// The tool ran and reported a failure (MCP `isError`, or an MCP error
    /// reply such as an unknown tool); the text is the tool's own message,
    /// meant to be shown to the model.
    #[error("{0}")]
    Tool(String),
}
