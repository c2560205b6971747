-- Stock management (docs/stock.md): what reservations hold of each inventory row, its warning
-- thresholds and its version; reservations and their items; and the ledger, one entry for
-- every change to a row's units on hand or reserved, kept after the row is deleted.
ALTER TABLE inventory ADD COLUMN reserved INTEGER NOT NULL DEFAULT 0 CHECK (reserved >= 0);
ALTER TABLE inventory ADD COLUMN warning_threshold INTEGER
    CHECK (warning_threshold BETWEEN 0 AND 2147483647);
ALTER TABLE inventory ADD COLUMN critical_threshold INTEGER
    CHECK (critical_threshold BETWEEN 0 AND 2147483647);
ALTER TABLE inventory ADD COLUMN version INTEGER NOT NULL DEFAULT 1 CHECK (version >= 1);

CREATE TABLE inventory_ledger (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    -- No foreign key: entries outlive their row.
    inventory_id     INTEGER NOT NULL,
    seller_id        TEXT    NOT NULL,
    market_place_id  TEXT    NOT NULL,
    seller_sku       TEXT    NOT NULL,
    type             TEXT    NOT NULL CHECK (type IN
        ('create', 'upsert', 'adjust', 'reserve', 'release', 'expire', 'commit', 'delete')),
    quantity_change  INTEGER NOT NULL,
    reserved_change  INTEGER NOT NULL,
    inventory_before INTEGER NOT NULL,
    inventory_after  INTEGER NOT NULL,
    reserved_before  INTEGER NOT NULL,
    reserved_after   INTEGER NOT NULL,
    reason           TEXT,
    reference        TEXT,
    reservation_id   INTEGER,
    order_id         TEXT,
    operator_id      INTEGER,
    request_id       TEXT,
    create_time      TEXT    NOT NULL,
    CHECK (inventory_after = inventory_before + quantity_change),
    CHECK (reserved_after = reserved_before + reserved_change)
) STRICT;

CREATE INDEX ix_inventory_ledger_row ON inventory_ledger (inventory_id, id);
CREATE INDEX ix_inventory_ledger_seller ON inventory_ledger (seller_id, id);

-- Rows that existed before the ledger get an opening entry, so every unit is explained.
INSERT INTO inventory_ledger (inventory_id, seller_id, market_place_id, seller_sku, type,
    quantity_change, reserved_change, inventory_before, inventory_after, reserved_before,
    reserved_after, reason, create_time)
SELECT id, seller_id, market_place_id, seller_sku, 'create', inventory, 0, 0, inventory, 0, 0,
    'opening balance: the row existed before the ledger', update_time
FROM inventory ORDER BY id;

CREATE TABLE reservations (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    seller_id        TEXT    NOT NULL,
    market_place_id  TEXT    NOT NULL,
    reservation_type TEXT    NOT NULL CHECK (reservation_type IN ('cart', 'order')),
    reference_id     TEXT    NOT NULL,
    status           TEXT    NOT NULL
        CHECK (status IN ('active', 'released', 'committed', 'expired')),
    expires_at       TEXT    NOT NULL,
    order_id         TEXT,
    created_by       INTEGER,
    create_time      TEXT    NOT NULL,
    update_time      TEXT    NOT NULL
) STRICT;

CREATE INDEX ix_reservations_due ON reservations (status, expires_at);
CREATE INDEX ix_reservations_reference ON reservations (seller_id, reference_id);

CREATE TABLE reservation_items (
    reservation_id INTEGER NOT NULL REFERENCES reservations (id) ON DELETE CASCADE,
    position       INTEGER NOT NULL,
    -- No foreign key: a row with active reservations cannot be deleted, and the history of
    -- finished reservations stays when it is.
    inventory_id   INTEGER NOT NULL,
    seller_sku     TEXT    NOT NULL,
    quantity       INTEGER NOT NULL CHECK (quantity BETWEEN 1 AND 2147483647),
    PRIMARY KEY (reservation_id, position)
) STRICT;

CREATE INDEX ix_reservation_items_row ON reservation_items (inventory_id);
