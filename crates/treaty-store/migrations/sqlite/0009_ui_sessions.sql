-- The web UI's sessions (crate treaty-ui). `id_hash` is the SHA-256 (hex)
-- of the random session id the browser holds in its cookie: a copy of
-- this table lets no one sign in. `role` is `admin` or `auditor`;
-- `csrf` is the token every changing form must carry. A session ends at
-- logout, or once `last_seen_ms` is older than the UI's idle limit.
CREATE TABLE ui_sessions (
    id_hash      TEXT PRIMARY KEY,
    role         TEXT NOT NULL,
    csrf         TEXT NOT NULL,
    actor        TEXT NOT NULL,
    created_ms   BIGINT NOT NULL,
    last_seen_ms BIGINT NOT NULL
);
CREATE INDEX ui_sessions_last_seen ON ui_sessions (last_seen_ms);
