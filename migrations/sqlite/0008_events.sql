-- The event outbox (docs/api.md, "Event feed"): every change to inventory, stock, reservations
-- and sales targets writes its events here in its own transaction. `id` only grows
-- (AUTOINCREMENT never reuses an id); readers page by it. `data` is JSON text. Old events are
-- purged after EVENT_RETENTION_DAYS.
CREATE TABLE events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    event_type  TEXT    NOT NULL,
    occurred_at TEXT    NOT NULL,
    seller_id   TEXT    NOT NULL,
    data        TEXT    NOT NULL
) STRICT;

CREATE INDEX ix_events_seller ON events (seller_id, id);
CREATE INDEX ix_events_occurred_at ON events (occurred_at);
