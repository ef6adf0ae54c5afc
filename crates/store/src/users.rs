//! Panel accounts and their server-side sessions. The store keeps what it is given: the
//! password's argon2id hash (hashed by the caller) and the SHA-256 of a session's secret.

use crate::tokens::hash_token;
use crate::{now_ms, Store, StoreError};
use sqlx::Row;

/// A stored user, without the password hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub id: i64,
    pub name: String,
    /// `admin`, `deployer` or `viewer`.
    pub role: String,
    pub created_at: i64,
    pub last_login_at: Option<i64>,
}

/// A live session with the user it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub user: UserRecord,
    /// The anti-forgery token every state-changing form of this session carries.
    pub csrf: String,
    pub expires_at: i64,
}

fn user_record(row: &sqlx::sqlite::SqliteRow) -> Result<UserRecord, StoreError> {
    Ok(UserRecord {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        role: row.try_get("role")?,
        created_at: row.try_get("created_at")?,
        last_login_at: row.try_get("last_login_at")?,
    })
}

const USER_COLUMNS: &str = "id, name, role, created_at, last_login_at";

impl Store {
    pub async fn user_count(&self) -> Result<i64, StoreError> {
        let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM users")
            .fetch_one(self.pool())
            .await?
            .try_get("n")?;
        Ok(n)
    }

    /// Adds a user; `Conflict` when the name is taken.
    pub async fn add_user(
        &self,
        name: &str,
        password_hash: &str,
        role: &str,
    ) -> Result<UserRecord, StoreError> {
        let row = sqlx::query(&format!(
            "INSERT INTO users (name, password_hash, role, created_at) VALUES (?, ?, ?, ?) RETURNING {USER_COLUMNS}"
        ))
        .bind(name)
        .bind(password_hash)
        .bind(role)
        .bind(now_ms())
        .fetch_one(self.pool())
        .await
        .map_err(|e| match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                StoreError::Conflict(format!("user {name:?}"))
            }
            _ => StoreError::Db(e),
        })?;
        user_record(&row)
    }

    /// Adds the first user only while there is no user at all (one statement, so two
    /// setups racing cannot both succeed); `None` when a user already exists.
    pub async fn add_first_user(
        &self,
        name: &str,
        password_hash: &str,
        role: &str,
    ) -> Result<Option<UserRecord>, StoreError> {
        let row = sqlx::query(&format!(
            "INSERT INTO users (name, password_hash, role, created_at) \
             SELECT ?, ?, ?, ? WHERE NOT EXISTS (SELECT 1 FROM users) RETURNING {USER_COLUMNS}"
        ))
        .bind(name)
        .bind(password_hash)
        .bind(role)
        .bind(now_ms())
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(user_record).transpose()
    }

    /// The user and their password hash, for signing in.
    pub async fn user_with_hash(
        &self,
        name: &str,
    ) -> Result<Option<(UserRecord, String)>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS}, password_hash FROM users WHERE name = ?"
        ))
        .bind(name)
        .fetch_optional(self.pool())
        .await?;
        row.map(|row| Ok((user_record(&row)?, row.try_get("password_hash")?)))
            .transpose()
    }

    /// Every user, oldest first.
    pub async fn users(&self) -> Result<Vec<UserRecord>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users ORDER BY id"))
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(user_record).collect()
    }

    /// Removes a user and their sessions; false when there was none by that name.
    pub async fn delete_user(&self, name: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM users WHERE name = ?")
            .bind(name)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() > 0)
    }

    pub async fn admin_user_count(&self) -> Result<i64, StoreError> {
        let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM users WHERE role = 'admin'")
            .fetch_one(self.pool())
            .await?
            .try_get("n")?;
        Ok(n)
    }

    /// Starts a session for `user_id` under the secret `token` (only its hash is kept).
    pub async fn add_session(
        &self,
        user_id: i64,
        token: &str,
        csrf: &str,
        lifetime_ms: i64,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        sqlx::query(
            "INSERT INTO sessions (token_hash, user_id, csrf, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(hash_token(token))
        .bind(user_id)
        .bind(csrf)
        .bind(now)
        .bind(now + lifetime_ms)
        .execute(self.pool())
        .await?;
        sqlx::query("UPDATE users SET last_login_at = ? WHERE id = ?")
            .bind(now)
            .bind(user_id)
            .execute(self.pool())
            .await?;
        // Expired sessions of anyone are dropped here, so the table never grows unbounded.
        sqlx::query("DELETE FROM sessions WHERE expires_at < ?")
            .bind(now)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// The live session behind a cookie's secret, or `None` when unknown or expired.
    pub async fn session(&self, token: &str) -> Result<Option<SessionRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT u.id, u.name, u.role, u.created_at, u.last_login_at, s.csrf, s.expires_at \
             FROM sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.token_hash = ? AND s.expires_at > ?",
        )
        .bind(hash_token(token))
        .bind(now_ms())
        .fetch_optional(self.pool())
        .await?;
        row.map(|row| {
            Ok(SessionRecord {
                user: user_record(&row)?,
                csrf: row.try_get("csrf")?,
                expires_at: row.try_get("expires_at")?,
            })
        })
        .transpose()
    }

    /// Ends a session (logout).
    pub async fn delete_session(&self, token: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM sessions WHERE token_hash = ?")
            .bind(hash_token(token))
            .execute(self.pool())
            .await?;
        Ok(())
    }
}
