-- Users, the sellers each may act for, and refresh tokens (SPEC §3, §4, §9).
-- Refresh tokens are stored only as SHA-256 hashes; a family is every token rotated from one
-- login, so that reuse of a rotated token can revoke all of them.
CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    username      TEXT    NOT NULL,
    password_hash TEXT    NOT NULL,
    role          TEXT    NOT NULL CHECK (role IN ('admin', 'seller')),
    is_active     INTEGER NOT NULL DEFAULT 1 CHECK (is_active IN (0, 1)),
    create_time   TEXT    NOT NULL,
    update_time   TEXT    NOT NULL
) STRICT;

CREATE UNIQUE INDEX uq_users_username ON users (username);

CREATE TABLE user_sellers (
    user_id   INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    seller_id TEXT    NOT NULL,
    PRIMARY KEY (user_id, seller_id)
) STRICT;

CREATE TABLE refresh_tokens (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    token_hash  TEXT    NOT NULL,
    user_id     INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    family_id   TEXT    NOT NULL,
    expires_at  TEXT    NOT NULL,
    used_at     TEXT,
    revoked_at  TEXT,
    create_time TEXT    NOT NULL
) STRICT;

CREATE UNIQUE INDEX uq_refresh_tokens_hash ON refresh_tokens (token_hash);
CREATE INDEX ix_refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX ix_refresh_tokens_user ON refresh_tokens (user_id);
