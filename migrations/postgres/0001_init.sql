-- tokend schema, PostgreSQL. Applied by `tokend migrate` in one transaction under an advisory lock.
-- Statements end with ";" at the end of a line; the migrator splits on that.

CREATE TABLE clients (
    client_id    text PRIMARY KEY,
    roles        text[] NOT NULL DEFAULT '{}',
    audiences    text[] NOT NULL DEFAULT '{}',
    secret_salt  bytea NOT NULL,
    secret_hash  bytea NOT NULL,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL
);

-- A grant groups a refresh token and the access tokens issued under it.
CREATE TABLE grants (
    grant_id    text PRIMARY KEY,
    client_id   text NOT NULL,
    subject     text,
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    revoked_at  timestamptz
);

-- Keyed by SHA-256 of the token: the token itself is never stored.
CREATE TABLE tokens (
    token_hash    bytea PRIMARY KEY,
    kind          smallint NOT NULL,
    client_id     text NOT NULL,
    subject       text,
    username      text,
    scope         text,
    audiences     text[] NOT NULL DEFAULT '{}',
    issuer        text NOT NULL,
    issued_at     timestamptz NOT NULL,
    not_before    timestamptz,
    expires_at    timestamptz NOT NULL,
    jti           text NOT NULL UNIQUE,
    grant_id      text NOT NULL REFERENCES grants (grant_id) ON DELETE CASCADE,
    cnf_jkt       text,
    cnf_x5t_s256  text,
    extra         jsonb NOT NULL DEFAULT '{}',
    revoked_at    timestamptz
);

-- Revocation by grant, subject and client, and expiry clean-up.
CREATE INDEX tokens_grant_id_idx ON tokens (grant_id);
CREATE INDEX tokens_subject_live_idx ON tokens (subject) WHERE revoked_at IS NULL;
CREATE INDEX tokens_client_id_live_idx ON tokens (client_id) WHERE revoked_at IS NULL;
CREATE INDEX tokens_expires_at_idx ON tokens (expires_at);
CREATE INDEX grants_expires_at_idx ON grants (expires_at);

-- Append-only revocation log. seq values are taken at insert and become visible at commit, so they
-- can appear out of order under concurrency: readers must not treat a gap as "nothing there".
CREATE TABLE revocations (
    seq            bigserial PRIMARY KEY,
    kind           text NOT NULL,
    value          text NOT NULL,
    token_hashes   text[] NOT NULL DEFAULT '{}',
    reason         text NOT NULL DEFAULT '',
    revoked_count  bigint NOT NULL,
    created_at     timestamptz NOT NULL,
    -- After this no token the entry covers can be active: the entry may be garbage-collected.
    expires_at     timestamptz NOT NULL
);

CREATE INDEX revocations_expires_at_idx ON revocations (expires_at);
