//! API tokens, stored only as SHA-256 hashes.

use crate::{now_ms, Store, StoreError};
use sha2::{Digest, Sha256};
use sqlx::Row;

/// The stored form of a token. Tokens are 256-bit random strings, so a plain SHA-256 is
/// enough (no password stretching needed), and lookups by hash leak nothing usable.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
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

    /// The scopes of a presented token, or `None` when it is unknown.
    pub async fn token_scopes(&self, token: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT scopes FROM api_tokens WHERE token_hash = ?")
            .bind(hash_token(token))
            .fetch_optional(self.pool())
            .await?;
        row.map(|r| r.try_get("scopes"))
            .transpose()
            .map_err(Into::into)
    }

    pub async fn token_count(&self) -> Result<i64, StoreError> {
        let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM api_tokens")
            .fetch_one(self.pool())
            .await?
            .try_get("n")?;
        Ok(n)
    }
}
