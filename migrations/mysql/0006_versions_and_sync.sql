-- Conditional writes and incremental sync (docs/sync.md, docs/api.md "Conditional requests").
-- Sales targets get a version, as inventory rows have: 1 when created, one more with every
-- write (each write also moves update_time). Existing rows start at 1.
ALTER TABLE sales_targets
    ADD COLUMN version BIGINT NOT NULL DEFAULT 1,
    ADD CONSTRAINT ck_sales_target_version CHECK (version >= 1);

-- The order of incremental sync: lists with updated_since or a cursor page by
-- (update_time, id), from a position, without an offset.
CREATE INDEX ix_sales_targets_sync ON sales_targets (update_time, id);
CREATE INDEX ix_inventory_sync ON inventory (update_time, id);
