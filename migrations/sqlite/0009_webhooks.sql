-- Webhooks (docs/webhooks.md): a URL that gets every matching event of the outbox, signed with
-- the webhook's secret, in event order. `event_types` is a comma-separated list of event type
-- names; `seller_ids` a JSON array, or NULL for every seller (admins only). The secret is kept
-- as given to the client once (it signs every delivery), never returned again.
--
-- Delivery state: `last_event_id` is the cursor over `events` (every event up to it was
-- delivered, given up, or did not match); `attempts`, `failing_since` and `next_attempt_at`
-- describe the failing attempts at the next event. `lease_owner`/`lease_until` are the claim
-- of the one instance delivering now (several instances may share the database).
CREATE TABLE webhooks (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    url             TEXT    NOT NULL,
    event_types     TEXT    NOT NULL,
    seller_ids      TEXT,
    secret          TEXT    NOT NULL,
    created_by      INTEGER NOT NULL REFERENCES users (id),
    create_time     TEXT    NOT NULL,
    last_event_id   INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    failing_since   TEXT,
    next_attempt_at TEXT,
    lease_owner     TEXT,
    lease_until     TEXT
) STRICT;

CREATE INDEX ix_webhooks_created_by ON webhooks (created_by, id);

-- One row per delivery attempt: when, of which event, what came back (an HTTP status, or the
-- error that kept one from coming), how long it took, and the outcome (delivered, failed,
-- given_up). Removed with their webhook, and purged with the events after EVENT_RETENTION_DAYS
-- (ix_webhook_deliveries_attempted_at finds them).
CREATE TABLE webhook_deliveries (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook_id   INTEGER NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_id     INTEGER NOT NULL,
    attempt      INTEGER NOT NULL,
    attempted_at TEXT    NOT NULL,
    status_code  INTEGER,
    error        TEXT,
    latency_ms   INTEGER NOT NULL,
    outcome      TEXT    NOT NULL
) STRICT;

CREATE INDEX ix_webhook_deliveries_webhook ON webhook_deliveries (webhook_id, id);
CREATE INDEX ix_webhook_deliveries_attempted_at ON webhook_deliveries (attempted_at);
