-- Idempotency keys (docs/api.md, "Safe retries"): a client's `Idempotency-Key` on a write, per
-- user. The row is the claim of the first request with the key (inserted before it runs, so the
-- unique key decides which of two racing requests runs), then the response it got, kept for
-- 24 hours and replayed to repeats. While `status` is NULL the request is still running;
-- `locked_until` is when a claim left by a crashed process may be taken over. `claim` is the
-- random token of the request holding the row, so only that request completes or releases it.
-- Expired rows are purged in the background (ix_idempotency_keys_expires finds them).
-- Keys are printable ASCII, compared exactly (ascii_bin).
CREATE TABLE idempotency_keys (
    id           BIGINT       NOT NULL AUTO_INCREMENT,
    user_id      BIGINT       NOT NULL,
    idem_key     VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    fingerprint  BINARY(32)   NOT NULL,
    claim        BIGINT       NOT NULL,
    locked_until DATETIME(6)  NULL,
    status       INT          NULL,
    headers      TEXT         NULL,
    body         MEDIUMBLOB   NULL,
    expires_at   DATETIME(6)  NOT NULL,
    create_time  DATETIME(6)  NOT NULL,
    PRIMARY KEY (id),
    UNIQUE KEY uq_idempotency_keys_user_key (user_id, idem_key),
    KEY ix_idempotency_keys_expires (expires_at, id),
    CONSTRAINT fk_idempotency_keys_user FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
