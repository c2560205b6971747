-- The audit log (docs/security.md): one entry per sensitive action — logins, refresh-token
-- reuse, user changes, deletes, stock adjustments, threshold changes, consistency checks.
-- Entries are only ever inserted; nothing in the service updates or deletes them.
CREATE TABLE audit_log (
    id          BIGINT       NOT NULL AUTO_INCREMENT,
    time        DATETIME(6)  NOT NULL,
    user_id     BIGINT       NULL,
    username    VARCHAR(64)  NULL,
    action      VARCHAR(32)  NOT NULL,
    target_type VARCHAR(16)  NULL,
    target_id   VARCHAR(64)  NULL,
    client_ip   VARCHAR(45)  NULL,
    request_id  VARCHAR(64)  NULL,
    detail      TEXT         NOT NULL,
    PRIMARY KEY (id),
    KEY ix_audit_log_time (time, id),
    KEY ix_audit_log_user (user_id, id),
    KEY ix_audit_log_action (action, id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
