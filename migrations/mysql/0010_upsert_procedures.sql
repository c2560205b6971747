-- The write queue's statements for upserts (src/store/mysql/upsert.rs), kept on the server so
-- that a group of upserts costs a few calls instead of a statement (and a round trip) per step.
-- A group's rows arrive as one JSON argument, an array with one array per row holding its
-- values in the order the procedure's JSON_TABLE lists them (positions parse about twice as
-- fast as names). Each call is one constant text, so the server prepares it once per
-- connection whatever the group's size.
--
-- They run inside the caller's transaction (READ COMMITTED, see upsert.rs) and never commit.
-- SQL SECURITY INVOKER: they run with the rights of the service's user, who needs EXECUTE on
-- them (and CREATE ROUTINE to apply this migration). JSON_TABLE needs MySQL 8.0.4 or MariaDB
-- 10.6; text columns are read as utf8mb4_bin, as the tables store them, and wider than the
-- tables' own, so that a value too long is refused by the table rather than cut to fit.
--
-- Rows of `inventory` and `sales_targets` are never written with INSERT ... SELECT: with the
-- default innodb_autoinc_lock_mode = 1 (MariaDB), such a statement holds the table's AUTO-INC
-- lock to its end, so one of them waiting for a row lock stalls every other writer of the
-- table, or deadlocks with the one holding that row. Existing rows are updated through a join,
-- new ones inserted one statement a row (which holds the AUTO-INC lock only for an instant).
-- The ledger and the events are appended with INSERT ... SELECT: those inserts wait for no row
-- lock, so they hold the AUTO-INC lock only while they write.
--
-- Every join reads the JSON rows first and finds each table row by its key (STRAIGHT_JOIN,
-- FORCE INDEX): the optimizer cannot tell how many rows a JSON_TABLE holds, and once a table's
-- statistics were refreshed it chose to scan the whole table on every call (13 ms a call at
-- 12,000 rows, against ~1 ms).

-- Creates or updates sales targets: `p_rows` is `[[seller_id, parent_asin, market_place_id,
-- period, cents], ...]` in key order (the order rows are locked in). Every write moves the
-- version, and `update_time` forward: past the stored one if a writer that took its time
-- earlier got the row's lock later (docs/sync.md). Returns the rows as stored.
CREATE PROCEDURE sales_targets_upsert(IN p_rows LONGTEXT, IN p_now DATETIME(6))
    MODIFIES SQL DATA
    SQL SECURITY INVOKER
BEGIN
    DECLARE v_seller_id, v_parent_asin, v_market_place_id, v_period VARCHAR(255)
        CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
    DECLARE v_cents BIGINT;
    DECLARE v_done BOOLEAN DEFAULT FALSE;
    DECLARE input CURSOR FOR
        SELECT k.seller_id, k.parent_asin, k.market_place_id, k.period, k.cents
        FROM JSON_TABLE(p_rows, '$[*]' COLUMNS (
            position        FOR ORDINALITY,
            seller_id       VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin PATH '$[0]',
            parent_asin     VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin PATH '$[1]',
            market_place_id VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin PATH '$[2]',
            period          VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin PATH '$[3]',
            cents           BIGINT PATH '$[4]')) AS k
        ORDER BY k.position;
    DECLARE CONTINUE HANDLER FOR NOT FOUND SET v_done = TRUE;
    OPEN input;
    write_rows: LOOP
        FETCH input INTO v_seller_id, v_parent_asin, v_market_place_id, v_period, v_cents;
        IF v_done THEN
            LEAVE write_rows;
        END IF;
        INSERT INTO sales_targets (seller_id, parent_asin, market_place_id, period,
            sales_target_cents, create_time, update_time)
        VALUES (v_seller_id, v_parent_asin, v_market_place_id, v_period, v_cents, p_now, p_now)
        ON DUPLICATE KEY UPDATE
            sales_target_cents = VALUES(sales_target_cents),
            update_time = GREATEST(VALUES(update_time), update_time + INTERVAL 1 MICROSECOND),
            version = version + 1;
    END LOOP;
    CLOSE input;
    SELECT t.id, t.seller_id, t.parent_asin, t.market_place_id, t.period, t.sales_target_cents,
        t.version, t.create_time, t.update_time
    FROM JSON_TABLE(p_rows, '$[*]' COLUMNS (
        seller_id       VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin PATH '$[0]',
        parent_asin     VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin PATH '$[1]',
        market_place_id VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin PATH '$[2]',
        period          VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin PATH '$[3]')) AS k
    STRAIGHT_JOIN sales_targets AS t FORCE INDEX (uq_sales_targets_key)
        ON t.seller_id = k.seller_id
        AND t.parent_asin = k.parent_asin
        AND t.market_place_id = k.market_place_id
        AND t.period = k.period;
END;

-- Makes sure an inventory row exists for every key of `p_rows` (`[[seller_id, market_place_id,
-- seller_sku, parent_asin, child_asin, inventory], ...]` in key order), locks it, and returns
-- it as it now is. First the existing rows, found by a plain read (which locks nothing), are
-- locked in id order, as every stock operation locks its rows, so that an upsert
-- and a release of the same two rows cannot each hold the lock the other waits for; then the
-- missing ones are inserted in key order with version 0, which tells the caller the rows its
-- own transaction created (nobody else sees an uncommitted row, and committed rows have
-- versions from 1); a row another group created meanwhile is only locked by that insert. Should
-- that leave a key's row not held (a row deleted, or deleted and created again, between the
-- reads), every row is then locked by key, and the claim runs again.
CREATE PROCEDURE inventory_claim(IN p_rows LONGTEXT, IN p_now DATETIME(6))
    MODIFIES SQL DATA
    SQL SECURITY INVOKER
BEGIN
    DECLARE v_locked, v_inserted BIGINT;
    DECLARE v_seller_id, v_parent_asin, v_child_asin, v_seller_sku, v_market_place_id
        VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
    DECLARE v_inventory BIGINT;
    DECLARE v_done BOOLEAN DEFAULT FALSE;
    DECLARE missing CURSOR FOR
        SELECT k.seller_id, k.parent_asin, k.child_asin, k.seller_sku, k.market_place_id,
            k.inventory
        FROM JSON_TABLE(p_rows, '$[*]' COLUMNS (
            position        FOR ORDINALITY,
            seller_id       VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin PATH '$[0]',
            parent_asin     VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin PATH '$[3]',
            child_asin      VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin PATH '$[4]',
            seller_sku      VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin PATH '$[2]',
            market_place_id VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin PATH '$[1]',
            inventory       BIGINT PATH '$[5]')) AS k
        LEFT JOIN inventory AS i FORCE INDEX (uq_inventory_key)
            ON i.seller_id = k.seller_id
            AND i.market_place_id = k.market_place_id
            AND i.seller_sku = k.seller_sku
        WHERE i.id IS NULL
        ORDER BY k.position;
    DECLARE CONTINUE HANDLER FOR NOT FOUND SET v_done = TRUE;
    -- The existing rows, found by a plain read (the derived table: its rows are not locked,
    -- and its ORDER BY holds as it is materialised, LIMIT keeping it from being merged into
    -- the outer query), are locked in that order, by id.
    SELECT COUNT(*) INTO v_locked
    FROM (
        SELECT i.id
        FROM JSON_TABLE(p_rows, '$[*]' COLUMNS (
            seller_id       VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin PATH '$[0]',
            market_place_id VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin PATH '$[1]',
            seller_sku      VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin PATH '$[2]')) AS k
        STRAIGHT_JOIN inventory AS i FORCE INDEX (uq_inventory_key)
            ON i.seller_id = k.seller_id
            AND i.market_place_id = k.market_place_id
            AND i.seller_sku = k.seller_sku
        ORDER BY i.id
        LIMIT 18446744073709551615) AS found
    STRAIGHT_JOIN inventory AS l FORCE INDEX (PRIMARY) ON l.id = found.id
    FOR UPDATE;
    -- Until every key's row is this transaction's: `v_locked` rows are held (locked above, by
    -- id), `v_inserted` more were claimed by the inserts (created, or locked when another group
    -- had created one since the read). Short of every key, a row was deleted and created
    -- again between the reads, or deleted after the cursor's: the rows are then locked by key
    -- (those held already are this transaction's) and any still missing claimed again. The
    -- upsert must plan from a row it holds, or its ledger entry would start from a stale level.
    claim: LOOP
        SET v_done = FALSE;
        SET v_inserted = 0;
        OPEN missing;
        insert_rows: LOOP
            FETCH missing INTO v_seller_id, v_parent_asin, v_child_asin, v_seller_sku,
                v_market_place_id, v_inventory;
            IF v_done THEN
                LEAVE insert_rows;
            END IF;
            INSERT INTO inventory (seller_id, parent_asin, child_asin, seller_sku,
                market_place_id, inventory, reserved, version, create_time, update_time)
            VALUES (v_seller_id, v_parent_asin, v_child_asin, v_seller_sku, v_market_place_id,
                v_inventory, 0, 0, p_now, p_now)
            ON DUPLICATE KEY UPDATE id = id;
            SET v_inserted = v_inserted + 1;
        END LOOP;
        CLOSE missing;
        IF v_locked + v_inserted = JSON_LENGTH(p_rows) THEN
            LEAVE claim;
        END IF;
        SELECT COUNT(*) INTO v_locked
        FROM JSON_TABLE(p_rows, '$[*]' COLUMNS (
            seller_id       VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin PATH '$[0]',
            market_place_id VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin PATH '$[1]',
            seller_sku      VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin PATH '$[2]')) AS k
        STRAIGHT_JOIN inventory AS i FORCE INDEX (uq_inventory_key)
            ON i.seller_id = k.seller_id
            AND i.market_place_id = k.market_place_id
            AND i.seller_sku = k.seller_sku
        FOR UPDATE;
    END LOOP;
    SELECT i.id, i.seller_id, i.parent_asin, i.child_asin, i.seller_sku, i.market_place_id,
        i.inventory, i.reserved, i.warning_threshold, i.critical_threshold, i.version,
        i.create_time, i.update_time
    FROM JSON_TABLE(p_rows, '$[*]' COLUMNS (
        seller_id       VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin PATH '$[0]',
        market_place_id VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin PATH '$[1]',
        seller_sku      VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin PATH '$[2]')) AS k
    STRAIGHT_JOIN inventory AS i FORCE INDEX (uq_inventory_key)
        ON i.seller_id = k.seller_id
        AND i.market_place_id = k.market_place_id
        AND i.seller_sku = k.seller_sku;
END;

-- Writes what a group's plan decided: `p_rows`, inventory rows claimed (and locked) by
-- `inventory_claim`, updated by id (`[[id, parent_asin, child_asin, inventory, version,
-- update_time], ...]`); `p_entries`, their ledger entries, in order (columns as the
-- JSON_TABLE below lists them); `p_events`, the events of the whole group, in order
-- (`[[event_type, seller_id, data], ...]`). The events take the event lock (`event_sequence`, see
-- 0008_events.sql) last, so that it is held only from here to the commit.
CREATE PROCEDURE upsert_write(IN p_rows LONGTEXT, IN p_entries LONGTEXT, IN p_events LONGTEXT,
    IN p_now DATETIME(6))
    MODIFIES SQL DATA
    SQL SECURITY INVOKER
BEGIN
    UPDATE (SELECT * FROM JSON_TABLE(p_rows, '$[*]' COLUMNS (
            id          BIGINT PATH '$[0]',
            parent_asin VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin PATH '$[1]',
            child_asin  VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin PATH '$[2]',
            inventory   BIGINT PATH '$[3]',
            version     BIGINT PATH '$[4]',
            update_time DATETIME(6) PATH '$[5]')) AS j) AS r
        STRAIGHT_JOIN inventory AS i FORCE INDEX (PRIMARY) ON i.id = r.id
    SET i.parent_asin = r.parent_asin, i.child_asin = r.child_asin, i.inventory = r.inventory,
        i.version = r.version, i.update_time = r.update_time;
    INSERT INTO inventory_ledger (inventory_id, seller_id, market_place_id, seller_sku, type,
        quantity_change, reserved_change, inventory_before, inventory_after, reserved_before,
        reserved_after, operator_id, request_id, create_time)
    SELECT e.inventory_id, e.seller_id, e.market_place_id, e.seller_sku, e.type,
        e.quantity_change, e.reserved_change, e.inventory_before, e.inventory_after,
        e.reserved_before, e.reserved_after, e.operator_id, e.request_id, p_now
    FROM JSON_TABLE(p_entries, '$[*]' COLUMNS (
        position         FOR ORDINALITY,
        inventory_id     BIGINT PATH '$[0]',
        seller_id        VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin PATH '$[1]',
        market_place_id  VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin PATH '$[2]',
        seller_sku       VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin PATH '$[3]',
        type             VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin PATH '$[4]',
        quantity_change  BIGINT PATH '$[5]',
        reserved_change  BIGINT PATH '$[6]',
        inventory_before BIGINT PATH '$[7]',
        inventory_after  BIGINT PATH '$[8]',
        reserved_before  BIGINT PATH '$[9]',
        reserved_after   BIGINT PATH '$[10]',
        operator_id      BIGINT PATH '$[11]',
        request_id       VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin PATH '$[12]')) AS e
    ORDER BY e.position;
    IF JSON_LENGTH(p_events) > 0 THEN
        UPDATE event_sequence SET batches = batches + 1 WHERE id = 1;
        INSERT INTO events (event_type, occurred_at, seller_id, data)
        SELECT v.event_type, p_now, v.seller_id, v.data
        FROM JSON_TABLE(p_events, '$[*]' COLUMNS (
            position   FOR ORDINALITY,
            event_type VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin PATH '$[0]',
            seller_id  VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin PATH '$[1]',
            data       LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin PATH '$[2]')) AS v
        ORDER BY v.position;
    END IF;
END;
