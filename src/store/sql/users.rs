//! Users, the sellers each may act for, and refresh tokens: the same SQL on both databases.
//!
//! Refresh tokens are stored as hashes only. A family is every token rotated from one login, so
//! that presenting a rotated token again can revoke all of them.

use chrono::NaiveDateTime;
use sqlx::{Database, Decode, Encode, Executor, FromRow, IntoArguments, Type};

use super::{Backend, Shared};
use crate::domain::{
    NewRefreshToken, NewUser, PageRequest, Rotation, SellerId, Timestamp, User, UserPatch,
};
use crate::store::rows::{Text, UserRow, USER_COLUMNS};
use crate::store::{Listed, StoreError};

/// A refresh token found by its hash, with its user: user id, family, expiry, when it was
/// used, whether the user is active, and the user's token version.
type FoundToken = (i64, Text, NaiveDateTime, Option<NaiveDateTime>, bool, i64);

impl<DB> Shared<DB>
where
    DB: Backend,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> <DB as Database>::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> bool: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> NaiveDateTime: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> Text: Decode<'q, DB> + Type<DB>,
    for<'r> UserRow: FromRow<'r, DB::Row>,
    usize: sqlx::ColumnIndex<DB::Row>,
{
    async fn sellers_of(
        conn: &mut DB::Connection,
        user_id: i64,
    ) -> Result<Vec<SellerId>, StoreError> {
        let rows: Vec<(Text,)> = sqlx::query_as(
            "SELECT seller_id FROM user_sellers WHERE user_id = ? ORDER BY seller_id",
        )
        .bind(user_id)
        .fetch_all(&mut *conn)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(s,)| SellerId::from_stored(s.0))
            .collect())
    }

    async fn set_sellers(
        conn: &mut DB::Connection,
        user_id: i64,
        sellers: &[SellerId],
    ) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM user_sellers WHERE user_id = ?")
            .bind(user_id)
            .execute(&mut *conn)
            .await?;
        for seller in sellers {
            sqlx::query("INSERT INTO user_sellers (user_id, seller_id) VALUES (?, ?)")
                .bind(user_id)
                .bind(seller.as_str())
                .execute(&mut *conn)
                .await?;
        }
        Ok(())
    }

    /// Creates the user and its seller links, returning its id; `Conflict` when the username is
    /// taken. Call inside a transaction.
    pub async fn create_user(conn: &mut DB::Connection, new: &NewUser) -> Result<i64, StoreError> {
        let now = Timestamp::now().naive_utc();
        sqlx::query(
            "INSERT INTO users (username, password_hash, role, is_active, create_time, update_time) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(new.username.as_str())
        .bind(new.password_hash.as_str())
        .bind(new.role.as_str())
        .bind(true)
        .bind(now)
        .bind(now)
        .execute(&mut *conn)
        .await?;
        let (id,): (i64,) = sqlx::query_as("SELECT id FROM users WHERE username = ?")
            .bind(new.username.as_str())
            .fetch_one(&mut *conn)
            .await?;
        Self::set_sellers(conn, id, &new.seller_ids).await?;
        Ok(id)
    }

    pub async fn get_user(conn: &mut DB::Connection, id: i64) -> Result<User, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?");
        let row: UserRow = sqlx::query_as(&sql).bind(id).fetch_one(&mut *conn).await?;
        let sellers = Self::sellers_of(conn, id).await?;
        Ok(row.into_user(sellers))
    }

    /// The user with this name and their password hash, for logging in.
    pub async fn find_login(
        conn: &mut DB::Connection,
        username: &str,
    ) -> Result<Option<(User, String)>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE username = ?");
        let Some(row) = sqlx::query_as::<_, UserRow>(&sql)
            .bind(username)
            .fetch_optional(&mut *conn)
            .await?
        else {
            return Ok(None);
        };
        let (hash,): (Text,) = sqlx::query_as("SELECT password_hash FROM users WHERE id = ?")
            .bind(row.id)
            .fetch_one(&mut *conn)
            .await?;
        let sellers = Self::sellers_of(conn, row.id).await?;
        Ok(Some((row.into_user(sellers), hash.0)))
    }

    /// One page of users and the total. Call inside a transaction, so that the two agree.
    pub async fn list_users(
        conn: &mut DB::Connection,
        page: PageRequest,
    ) -> Result<Listed<User>, StoreError> {
        let (total,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM users")
            .fetch_one(&mut *conn)
            .await?;
        let sql = format!("SELECT {USER_COLUMNS} FROM users ORDER BY id LIMIT ? OFFSET ?");
        let rows: Vec<UserRow> = sqlx::query_as(&sql)
            .bind(i64::from(page.size))
            .bind(page.offset())
            .fetch_all(&mut *conn)
            .await?;
        let mut items = Vec::with_capacity(rows.len());
        for row in rows {
            let sellers = Self::sellers_of(conn, row.id).await?;
            items.push(row.into_user(sellers));
        }
        Ok(Listed {
            items,
            total: u64::try_from(total).unwrap_or_default(),
        })
    }

    /// Applies `patch`. A deactivation or a new password also ends every session of the user
    /// (`UserPatch::ends_sessions`): their refresh tokens are revoked and their
    /// `token_version` goes up. Call inside a transaction.
    pub async fn update_user(
        conn: &mut DB::Connection,
        id: i64,
        patch: &UserPatch,
    ) -> Result<(), StoreError> {
        let now = Timestamp::now().naive_utc();
        let lock = format!("SELECT id FROM users WHERE id = ?{}", DB::LOCK_ROWS);
        sqlx::query_as::<_, (i64,)>(&lock)
            .bind(id)
            .fetch_one(&mut *conn)
            .await?;
        let mut sets = vec!["update_time = ?"];
        if patch.is_active.is_some() {
            sets.push("is_active = ?");
        }
        if patch.role.is_some() {
            sets.push("role = ?");
        }
        if patch.password_hash.is_some() {
            sets.push("password_hash = ?");
        }
        if patch.ends_sessions() {
            sets.push("token_version = token_version + 1");
        }
        let sql = format!("UPDATE users SET {} WHERE id = ?", sets.join(", "));
        let mut update = sqlx::query(&sql).bind(now);
        if let Some(active) = patch.is_active {
            update = update.bind(active);
        }
        if let Some(role) = patch.role {
            update = update.bind(role.as_str());
        }
        if let Some(hash) = &patch.password_hash {
            update = update.bind(hash.as_str());
        }
        update.bind(id).execute(&mut *conn).await?;
        if let Some(sellers) = &patch.seller_ids {
            Self::set_sellers(conn, id, sellers).await?;
        }
        if patch.ends_sessions() {
            sqlx::query(
                "UPDATE refresh_tokens SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL",
            )
            .bind(now)
            .bind(id)
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }

    pub async fn count_users(conn: &mut DB::Connection) -> Result<u64, StoreError> {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM users")
            .fetch_one(&mut *conn)
            .await?;
        Ok(u64::try_from(n).unwrap_or_default())
    }

    pub async fn insert_refresh_token(
        conn: &mut DB::Connection,
        user_id: i64,
        token: &NewRefreshToken,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, user_id, family_id, expires_at, create_time) \
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(token.token_hash.as_str())
        .bind(user_id)
        .bind(token.family_id.as_str())
        .bind(token.expires_at.naive_utc())
        .bind(Timestamp::now().naive_utc())
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// Marks the presented token used and stores its successor, which expires with the family
    /// (the presented token's `expires_at`, set at login): rotating never extends a session.
    /// Of two concurrent rotations of one token exactly one finds it unused. A token that was
    /// already used revokes its whole family. Call inside a transaction.
    pub async fn rotate_refresh_token(
        conn: &mut DB::Connection,
        presented_hash: &str,
        next_hash: &str,
    ) -> Result<Rotation, StoreError> {
        let now = Timestamp::now().naive_utc();
        let done = sqlx::query(
            "UPDATE refresh_tokens SET used_at = ? \
             WHERE token_hash = ? AND used_at IS NULL AND revoked_at IS NULL AND expires_at > ?",
        )
        .bind(now)
        .bind(presented_hash)
        .bind(now)
        .execute(&mut *conn)
        .await?;
        let claimed = DB::rows_affected(&done);

        let sql = format!(
            "SELECT t.user_id, t.family_id, t.expires_at, t.used_at, u.is_active, \
             u.token_version FROM refresh_tokens t \
             JOIN users u ON u.id = t.user_id WHERE t.token_hash = ?{}",
            DB::LOCK_ROWS
        );
        let found: Option<FoundToken> = sqlx::query_as(&sql)
            .bind(presented_hash)
            .fetch_optional(&mut *conn)
            .await?;
        Ok(match found {
            Some((user_id, family, expires_at, _, true, token_version)) if claimed == 1 => {
                let expires_at = Timestamp::from_naive_utc(expires_at);
                let next = NewRefreshToken {
                    token_hash: next_hash.to_owned(),
                    family_id: family.0,
                    expires_at,
                };
                Self::insert_refresh_token(conn, user_id, &next).await?;
                Rotation::Rotated {
                    user_id,
                    token_version,
                    expires_at,
                }
            }
            Some((_, family, _, Some(_), _, _)) if claimed == 0 => {
                sqlx::query(
                    "UPDATE refresh_tokens SET revoked_at = ? \
                     WHERE family_id = ? AND revoked_at IS NULL",
                )
                .bind(now)
                .bind(family.0.as_str())
                .execute(&mut *conn)
                .await?;
                Rotation::Reused
            }
            _ => Rotation::Invalid,
        })
    }

    /// Revokes the family of the token with this hash, if there is one.
    pub async fn revoke_refresh_family(
        conn: &mut DB::Connection,
        token_hash: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE refresh_tokens SET revoked_at = ? WHERE revoked_at IS NULL AND family_id IN \
             (SELECT family_id FROM (SELECT family_id FROM refresh_tokens WHERE token_hash = ?) AS f)",
        )
        .bind(Timestamp::now().naive_utc())
        .bind(token_hash)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }
}
