//! Secrets at rest: AES-256-GCM with a random 96-bit nonce per write and the app and name
//! as associated data. The key lives in its own 0600 file, never in the database, so a
//! copy of `capstan.db` alone reveals no secret.

use crate::{now_ms, Store, StoreError};
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use capstan_core::AppName;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use sqlx::Row;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// The key secrets are encrypted with. Its `Debug` never shows the key. Other uses of the
/// instance's key material get keys derived from it for their own purpose
/// ([`SecretKey::derive`]), never the encryption key itself.
#[derive(Clone)]
pub struct SecretKey {
    cipher: Aes256Gcm,
    /// HMAC-SHA256 keyed with the key file's bytes: derives per-purpose keys.
    deriver: Hmac<Sha256>,
}

/// A key derived from the instance's secret key for one purpose (HMAC-SHA256 of the
/// purpose under the key file's bytes): knowing it reveals neither the encryption key nor
/// another purpose's key. Its `Debug` never shows it.
#[derive(Clone)]
pub struct DerivedKey([u8; 32]);

impl std::fmt::Debug for DerivedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DerivedKey(..)")
    }
}

impl DerivedKey {
    /// HMAC-SHA256 of `parts` under this key, each part length-prefixed so that no two
    /// different lists of parts give the same message.
    pub fn digest(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC takes a key of any length");
        for part in parts {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

impl SecretKey {
    /// Reads the key file, or creates it (32 random bytes, mode 0600) when it is missing.
    /// A key file readable by others is refused rather than used.
    pub fn load_or_create(path: &Path) -> Result<SecretKey, StoreError> {
        let key_error = |what: String| StoreError::SecretKey(format!("{}: {what}", path.display()));
        if !path.exists() {
            let mut bytes = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut bytes);
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| key_error(format!("cannot create: {e}")))?;
            file.write_all(&bytes)
                .and_then(|()| file.sync_all())
                .map_err(|e| key_error(format!("cannot write: {e}")))?;
        }
        let meta = std::fs::metadata(path).map_err(|e| key_error(e.to_string()))?;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(key_error(
                "is readable by group or others; chmod 600 it".into(),
            ));
        }
        let bytes = std::fs::read(path).map_err(|e| key_error(e.to_string()))?;
        let cipher = Aes256Gcm::new_from_slice(&bytes)
            .map_err(|_| key_error(format!("must hold 32 bytes, holds {}", bytes.len())))?;
        let deriver = <Hmac<Sha256> as Mac>::new_from_slice(&bytes)
            .map_err(|_| key_error("cannot key HMAC with it".into()))?;
        Ok(SecretKey { cipher, deriver })
    }

    /// The key for `purpose` (a fixed label such as `"build-secret-stamp"`).
    pub fn derive(&self, purpose: &str) -> DerivedKey {
        let mut mac = self.deriver.clone();
        mac.update(b"capstan derived key\0");
        mac.update(purpose.as_bytes());
        DerivedKey(mac.finalize().into_bytes().into())
    }

    pub(crate) fn seal(&self, aad: &[u8], plain: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let sealed = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: plain, aad })
            .expect("AES-GCM encryption of an in-memory buffer cannot fail");
        (nonce.to_vec(), sealed)
    }

    pub(crate) fn open(&self, aad: &[u8], nonce: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        if nonce.len() != 12 {
            return None;
        }
        self.cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: sealed, aad })
            .ok()
    }
}

fn aad(app: &AppName, name: &str) -> Vec<u8> {
    format!("capstan-secret\0{app}\0{name}").into_bytes()
}

/// A secret's metadata: what the API lists (never the value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretInfo {
    pub name: String,
    pub build: bool,
    pub updated_at: i64,
}

/// A decrypted secret, for the deployment that injects it. `Debug` hides the value.
#[derive(Clone)]
pub struct SecretValue {
    pub name: String,
    pub value: String,
    pub build: bool,
}

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretValue({}, ****)", self.name)
    }
}

impl Store {
    /// Creates or replaces a secret.
    pub async fn set_secret(
        &self,
        key: &SecretKey,
        app: &AppName,
        name: &str,
        value: &str,
        build: bool,
    ) -> Result<(), StoreError> {
        let (nonce, sealed) = key.seal(&aad(app, name), value.as_bytes());
        sqlx::query(
            "INSERT INTO secrets (app, name, nonce, ciphertext, build, updated_at)
             VALUES (?, ?, ?, ?, ?, ?)
             ON CONFLICT(app, name) DO UPDATE SET nonce = excluded.nonce,
                ciphertext = excluded.ciphertext, build = excluded.build,
                updated_at = excluded.updated_at",
        )
        .bind(app.as_str())
        .bind(name)
        .bind(nonce)
        .bind(sealed)
        .bind(build)
        .bind(now_ms())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn delete_secret(&self, app: &AppName, name: &str) -> Result<(), StoreError> {
        let done = sqlx::query("DELETE FROM secrets WHERE app = ? AND name = ?")
            .bind(app.as_str())
            .bind(name)
            .execute(self.pool())
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("secret {name} of app {app}")));
        }
        Ok(())
    }

    /// The app's secrets without their values, sorted by name.
    pub async fn secret_infos(&self, app: &AppName) -> Result<Vec<SecretInfo>, StoreError> {
        let rows =
            sqlx::query("SELECT name, build, updated_at FROM secrets WHERE app = ? ORDER BY name")
                .bind(app.as_str())
                .fetch_all(self.pool())
                .await?;
        rows.iter()
            .map(|r| {
                Ok(SecretInfo {
                    name: r.try_get("name")?,
                    build: r.try_get("build")?,
                    updated_at: r.try_get("updated_at")?,
                })
            })
            .collect()
    }

    /// The app's secrets, decrypted. A row that does not decrypt (another key, or moved
    /// between rows) is an error, never silently skipped.
    pub async fn secret_values(
        &self,
        key: &SecretKey,
        app: &AppName,
    ) -> Result<Vec<SecretValue>, StoreError> {
        let rows = sqlx::query(
            "SELECT name, nonce, ciphertext, build FROM secrets WHERE app = ? ORDER BY name",
        )
        .bind(app.as_str())
        .fetch_all(self.pool())
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let name: String = row.try_get("name")?;
            let nonce: Vec<u8> = row.try_get("nonce")?;
            let sealed: Vec<u8> = row.try_get("ciphertext")?;
            let plain = key
                .open(&aad(app, &name), &nonce, &sealed)
                .and_then(|p| String::from_utf8(p).ok())
                .ok_or_else(|| {
                    StoreError::SecretKey(format!(
                        "secret {name} of app {app} does not decrypt with this key"
                    ))
                })?;
            out.push(SecretValue {
                name,
                value: plain,
                build: row.try_get("build")?,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_in(dir: &tempfile::TempDir) -> SecretKey {
        SecretKey::load_or_create(&dir.path().join("secret.key")).unwrap()
    }

    #[test]
    fn derived_keys_belong_to_one_instance_and_one_purpose() {
        let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (a, b) = (key_in(&one), key_in(&two));
        let message: &[&[u8]] = &[b"app", b"value"];
        let digest = a.derive("stamp").digest(message);
        // The same key file gives the same key; another instance's or purpose's differs.
        assert_eq!(key_in(&one).derive("stamp").digest(message), digest);
        assert_ne!(b.derive("stamp").digest(message), digest);
        assert_ne!(a.derive("other").digest(message), digest);
        // Parts are length-prefixed: moving a boundary changes the digest.
        assert_ne!(a.derive("stamp").digest(&[b"ap", b"pvalue"]), digest);
        assert_eq!(format!("{:?}", a.derive("stamp")), "DerivedKey(..)");
    }
}
