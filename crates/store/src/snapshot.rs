//! Consistent copies of the database for backups (`VACUUM INTO`, which reads one
//! snapshot while the daemon keeps writing) and the schema version a copy carries.

use crate::{Store, StoreError};
use sqlx::migrate::Migrator;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection, Row};
use std::path::Path;
use std::str::FromStr;

pub(crate) static MIGRATOR: Migrator = sqlx::migrate!("../../migrations");

/// The newest schema version (migration) this build knows.
pub fn known_schema_version() -> i64 {
    MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
}

impl Store {
    /// Writes a consistent copy of the database to `out` (which must not exist); returns
    /// its schema version.
    pub async fn snapshot_into(&self, out: &Path) -> Result<i64, StoreError> {
        sqlx::query("VACUUM INTO ?")
            .bind(out.to_string_lossy().as_ref())
            .execute(self.pool())
            .await?;
        schema_version_of(out).await
    }
}

/// Copies the database file `db` (in use by a running daemon or not) to `out`.
pub async fn snapshot_file(db: &Path, out: &Path) -> Result<i64, StoreError> {
    let mut conn = SqliteConnectOptions::from_str(&format!("sqlite://{}", db.display()))?
        .read_only(true)
        .busy_timeout(std::time::Duration::from_secs(10))
        .connect()
        .await?;
    sqlx::query("VACUUM INTO ?")
        .bind(out.to_string_lossy().as_ref())
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    schema_version_of(out).await
}

/// The newest migration applied to the database file `db`.
pub async fn schema_version_of(db: &Path) -> Result<i64, StoreError> {
    let mut conn = SqliteConnectOptions::from_str(&format!("sqlite://{}", db.display()))?
        .read_only(true)
        .connect()
        .await?;
    let row =
        sqlx::query("SELECT COALESCE(MAX(version), 0) AS v FROM _sqlx_migrations WHERE success")
            .fetch_one(&mut conn)
            .await?;
    let version: i64 = row.try_get("v")?;
    conn.close().await?;
    Ok(version)
}
