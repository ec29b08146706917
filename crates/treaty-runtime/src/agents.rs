//! Agents: stored definitions (instructions, model, tools, approval
//! rules) that runs execute. Creating, reading, listing, updating and
//! deleting one are operations on state held by this instance: each
//! passes the state gate and is recorded.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use treaty_domain::StateOp;
use treaty_engine::{Caller, Error, Held, Owner, StateAsk};
use treaty_openai::responses::new_id;
use treaty_store::{AgentRow, Order};

use crate::page::{Page, PageQuery};
use crate::stored::{changed, from_json, json, now_ms, to_json};
use crate::{Reply, Runtime, settled};

/// An agent, as stored and returned.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Agent {
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
pub enum AgentTool {
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
pub struct Approval {
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

/// `POST /v1/agents`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentCreate {
    pub name: String,
    #[serde(default)]
    pub instructions: Option<String>,
    pub model: String,
    #[serde(default)]
    pub tools: Vec<AgentTool>,
    #[serde(default)]
    pub approval: Approval,
    #[serde(default)]
    pub metadata: Map<String, Value>,
}

/// `POST /v1/agents/{id}`: the fields given replace the agent's.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentUpdate {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub instructions: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub tools: Option<Vec<AgentTool>>,
    #[serde(default)]
    pub approval: Option<Approval>,
    #[serde(default)]
    pub metadata: Option<Map<String, Value>>,
}

/// OpenAI's limits for assistants, which agents keep so that a client
/// written against them is refused the same way, and so that one agent
/// cannot grow without bound (each run reads it whole).
const MAX_NAME: usize = 256;
pub(crate) const MAX_INSTRUCTIONS: usize = 256_000;
const MAX_TOOLS: usize = 128;
/// OpenAI's limits on a function tool, which hosts enforce upstream.
const MAX_FUNCTION_NAME: usize = 64;
const MAX_FUNCTION_DESCRIPTION: usize = 1024;
/// Names in `approval.required` and an MCP tool's `allowed_tools`: as
/// many as an agent may have tools.
const MAX_NAMES: usize = MAX_TOOLS;

/// A refusal when `text` is longer than `max` characters.
pub(crate) fn at_most(text: &str, max: usize, param: &str) -> Result<(), Error> {
    // Bytes bound characters from above: count only when it may matter.
    if text.len() > max && text.chars().count() > max {
        return Err(Error::invalid(
            format!("'{param}' may be at most {max} characters long."),
            Some(param.to_owned()),
        ));
    }
    Ok(())
}

fn at_most_items(count: usize, max: usize, param: &str) -> Result<(), Error> {
    if count > max {
        return Err(Error::invalid(
            format!("'{param}' may hold at most {max} entries, got {count}."),
            Some(param.to_owned()),
        ));
    }
    Ok(())
}

/// OpenAI's metadata limits: 16 keys of up to 64 characters, string
/// values of up to 512.
pub(crate) fn check_metadata(metadata: &Map<String, Value>) -> Result<(), Error> {
    treaty_openai::responses::validate_metadata(metadata, "metadata")
        .map_err(|(message, param)| Error::invalid(message, Some(param)))
}

/// Checks an agent's sizes against OpenAI's limits for assistants.
fn check_sizes(agent: &Agent) -> Result<(), Error> {
    at_most(&agent.name, MAX_NAME, "name")?;
    if let Some(instructions) = &agent.instructions {
        at_most(instructions, MAX_INSTRUCTIONS, "instructions")?;
    }
    at_most_items(agent.tools.len(), MAX_TOOLS, "tools")?;
    for (i, tool) in agent.tools.iter().enumerate() {
        match tool {
            AgentTool::Function {
                name, description, ..
            } => {
                at_most(name, MAX_FUNCTION_NAME, &format!("tools[{i}].name"))?;
                if let Some(d) = description {
                    at_most(
                        d,
                        MAX_FUNCTION_DESCRIPTION,
                        &format!("tools[{i}].description"),
                    )?;
                }
            }
            AgentTool::Webhook { .. } => {}
            AgentTool::Mcp { allowed_tools, .. } => {
                if let Some(names) = allowed_tools {
                    at_most_items(names.len(), MAX_NAMES, &format!("tools[{i}].allowed_tools"))?;
                }
            }
        }
    }
    at_most_items(
        agent.approval.required.len(),
        MAX_NAMES,
        "approval.required",
    )?;
    check_metadata(&agent.metadata)
}

/// Checks an agent against OpenAI's limits, the config and the caller's
/// key: the model must be one the key may use, webhooks and connectors
/// must be declared, tool names unique.
fn check(rt: &Runtime, caller: &Caller, agent: &Agent) -> Result<(), Error> {
    if agent.name.trim().is_empty() {
        return Err(Error::invalid(
            "'name' must not be empty.",
            Some("name".into()),
        ));
    }
    check_sizes(agent)?;
    rt.engine
        .check_model(&caller.key, &agent.model)
        .map_err(|e| e.with_param("model"))?;
    let agents = &rt.engine.config.agents;
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
                    return Err(Error::invalid(
                        format!("Function tool name '{name}' must be letters, digits, '_' or '-'."),
                        Some(format!("{param}.name")),
                    ));
                }
                names.push(name);
            }
            AgentTool::Webhook { name } => {
                if agents.webhook(name).is_none() {
                    return Err(Error::invalid(
                        format!("No webhook tool named '{name}' is configured on this gateway."),
                        Some(format!("{param}.name")),
                    ));
                }
                names.push(name);
            }
            AgentTool::Mcp { connector, .. } => {
                if agents.connector(connector).is_none() {
                    return Err(Error::invalid(
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
        return Err(Error::invalid(
            format!("Two tools are named '{}'.", w[0]),
            Some("tools".into()),
        ));
    }
    Ok(())
}

/// Reads one of the tenant's agents (404 when it has none by that id).
pub(crate) async fn row(rt: &Runtime, caller: &Caller, id: &str) -> Result<AgentRow, Error> {
    rt.engine
        .store
        .agent(caller.key.tenant.as_str(), id)
        .await
        .map_err(Error::store)?
        .ok_or_else(|| Error::not_found("Agent", id))
}

/// Reads an agent and passes `op` on it through the state gate.
pub(crate) async fn gated(
    rt: &Runtime,
    caller: &Caller,
    id: &str,
    op: StateOp,
) -> Result<(Agent, Held), Error> {
    let row = row(rt, caller, id).await?;
    let agent: Agent = from_json(&row.body)?;
    let held = rt
        .engine
        .gate_state(
            caller,
            StateAsk {
                op,
                id,
                model: &agent.model,
                features: treaty_policy::stored(),
                owner: Some(Owner {
                    tenant: &row.tenant,
                    product: &row.product,
                }),
            },
        )
        .await?;
    Ok((agent, held))
}

pub async fn create(rt: &Runtime, caller: &Caller, req: AgentCreate) -> Result<Reply, Error> {
    let key = &caller.key;
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
    check(rt, caller, &agent)?;
    let held = rt
        .engine
        .gate_state(
            caller,
            StateAsk {
                op: StateOp::AgentCreate,
                id: &agent.id,
                model: &agent.model,
                features: treaty_policy::stored(),
                owner: None,
            },
        )
        .await?;
    let result = async {
        rt.engine
            .store
            .insert_agent(&AgentRow {
                id: agent.id.clone(),
                tenant: key.tenant.to_string(),
                channel: key.channel.to_string(),
                product: key.product.to_string(),
                created_at: now_ms(),
                updated_at: now_ms(),
                body: to_json(&agent)?,
            })
            .await
            .map_err(Error::store)?;
        json(&agent)
    }
    .await;
    settled(held, result)
}

pub async fn retrieve(rt: &Runtime, caller: &Caller, id: &str) -> Result<Reply, Error> {
    let (agent, held) = gated(rt, caller, id, StateOp::AgentRetrieve).await?;
    settled(held, json(&agent))
}

pub async fn update(
    rt: &Runtime,
    caller: &Caller,
    id: &str,
    req: AgentUpdate,
) -> Result<Reply, Error> {
    let (mut agent, held) = gated(rt, caller, id, StateOp::AgentUpdate).await?;
    let result = async {
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
        check(rt, caller, &agent)?;
        changed(
            "Agent",
            id,
            rt.engine
                .store
                .update_agent(caller.key.tenant.as_str(), id, &to_json(&agent)?, now_ms())
                .await,
        )?;
        json(&agent)
    }
    .await;
    settled(held, result)
}

pub async fn delete(rt: &Runtime, caller: &Caller, id: &str) -> Result<Reply, Error> {
    let (_, held) = gated(rt, caller, id, StateOp::AgentDelete).await?;
    let result = async {
        changed(
            "Agent",
            id,
            rt.engine
                .store
                .delete_agent(caller.key.tenant.as_str(), id)
                .await,
        )?;
        json(&serde_json::json!({"id": id, "object": "agent.deleted", "deleted": true}))
    }
    .await;
    settled(held, result)
}

/// The tenant's agents of the key's product, by creation, `after` an
/// agent id.
pub async fn list(rt: &Runtime, caller: &Caller, q: &PageQuery) -> Result<Reply, Error> {
    let limit = q.limit()?;
    let order = q.order(Order::Desc)?;
    let held = rt
        .engine
        .gate_state(
            caller,
            StateAsk {
                op: StateOp::AgentList,
                id: "",
                model: "",
                features: treaty_policy::stored(),
                owner: None,
            },
        )
        .await?;
    let result = async {
        let rows = rt
            .engine
            .store
            .list_agents(
                caller.key.tenant.as_str(),
                caller.key.product.as_str(),
                q.after.as_deref(),
                order,
                limit + 1,
            )
            .await
            .map_err(Error::store)?;
        let agents = rows
            .iter()
            .map(|r| from_json::<Agent>(&r.body))
            .collect::<Result<Vec<_>, _>>()?;
        json(&Page::new(agents, limit, |a| a.id.clone()))
    }
    .await;
    settled(held, result)
}
