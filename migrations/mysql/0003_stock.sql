-- Stock management (docs/stock.md): what reservations hold of each inventory row, its warning
-- thresholds and its version; reservations and their items; and the ledger, one entry for
-- every change to a row's units on hand or reserved, kept after the row is deleted.
ALTER TABLE inventory
    ADD COLUMN reserved INT NOT NULL DEFAULT 0,
    ADD COLUMN warning_threshold INT NULL,
    ADD COLUMN critical_threshold INT NULL,
    ADD COLUMN version BIGINT NOT NULL DEFAULT 1,
    ADD CONSTRAINT ck_inventory_reserved CHECK (reserved >= 0),
    ADD CONSTRAINT ck_inventory_warning CHECK (warning_threshold >= 0),
    ADD CONSTRAINT ck_inventory_critical CHECK (critical_threshold >= 0);

CREATE TABLE inventory_ledger (
    id               BIGINT       NOT NULL AUTO_INCREMENT,
    -- No foreign key: entries outlive their row.
    inventory_id     BIGINT       NOT NULL,
    seller_id        VARCHAR(20)  NOT NULL,
    market_place_id  VARCHAR(2)   NOT NULL,
    seller_sku       VARCHAR(30)  NOT NULL,
    type             VARCHAR(8)   NOT NULL,
    quantity_change  BIGINT       NOT NULL,
    reserved_change  BIGINT       NOT NULL,
    inventory_before BIGINT       NOT NULL,
    inventory_after  BIGINT       NOT NULL,
    reserved_before  BIGINT       NOT NULL,
    reserved_after   BIGINT       NOT NULL,
    reason           VARCHAR(200) NULL,
    reference        VARCHAR(200) NULL,
    reservation_id   BIGINT       NULL,
    order_id         VARCHAR(64)  NULL,
    operator_id      BIGINT       NULL,
    request_id       VARCHAR(64)  NULL,
    create_time      DATETIME(6)  NOT NULL,
    PRIMARY KEY (id),
    KEY ix_inventory_ledger_row (inventory_id, id),
    KEY ix_inventory_ledger_seller (seller_id, id),
    CONSTRAINT ck_ledger_type CHECK (type IN
        ('create', 'upsert', 'adjust', 'reserve', 'release', 'expire', 'commit', 'delete')),
    CONSTRAINT ck_ledger_inventory CHECK (inventory_after = inventory_before + quantity_change),
    CONSTRAINT ck_ledger_reserved CHECK (reserved_after = reserved_before + reserved_change)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- Rows that existed before the ledger get an opening entry, so every unit is explained.
INSERT INTO inventory_ledger (inventory_id, seller_id, market_place_id, seller_sku, type,
    quantity_change, reserved_change, inventory_before, inventory_after, reserved_before,
    reserved_after, reason, create_time)
SELECT id, seller_id, market_place_id, seller_sku, 'create', inventory, 0, 0, inventory, 0, 0,
    'opening balance: the row existed before the ledger', update_time
FROM inventory ORDER BY id;

CREATE TABLE reservations (
    id               BIGINT      NOT NULL AUTO_INCREMENT,
    seller_id        VARCHAR(20) NOT NULL,
    market_place_id  VARCHAR(2)  NOT NULL,
    reservation_type VARCHAR(8)  NOT NULL,
    reference_id     VARCHAR(64) NOT NULL,
    status           VARCHAR(16) NOT NULL,
    expires_at       DATETIME(6) NOT NULL,
    order_id         VARCHAR(64) NULL,
    created_by       BIGINT      NULL,
    create_time      DATETIME(6) NOT NULL,
    update_time      DATETIME(6) NOT NULL,
    PRIMARY KEY (id),
    KEY ix_reservations_due (status, expires_at),
    KEY ix_reservations_reference (seller_id, reference_id),
    CONSTRAINT ck_reservations_type CHECK (reservation_type IN ('cart', 'order')),
    CONSTRAINT ck_reservations_status
        CHECK (status IN ('active', 'released', 'committed', 'expired'))
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE reservation_items (
    reservation_id BIGINT      NOT NULL,
    position       INT         NOT NULL,
    -- No foreign key: a row with active reservations cannot be deleted, and the history of
    -- finished reservations stays when it is.
    inventory_id   BIGINT      NOT NULL,
    seller_sku     VARCHAR(30) NOT NULL,
    quantity       INT         NOT NULL,
    PRIMARY KEY (reservation_id, position),
    KEY ix_reservation_items_row (inventory_id),
    CONSTRAINT fk_reservation_items_reservation FOREIGN KEY (reservation_id)
        REFERENCES reservations (id) ON DELETE CASCADE,
    CONSTRAINT ck_reservation_items_quantity CHECK (quantity >= 1)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
