-- Idempotency keys (docs/api.md, "Safe retries"): a client's `Idempotency-Key` on a write, per
-- user. The row is the claim of the first request with the key (inserted before it runs, so the
-- unique key decides which of two racing requests runs), then the response it got, kept for
-- 24 hours and replayed to repeats. While `status` is NULL the request is still running;
-- `locked_until` is when a claim left by a crashed process may be taken over. `claim` is the
-- random token of the request holding the row, so only that request completes or releases it.
-- Expired rows are purged in the background (ix_idempotency_keys_expires finds them).
CREATE TABLE idempotency_keys (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    idem_key     TEXT    NOT NULL,
    fingerprint  BLOB    NOT NULL,
    claim        INTEGER NOT NULL,
    locked_until TEXT,
    status       INTEGER,
    headers      TEXT,
    body         BLOB,
    expires_at   TEXT    NOT NULL,
    create_time  TEXT    NOT NULL
) STRICT;

CREATE UNIQUE INDEX uq_idempotency_keys_user_key ON idempotency_keys (user_id, idem_key);
CREATE INDEX ix_idempotency_keys_expires ON idempotency_keys (expires_at, id);
