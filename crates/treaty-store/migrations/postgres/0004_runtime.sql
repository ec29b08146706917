-- The stateful runtime (Responses API, conversations, agents, runs).
-- Every row names its tenant and every query filters on it: one tenant's
-- keys never read another's state. Item and response bodies are the
-- OpenAI JSON objects as text; times are unix milliseconds.

CREATE TABLE responses (
    id                   TEXT PRIMARY KEY,
    tenant               TEXT NOT NULL,
    key_id               TEXT NOT NULL,
    previous_response_id TEXT,
    conversation_id      TEXT,
    status               TEXT NOT NULL,
    created_at           BIGINT NOT NULL,
    updated_at           BIGINT NOT NULL,
    body                 TEXT NOT NULL
);
CREATE INDEX responses_tenant ON responses (tenant, created_at);

-- The items of a response: its input (`kind` 'input') and its output
-- ('output'), each in order.
CREATE TABLE response_items (
    response_id TEXT NOT NULL,
    kind        TEXT NOT NULL,
    seq         BIGINT NOT NULL,
    item_id     TEXT NOT NULL,
    body        TEXT NOT NULL,
    PRIMARY KEY (response_id, kind, seq)
);

CREATE TABLE conversations (
    id         TEXT PRIMARY KEY,
    tenant     TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    metadata   TEXT NOT NULL
);

-- A conversation's items in order; `seq` is allocated per conversation.
CREATE TABLE conversation_items (
    conversation_id TEXT NOT NULL,
    seq             BIGINT NOT NULL,
    item_id         TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    body            TEXT NOT NULL,
    PRIMARY KEY (conversation_id, seq)
);
CREATE UNIQUE INDEX conversation_items_id ON conversation_items (conversation_id, item_id);

CREATE TABLE agents (
    id         TEXT PRIMARY KEY,
    tenant     TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    body       TEXT NOT NULL
);
CREATE INDEX agents_tenant ON agents (tenant, created_at);

-- A run is a state machine persisted at every step. Workers claim a run
-- by taking its lease (`lease_owner`, `lease_until`); a run whose lease
-- has expired (its worker died) is claimed again and resumes from `body`.
CREATE TABLE runs (
    id              TEXT PRIMARY KEY,
    tenant          TEXT NOT NULL,
    agent_id        TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    status          TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    lease_owner     TEXT,
    lease_until     BIGINT NOT NULL,
    body            TEXT NOT NULL
);
CREATE INDEX runs_tenant ON runs (tenant, created_at);
CREATE INDEX runs_ready ON runs (status, lease_until);

-- What a run did, in order: streamed to clients as run events and read
-- back to resume.
CREATE TABLE run_events (
    run_id TEXT NOT NULL,
    seq    BIGINT NOT NULL,
    kind   TEXT NOT NULL,
    at_ms  BIGINT NOT NULL,
    body   TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
);
