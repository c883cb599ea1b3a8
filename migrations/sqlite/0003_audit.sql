-- The audit trail (issue 15): one row per admin action, written in the action's own transaction.

CREATE TABLE audit_events (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    at           REAL NOT NULL,
    actor        TEXT NOT NULL,
    request_id   TEXT NOT NULL,
    action       TEXT NOT NULL,
    target_kind  TEXT NOT NULL,
    target       TEXT NOT NULL,
    detail       TEXT NOT NULL DEFAULT '{}'
);

CREATE INDEX audit_events_at ON audit_events (at);

CREATE INDEX audit_events_actor_at ON audit_events (actor, at);
