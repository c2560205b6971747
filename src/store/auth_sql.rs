//! The SQL of users and refresh tokens, written once for both backends.
//!
//! These statements are the same text on SQLite and MySQL (`?` placeholders, no `RETURNING`),
//! and sqlx's API is the same for both pools; only the database type differs, which generic
//! code over `sqlx::Database` could express only with a wall of trait bounds. So the functions
//! are written once in this macro and instantiated per backend:
//! `mod auth { auth_queries!(sqlx::Sqlite, ""); }`. The second argument is the row-lock suffix
//! of a `SELECT` inside a transaction (`" FOR UPDATE"` on MySQL; SQLite locks the whole file).

macro_rules! auth_queries {
    ($db:ty, $lock:literal) => {
        use chrono::NaiveDateTime;
        use sqlx::Pool;

        use crate::domain::{
            NewRefreshToken, NewUser, PageRequest, Role, Rotation, SellerId, Timestamp, User,
            UserPatch, Username,
        };
        use crate::store::{Listed, StoreError, Text};

        #[derive(sqlx::FromRow)]
        struct UserRow {
            id: i64,
            username: Text,
            role: Text,
            is_active: bool,
            create_time: NaiveDateTime,
            update_time: NaiveDateTime,
        }

        const USER_COLUMNS: &str = "id, username, role, is_active, create_time, update_time";

        fn user(row: UserRow, seller_ids: Vec<SellerId>) -> User {
            User {
                id: row.id,
                username: Username::from_stored(row.username.0),
                // The column has a CHECK constraint; anything else would be a corrupt row.
                role: Role::parse(&row.role.0).unwrap_or(Role::Seller),
                seller_ids,
                is_active: row.is_active,
                create_time: Timestamp::from_naive_utc(row.create_time),
                update_time: Timestamp::from_naive_utc(row.update_time),
            }
        }

        async fn sellers_of<'c, E>(executor: E, user_id: i64) -> Result<Vec<SellerId>, StoreError>
        where
            E: sqlx::Executor<'c, Database = $db>,
        {
            let rows: Vec<(Text,)> =
                sqlx::query_as("SELECT seller_id FROM user_sellers WHERE user_id = ? ORDER BY seller_id")
                    .bind(user_id)
                    .fetch_all(executor)
                    .await?;
            Ok(rows.into_iter().map(|(s,)| SellerId::from_stored(s.0)).collect())
        }

        async fn set_sellers(
            tx: &mut sqlx::Transaction<'_, $db>,
            user_id: i64,
            sellers: &[SellerId],
        ) -> Result<(), StoreError> {
            sqlx::query("DELETE FROM user_sellers WHERE user_id = ?").bind(user_id).execute(&mut **tx).await?;
            for seller in sellers {
                sqlx::query("INSERT INTO user_sellers (user_id, seller_id) VALUES (?, ?)")
                    .bind(user_id)
                    .bind(seller.as_str())
                    .execute(&mut **tx)
                    .await?;
            }
            Ok(())
        }

        /// Creates the user and its seller links; `Conflict` when the username is taken.
        pub(super) async fn create_user(pool: &Pool<$db>, new: &NewUser) -> Result<i64, StoreError> {
            let now = Timestamp::now().naive_utc();
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO users (username, password_hash, role, is_active, create_time, update_time) \
                 VALUES (?, ?, ?, ?, ?, ?)",
            )
            .bind(new.username.as_str())
            .bind(&new.password_hash)
            .bind(new.role.as_str())
            .bind(true)
            .bind(now)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            let (id,): (i64,) = sqlx::query_as("SELECT id FROM users WHERE username = ?")
                .bind(new.username.as_str())
                .fetch_one(&mut *tx)
                .await?;
            set_sellers(&mut tx, id, &new.seller_ids).await?;
            tx.commit().await?;
            Ok(id)
        }

        pub(super) async fn get_user(pool: &Pool<$db>, id: i64) -> Result<User, StoreError> {
            let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?");
            let row: UserRow = sqlx::query_as(&sql).bind(id).fetch_one(pool).await?;
            let sellers = sellers_of(pool, id).await?;
            Ok(user(row, sellers))
        }

        /// The user with this name and their password hash, for logging in.
        pub(super) async fn find_login(
            pool: &Pool<$db>,
            username: &str,
        ) -> Result<Option<(User, String)>, StoreError> {
            let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE username = ?");
            let Some(row) = sqlx::query_as::<_, UserRow>(&sql).bind(username).fetch_optional(pool).await? else {
                return Ok(None);
            };
            let (hash,): (Text,) = sqlx::query_as("SELECT password_hash FROM users WHERE id = ?")
                .bind(row.id)
                .fetch_one(pool)
                .await?;
            let sellers = sellers_of(pool, row.id).await?;
            Ok(Some((user(row, sellers), hash.0)))
        }

        pub(super) async fn list_users(pool: &Pool<$db>, page: PageRequest) -> Result<Listed<User>, StoreError> {
            let mut tx = pool.begin().await?;
            let (total,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM users").fetch_one(&mut *tx).await?;
            let sql = format!("SELECT {USER_COLUMNS} FROM users ORDER BY id LIMIT ? OFFSET ?");
            let rows: Vec<UserRow> = sqlx::query_as(&sql)
                .bind(i64::from(page.size))
                .bind(page.offset())
                .fetch_all(&mut *tx)
                .await?;
            let mut items = Vec::with_capacity(rows.len());
            for row in rows {
                let sellers = sellers_of(&mut *tx, row.id).await?;
                items.push(user(row, sellers));
            }
            tx.commit().await?;
            Ok(Listed { items, total: u64::try_from(total).unwrap_or_default() })
        }

        /// Applies `patch`; deactivation also revokes every refresh token of the user, in the
        /// same transaction.
        pub(super) async fn update_user(pool: &Pool<$db>, id: i64, patch: &UserPatch) -> Result<(), StoreError> {
            let now = Timestamp::now().naive_utc();
            let mut tx = pool.begin().await?;
            let lock = format!("SELECT id FROM users WHERE id = ?{}", $lock);
            sqlx::query_as::<_, (i64,)>(&lock).bind(id).fetch_one(&mut *tx).await?;
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
            update.bind(id).execute(&mut *tx).await?;
            if let Some(sellers) = &patch.seller_ids {
                set_sellers(&mut tx, id, sellers).await?;
            }
            if patch.is_active == Some(false) {
                sqlx::query("UPDATE refresh_tokens SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL")
                    .bind(now)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(())
        }

        pub(super) async fn count_users(pool: &Pool<$db>) -> Result<u64, StoreError> {
            let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM users").fetch_one(pool).await?;
            Ok(u64::try_from(n).unwrap_or_default())
        }

        async fn insert_token<'c, E>(executor: E, user_id: i64, token: &NewRefreshToken) -> Result<(), StoreError>
        where
            E: sqlx::Executor<'c, Database = $db>,
        {
            sqlx::query(
                "INSERT INTO refresh_tokens (token_hash, user_id, family_id, expires_at, create_time) \
                 VALUES (?, ?, ?, ?, ?)",
            )
            .bind(&token.token_hash)
            .bind(user_id)
            .bind(&token.family_id)
            .bind(token.expires_at.naive_utc())
            .bind(Timestamp::now().naive_utc())
            .execute(executor)
            .await?;
            Ok(())
        }

        pub(super) async fn insert_refresh_token(
            pool: &Pool<$db>,
            user_id: i64,
            token: &NewRefreshToken,
        ) -> Result<(), StoreError> {
            insert_token(pool, user_id, token).await
        }

        /// Marks the presented token used and stores its successor, atomically: of two
        /// concurrent rotations of one token exactly one finds it unused. A token that was
        /// already used revokes its whole family.
        pub(super) async fn rotate_refresh_token(
            pool: &Pool<$db>,
            presented_hash: &str,
            next_hash: &str,
            expires_at: Timestamp,
        ) -> Result<Rotation, StoreError> {
            let now = Timestamp::now().naive_utc();
            let mut tx = pool.begin().await?;
            let claimed = sqlx::query(
                "UPDATE refresh_tokens SET used_at = ? \
                 WHERE token_hash = ? AND used_at IS NULL AND revoked_at IS NULL AND expires_at > ?",
            )
            .bind(now)
            .bind(presented_hash)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();

            let sql = format!(
                "SELECT t.user_id, t.family_id, t.used_at, u.is_active FROM refresh_tokens t \
                 JOIN users u ON u.id = t.user_id WHERE t.token_hash = ?{}",
                $lock
            );
            let found: Option<(i64, Text, Option<NaiveDateTime>, bool)> =
                sqlx::query_as(&sql).bind(presented_hash).fetch_optional(&mut *tx).await?;
            let outcome = match found {
                Some((user_id, family, _, true)) if claimed == 1 => {
                    let next = NewRefreshToken { token_hash: next_hash.to_owned(), family_id: family.0, expires_at };
                    insert_token(&mut *tx, user_id, &next).await?;
                    Rotation::Rotated { user_id }
                }
                Some((_, family, Some(_), _)) if claimed == 0 => {
                    sqlx::query("UPDATE refresh_tokens SET revoked_at = ? WHERE family_id = ? AND revoked_at IS NULL")
                        .bind(now)
                        .bind(&family.0)
                        .execute(&mut *tx)
                        .await?;
                    Rotation::Reused
                }
                _ => Rotation::Invalid,
            };
            tx.commit().await?;
            Ok(outcome)
        }

        /// Revokes the family of the token with this hash, if there is one.
        pub(super) async fn revoke_refresh_family(pool: &Pool<$db>, token_hash: &str) -> Result<(), StoreError> {
            sqlx::query(
                "UPDATE refresh_tokens SET revoked_at = ? WHERE revoked_at IS NULL AND family_id IN \
                 (SELECT family_id FROM (SELECT family_id FROM refresh_tokens WHERE token_hash = ?) AS f)",
            )
            .bind(Timestamp::now().naive_utc())
            .bind(token_hash)
            .execute(pool)
            .await?;
            Ok(())
        }
    };
}
