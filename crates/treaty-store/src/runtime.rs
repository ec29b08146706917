//! Rows of the stateful runtime: stored responses and their items,
//! conversations and their items, agents, runs and run events.
//!
//! Bodies are the API's JSON objects as text: the store keeps them and
//! never looks inside. Every read and every change that a client can ask
//! for takes the tenant and filters on it, so a key of one tenant cannot
//! reach another tenant's rows even by guessing ids (the caller answers
//! 404 either way). Only the run worker reads runs by id alone, after it
//! has claimed them.
//!
//! A run's event log must never disagree with its state: a change of a
//! run that announces itself ([`RunEvent`]) writes the row and appends
//! the event in one transaction, and appends nothing when the change did
//! not happen (a fenced save or a transition that lost its race).

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Store, StoreError};

/// A stored response (`POST /v1/responses` with `store`).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ResponseRow {
    pub id: String,
    pub tenant: String,
    /// The channel and product of the key that created it.
    pub channel: String,
    pub product: String,
    pub key_id: String,
    pub previous_response_id: Option<String>,
    pub conversation_id: Option<String>,
    pub status: String,
    pub created_at: i64,
    pub updated_at: i64,
    /// The response object, as JSON.
    pub body: String,
}

/// One item (message, function call, function call output) as JSON.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ItemRow {
    pub item_id: String,
    pub body: String,
}

/// Which items of a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemKind {
    Input,
    Output,
}

impl ItemKind {
    fn as_str(self) -> &'static str {
        match self {
            ItemKind::Input => "input",
            ItemKind::Output => "output",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ConversationRow {
    pub id: String,
    pub tenant: String,
    /// The channel and product of the key that created it.
    pub channel: String,
    pub product: String,
    pub created_at: i64,
    /// The metadata object, as JSON.
    pub metadata: String,
}

/// An item of a conversation, with its place in it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ConversationItemRow {
    pub seq: i64,
    pub item_id: String,
    pub created_at: i64,
    pub body: String,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AgentRow {
    pub id: String,
    pub tenant: String,
    /// The channel and product of the key that created it.
    pub channel: String,
    pub product: String,
    pub created_at: i64,
    pub updated_at: i64,
    /// The agent object, as JSON.
    pub body: String,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RunRow {
    pub id: String,
    pub tenant: String,
    /// The channel and product of the key that created it.
    pub channel: String,
    pub product: String,
    pub agent_id: String,
    pub conversation_id: String,
    pub status: String,
    pub created_at: i64,
    pub updated_at: i64,
    /// The worker holding the run, while it works on it.
    pub lease_owner: Option<String>,
    /// Unix ms until which `lease_owner` holds the run; 0 when free.
    pub lease_until: i64,
    /// The run's whole state, as JSON: resuming reads only this.
    pub body: String,
}

/// A run's new status and state, as a change writes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunChange<'a> {
    pub status: &'a str,
    /// The run's whole state, as JSON.
    pub body: &'a str,
    pub at_ms: i64,
}

/// The event that announces a change of a run, appended to its log in
/// the change's transaction, and only if the change happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunEvent<'a> {
    pub kind: &'a str,
    pub at_ms: i64,
    /// The event's data, as JSON.
    pub body: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RunEventRow {
    pub seq: i64,
    pub kind: String,
    pub at_ms: i64,
    pub body: String,
}

/// A page request over rows ordered by (created_at, id) or by seq.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Asc,
    Desc,
}

macro_rules! response_columns {
    () => {
        "id, tenant, channel, product, key_id, previous_response_id, conversation_id, status, created_at, updated_at, body"
    };
}
macro_rules! run_columns {
    () => {
        "id, tenant, channel, product, agent_id, conversation_id, status, created_at, updated_at, lease_owner, lease_until, body"
    };
}

/// Reads a row into its struct by column names.
fn read<T: for<'r> sqlx::FromRow<'r, AnyRow>>(r: &AnyRow) -> Result<T, StoreError> {
    Ok(T::from_row(r)?)
}

impl Store {
    // ---------------------------------------------------------- responses

    /// Stores a response being made, with its input items, in one
    /// transaction.
    pub async fn insert_response(
        &self,
        row: &ResponseRow,
        input: &[ItemRow],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(concat!(
            "INSERT INTO responses (",
            response_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        ))
        .bind(&row.id)
        .bind(&row.tenant)
        .bind(&row.channel)
        .bind(&row.product)
        .bind(&row.key_id)
        .bind(row.previous_response_id.as_deref())
        .bind(row.conversation_id.as_deref())
        .bind(&row.status)
        .bind(row.created_at)
        .bind(row.updated_at)
        .bind(&row.body)
        .execute(&mut *tx)
        .await?;
        insert_items(&mut tx, &row.id, ItemKind::Input, input).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records how a response ended: its final object and output items.
    /// Does nothing to a response that is no longer `in_progress` (it was
    /// cancelled or deleted meanwhile); returns whether it changed.
    pub async fn finish_response(
        &self,
        id: &str,
        status: &str,
        at_ms: i64,
        body: &str,
        output: &[ItemRow],
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE responses SET status = $1, updated_at = $2, body = $3 WHERE id = $4 AND status = 'in_progress'",
        )
        .bind(status)
        .bind(at_ms)
        .bind(body)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        insert_items(&mut tx, id, ItemKind::Output, output).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Sets a response's status and body if its status is `from`.
    pub async fn transition_response(
        &self,
        tenant: &str,
        id: &str,
        from: &str,
        to: &str,
        body: &str,
        at_ms: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE responses SET status = $1, body = $2, updated_at = $3 WHERE id = $4 AND tenant = $5 AND status = $6",
        )
        .bind(to)
        .bind(body)
        .bind(at_ms)
        .bind(id)
        .bind(tenant)
        .bind(from)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    pub async fn response(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<Option<ResponseRow>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            response_columns!(),
            " FROM responses WHERE id = $1 AND tenant = $2"
        ))
        .bind(id)
        .bind(tenant)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(read).transpose()
    }

    /// A response's input or output items, in order.
    pub async fn response_items(
        &self,
        response_id: &str,
        kind: ItemKind,
    ) -> Result<Vec<ItemRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT item_id, body FROM response_items WHERE response_id = $1 AND kind = $2 ORDER BY seq",
        )
        .bind(response_id)
        .bind(kind.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(read).collect()
    }

    /// Deletes a response and its items; false when the tenant has no
    /// such response.
    pub async fn delete_response(&self, tenant: &str, id: &str) -> Result<bool, StoreError> {
        delete_with_children(
            &self.pool,
            "DELETE FROM responses WHERE id = $1 AND tenant = $2",
            "DELETE FROM response_items WHERE response_id = $1",
            tenant,
            id,
        )
        .await
    }

    // ------------------------------------------------------ conversations

    pub async fn insert_conversation(
        &self,
        row: &ConversationRow,
        items: &[ItemRow],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO conversations (id, tenant, channel, product, created_at, metadata) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&row.id)
        .bind(&row.tenant)
        .bind(&row.channel)
        .bind(&row.product)
        .bind(row.created_at)
        .bind(&row.metadata)
        .execute(&mut *tx)
        .await?;
        for (i, item) in items.iter().enumerate() {
            sqlx::query(
                "INSERT INTO conversation_items (conversation_id, seq, item_id, created_at, body) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&row.id)
            .bind(i as i64 + 1)
            .bind(&item.item_id)
            .bind(row.created_at)
            .bind(&item.body)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn conversation(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<Option<ConversationRow>, StoreError> {
        let row = sqlx::query(
            "SELECT id, tenant, channel, product, created_at, metadata FROM conversations WHERE id = $1 AND tenant = $2",
        )
        .bind(id)
        .bind(tenant)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(read).transpose()
    }

    pub async fn update_conversation(
        &self,
        tenant: &str,
        id: &str,
        metadata: &str,
    ) -> Result<bool, StoreError> {
        let done =
            sqlx::query("UPDATE conversations SET metadata = $1 WHERE id = $2 AND tenant = $3")
                .bind(metadata)
                .bind(id)
                .bind(tenant)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() > 0)
    }

    pub async fn delete_conversation(&self, tenant: &str, id: &str) -> Result<bool, StoreError> {
        delete_with_children(
            &self.pool,
            "DELETE FROM conversations WHERE id = $1 AND tenant = $2",
            "DELETE FROM conversation_items WHERE conversation_id = $1",
            tenant,
            id,
        )
        .await
    }

    /// Appends items at the end of a conversation, in order. Each insert
    /// takes the next `seq` in the same statement; two writers racing for
    /// one seq collide on the primary key and the loser tries again.
    pub async fn append_conversation_items(
        &self,
        conversation_id: &str,
        items: &[ItemRow],
        at_ms: i64,
    ) -> Result<(), StoreError> {
        retry_on_seq_clash(|| self.try_append_conversation_items(conversation_id, items, at_ms))
            .await
    }

    async fn try_append_conversation_items(
        &self,
        conversation_id: &str,
        items: &[ItemRow],
        at_ms: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for item in items {
            sqlx::query(
                "INSERT INTO conversation_items (conversation_id, seq, item_id, created_at, body) \
                 SELECT $1, COALESCE(MAX(seq), 0) + 1, $2, $3, $4 FROM conversation_items WHERE conversation_id = $1",
            )
            .bind(conversation_id)
            .bind(&item.item_id)
            .bind(at_ms)
            .bind(&item.body)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// A page of a conversation's items after (or, descending, before)
    /// `cursor` (a seq), at most `limit` rows.
    pub async fn conversation_items(
        &self,
        conversation_id: &str,
        cursor: Option<i64>,
        order: Order,
        limit: i64,
    ) -> Result<Vec<ConversationItemRow>, StoreError> {
        let rows = match order {
            Order::Asc => {
                sqlx::query(
                    "SELECT seq, item_id, created_at, body FROM conversation_items \
                 WHERE conversation_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                )
                .bind(conversation_id)
                .bind(cursor.unwrap_or(0))
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
            }
            Order::Desc => {
                sqlx::query(
                    "SELECT seq, item_id, created_at, body FROM conversation_items \
                 WHERE conversation_id = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3",
                )
                .bind(conversation_id)
                .bind(cursor.unwrap_or(i64::MAX))
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.iter().map(read).collect()
    }

    pub async fn conversation_item(
        &self,
        conversation_id: &str,
        item_id: &str,
    ) -> Result<Option<ConversationItemRow>, StoreError> {
        let row = sqlx::query(
            "SELECT seq, item_id, created_at, body FROM conversation_items WHERE conversation_id = $1 AND item_id = $2",
        )
        .bind(conversation_id)
        .bind(item_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(read).transpose()
    }

    /// The body of a stored item by its id, from any of the tenant's
    /// responses (input or output) or conversations of `product`; `None`
    /// when it has none by that id (another tenant's or product's
    /// included).
    pub async fn stored_item(
        &self,
        tenant: &str,
        product: &str,
        item_id: &str,
    ) -> Result<Option<String>, StoreError> {
        let row = sqlx::query(
            "SELECT ri.body FROM response_items ri JOIN responses r ON r.id = ri.response_id \
             WHERE ri.item_id = $1 AND r.tenant = $2 AND r.product = $3 \
             UNION ALL \
             SELECT ci.body FROM conversation_items ci JOIN conversations c ON c.id = ci.conversation_id \
             WHERE ci.item_id = $1 AND c.tenant = $2 AND c.product = $3 \
             LIMIT 1",
        )
        .bind(item_id)
        .bind(tenant)
        .bind(product)
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            Some(r) => Some(r.try_get::<String, _>(0)?),
            None => None,
        })
    }

    pub async fn delete_conversation_item(
        &self,
        conversation_id: &str,
        item_id: &str,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "DELETE FROM conversation_items WHERE conversation_id = $1 AND item_id = $2",
        )
        .bind(conversation_id)
        .bind(item_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    // ------------------------------------------------------------- agents

    pub async fn insert_agent(&self, row: &AgentRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO agents (id, tenant, channel, product, created_at, updated_at, body) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&row.id)
        .bind(&row.tenant)
        .bind(&row.channel)
        .bind(&row.product)
        .bind(row.created_at)
        .bind(row.updated_at)
        .bind(&row.body)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn agent(&self, tenant: &str, id: &str) -> Result<Option<AgentRow>, StoreError> {
        let row = sqlx::query(
            "SELECT id, tenant, channel, product, created_at, updated_at, body FROM agents WHERE id = $1 AND tenant = $2",
        )
        .bind(id)
        .bind(tenant)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(read).transpose()
    }

    /// A page of the tenant's agents of one product, after the agent with
    /// id `after` (ids are time-ordered).
    pub async fn list_agents(
        &self,
        tenant: &str,
        product: &str,
        after: Option<&str>,
        order: Order,
        limit: i64,
    ) -> Result<Vec<AgentRow>, StoreError> {
        let rows = match order {
            Order::Asc => sqlx::query(
                "SELECT id, tenant, channel, product, created_at, updated_at, body FROM agents WHERE tenant = $1 AND product = $4 AND id > $2 ORDER BY id LIMIT $3",
            )
            .bind(tenant)
            .bind(after.unwrap_or(""))
            .bind(limit)
            .bind(product)
            .fetch_all(&self.pool)
            .await?,
            Order::Desc => sqlx::query(
                "SELECT id, tenant, channel, product, created_at, updated_at, body FROM agents WHERE tenant = $1 AND product = $4 AND ($2 = '' OR id < $2) ORDER BY id DESC LIMIT $3",
            )
            .bind(tenant)
            .bind(after.unwrap_or(""))
            .bind(limit)
            .bind(product)
            .fetch_all(&self.pool)
            .await?,
        };
        rows.iter().map(read).collect()
    }

    pub async fn update_agent(
        &self,
        tenant: &str,
        id: &str,
        body: &str,
        at_ms: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE agents SET body = $1, updated_at = $2 WHERE id = $3 AND tenant = $4",
        )
        .bind(body)
        .bind(at_ms)
        .bind(id)
        .bind(tenant)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    pub async fn delete_agent(&self, tenant: &str, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM agents WHERE id = $1 AND tenant = $2")
            .bind(id)
            .bind(tenant)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    // --------------------------------------------------------------- runs

    /// Stores a new run with the event that announces it.
    pub async fn insert_run(&self, row: &RunRow, event: RunEvent<'_>) -> Result<(), StoreError> {
        retry_on_seq_clash(|| self.try_insert_run(row, event)).await
    }

    async fn try_insert_run(&self, row: &RunRow, event: RunEvent<'_>) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(concat!(
            "INSERT INTO runs (",
            run_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
        ))
        .bind(&row.id)
        .bind(&row.tenant)
        .bind(&row.channel)
        .bind(&row.product)
        .bind(&row.agent_id)
        .bind(&row.conversation_id)
        .bind(&row.status)
        .bind(row.created_at)
        .bind(row.updated_at)
        .bind(row.lease_owner.as_deref())
        .bind(row.lease_until)
        .bind(&row.body)
        .execute(&mut *tx)
        .await?;
        insert_event(&mut tx, &row.id, event).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn run(&self, tenant: &str, id: &str) -> Result<Option<RunRow>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            run_columns!(),
            " FROM runs WHERE id = $1 AND tenant = $2"
        ))
        .bind(id)
        .bind(tenant)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(read).transpose()
    }

    /// A run's status, by id alone: for readers of its events, after the
    /// run was found to be the caller's.
    pub async fn run_status(&self, id: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT status FROM runs WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(r) => Some(r.try_get::<String, _>(0)?),
            None => None,
        })
    }

    /// A page of the tenant's runs of one product (optionally of one
    /// agent), by id.
    pub async fn list_runs(
        &self,
        tenant: &str,
        product: &str,
        agent_id: Option<&str>,
        after: Option<&str>,
        order: Order,
        limit: i64,
    ) -> Result<Vec<RunRow>, StoreError> {
        let agent = agent_id.unwrap_or("");
        let after = after.unwrap_or("");
        let rows = match order {
            Order::Asc => {
                sqlx::query(concat!(
                    "SELECT ",
                    run_columns!(),
                    " FROM runs WHERE tenant = $1 AND product = $5 AND ($2 = '' OR agent_id = $2) AND id > $3 ORDER BY id LIMIT $4"
                ))
                .bind(tenant)
                .bind(agent)
                .bind(after)
                .bind(limit)
                .bind(product)
                .fetch_all(&self.pool)
                .await?
            }
            Order::Desc => {
                sqlx::query(concat!(
                    "SELECT ",
                    run_columns!(),
                    " FROM runs WHERE tenant = $1 AND product = $5 AND ($2 = '' OR agent_id = $2) AND ($3 = '' OR id < $3) ORDER BY id DESC LIMIT $4"
                ))
                .bind(tenant)
                .bind(agent)
                .bind(after)
                .bind(limit)
                .bind(product)
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.iter().map(read).collect()
    }

    /// Claims the oldest run a worker may take (queued, or in progress
    /// with an expired lease) for `owner` until `lease_until`. The
    /// condition is checked again by the UPDATE itself, so two workers
    /// (or replicas) never both get the same run.
    pub async fn claim_run(
        &self,
        owner: &str,
        now_ms: i64,
        lease_until: i64,
    ) -> Result<Option<RunRow>, StoreError> {
        let row = sqlx::query(concat!(
            // Claimable: a run waiting for its first step, or one whose
            // worker died mid-step (its lease has run out).
            "UPDATE runs SET lease_owner = $1, lease_until = $2, status = 'in_progress', updated_at = $3 \
             WHERE id = (SELECT id FROM runs WHERE status IN ('queued', 'in_progress') AND lease_until < $3 ORDER BY created_at, id LIMIT 1) \
             AND status IN ('queued', 'in_progress') AND lease_until < $3 RETURNING ",
            run_columns!()
        ))
        .bind(owner)
        .bind(lease_until)
        .bind(now_ms)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(read).transpose()
    }

    /// Saves a step of a run its worker holds: fenced on the lease owner
    /// and on the run still being in progress, so a worker that lost its
    /// lease, or a run cancelled meanwhile, is not overwritten. A status
    /// other than `in_progress` releases the run. `event` is logged with
    /// the save, and not at all when the save is refused; returns whether
    /// the run was saved.
    pub async fn save_run(
        &self,
        id: &str,
        owner: &str,
        change: RunChange<'_>,
        lease_until: i64,
        event: Option<RunEvent<'_>>,
    ) -> Result<bool, StoreError> {
        retry_on_seq_clash(|| self.try_save_run(id, owner, change, lease_until, event)).await
    }

    async fn try_save_run(
        &self,
        id: &str,
        owner: &str,
        change: RunChange<'_>,
        lease_until: i64,
        event: Option<RunEvent<'_>>,
    ) -> Result<bool, StoreError> {
        let (owner_after, lease_after) = if change.status == "in_progress" {
            (Some(owner), lease_until)
        } else {
            (None, 0)
        };
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE runs SET status = $1, body = $2, updated_at = $3, lease_owner = $4, lease_until = $5 \
             WHERE id = $6 AND lease_owner = $7 AND status = 'in_progress'",
        )
        .bind(change.status)
        .bind(change.body)
        .bind(change.at_ms)
        .bind(owner_after)
        .bind(lease_after)
        .bind(id)
        .bind(owner)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        if let Some(event) = event {
            insert_event(&mut tx, id, event).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Changes a run from outside its worker (tool outputs submitted, a
    /// cancellation) if its status is one of `from`; frees the lease so a
    /// worker can claim it at once when the new status is `queued`.
    /// `event` is logged with the change, and not at all when the run was
    /// in none of `from`; returns whether the run changed.
    pub async fn transition_run(
        &self,
        tenant: &str,
        id: &str,
        from: &[&str],
        change: RunChange<'_>,
        event: Option<RunEvent<'_>>,
    ) -> Result<bool, StoreError> {
        if from.is_empty() {
            return Ok(false);
        }
        retry_on_seq_clash(|| self.try_transition_run(tenant, id, from, change, event)).await
    }

    async fn try_transition_run(
        &self,
        tenant: &str,
        id: &str,
        from: &[&str],
        change: RunChange<'_>,
        event: Option<RunEvent<'_>>,
    ) -> Result<bool, StoreError> {
        // One statement over all of `from`, so PostgreSQL checks the whole
        // condition again on a row another transaction changed meanwhile
        // (one statement per status could miss a run that moved from one
        // of them to another). Each status is its own scalar placeholder:
        // binding a list is not portable across the two backends.
        let statuses = (0..from.len())
            .map(|i| format!("${}", i + 6))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "UPDATE runs SET status = $1, body = $2, updated_at = $3, lease_owner = NULL, lease_until = 0 \
             WHERE id = $4 AND tenant = $5 AND status IN ({statuses})"
        );
        let mut tx = self.pool.begin().await?;
        // Only generated placeholders are formatted into the SQL.
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(change.status)
            .bind(change.body)
            .bind(change.at_ms)
            .bind(id)
            .bind(tenant);
        for status in from {
            query = query.bind(*status);
        }
        let done = query.execute(&mut *tx).await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        if let Some(event) = event {
            insert_event(&mut tx, id, event).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Extends the lease of a run its worker still holds.
    pub async fn renew_run_lease(
        &self,
        id: &str,
        owner: &str,
        lease_until: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE runs SET lease_until = $1 WHERE id = $2 AND lease_owner = $3 AND status = 'in_progress'",
        )
        .bind(lease_until)
        .bind(id)
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Expires runs left waiting for the client (`requires_action`) since
    /// before `before_ms`, each with the event `kind` whose data is
    /// `body(run_id)`, in one transaction; returns their ids.
    pub async fn expire_runs(
        &self,
        before_ms: i64,
        now_ms: i64,
        kind: &str,
        body: impl Fn(&str) -> String,
    ) -> Result<Vec<String>, StoreError> {
        retry_on_seq_clash(|| self.try_expire_runs(before_ms, now_ms, kind, &body)).await
    }

    async fn try_expire_runs(
        &self,
        before_ms: i64,
        now_ms: i64,
        kind: &str,
        body: &impl Fn(&str) -> String,
    ) -> Result<Vec<String>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query(
            "UPDATE runs SET status = 'expired', updated_at = $1 WHERE status = 'requires_action' AND updated_at < $2 RETURNING id",
        )
        .bind(now_ms)
        .bind(before_ms)
        .fetch_all(&mut *tx)
        .await?;
        let ids = rows
            .iter()
            .map(|r| Ok(r.try_get("id")?))
            .collect::<Result<Vec<String>, StoreError>>()?;
        for id in &ids {
            let data = body(id);
            let event = RunEvent {
                kind,
                at_ms: now_ms,
                body: &data,
            };
            insert_event(&mut tx, id, event).await?;
        }
        tx.commit().await?;
        Ok(ids)
    }

    /// Appends one event that announces no change of the run's row to its
    /// log; returns its seq. An event that goes with a change is passed to
    /// the change instead ([`Store::save_run`], [`Store::transition_run`]).
    pub async fn append_run_event(
        &self,
        run_id: &str,
        kind: &str,
        at_ms: i64,
        body: &str,
    ) -> Result<i64, StoreError> {
        let event = RunEvent { kind, at_ms, body };
        retry_on_seq_clash(|| async move {
            let mut conn = self.pool.acquire().await?;
            insert_event(&mut conn, run_id, event).await
        })
        .await
    }

    /// A run's events after `after_seq`, in order.
    pub async fn run_events(
        &self,
        run_id: &str,
        after_seq: i64,
    ) -> Result<Vec<RunEventRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, kind, at_ms, body FROM run_events WHERE run_id = $1 AND seq > $2 ORDER BY seq",
        )
        .bind(run_id)
        .bind(after_seq)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(read).collect()
    }
}

/// Deletes one of the tenant's rows (`parent`, binding id then tenant)
/// and its child rows (`children`, binding id) in one transaction; false,
/// with nothing deleted, when the tenant has no such row.
async fn delete_with_children(
    pool: &sqlx::AnyPool,
    parent: &'static str,
    children: &'static str,
    tenant: &str,
    id: &str,
) -> Result<bool, StoreError> {
    let mut tx = pool.begin().await?;
    let done = sqlx::query(parent)
        .bind(id)
        .bind(tenant)
        .execute(&mut *tx)
        .await?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    sqlx::query(children).bind(id).execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(true)
}

async fn insert_items(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    response_id: &str,
    kind: ItemKind,
    items: &[ItemRow],
) -> Result<(), StoreError> {
    for (i, item) in items.iter().enumerate() {
        sqlx::query(
            "INSERT INTO response_items (response_id, kind, seq, item_id, body) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(response_id)
        .bind(kind.as_str())
        .bind(i as i64)
        .bind(&item.item_id)
        .bind(&item.body)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Appends `event` to a run's log with the next seq, on the caller's
/// connection or inside its transaction (see [`retry_on_seq_clash`] for
/// two writers taking one seq); returns the seq.
async fn insert_event(
    conn: &mut sqlx::AnyConnection,
    run_id: &str,
    event: RunEvent<'_>,
) -> Result<i64, StoreError> {
    let row = sqlx::query(
        "INSERT INTO run_events (run_id, seq, kind, at_ms, body) \
         SELECT $1, COALESCE(MAX(seq), 0) + 1, $2, $3, $4 FROM run_events WHERE run_id = $1 RETURNING seq",
    )
    .bind(run_id)
    .bind(event.kind)
    .bind(event.at_ms)
    .bind(event.body)
    .fetch_one(&mut *conn)
    .await?;
    Ok(row.try_get("seq")?)
}

/// Tries `attempt` again when it failed on a unique violation: two
/// writers took the same next `seq` (of a conversation's items or a run's
/// events), and the one that lost must take the next. The whole attempt,
/// a transaction, is what is tried again: on PostgreSQL the failed insert
/// has aborted its transaction, and a rolled-back attempt left nothing
/// behind, so trying its change again is safe.
///
/// For run events the clash is rare: a change of a run takes the run's
/// row (PostgreSQL locks it until commit; SQLite has one writer at a time)
/// before it reads MAX(seq), so changes of one run append one after the
/// other; only an event appended on its own can race with one. Another
/// unique violation (a run id used twice) fails the same way every time
/// and is returned after the last try.
async fn retry_on_seq_clash<T, F, Fut>(mut attempt: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let mut clashes = 0;
    loop {
        match attempt().await {
            Err(StoreError::Query(sqlx::Error::Database(e)))
                if clashes < 8 && e.is_unique_violation() =>
            {
                clashes += 1;
            }
            other => return other,
        }
    }
}
