//! `/v1/agents`: agents are stored definitions (instructions, model,
//! tools, approval rules) that runs execute. Creating one is holding the
//! product's state, so it is a `hold` decision like a stored response.

use crate::body::{Path, Query};
use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::HeaderMap;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use treaty_domain::Route;
use treaty_keys::VerifiedKey;
use treaty_openai::responses::new_id;
use treaty_store::{AgentRow, Order};

use super::{Page, PageQuery, changed, from_json, json, not_found, now_ms, store_error, to_json};
use crate::RequestId;
use crate::auth::authenticate;
use crate::error::ApiError;
use crate::pipeline::{StateAsk, hold_state};
use crate::routes::Shared;
use crate::state::Gateway;

/// An agent, as stored and returned.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Agent {
    pub id: String,
    pub object: String,
    /// Unix seconds.
    pub created_at: i64,
    pub name: String,
    pub instructions: Option<String>,
    pub model: String,
    pub tools: Vec<AgentTool>,
    pub approval: Approval,
    pub metadata: Map<String, Value>,
    /// The product the agent belongs to: its creating key's.
    pub product: String,
}

/// A tool an agent may call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum AgentTool {
    /// Answered by the client: the run waits in `requires_action`.
    Function {
        name: String,
        #[serde(default)]
        description: Option<String>,
        #[serde(default = "empty_schema")]
        parameters: Value,
    },
    /// A webhook declared in the config (`[[agents.webhooks]]`), by name.
    Webhook { name: String },
    /// The tools of an MCP connector declared in the config
    /// (`[[agents.connectors]]`), optionally only some of them.
    Mcp {
        connector: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        allowed_tools: Option<Vec<String>>,
    },
}

fn empty_schema() -> Value {
    serde_json::json!({"type": "object", "properties": {}})
}

/// Which tool calls wait for a person's approval before they are made.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Approval {
    /// Tool names, or `"*"` for every webhook and MCP tool. Function tools
    /// are answered by the client, which approves them by answering.
    #[serde(default)]
    pub required: Vec<String>,
}

impl Approval {
    pub fn required_for(&self, name: &str) -> bool {
        self.required.iter().any(|r| r == "*" || r == name)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AgentCreate {
    name: String,
    #[serde(default)]
    instructions: Option<String>,
    model: String,
    #[serde(default)]
    tools: Vec<AgentTool>,
    #[serde(default)]
    approval: Approval,
    #[serde(default)]
    metadata: Map<String, Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AgentUpdate {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    instructions: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    tools: Option<Vec<AgentTool>>,
    #[serde(default)]
    approval: Option<Approval>,
    #[serde(default)]
    metadata: Option<Map<String, Value>>,
}

/// Checks an agent against the config and the key: the model must be one
/// the key may use, webhooks and connectors must be declared, tool names
/// unique.
fn check(gw: &Gateway, key: &VerifiedKey, agent: &Agent) -> Result<(), ApiError> {
    if agent.name.trim().is_empty() {
        return Err(ApiError::invalid(
            "'name' must not be empty.",
            Some("name".into()),
        ));
    }
    let model_ok = gw.router.serves(&agent.model)
        && key.allows_model(&agent.model)
        && gw
            .config
            .product(key.product.as_str())
            .is_some_and(|p| p.allows_model(&agent.model));
    if !model_ok {
        return Err(ApiError::model_not_found(&agent.model).with_param("model"));
    }
    let mut names: Vec<&str> = Vec::new();
    for (i, tool) in agent.tools.iter().enumerate() {
        let param = format!("tools[{i}]");
        match tool {
            AgentTool::Function { name, .. } => {
                if name.is_empty()
                    || !name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                {
                    return Err(ApiError::invalid(
                        format!("Function tool name '{name}' must be letters, digits, '_' or '-'."),
                        Some(format!("{param}.name")),
                    ));
                }
                names.push(name);
            }
            AgentTool::Webhook { name } => {
                if gw.config.agents.webhook(name).is_none() {
                    return Err(ApiError::invalid(
                        format!("No webhook tool named '{name}' is configured on this gateway."),
                        Some(format!("{param}.name")),
                    ));
                }
                names.push(name);
            }
            AgentTool::Mcp { connector, .. } => {
                if gw.config.agents.connector(connector).is_none() {
                    return Err(ApiError::invalid(
                        format!("No MCP connector '{connector}' is configured on this gateway."),
                        Some(format!("{param}.connector")),
                    ));
                }
            }
        }
    }
    let mut sorted = names.clone();
    sorted.sort_unstable();
    if let Some(w) = sorted.windows(2).find(|w| w[0] == w[1]) {
        return Err(ApiError::invalid(
            format!("Two tools are named '{}'.", w[0]),
            Some("tools".into()),
        ));
    }
    Ok(())
}

pub(crate) async fn owned(gw: &Gateway, key: &VerifiedKey, id: &str) -> Result<Agent, ApiError> {
    let row = gw
        .store
        .agent(key.tenant.as_str(), id)
        .await
        .map_err(store_error)?
        .ok_or_else(|| not_found("Agent", id))?;
    from_json(&row.body)
}

fn agent_features() -> treaty_classify::Features {
    treaty_classify::Features {
        store: Some(true),
        previous_response_id: false,
        conversation: false,
    }
}

pub(crate) async fn create(
    State(gw): State<Shared>,
    Extension(request_id): Extension<RequestId>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let key = authenticate(&gw, &headers).await?;
    let req: AgentCreate = crate::body::parse(body, gw.config.server.max_body_bytes)?;
    let agent = Agent {
        id: new_id("agent"),
        object: "agent".into(),
        created_at: now_ms() / 1000,
        name: req.name,
        instructions: req.instructions,
        model: req.model,
        tools: req.tools,
        approval: req.approval,
        metadata: req.metadata,
        product: key.product.to_string(),
    };
    check(&gw, &key, &agent)?;
    hold_state(
        &gw,
        &key,
        &request_id,
        &headers,
        StateAsk {
            route: Route::Agents,
            model: &agent.model,
            features: agent_features(),
            state_id: &agent.id,
        },
    )
    .await?;
    gw.store
        .insert_agent(&AgentRow {
            id: agent.id.clone(),
            tenant: key.tenant.to_string(),
            created_at: now_ms(),
            updated_at: now_ms(),
            body: to_json(&agent)?,
        })
        .await
        .map_err(store_error)?;
    json(&agent)
}

pub(crate) async fn retrieve(
    State(gw): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let key = authenticate(&gw, &headers).await?;
    json(&owned(&gw, &key, &id).await?)
}

pub(crate) async fn update(
    State(gw): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let key = authenticate(&gw, &headers).await?;
    let req: AgentUpdate = crate::body::parse(body, gw.config.server.max_body_bytes)?;
    let mut agent = owned(&gw, &key, &id).await?;
    if let Some(v) = req.name {
        agent.name = v;
    }
    if let Some(v) = req.instructions {
        agent.instructions = Some(v);
    }
    if let Some(v) = req.model {
        agent.model = v;
    }
    if let Some(v) = req.tools {
        agent.tools = v;
    }
    if let Some(v) = req.approval {
        agent.approval = v;
    }
    if let Some(v) = req.metadata {
        agent.metadata = v;
    }
    check(&gw, &key, &agent)?;
    changed(
        "Agent",
        &id,
        gw.store
            .update_agent(key.tenant.as_str(), &id, &to_json(&agent)?, now_ms())
            .await,
    )?;
    json(&agent)
}

pub(crate) async fn delete(
    State(gw): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let key = authenticate(&gw, &headers).await?;
    changed(
        "Agent",
        &id,
        gw.store.delete_agent(key.tenant.as_str(), &id).await,
    )?;
    json(&serde_json::json!({"id": id, "object": "agent.deleted", "deleted": true}))
}

/// The tenant's agents by creation, `after` an agent id.
pub(crate) async fn list(
    State(gw): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<PageQuery>,
) -> Result<Response, ApiError> {
    let key = authenticate(&gw, &headers).await?;
    let limit = q.limit()?;
    let order = q.order(Order::Desc)?;
    let rows = gw
        .store
        .list_agents(key.tenant.as_str(), q.after.as_deref(), order, limit + 1)
        .await
        .map_err(store_error)?;
    let agents = rows
        .iter()
        .map(|r| from_json::<Agent>(&r.body))
        .collect::<Result<Vec<_>, _>>()?;
    json(&Page::new(agents, limit, |a| a.id.clone()))
}
