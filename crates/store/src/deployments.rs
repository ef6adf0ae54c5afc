//! The deployments table: creation, the queue (claiming), state changes with their
//! timestamps, and crash recovery.

use crate::{now_ms, Store, StoreError};
use capstan_core::{AppName, DeploymentState, Trigger};
use sqlx::Row;

#[derive(Debug, Clone)]
pub struct DeploymentRecord {
    pub id: i64,
    pub app: AppName,
    pub server: String,
    pub environment: String,
    pub trigger: Trigger,
    pub state: DeploymentState,
    pub git_ref: Option<String>,
    pub commit_sha: Option<String>,
    /// The commit's subject line, when known.
    pub commit_message: Option<String>,
    pub image: Option<String>,
    pub from_release: Option<i64>,
    /// A clean build was asked for: no image reuse, no layer cache.
    pub no_cache: bool,
    pub error: Option<String>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    /// Who asked for it (`token:<name>`); `None` for deployments older than the column.
    pub actor: Option<String>,
}

/// When a deployment entered a state.
#[derive(Debug, Clone)]
pub struct Phase {
    pub state: DeploymentState,
    pub at: i64,
}

/// What is needed to queue a deployment.
pub struct NewDeployment<'a> {
    pub app: &'a AppName,
    pub trigger: Trigger,
    pub git_ref: Option<&'a str>,
    pub from_release: Option<i64>,
    pub no_cache: bool,
    pub actor: &'a str,
    /// The servers the deployment runs on, in the app's order (the first builds).
    pub servers: &'a [&'a str],
}

const IN_PROGRESS: &str = "('preparing','building','starting','health_checking','switching')";

pub(crate) fn decode(row: &sqlx::sqlite::SqliteRow) -> Result<DeploymentRecord, StoreError> {
    let corrupt = |e: String| StoreError::Corrupt(e);
    let app: String = row.try_get("app")?;
    let trigger: String = row.try_get("trigger")?;
    let state: String = row.try_get("state")?;
    Ok(DeploymentRecord {
        id: row.try_get("id")?,
        app: AppName::parse(&app).map_err(|e| corrupt(e.to_string()))?,
        server: row.try_get("server")?,
        environment: row.try_get("environment")?,
        trigger: trigger.parse().map_err(corrupt)?,
        state: state.parse().map_err(corrupt)?,
        git_ref: row.try_get("git_ref")?,
        commit_sha: row.try_get("commit_sha")?,
        commit_message: row.try_get("commit_message")?,
        image: row.try_get("image")?,
        from_release: row.try_get("from_release")?,
        no_cache: row.try_get::<i64, _>("no_cache")? != 0,
        error: row.try_get("error")?,
        created_at: row.try_get("created_at")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
        actor: row.try_get("actor")?,
    })
}

/// Records when a deployment entered `state`, inside the transaction that moved it there.
pub(crate) async fn record_phase(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    id: i64,
    state: DeploymentState,
    at: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT OR REPLACE INTO deployment_phases (deployment_id, state, at) VALUES (?, ?, ?)",
    )
    .bind(id)
    .bind(state.as_str())
    .bind(at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Store {
    /// How many deployments there are of each state and trigger.
    pub async fn deployment_counts(&self) -> Result<Vec<(String, String, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT state, trigger, COUNT(*) AS n FROM deployments GROUP BY state, trigger",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("state")?, r.try_get("trigger")?, r.try_get("n")?)))
            .collect()
    }

    /// How many deployments wait in the queue and how many run now.
    pub async fn queue_depth(&self) -> Result<(i64, i64), StoreError> {
        let row = sqlx::query(&format!(
            "SELECT COALESCE(SUM(state = 'queued'), 0) AS queued, \
                    COALESCE(SUM(state IN {IN_PROGRESS}), 0) AS running FROM deployments"
        ))
        .fetch_one(self.pool())
        .await?;
        Ok((row.try_get("queued")?, row.try_get("running")?))
    }

    /// Queues a deployment and records its `queued` phase, with no queue policy (older
    /// queued deployments stay, nothing is counted against a limit): see
    /// [`Store::enqueue_with`] for the daemon's own queueing.
    pub async fn enqueue(&self, new: NewDeployment<'_>) -> Result<DeploymentRecord, StoreError> {
        let now = now_ms();
        let mut tx = self.pool().begin_with("BEGIN IMMEDIATE").await?;
        let id = crate::queue_policy::insert_queued(&mut tx, &new, now, false).await?;
        tx.commit().await?;
        self.deployment(id).await
    }

    pub async fn deployment(&self, id: i64) -> Result<DeploymentRecord, StoreError> {
        let row = sqlx::query("SELECT * FROM deployments WHERE id = ?")
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("deployment {id}")))?;
        decode(&row)
    }

    /// An app's deployments, newest first.
    pub async fn deployments_of(
        &self,
        app: &AppName,
        limit: i64,
    ) -> Result<Vec<DeploymentRecord>, StoreError> {
        let rows = sqlx::query("SELECT * FROM deployments WHERE app = ? ORDER BY id DESC LIMIT ?")
            .bind(app.as_str())
            .bind(limit)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(decode).collect()
    }

    /// The newest deployment of each of `apps`, in one query (for the panel's dashboard):
    /// one index seek per app (deployments_by_app), not a scan of every deployment.
    pub async fn latest_deployments(
        &self,
        apps: &[&AppName],
    ) -> Result<Vec<DeploymentRecord>, StoreError> {
        if apps.is_empty() {
            return Ok(Vec::new());
        }
        let marks = vec!["?"; apps.len()].join(",");
        let sql = format!(
            "SELECT d.* FROM apps a \
             JOIN deployments d ON d.id = (SELECT MAX(id) FROM deployments WHERE app = a.name) \
             WHERE a.name IN ({marks})"
        );
        let mut query = sqlx::query(&sql);
        for app in apps {
            query = query.bind(app.as_str());
        }
        let rows = query.fetch_all(self.pool()).await?;
        rows.iter().map(decode).collect()
    }

    /// The deployments with these ids, in one query.
    pub async fn deployments_by_id(
        &self,
        ids: &[i64],
    ) -> Result<Vec<DeploymentRecord>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let list = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
        let rows = sqlx::query(&format!("SELECT * FROM deployments WHERE id IN ({list})"))
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(decode).collect()
    }

    pub async fn phases(&self, id: i64) -> Result<Vec<Phase>, StoreError> {
        let rows = sqlx::query(
            "SELECT state, at FROM deployment_phases WHERE deployment_id = ? ORDER BY at, rowid",
        )
        .bind(id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                let state: String = r.try_get("state")?;
                Ok(Phase {
                    state: state.parse().map_err(StoreError::Corrupt)?,
                    at: r.try_get("at")?,
                })
            })
            .collect()
    }

    /// Claims the oldest queued deployment whose app has nothing in progress, moving it to
    /// `preparing` in the same statement so two workers never claim the same row.
    pub async fn claim_next(&self) -> Result<Option<DeploymentRecord>, StoreError> {
        let now = now_ms();
        let sql = format!(
            "UPDATE deployments SET state = 'preparing', started_at = ?
             WHERE id = (
                SELECT d.id FROM deployments d
                WHERE d.state = 'queued'
                  AND NOT EXISTS (SELECT 1 FROM deployments r WHERE r.app = d.app AND r.state IN {IN_PROGRESS})
                ORDER BY d.id LIMIT 1)
             RETURNING *"
        );
        // The state and its phase row in one transaction: a reader never sees a state
        // without its phase (the panel follows the phases by the state).
        let mut tx = self.pool().begin_with("BEGIN IMMEDIATE").await?;
        let Some(row) = sqlx::query(&sql).bind(now).fetch_optional(&mut *tx).await? else {
            return Ok(None);
        };
        let record = decode(&row)?;
        record_phase(&mut tx, record.id, DeploymentState::Preparing, now).await?;
        tx.commit().await?;
        Ok(Some(record))
    }

    /// Moves a deployment to `next` if that is a legal step; `error` is kept with a
    /// failure. Finished states also stamp `finished_at`.
    pub async fn transition(
        &self,
        id: i64,
        next: DeploymentState,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        let current = self.deployment(id).await?.state;
        if !current.can_move_to(next) {
            return Err(StoreError::IllegalTransition {
                id,
                from: current.to_string(),
                to: next.to_string(),
            });
        }
        let now = now_ms();
        let finished = if next.is_finished() { Some(now) } else { None };
        let mut tx = self.pool().begin_with("BEGIN IMMEDIATE").await?;
        let done = sqlx::query(
            "UPDATE deployments SET state = ?, error = COALESCE(?, error),
                finished_at = COALESCE(?, finished_at) WHERE id = ? AND state = ?",
        )
        .bind(next.as_str())
        .bind(error)
        .bind(finished)
        .bind(id)
        .bind(current.as_str())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            // Someone else moved it between the read and the write.
            drop(tx);
            let now_state = self.deployment(id).await?.state;
            return Err(StoreError::IllegalTransition {
                id,
                from: now_state.to_string(),
                to: next.to_string(),
            });
        }
        record_phase(&mut tx, id, next, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records the commit a deployment builds or reuses, with its subject line if known.
    pub async fn set_commit(
        &self,
        id: i64,
        commit: &str,
        message: Option<&str>,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE deployments SET commit_sha = ?, commit_message = ? WHERE id = ?")
            .bind(commit)
            .bind(message)
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub async fn set_image(&self, id: i64, image: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE deployments SET image = ? WHERE id = ?")
            .bind(image)
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Makes `id` the app's live deployment and the previous live one `superseded`, in one
    /// transaction.
    pub async fn mark_live(&self, app: &AppName, id: i64) -> Result<Option<i64>, StoreError> {
        let now = now_ms();
        // IMMEDIATE takes the write lock up front: a deferred transaction that reads and
        // then writes fails with SQLITE_BUSY_SNAPSHOT when another writer got in between.
        let mut tx = self.pool().begin_with("BEGIN IMMEDIATE").await?;
        let previous: Option<i64> =
            sqlx::query("SELECT live_deployment_id FROM apps WHERE name = ?")
                .bind(app.as_str())
                .fetch_one(&mut *tx)
                .await?
                .try_get("live_deployment_id")?;
        let moved = sqlx::query("UPDATE deployments SET state = 'live', finished_at = ? WHERE id = ? AND state = 'switching'")
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if moved.rows_affected() != 1 {
            return Err(StoreError::IllegalTransition {
                id,
                from: "(not switching)".into(),
                to: "live".into(),
            });
        }
        sqlx::query("INSERT OR REPLACE INTO deployment_phases (deployment_id, state, at) VALUES (?, 'live', ?)")
            .bind(id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        if let Some(old) = previous.filter(|old| *old != id) {
            sqlx::query(
                "UPDATE deployments SET state = 'superseded' WHERE id = ? AND state = 'live'",
            )
            .bind(old)
            .execute(&mut *tx)
            .await?;
            sqlx::query("INSERT OR REPLACE INTO deployment_phases (deployment_id, state, at) VALUES (?, 'superseded', ?)")
                .bind(old)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("UPDATE apps SET live_deployment_id = ?, updated_at = ? WHERE name = ?")
            .bind(id)
            .bind(now)
            .bind(app.as_str())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(previous)
    }

    /// Marks every deployment a dead daemon left in progress as failed ("interrupted")
    /// and returns them, so their half-made containers can be removed.
    pub async fn fail_interrupted(&self) -> Result<Vec<DeploymentRecord>, StoreError> {
        let now = now_ms();
        let sql = format!(
            "UPDATE deployments SET state = 'failed', finished_at = ?,
                error = 'interrupted: the daemon stopped while this deployment was running'
             WHERE state IN {IN_PROGRESS} RETURNING *"
        );
        let mut tx = self.pool().begin_with("BEGIN IMMEDIATE").await?;
        let rows = sqlx::query(&sql).bind(now).fetch_all(&mut *tx).await?;
        let records: Vec<DeploymentRecord> = rows.iter().map(decode).collect::<Result<_, _>>()?;
        for record in &records {
            record_phase(&mut tx, record.id, DeploymentState::Failed, now).await?;
        }
        tx.commit().await?;
        // On several servers, it stays live where it went live before the stop.
        let mut settled = Vec::with_capacity(records.len());
        for record in records {
            settled.push(self.settle_interrupted(record).await?);
        }
        Ok(settled)
    }

    /// Whether the app has a deployment queued or in progress.
    pub async fn has_pending(&self, app: &AppName) -> Result<bool, StoreError> {
        let sql = format!(
            "SELECT COUNT(*) AS n FROM deployments WHERE app = ? AND (state = 'queued' OR state IN {IN_PROGRESS})"
        );
        let n: i64 = sqlx::query(&sql)
            .bind(app.as_str())
            .fetch_one(self.pool())
            .await?
            .try_get("n")?;
        Ok(n > 0)
    }
}
