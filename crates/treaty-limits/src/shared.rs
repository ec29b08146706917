//! Where several replicas' token buckets live: PostgreSQL (the store
//! itself) or Redis.
//!
//! Both answer the same two atomic operations on a named bucket: *take*
//! up to n scaled tokens (refilling first, a new bucket starting full)
//! and *give* n back. On PostgreSQL each is one `UPDATE ... RETURNING`
//! on an UNLOGGED table (no WAL, no sync: rate-limit state does not need
//! to survive a crash); on Redis each is one Lua script, so the refill and
//! the take happen atomically on the server. Replicas pass their own clock;
//! a clock behind a bucket's refills nothing rather than going back.
//! Which one to run is measured and argued in the crate docs.

use redis::aio::ConnectionManager;
use treaty_store::{Store, Taken};

use crate::LimitsError;

#[derive(Clone)]
pub(crate) enum SharedBuckets {
    Store(Store),
    Redis(RedisBuckets),
}

impl std::fmt::Debug for SharedBuckets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SharedBuckets::Store(_) => f.write_str("SharedBuckets::Store"),
            SharedBuckets::Redis(r) => write!(f, "SharedBuckets::Redis({})", r.prefix),
        }
    }
}

impl SharedBuckets {
    pub async fn take(
        &self,
        id: &str,
        want: i64,
        capacity: i64,
        per_ms: i64,
        now_ms: i64,
    ) -> Result<Taken, LimitsError> {
        match self {
            SharedBuckets::Store(s) => {
                Ok(s.take_tokens(id, want, capacity, per_ms, now_ms).await?)
            }
            SharedBuckets::Redis(r) => r.run(id, want, capacity, per_ms, now_ms).await,
        }
    }

    pub async fn give(
        &self,
        id: &str,
        n: i64,
        capacity: i64,
        per_ms: i64,
        now_ms: i64,
    ) -> Result<i64, LimitsError> {
        match self {
            SharedBuckets::Store(s) => Ok(s.give_tokens(id, n, capacity, per_ms, now_ms).await?),
            SharedBuckets::Redis(r) => Ok(r.run(id, -n, capacity, per_ms, now_ms).await?.level),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            SharedBuckets::Store(_) => "postgres",
            SharedBuckets::Redis(_) => "redis",
        }
    }
}

/// Buckets as Redis hashes (`l`: level, `t`: last refill ms), named
/// `{prefix}{bucket id}`, expiring two minutes after their last use (by
/// then any bucket has refilled to full, which is what a missing one
/// means).
#[derive(Clone)]
pub(crate) struct RedisBuckets {
    conn: ConnectionManager,
    prefix: String,
    script: redis::Script,
}

/// `want` > 0 takes up to `want`; `want` < 0 gives `-want` back. Lua
/// numbers are doubles: scaled levels stay far below 2^53.
const SCRIPT: &str = r#"
local cap, per_ms, want, now = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local v = redis.call('HMGET', KEYS[1], 'l', 't')
local level, at = tonumber(v[1]), tonumber(v[2])
if level == nil then level = cap; at = now end
if now > at then
  level = math.min(cap, level + (now - at) * per_ms)
  at = now
end
local granted = 0
if want >= 0 then
  granted = math.max(0, math.min(want, level))
  level = level - granted
else
  level = math.min(cap, level - want)
end
redis.call('HSET', KEYS[1], 'l', level, 't', at)
redis.call('PEXPIRE', KEYS[1], 120000)
return {granted, level}
"#;

impl RedisBuckets {
    pub async fn connect(url: &str, prefix: &str) -> Result<RedisBuckets, LimitsError> {
        let client = redis::Client::open(url)?;
        let conn = ConnectionManager::new(client).await?;
        Ok(RedisBuckets {
            conn,
            prefix: prefix.to_owned(),
            script: redis::Script::new(SCRIPT),
        })
    }

    async fn run(
        &self,
        id: &str,
        want: i64,
        capacity: i64,
        per_ms: i64,
        now_ms: i64,
    ) -> Result<Taken, LimitsError> {
        let mut conn = self.conn.clone();
        let (granted, level): (i64, i64) = self
            .script
            .key(format!("{}{id}", self.prefix))
            .arg(capacity)
            .arg(per_ms)
            .arg(want)
            .arg(now_ms)
            .invoke_async(&mut conn)
            .await?;
        Ok(Taken { granted, level })
    }
}
