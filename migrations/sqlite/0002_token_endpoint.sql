-- The token endpoint and signed introspection (issue 12): clients' allowed scopes, refresh token
-- rotation with reuse detection, and the RFC 9701 signing keys.

ALTER TABLE clients ADD COLUMN scopes TEXT NOT NULL DEFAULT '[]';

-- Set when a refresh token is redeemed and rotated; presenting a spent token again is reuse.
ALTER TABLE tokens ADD COLUMN spent_at REAL;

-- The lifetime (seconds) of the grant's first access token: what a redemption of its refresh token mints.
ALTER TABLE grants ADD COLUMN access_ttl INTEGER;

CREATE TABLE signing_keys (
    kid          TEXT PRIMARY KEY,
    algorithm    TEXT NOT NULL,
    private_key  BLOB NOT NULL,
    created_at   REAL NOT NULL,
    retires_at   REAL
);

CREATE UNIQUE INDEX signing_keys_one_current ON signing_keys ((retires_at IS NULL)) WHERE retires_at IS NULL;
