-- tokend schema, embedded store (SQLite). Applied by the embedded store when it opens.
-- Statements end with ";" at the end of a line; the migrator splits on that.
-- Times are Unix seconds (REAL), lists are JSON arrays.

CREATE TABLE clients (
    client_id    TEXT PRIMARY KEY,
    roles        TEXT NOT NULL DEFAULT '[]',
    audiences    TEXT NOT NULL DEFAULT '[]',
    secret_salt  BLOB NOT NULL,
    secret_hash  BLOB NOT NULL,
    created_at   REAL NOT NULL,
    updated_at   REAL NOT NULL
);

CREATE TABLE grants (
    grant_id    TEXT PRIMARY KEY,
    client_id   TEXT NOT NULL,
    subject     TEXT,
    created_at  REAL NOT NULL,
    expires_at  REAL NOT NULL,
    revoked_at  REAL
);

CREATE TABLE tokens (
    token_hash    BLOB PRIMARY KEY,
    kind          INTEGER NOT NULL,
    client_id     TEXT NOT NULL,
    subject       TEXT,
    username      TEXT,
    scope         TEXT,
    audiences     TEXT NOT NULL DEFAULT '[]',
    issuer        TEXT NOT NULL,
    issued_at     REAL NOT NULL,
    not_before    REAL,
    expires_at    REAL NOT NULL,
    jti           TEXT NOT NULL UNIQUE,
    grant_id      TEXT NOT NULL REFERENCES grants (grant_id) ON DELETE CASCADE,
    cnf_jkt       TEXT,
    cnf_x5t_s256  TEXT,
    extra         TEXT NOT NULL DEFAULT '{}',
    revoked_at    REAL
) WITHOUT ROWID;

CREATE INDEX tokens_grant_id_idx ON tokens (grant_id);
CREATE INDEX tokens_subject_live_idx ON tokens (subject) WHERE revoked_at IS NULL;
CREATE INDEX tokens_client_id_live_idx ON tokens (client_id) WHERE revoked_at IS NULL;
CREATE INDEX tokens_expires_at_idx ON tokens (expires_at);
CREATE INDEX grants_expires_at_idx ON grants (expires_at);

CREATE TABLE revocations (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    kind           TEXT NOT NULL,
    value          TEXT NOT NULL,
    token_hashes   TEXT NOT NULL DEFAULT '[]',
    reason         TEXT NOT NULL DEFAULT '',
    revoked_count  INTEGER NOT NULL,
    created_at     REAL NOT NULL,
    expires_at     REAL NOT NULL
);

CREATE INDEX revocations_expires_at_idx ON revocations (expires_at);
