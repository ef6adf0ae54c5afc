//! The servers table: each server's settings, the public half of its key pair in clear
//! and the private half encrypted like secrets (AES-256-GCM under the instance's key, the
//! server's name as associated data). `local` is created by the migration and never
//! removed here.

use crate::{now_ms, SecretKey, Store, StoreError};
use capstan_core::{ServerKind, ServerName, ServerSpec};
use sqlx::Row;

/// A server as stored, without its private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerRecord {
    pub spec: ServerSpec,
    /// The OpenSSH public key line Capstan logs in with (`None` for `local`).
    pub public_key: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A server's private key in OpenSSH form, decrypted. Its `Debug` never shows it.
#[derive(Clone)]
pub struct ServerPrivateKey(String);

impl ServerPrivateKey {
    pub fn new(openssh: String) -> Self {
        Self(openssh)
    }

    /// The key in OpenSSH form (`-----BEGIN OPENSSH PRIVATE KEY-----`).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ServerPrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerPrivateKey(..)")
    }
}

fn aad(name: &ServerName) -> Vec<u8> {
    format!("capstan-server-key\0{name}").into_bytes()
}

fn corrupt(name: &str, what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("server {name}: {what}"))
}

fn decode(row: &sqlx::sqlite::SqliteRow) -> Result<ServerRecord, StoreError> {
    let name: String = row.try_get("name")?;
    let kind: String = row.try_get("kind")?;
    let labels: String = row.try_get("labels")?;
    let port = |column: &str| -> Result<Option<u16>, StoreError> {
        let value: Option<i64> = row.try_get(column)?;
        value
            .map(|v| u16::try_from(v).map_err(|_| corrupt(&name, format!("{column} {v}"))))
            .transpose()
    };
    let build_slots: Option<i64> = row.try_get("build_slots")?;
    let spec = ServerSpec {
        name: ServerName::parse(&name).map_err(|e| corrupt(&name, e))?,
        kind: ServerKind::parse(&kind).map_err(|e| corrupt(&name, e))?,
        host: row.try_get("host")?,
        port: port("port")?.unwrap_or(22),
        user: row.try_get("user")?,
        host_key_fingerprint: row.try_get("host_key_fingerprint")?,
        build_slots: build_slots
            .map(|v| u32::try_from(v).map_err(|_| corrupt(&name, "build_slots")))
            .transpose()?,
        proxy_http_port: port("proxy_http_port")?,
        proxy_https_port: port("proxy_https_port")?,
        namespace: row.try_get("namespace")?,
        docker_socket: row.try_get("docker_socket")?,
        labels: serde_json::from_str(&labels).map_err(|e| corrupt(&name, e))?,
    };
    Ok(ServerRecord {
        spec,
        public_key: row.try_get("public_key")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

impl Store {
    /// Adds a server with its key pair; the private key is stored encrypted under `key`.
    /// A server of that name already there is a conflict.
    pub async fn create_server(
        &self,
        key: &SecretKey,
        spec: &ServerSpec,
        public_key: &str,
        private_key: &ServerPrivateKey,
    ) -> Result<ServerRecord, StoreError> {
        let (nonce, sealed) = key.seal(&aad(&spec.name), private_key.expose().as_bytes());
        let labels =
            serde_json::to_string(&spec.labels).map_err(|e| corrupt(spec.name.as_str(), e))?;
        let now = now_ms();
        let result = sqlx::query(
            "INSERT INTO servers (name, kind, host, port, user, host_key_fingerprint, build_slots,
                proxy_http_port, proxy_https_port, namespace, docker_socket, labels, public_key,
                key_nonce, key_ciphertext, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(spec.name.as_str())
        .bind(spec.kind.as_str())
        .bind(&spec.host)
        .bind(i64::from(spec.port))
        .bind(&spec.user)
        .bind(&spec.host_key_fingerprint)
        .bind(spec.build_slots.map(i64::from))
        .bind(spec.proxy_http_port.map(i64::from))
        .bind(spec.proxy_https_port.map(i64::from))
        .bind(&spec.namespace)
        .bind(&spec.docker_socket)
        .bind(labels)
        .bind(public_key)
        .bind(nonce)
        .bind(sealed)
        .bind(now)
        .bind(now)
        .execute(self.pool())
        .await;
        match result {
            Ok(_) => self.server(&spec.name).await,
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                Err(StoreError::Conflict(format!("server {}", spec.name)))
            }
            Err(e) => Err(e.into()),
        }
    }

    pub async fn server(&self, name: &ServerName) -> Result<ServerRecord, StoreError> {
        let row = sqlx::query("SELECT * FROM servers WHERE name = ?")
            .bind(name.as_str())
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("server {name}")))?;
        decode(&row)
    }

    /// Every server, `local` first, then by name.
    pub async fn servers(&self) -> Result<Vec<ServerRecord>, StoreError> {
        let rows = sqlx::query("SELECT * FROM servers ORDER BY kind != 'local', name")
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(decode).collect()
    }

    /// The server's private key, decrypted (`None` for a server without one: `local`).
    /// A key that does not decrypt (another instance's key file) is an error.
    pub async fn server_private_key(
        &self,
        key: &SecretKey,
        name: &ServerName,
    ) -> Result<Option<ServerPrivateKey>, StoreError> {
        let row = sqlx::query("SELECT key_nonce, key_ciphertext FROM servers WHERE name = ?")
            .bind(name.as_str())
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("server {name}")))?;
        let nonce: Option<Vec<u8>> = row.try_get("key_nonce")?;
        let sealed: Option<Vec<u8>> = row.try_get("key_ciphertext")?;
        let (Some(nonce), Some(sealed)) = (nonce, sealed) else {
            return Ok(None);
        };
        key.open(&aad(name), &nonce, &sealed)
            .and_then(|plain| String::from_utf8(plain).ok())
            .map(|plain| Some(ServerPrivateKey(plain)))
            .ok_or_else(|| {
                StoreError::SecretKey(format!(
                    "the key of server {name} does not decrypt with this key"
                ))
            })
    }

    /// Pins the host key a server must present (its key pair stays, so the line already
    /// in its `authorized_keys` keeps working). `local` has none (not found here).
    pub async fn set_host_key_fingerprint(
        &self,
        name: &ServerName,
        fingerprint: &str,
    ) -> Result<ServerRecord, StoreError> {
        let done = sqlx::query(
            "UPDATE servers SET host_key_fingerprint = ?, updated_at = ? WHERE name = ? AND kind != 'local'",
        )
        .bind(fingerprint)
        .bind(now_ms())
        .bind(name.as_str())
        .execute(self.pool())
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("server {name}")));
        }
        self.server(name).await
    }

    /// Removes a server and its key pair. `local` is never removed (not found here).
    pub async fn delete_server(&self, name: &ServerName) -> Result<(), StoreError> {
        let done = sqlx::query("DELETE FROM servers WHERE name = ? AND kind != 'local'")
            .bind(name.as_str())
            .execute(self.pool())
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("server {name}")));
        }
        Ok(())
    }
}
