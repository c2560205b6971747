-- Sessions that end when they should (docs/auth.md, "Sessions").
-- Every access token carries its user's token_version; a token whose version is not the
-- user's current one is refused. A password change or a deactivation adds one, so every
-- access token issued before it stops working, even after a reactivation.
ALTER TABLE users ADD COLUMN token_version BIGINT NOT NULL DEFAULT 0;

-- A refresh token's expires_at is its family's absolute expiry (the login's time plus
-- REFRESH_TOKEN_EXPIRE_DAYS), carried over on each rotation. Expired and revoked rows are
-- purged in the background; these indexes find them.
CREATE INDEX ix_refresh_tokens_expires ON refresh_tokens (expires_at);
CREATE INDEX ix_refresh_tokens_revoked ON refresh_tokens (revoked_at);
