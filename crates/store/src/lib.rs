//! Capstan's state in SQLite (WAL): apps, deployments (which double as the queue),
//! per-phase timestamps, log lines, releases, one-off runs with their output, encrypted secrets, the image registry (its password encrypted), servers (with their key pairs, the private half encrypted), hashed API tokens, panel users with their sessions, and forge webhooks (each app's secret encrypted, the deliveries seen for 7 days). Only this crate
//! speaks SQL.

mod apps;
mod commit_statuses;
mod deployment_targets;
mod deployments;
mod events;
pub mod fixtures;
mod logs;
mod maintenance;
mod notifications;
mod queue_policy;
mod registry;
mod releases;
mod runs;
mod secrets;
mod servers;
pub mod snapshot;
pub mod stored_spec;
mod tokens;
mod users;
mod webhooks;
pub use events::AppEvent;
pub use tokens::{hash_token, new_token, TokenRecord};
pub use users::{SessionRecord, UserRecord};

pub use apps::AppRecord;
pub use commit_statuses::CommitStatusRecord;
pub use deployment_targets::{ReopenRefused, TargetRecord};
pub use deployments::{DeploymentRecord, NewDeployment, Phase};
pub use logs::LogLine;
pub use maintenance::MaintenanceRecord;
pub use notifications::{Attempt, ChannelRecord, NewChannel, OutboxRecord};
pub use queue_policy::{Enqueued, RateLimit, RateLimited, RATE_WINDOW_MS};
pub use registry::{RegistryCredentials, RegistryRecord};
pub use releases::{NewRelease, ReleaseRecord};
pub use runs::{NewRun, RunLine, RunRecord, RunState, MAX_RUN_LINES};
pub use secrets::{DerivedKey, SecretInfo, SecretKey, SecretValue};
pub use servers::{ServerPrivateKey, ServerRecord};
pub use webhooks::DELIVERY_MEMORY_MS;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

/// A failure of the state store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} already exists")]
    Conflict(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("illegal state change {from} -> {to} for deployment {id}")]
    IllegalTransition { id: i64, from: String, to: String },
    #[error("secret key: {0}")]
    SecretKey(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl StoreError {
    /// Whether the database is busy, locked or unreadable right now (the environment's
    /// fault, worth retrying), as opposed to a bad request or a bug.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            StoreError::Db(
                sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_)
            )
        )
    }
}

/// The handle every other layer uses.
#[derive(Clone)]
pub struct Store {
    pool: SqlitePool,
}

impl Store {
    /// Opens (creating if needed) the database file and applies pending migrations.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let url = format!("sqlite://{}", path.display());
        let options = SqliteConnectOptions::from_str(&url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            // 1 MiB of page cache per connection instead of 2: the OS caches the file
            // anyway, and the daemon's memory stays small with a long history.
            .pragma("cache_size", "-1024");
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        snapshot::MIGRATOR.run(&pool).await?;
        Ok(Self { pool })
    }

    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

/// Now, in unix milliseconds.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
