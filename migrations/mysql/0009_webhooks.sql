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
    id              BIGINT        NOT NULL AUTO_INCREMENT,
    url             VARCHAR(2048) NOT NULL,
    event_types     VARCHAR(1024) NOT NULL,
    seller_ids      TEXT          NULL,
    secret          VARCHAR(128)  NOT NULL,
    created_by      BIGINT        NOT NULL,
    create_time     DATETIME(6)   NOT NULL,
    last_event_id   BIGINT        NOT NULL,
    attempts        BIGINT        NOT NULL DEFAULT 0,
    failing_since   DATETIME(6)   NULL,
    next_attempt_at DATETIME(6)   NULL,
    lease_owner     VARCHAR(64)   NULL,
    lease_until     DATETIME(6)   NULL,
    PRIMARY KEY (id),
    KEY ix_webhooks_created_by (created_by, id),
    CONSTRAINT fk_webhooks_user FOREIGN KEY (created_by) REFERENCES users (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- One row per delivery attempt: when, of which event, what came back (an HTTP status, or the
-- error that kept one from coming), how long it took, and the outcome (delivered, failed,
-- given_up). Removed with their webhook, and purged with the events after EVENT_RETENTION_DAYS
-- (ix_webhook_deliveries_attempted_at finds them).
CREATE TABLE webhook_deliveries (
    id           BIGINT        NOT NULL AUTO_INCREMENT,
    webhook_id   BIGINT        NOT NULL,
    event_id     BIGINT        NOT NULL,
    attempt      BIGINT        NOT NULL,
    attempted_at DATETIME(6)   NOT NULL,
    status_code  BIGINT        NULL,
    error        VARCHAR(500)  NULL,
    latency_ms   BIGINT        NOT NULL,
    outcome      VARCHAR(16)   NOT NULL,
    PRIMARY KEY (id),
    KEY ix_webhook_deliveries_webhook (webhook_id, id),
    KEY ix_webhook_deliveries_attempted_at (attempted_at),
    CONSTRAINT fk_webhook_deliveries_webhook FOREIGN KEY (webhook_id) REFERENCES webhooks (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
