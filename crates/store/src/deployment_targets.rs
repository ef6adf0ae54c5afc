//! The deployment_targets table: each server a deployment runs on, with that server's own
//! state and error; which deployment is live on a server; a deployment settled from its
//! servers' outcomes; and a deployment reopened to run again where it failed.

use crate::deployments::record_phase;
use crate::{now_ms, Store, StoreError};
use capstan_core::{AppName, DeploymentState};
use sqlx::Row;

/// One server of a deployment, as it stands there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetRecord {
    pub server: String,
    pub state: DeploymentState,
    pub error: Option<String>,
    pub updated_at: i64,
}

/// Why a deployment cannot run again where it failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReopenRefused {
    #[error("deployment {0} is still running")]
    Running(i64),
    #[error("deployment {0} failed on no server; there is nothing to retry")]
    NothingFailed(i64),
    #[error(
        "deployment {id} was replaced by deployment {later} of the same app; deploy again instead"
    )]
    Replaced { id: i64, later: i64 },
    #[error("deployment {0} never recorded a release (it failed before its image was built); deploy again instead")]
    NoRelease(i64),
}

fn decode(row: &sqlx::sqlite::SqliteRow) -> Result<TargetRecord, StoreError> {
    let state: String = row.try_get("state")?;
    Ok(TargetRecord {
        server: row.try_get("server")?,
        state: state.parse().map_err(StoreError::Corrupt)?,
        error: row.try_get("error")?,
        updated_at: row.try_get("updated_at")?,
    })
}

impl Store {
    /// The servers of a deployment in the app's order, with their states.
    pub async fn targets_of(&self, id: i64) -> Result<Vec<TargetRecord>, StoreError> {
        sqlx::query(
            "SELECT * FROM deployment_targets WHERE deployment_id = ? ORDER BY position, server",
        )
        .bind(id)
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(decode)
        .collect()
    }

    /// Records where a deployment stands on one server (`error` with a failure).
    pub async fn set_target_state(
        &self,
        id: i64,
        server: &str,
        state: DeploymentState,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE deployment_targets SET state = ?, error = ?, updated_at = ?
             WHERE deployment_id = ? AND server = ?",
        )
        .bind(state.as_str())
        .bind(error)
        .bind(now_ms())
        .bind(id)
        .bind(server)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Fails every server of a deployment that has not ended there yet.
    pub async fn fail_open_targets(&self, id: i64, error: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE deployment_targets SET state = 'failed', error = ?, updated_at = ?
             WHERE deployment_id = ? AND state NOT IN ('live', 'superseded', 'failed', 'cancelled')",
        )
        .bind(error)
        .bind(now_ms())
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// A deployment the daemon's stop interrupted, failed as a whole: its servers where it
    /// had not ended fail too, and if it went live on some before the stop it is live
    /// there (the note names the others); the record as it ends.
    pub(crate) async fn settle_interrupted(
        &self,
        record: crate::DeploymentRecord,
    ) -> Result<crate::DeploymentRecord, StoreError> {
        let reason = "interrupted: the daemon stopped while this deployment was running";
        self.fail_open_targets(record.id, reason).await?;
        let targets = self.targets_of(record.id).await?;
        if !targets.iter().any(|t| t.state == DeploymentState::Live) {
            return Ok(record);
        }
        let failed: Vec<&str> = targets
            .iter()
            .filter(|t| t.state == DeploymentState::Failed)
            .map(|t| t.server.as_str())
            .collect();
        let note = format!(
            "failed on {} server(s) (retry runs only those): {}: {reason}",
            failed.len(),
            failed.join(", ")
        );
        self.settle_from_targets(&record.app, record.id, Some(&note))
            .await?;
        self.deployment(record.id).await
    }

    /// The deployment of `app` live on `server`, if any.
    pub async fn live_on(&self, app: &AppName, server: &str) -> Result<Option<i64>, StoreError> {
        let row = sqlx::query(
            "SELECT t.deployment_id FROM deployment_targets t
             JOIN deployments d ON d.id = t.deployment_id
             WHERE d.app = ? AND t.server = ? AND t.state = 'live'
             ORDER BY t.deployment_id DESC LIMIT 1",
        )
        .bind(app.as_str())
        .bind(server)
        .fetch_optional(self.pool())
        .await?;
        Ok(match row {
            Some(row) => Some(row.try_get("deployment_id")?),
            None => None,
        })
    }

    /// The deployments of `app` live on some server, newest first.
    pub async fn live_anywhere(&self, app: &AppName) -> Result<Vec<i64>, StoreError> {
        sqlx::query(
            "SELECT DISTINCT t.deployment_id FROM deployment_targets t
             JOIN deployments d ON d.id = t.deployment_id
             WHERE d.app = ? AND t.state = 'live' ORDER BY t.deployment_id DESC",
        )
        .bind(app.as_str())
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(|row| Ok(row.try_get("deployment_id")?))
        .collect()
    }

    /// Makes `id` the deployment live on `server`, the one live there before superseded
    /// there; the previous one's id.
    pub async fn mark_live_on(
        &self,
        app: &AppName,
        id: i64,
        server: &str,
    ) -> Result<Option<i64>, StoreError> {
        let now = now_ms();
        let mut tx = self.pool().begin_with("BEGIN IMMEDIATE").await?;
        let previous: Option<i64> = sqlx::query(
            "SELECT t.deployment_id FROM deployment_targets t
             JOIN deployments d ON d.id = t.deployment_id
             WHERE d.app = ? AND t.server = ? AND t.state = 'live' AND t.deployment_id != ?
             ORDER BY t.deployment_id DESC LIMIT 1",
        )
        .bind(app.as_str())
        .bind(server)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .map(|row| row.try_get("deployment_id"))
        .transpose()?;
        sqlx::query(
            "UPDATE deployment_targets SET state = 'superseded', updated_at = ?
             WHERE server = ? AND state = 'live' AND deployment_id != ?
               AND deployment_id IN (SELECT id FROM deployments WHERE app = ?)",
        )
        .bind(now)
        .bind(server)
        .bind(id)
        .bind(app.as_str())
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE deployment_targets SET state = 'live', error = NULL, updated_at = ?
             WHERE deployment_id = ? AND server = ?",
        )
        .bind(now)
        .bind(id)
        .bind(server)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(previous)
    }

    /// Ends a deployment that ran on several servers from its servers' states: live (and
    /// the app's live deployment) when it went live on at least one, `error` kept as the
    /// note of those that failed; failed with `error` when it went live nowhere.
    pub async fn settle_from_targets(
        &self,
        app: &AppName,
        id: i64,
        error: Option<&str>,
    ) -> Result<DeploymentState, StoreError> {
        let now = now_ms();
        let mut tx = self.pool().begin_with("BEGIN IMMEDIATE").await?;
        let live: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM deployment_targets WHERE deployment_id = ? AND state = 'live'",
        )
        .bind(id)
        .fetch_one(&mut *tx)
        .await?
        .try_get("n")?;
        let state = if live > 0 {
            DeploymentState::Live
        } else {
            DeploymentState::Failed
        };
        sqlx::query("UPDATE deployments SET state = ?, error = ?, finished_at = ? WHERE id = ?")
            .bind(state.as_str())
            .bind(error)
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        record_phase(&mut tx, id, state, now).await?;
        if state == DeploymentState::Live {
            supersede_live(&mut tx, app, id, now).await?;
        }
        tx.commit().await?;
        Ok(state)
    }

    /// Queues a finished deployment again to run only on the servers where it failed; the
    /// servers it will run on.
    pub async fn reopen_failed(
        &self,
        id: i64,
    ) -> Result<Result<Vec<String>, ReopenRefused>, StoreError> {
        let deployment = self.deployment(id).await?;
        if !deployment.state.is_finished() {
            return Ok(Err(ReopenRefused::Running(id)));
        }
        let later: Option<i64> =
            sqlx::query("SELECT MAX(id) AS later FROM deployments WHERE app = ? AND id > ?")
                .bind(deployment.app.as_str())
                .bind(id)
                .fetch_one(self.pool())
                .await?
                .try_get("later")?;
        if let Some(later) = later {
            return Ok(Err(ReopenRefused::Replaced { id, later }));
        }
        if self.release_of(id).await?.is_none() {
            return Ok(Err(ReopenRefused::NoRelease(id)));
        }
        let failed: Vec<String> = self
            .targets_of(id)
            .await?
            .into_iter()
            .filter(|t| t.state == DeploymentState::Failed)
            .map(|t| t.server)
            .collect();
        if failed.is_empty() {
            return Ok(Err(ReopenRefused::NothingFailed(id)));
        }
        let now = now_ms();
        let mut tx = self.pool().begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query(
            "UPDATE deployment_targets SET state = 'queued', error = NULL, updated_at = ?
             WHERE deployment_id = ? AND state = 'failed'",
        )
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE deployments SET state = 'queued', finished_at = NULL WHERE id = ? AND state = ?",
        )
        .bind(id)
        .bind(deployment.state.as_str())
        .execute(&mut *tx)
        .await?;
        record_phase(&mut tx, id, DeploymentState::Queued, now).await?;
        tx.commit().await?;
        Ok(Ok(failed))
    }
}

/// Makes `id` the app's live deployment, the one live before superseded.
async fn supersede_live(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    app: &AppName,
    id: i64,
    now: i64,
) -> Result<(), StoreError> {
    let previous: Option<i64> = sqlx::query("SELECT live_deployment_id FROM apps WHERE name = ?")
        .bind(app.as_str())
        .fetch_one(&mut **tx)
        .await?
        .try_get("live_deployment_id")?;
    if let Some(old) = previous.filter(|old| *old != id) {
        sqlx::query("UPDATE deployments SET state = 'superseded' WHERE id = ? AND state = 'live'")
            .bind(old)
            .execute(&mut **tx)
            .await?;
        record_phase(tx, old, DeploymentState::Superseded, now).await?;
    }
    sqlx::query("UPDATE apps SET live_deployment_id = ?, updated_at = ? WHERE name = ?")
        .bind(id)
        .bind(now)
        .bind(app.as_str())
        .execute(&mut **tx)
        .await?;
    Ok(())
}
