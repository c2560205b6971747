-- Sales targets and inventory levels (SPEC §5, §6). Money is integer cents, never a float;
-- timestamps are UTC. AUTOINCREMENT so that the id of a deleted row is never handed out again.
CREATE TABLE sales_targets (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    seller_id          TEXT    NOT NULL,
    parent_asin        TEXT    NOT NULL,
    market_place_id    TEXT    NOT NULL,
    period             TEXT    NOT NULL,
    sales_target_cents INTEGER NOT NULL CHECK (sales_target_cents > 0),
    create_time        TEXT    NOT NULL,
    update_time        TEXT    NOT NULL
) STRICT;

CREATE UNIQUE INDEX uq_sales_targets_key
    ON sales_targets (seller_id, parent_asin, market_place_id, period);

CREATE TABLE inventory (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    seller_id       TEXT    NOT NULL,
    parent_asin     TEXT    NOT NULL,
    child_asin      TEXT    NOT NULL,
    seller_sku      TEXT    NOT NULL,
    market_place_id TEXT    NOT NULL,
    inventory       INTEGER NOT NULL CHECK (inventory BETWEEN 0 AND 2147483647),
    create_time     TEXT    NOT NULL,
    update_time     TEXT    NOT NULL
) STRICT;

CREATE UNIQUE INDEX uq_inventory_key
    ON inventory (seller_id, market_place_id, seller_sku);
