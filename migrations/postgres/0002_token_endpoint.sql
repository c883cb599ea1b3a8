-- The token endpoint and signed introspection (issue 12): clients' allowed scopes, refresh token
-- rotation with reuse detection, and the replica set's RFC 9701 signing keys.

ALTER TABLE clients ADD COLUMN scopes text[] NOT NULL DEFAULT '{}';

-- Set when a refresh token is redeemed and rotated; presenting a spent token again is reuse.
ALTER TABLE tokens ADD COLUMN spent_at timestamptz;

-- The lifetime (seconds) of the grant's first access token: what a redemption of its refresh token mints.
ALTER TABLE grants ADD COLUMN access_ttl bigint;

-- ES256 keys. The current key has no retires_at; a rotated one is still published until then.
CREATE TABLE signing_keys (
    kid          text PRIMARY KEY,
    algorithm    text NOT NULL,
    private_key  bytea NOT NULL,
    created_at   timestamptz NOT NULL,
    retires_at   timestamptz
);

-- At most one current key: concurrent first starts create exactly one.
CREATE UNIQUE INDEX signing_keys_one_current ON signing_keys ((retires_at IS NULL)) WHERE retires_at IS NULL;
