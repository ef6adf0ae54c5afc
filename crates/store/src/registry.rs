//! The instance's image registry (at most one): its URL and username in clear, its
//! password encrypted like secrets (AES-256-GCM under the instance's key, the URL and
//! username as associated data, so a row edited to name another registry no longer
//! decrypts). Only [`Store::registry_credentials`] returns the password.

use crate::{now_ms, SecretKey, Store, StoreError};
use sqlx::Row;

/// The registry as the API shows it: never the password, only that one is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryRecord {
    pub url: String,
    pub username: String,
    pub password_set: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

/// The registry with its password decrypted, for moving an image through it. Its `Debug`
/// never shows the password.
#[derive(Clone)]
pub struct RegistryCredentials {
    pub url: String,
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for RegistryCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryCredentials")
            .field("url", &self.url)
            .field("username", &self.username)
            .field("password", &"****")
            .finish()
    }
}

fn aad(url: &str, username: &str) -> Vec<u8> {
    format!("capstan-registry\0{url}\0{username}").into_bytes()
}

impl Store {
    /// Sets the registry, replacing the one there (its creation time stays).
    pub async fn set_registry(
        &self,
        key: &SecretKey,
        url: &str,
        username: &str,
        password: &str,
    ) -> Result<RegistryRecord, StoreError> {
        let (nonce, sealed) = key.seal(&aad(url, username), password.as_bytes());
        let now = now_ms();
        sqlx::query(
            "INSERT INTO registry (id, url, username, pw_nonce, pw_sealed, created_at, updated_at)
             VALUES (1, ?, ?, ?, ?, ?, ?)
             ON CONFLICT(id) DO UPDATE SET url = excluded.url, username = excluded.username,
                pw_nonce = excluded.pw_nonce, pw_sealed = excluded.pw_sealed,
                updated_at = excluded.updated_at",
        )
        .bind(url)
        .bind(username)
        .bind(nonce)
        .bind(sealed)
        .bind(now)
        .bind(now)
        .execute(self.pool())
        .await?;
        self.registry()
            .await?
            .ok_or_else(|| StoreError::Corrupt("the registry vanished as it was set".into()))
    }

    /// The registry, if one is set (without its password).
    pub async fn registry(&self) -> Result<Option<RegistryRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT url, username, length(pw_sealed) > 0 AS password_set, created_at, updated_at
             FROM registry WHERE id = 1",
        )
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| {
            Ok(RegistryRecord {
                url: r.try_get("url")?,
                username: r.try_get("username")?,
                password_set: r.try_get("password_set")?,
                created_at: r.try_get("created_at")?,
                updated_at: r.try_get("updated_at")?,
            })
        })
        .transpose()
    }

    /// The registry with its password decrypted, if one is set. A password that does not
    /// decrypt (another instance's key, or an edited row) is an error.
    pub async fn registry_credentials(
        &self,
        key: &SecretKey,
    ) -> Result<Option<RegistryCredentials>, StoreError> {
        let Some(row) =
            sqlx::query("SELECT url, username, pw_nonce, pw_sealed FROM registry WHERE id = 1")
                .fetch_optional(self.pool())
                .await?
        else {
            return Ok(None);
        };
        let url: String = row.try_get("url")?;
        let username: String = row.try_get("username")?;
        let nonce: Vec<u8> = row.try_get("pw_nonce")?;
        let sealed: Vec<u8> = row.try_get("pw_sealed")?;
        let password = key
            .open(&aad(&url, &username), &nonce, &sealed)
            .and_then(|plain| String::from_utf8(plain).ok())
            .ok_or_else(|| {
                StoreError::SecretKey(format!(
                    "the password of registry {url} does not decrypt with this key"
                ))
            })?;
        Ok(Some(RegistryCredentials {
            url,
            username,
            password,
        }))
    }

    /// Removes the registry (not found when none is set).
    pub async fn delete_registry(&self) -> Result<(), StoreError> {
        let done = sqlx::query("DELETE FROM registry WHERE id = 1")
            .execute(self.pool())
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("registry".into()));
        }
        Ok(())
    }
}
