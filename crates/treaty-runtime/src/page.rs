//! List pages: `?limit=&order=&after=` checked, and OpenAI's list shape.

use serde::Serialize;
use treaty_engine::Error;

/// `?limit=&order=&after=` of list endpoints, as sent.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct PageQuery {
    pub limit: Option<String>,
    pub order: Option<String>,
    pub after: Option<String>,
    /// Runs: only those of one agent.
    pub agent_id: Option<String>,
}

impl PageQuery {
    /// Limit 1..=100, default 20, as OpenAI's list endpoints.
    pub fn limit(&self) -> Result<i64, Error> {
        match &self.limit {
            None => Ok(20),
            Some(s) => match s.parse::<i64>() {
                Ok(n) if (1..=100).contains(&n) => Ok(n),
                _ => Err(Error::invalid(
                    format!("'limit' must be an integer from 1 to 100, not '{s}'."),
                    Some("limit".into()),
                )),
            },
        }
    }

    /// `asc` or `desc`; `default` when absent.
    pub fn order(&self, default: treaty_store::Order) -> Result<treaty_store::Order, Error> {
        match self.order.as_deref() {
            None => Ok(default),
            Some("asc") => Ok(treaty_store::Order::Asc),
            Some("desc") => Ok(treaty_store::Order::Desc),
            Some(other) => Err(Error::invalid(
                format!("'order' must be 'asc' or 'desc', not '{other}'."),
                Some("order".into()),
            )),
        }
    }
}

/// A list page in OpenAI's shape: `{"object":"list","data":[...],
/// "first_id","last_id","has_more"}`.
#[derive(Debug, Serialize)]
pub(crate) struct Page<T: Serialize> {
    pub object: &'static str,
    pub data: Vec<T>,
    pub first_id: Option<String>,
    pub last_id: Option<String>,
    pub has_more: bool,
}

impl<T: Serialize> Page<T> {
    /// `rows` holds up to `limit + 1` entries: the extra one only says
    /// that there is more.
    pub fn new(mut rows: Vec<T>, limit: i64, id: impl Fn(&T) -> String) -> Page<T> {
        let has_more = rows.len() as i64 > limit;
        rows.truncate(limit.max(0) as usize);
        Page {
            object: "list",
            first_id: rows.first().map(&id),
            last_id: rows.last().map(&id),
            data: rows,
            has_more,
        }
    }
}
