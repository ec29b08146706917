-- The ledger as a Merkle transparency log (issue 14), keys outside the store.
--
-- ledger_tree: the hash of every complete subtree of the RFC 9162 tree over
-- the records, at the index Go's tlog.StoredHashIndex gives it (leaf i is
-- record seq i + 1). Indexes only grow, so rows land at the table's end.
CREATE TABLE ledger_tree (
    id   BIGINT PRIMARY KEY,
    hash BYTEA NOT NULL
);

-- The head also carries the tree: its size (records hashed into it) and
-- its frontier (the roots of the complete subtrees it splits into,
-- concatenated), so an append reads nothing but the head. A tree_size
-- below seq means records written before this migration, hashed in on the
-- next start.
ALTER TABLE ledger_head ADD COLUMN tree_size BIGINT NOT NULL DEFAULT 0;
ALTER TABLE ledger_head ADD COLUMN frontier BYTEA NOT NULL DEFAULT '\x'::bytea;

-- A checkpoint's C2SP signed note (origin, tree size, root, signatures);
-- NULL for checkpoints written before the tree.
ALTER TABLE ledger_checkpoints ADD COLUMN note TEXT;

-- Public keys only: every key that ever signed this log, by its note
-- verifier key (name+id+base64). The secret lives in a file, an
-- environment variable or an external signer, never here.
CREATE TABLE ledger_keys (
    vkey       TEXT PRIMARY KEY,
    public_key BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    retired_at BIGINT
);

-- Witness cosignatures collected for a checkpoint (one line per witness).
CREATE TABLE ledger_cosignatures (
    seq       BIGINT NOT NULL,
    witness   TEXT NOT NULL,
    signature TEXT NOT NULL,
    at_ms     BIGINT NOT NULL,
    PRIMARY KEY (seq, witness)
);

-- Where checkpoints are published and how that went, per target.
CREATE TABLE ledger_publish_status (
    target     TEXT PRIMARY KEY,
    kind       TEXT NOT NULL,
    last_size  BIGINT NOT NULL,
    published  BIGINT NOT NULL,
    refused    BIGINT NOT NULL,
    failed     BIGINT NOT NULL,
    last_error TEXT,
    updated_ms BIGINT NOT NULL
);
