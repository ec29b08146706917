-- The ledger (crate treaty-ledger): one hash chain per deployment.
-- `payload` is the canonical JSON that was hashed, byte for byte; `hash`
-- is sha256(prev hash || seq big-endian || kind byte || payload).
-- INTEGER PRIMARY KEY makes seq the rowid: records are stored in chain
-- order and read back by range without a separate index.
CREATE TABLE ledger_records (
    seq        INTEGER PRIMARY KEY,
    kind       TEXT NOT NULL,
    request_id TEXT NOT NULL,
    at_ms      BIGINT NOT NULL,
    payload    TEXT NOT NULL,
    hash       BLOB NOT NULL
);
CREATE INDEX ledger_records_request ON ledger_records (request_id);

-- The single row every batch locks first: the last sequence number and
-- hash of the chain. seq 0 with 32 zero bytes is the genesis.
CREATE TABLE ledger_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  BIGINT NOT NULL,
    hash BLOB NOT NULL
);
INSERT INTO ledger_head (id, seq, hash)
VALUES (1, 0, X'0000000000000000000000000000000000000000000000000000000000000000');

-- Signed (seq, head hash) pairs; the key that signed travels with each.
CREATE TABLE ledger_checkpoints (
    seq        INTEGER PRIMARY KEY,
    hash       BLOB NOT NULL,
    public_key BLOB NOT NULL,
    signature  BLOB NOT NULL,
    at_ms      BIGINT NOT NULL
);

-- The deployment's ed25519 checkpoint key, created on first start.
CREATE TABLE ledger_signing_key (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    public_key BLOB NOT NULL,
    secret_key BLOB NOT NULL,
    created_at BIGINT NOT NULL
);
