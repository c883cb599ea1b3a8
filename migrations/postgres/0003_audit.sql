-- The audit trail (issue 15): one row per admin action, written in the action's own transaction.
-- Targets name a client, a grant, a subject, a jti, a key id or a 12-hex-digit token hash prefix:
-- never a secret or a raw token.

CREATE TABLE audit_events (
    seq          bigserial PRIMARY KEY,
    at           timestamptz NOT NULL,
    actor        text NOT NULL,
    request_id   text NOT NULL,
    action       text NOT NULL,
    target_kind  text NOT NULL,
    target       text NOT NULL,
    detail       jsonb NOT NULL DEFAULT '{}'
);

CREATE INDEX audit_events_at ON audit_events (at);

CREATE INDEX audit_events_actor_at ON audit_events (actor, at);
