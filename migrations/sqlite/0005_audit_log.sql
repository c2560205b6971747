-- The audit log (docs/security.md): one entry per sensitive action — logins, refresh-token
-- reuse, user changes, deletes, stock adjustments, threshold changes, consistency checks.
-- Entries are only ever inserted; nothing in the service updates or deletes them.
CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    time        TEXT    NOT NULL,
    user_id     INTEGER,
    username    TEXT,
    action      TEXT    NOT NULL,
    target_type TEXT,
    target_id   TEXT,
    client_ip   TEXT,
    request_id  TEXT,
    detail      TEXT    NOT NULL
) STRICT;

CREATE INDEX ix_audit_log_time ON audit_log (time, id);
CREATE INDEX ix_audit_log_user ON audit_log (user_id, id);
CREATE INDEX ix_audit_log_action ON audit_log (action, id);
