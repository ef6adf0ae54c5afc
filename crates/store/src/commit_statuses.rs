//! The commit_statuses table: the last commit status reported to the forge (or tried)
//! for each deployment, with the error when it did not go through.

use crate::{now_ms, Store, StoreError};
use sqlx::Row;

/// The last commit status of a deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitStatusRecord {
    pub deployment_id: i64,
    /// `github`, `gitlab`, `gitea` or `bitbucket`.
    pub provider: String,
    pub sha: String,
    /// The state as the forge names it (`pending`, `failed`, `SUCCESSFUL`, ...).
    pub state: String,
    /// Whether the forge accepted it.
    pub delivered: bool,
    pub tries: i64,
    /// Why it did not go through (never holds the token).
    pub error: Option<String>,
    pub updated_at: i64,
}

impl Store {
    /// Records the outcome of reporting a deployment's commit status, replacing the
    /// previous one of that deployment.
    pub async fn record_commit_status(
        &self,
        status: &CommitStatusRecord,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO commit_statuses
                 (deployment_id, provider, sha, state, delivered, tries, error, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT(deployment_id) DO UPDATE SET provider = excluded.provider,
                sha = excluded.sha, state = excluded.state, delivered = excluded.delivered,
                tries = excluded.tries, error = excluded.error, updated_at = excluded.updated_at",
        )
        .bind(status.deployment_id)
        .bind(&status.provider)
        .bind(&status.sha)
        .bind(&status.state)
        .bind(status.delivered)
        .bind(status.tries)
        .bind(&status.error)
        .bind(now_ms())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The last commit status of deployment `id`, if one was reported or tried.
    pub async fn commit_status(&self, id: i64) -> Result<Option<CommitStatusRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM commit_statuses WHERE deployment_id = ?")
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.map(|r| {
            Ok(CommitStatusRecord {
                deployment_id: r.try_get("deployment_id")?,
                provider: r.try_get("provider")?,
                sha: r.try_get("sha")?,
                state: r.try_get("state")?,
                delivered: r.try_get("delivered")?,
                tries: r.try_get("tries")?,
                error: r.try_get("error")?,
                updated_at: r.try_get("updated_at")?,
            })
        })
        .transpose()
    }
}
