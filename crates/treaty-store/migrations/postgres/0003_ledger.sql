-- The ledger (crate treaty-ledger): one hash chain per deployment.
-- `payload` is the canonical JSON that was hashed, byte for byte; `hash`
-- is sha256(prev hash || seq big-endian || kind byte || payload).
CREATE TABLE ledger_records (
    seq        BIGINT PRIMARY KEY,
    kind       TEXT NOT NULL,
    request_id TEXT NOT NULL,
    at_ms      BIGINT NOT NULL,
    payload    TEXT NOT NULL,
    hash       BYTEA NOT NULL
);
CREATE INDEX ledger_records_request ON ledger_records (request_id);

-- The single row every batch locks first (UPDATE ... WHERE id = 1): the
-- last sequence number and hash of the chain. seq 0 with 32 zero bytes is
-- the genesis. Replicas serialise their batches on this row lock.
CREATE TABLE ledger_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  BIGINT NOT NULL,
    hash BYTEA NOT NULL
);
INSERT INTO ledger_head (id, seq, hash) VALUES (1, 0, decode(repeat('00', 32), 'hex'));

-- Signed (seq, head hash) pairs; the key that signed travels with each.
CREATE TABLE ledger_checkpoints (
    seq        BIGINT PRIMARY KEY,
    hash       BYTEA NOT NULL,
    public_key BYTEA NOT NULL,
    signature  BYTEA NOT NULL,
    at_ms      BIGINT NOT NULL
);

-- The deployment's ed25519 checkpoint key, created on first start.
CREATE TABLE ledger_signing_key (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    public_key BYTEA NOT NULL,
    secret_key BYTEA NOT NULL,
    created_at BIGINT NOT NULL
);
