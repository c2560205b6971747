-- The event outbox (docs/api.md, "Event feed"): every change to inventory, stock, reservations
-- and sales targets writes its events here in its own transaction. `id` only grows; readers
-- page by it. `data` is JSON text. Old events are purged after EVENT_RETENTION_DAYS.
CREATE TABLE events (
    id          BIGINT       NOT NULL AUTO_INCREMENT,
    event_type  VARCHAR(40)  NOT NULL,
    occurred_at DATETIME(6)  NOT NULL,
    seller_id   VARCHAR(20)  NOT NULL,
    data        MEDIUMTEXT   NOT NULL,
    PRIMARY KEY (id),
    KEY ix_events_seller (seller_id, id),
    KEY ix_events_occurred_at (occurred_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- One row, locked (updated) by every transaction just before it inserts its events and held
-- to its commit: InnoDB hands out AUTO_INCREMENT ids at insert, so without it a transaction
-- could commit an event with a smaller id after a reader had already paged past a larger one.
-- With it, events commit in id order.
CREATE TABLE event_sequence (
    id      TINYINT NOT NULL,
    batches BIGINT  NOT NULL,
    PRIMARY KEY (id)
) ENGINE = InnoDB;

INSERT INTO event_sequence (id, batches) VALUES (1, 0);
