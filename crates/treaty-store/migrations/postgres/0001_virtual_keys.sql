-- Virtual keys: only a hash of the secret is stored.
CREATE TABLE virtual_keys (
    id          TEXT PRIMARY KEY,
    secret_hash TEXT NOT NULL UNIQUE,
    prefix      TEXT NOT NULL,
    tenant      TEXT NOT NULL,
    channel     TEXT NOT NULL,
    product     TEXT NOT NULL,
    name        TEXT,
    models      TEXT,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT,
    revoked_at  BIGINT
);
CREATE INDEX virtual_keys_tenant ON virtual_keys (tenant);
