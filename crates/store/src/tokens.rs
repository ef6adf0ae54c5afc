//! API tokens, stored only as SHA-256 hashes.

use crate::{now_ms, Store, StoreError};
use sha2::{Digest, Sha256};
use sqlx::Row;

/// The stored form of a token. Tokens are 256-bit random strings, so a plain SHA-256 is
/// enough (no password stretching needed), and lookups by hash leak nothing usable.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A stored token, without its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    pub id: i64,
    pub name: String,
    /// As stored: `read,deploy`.
    pub scopes: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

fn token_record(row: &sqlx::sqlite::SqliteRow) -> Result<TokenRecord, StoreError> {
    Ok(TokenRecord {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        scopes: row.try_get("scopes")?,
        created_at: row.try_get("created_at")?,
        last_used_at: row.try_get("last_used_at")?,
    })
}

/// A new token: `cap_` and 256 random bits, URL-safe.
pub fn new_token() -> String {
    use base64::Engine as _;
    let mut bytes = [0u8; 32];
    rand::Rng::fill(&mut rand::rngs::OsRng, &mut bytes);
    format!(
        "cap_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

impl Store {
    pub async fn add_token(
        &self,
        name: &str,
        token: &str,
        scopes: &str,
    ) -> Result<i64, StoreError> {
        let id: i64 = sqlx::query(
            "INSERT INTO api_tokens (name, token_hash, scopes, created_at) VALUES (?, ?, ?, ?) RETURNING id",
        )
        .bind(name)
        .bind(hash_token(token))
        .bind(scopes)
        .bind(now_ms())
        .fetch_one(self.pool())
        .await?
        .try_get("id")?;
        Ok(id)
    }

    /// The record of a presented token, or `None` when it is unknown. Marks it used (at
    /// most once a minute, so reads do not each cost a write).
    pub async fn token_by_secret(&self, token: &str) -> Result<Option<TokenRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT id, name, scopes, created_at, last_used_at FROM api_tokens WHERE token_hash = ?",
        )
        .bind(hash_token(token))
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let record = token_record(&row)?;
        let now = now_ms();
        sqlx::query(
            "UPDATE api_tokens SET last_used_at = ? WHERE id = ? AND (last_used_at IS NULL OR last_used_at < ?)",
        )
        .bind(now)
        .bind(record.id)
        .bind(now - 60_000)
        .execute(self.pool())
        .await?;
        Ok(Some(record))
    }

    /// Every token, oldest first (never the secret: only its hash is stored).
    pub async fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, name, scopes, created_at, last_used_at FROM api_tokens ORDER BY id",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(token_record).collect()
    }

    /// Removes a token; false when there was none with that id.
    pub async fn delete_token(&self, id: i64) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM api_tokens WHERE id = ?")
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() > 0)
    }

    pub async fn token_count(&self) -> Result<i64, StoreError> {
        let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM api_tokens")
            .fetch_one(self.pool())
            .await?
            .try_get("n")?;
        Ok(n)
    }
}
