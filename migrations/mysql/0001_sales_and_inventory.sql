-- Sales targets and inventory levels (SPEC §5, §6). Money is integer cents, never a float;
-- timestamps are UTC with microseconds. Binary collation: identifiers are stored and compared
-- exactly as sent, as on SQLite ("sku1" and "SKU1" are different SKUs).
CREATE TABLE sales_targets (
    id                 BIGINT      NOT NULL AUTO_INCREMENT,
    seller_id          VARCHAR(20) NOT NULL,
    parent_asin        VARCHAR(15) NOT NULL,
    market_place_id    VARCHAR(2)  NOT NULL,
    period             VARCHAR(8)  NOT NULL,
    sales_target_cents BIGINT      NOT NULL,
    create_time        DATETIME(6) NOT NULL,
    update_time        DATETIME(6) NOT NULL,
    PRIMARY KEY (id),
    UNIQUE KEY uq_sales_targets_key (seller_id, parent_asin, market_place_id, period),
    CONSTRAINT ck_sales_target_positive CHECK (sales_target_cents > 0)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE inventory (
    id              BIGINT      NOT NULL AUTO_INCREMENT,
    seller_id       VARCHAR(20) NOT NULL,
    parent_asin     VARCHAR(15) NOT NULL,
    child_asin      VARCHAR(15) NOT NULL,
    seller_sku      VARCHAR(30) NOT NULL,
    market_place_id VARCHAR(2)  NOT NULL,
    inventory       INT         NOT NULL,
    create_time     DATETIME(6) NOT NULL,
    update_time     DATETIME(6) NOT NULL,
    PRIMARY KEY (id),
    UNIQUE KEY uq_inventory_key (seller_id, market_place_id, seller_sku),
    CONSTRAINT ck_inventory_range CHECK (inventory >= 0)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
