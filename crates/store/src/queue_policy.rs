//! The queue's policy, each rule in the transaction that queues or ends a deployment: a
//! newer deployment of an app supersedes its older ones still queued, a queued deployment
//! is cancelled at once, and an app's hourly rate limit is counted from the deployments
//! themselves (an admin's are exempt).

use crate::deployments::{decode, record_phase, DeploymentRecord, NewDeployment};
use crate::{now_ms, Store, StoreError};
use capstan_core::{AppName, DeploymentState};
use sqlx::Row;

/// The window the rate limit counts in.
pub const RATE_WINDOW_MS: i64 = 60 * 60 * 1000;

/// Whether a deployment counts against its app's rate limit, and the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateLimit {
    /// Counted, and refused when `per_hour` deployments were queued in the last hour
    /// (`0`: counted, never refused).
    Counted { per_hour: u32 },
    /// Neither counted nor refused (an admin).
    Exempt,
}

/// A deployment queued under the policy.
#[derive(Debug, Clone)]
pub struct Enqueued {
    pub record: DeploymentRecord,
    /// The app's older deployments that were still queued and now ended `superseded`.
    pub superseded: Vec<i64>,
}

/// A deployment refused by its app's rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimited {
    pub per_hour: u32,
    /// Milliseconds until the oldest deployment in the window ages out of it.
    pub retry_after_ms: i64,
}

/// Inserts a queued deployment with its servers and `queued` phase; its id.
pub(crate) async fn insert_queued(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    new: &NewDeployment<'_>,
    now: i64,
    rate_exempt: bool,
) -> Result<i64, StoreError> {
    // In the same write transaction as the insert: an app deleted a moment ago is
    // not found, rather than given a deployment nobody can see.
    let exists = sqlx::query("SELECT 1 FROM apps WHERE name = ?")
        .bind(new.app.as_str())
        .fetch_optional(&mut **tx)
        .await?
        .is_some();
    if !exists {
        return Err(StoreError::NotFound(format!("app {}", new.app)));
    }
    let id: i64 = sqlx::query(
        "INSERT INTO deployments (app, trigger, state, git_ref, from_release, no_cache, created_at, actor, server, rate_exempt)
         VALUES (?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?) RETURNING id",
    )
    .bind(new.app.as_str())
    .bind(new.trigger.as_str())
    .bind(new.git_ref)
    .bind(new.from_release)
    .bind(new.no_cache as i64)
    .bind(now)
    .bind(new.actor)
    .bind(new.servers.first().copied().unwrap_or("local"))
    .bind(rate_exempt as i64)
    .fetch_one(&mut **tx)
    .await?
    .try_get("id")?;
    for (position, server) in new.servers.iter().enumerate() {
        sqlx::query(
            "INSERT INTO deployment_targets (deployment_id, server, position, state, updated_at)
             VALUES (?, ?, ?, 'queued', ?)",
        )
        .bind(id)
        .bind(server)
        .bind(position as i64)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    }
    record_phase(tx, id, DeploymentState::Queued, now).await?;
    Ok(id)
}

/// Whether `app` may queue one more deployment under `per_hour`; the refusal if not.
async fn check_rate(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    app: &AppName,
    per_hour: u32,
    now: i64,
) -> Result<Option<RateLimited>, StoreError> {
    if per_hour == 0 {
        return Ok(None);
    }
    let row = sqlx::query(
        "SELECT COUNT(*) AS n, MIN(created_at) AS oldest FROM deployments
         WHERE app = ? AND created_at > ? AND rate_exempt = 0",
    )
    .bind(app.as_str())
    .bind(now - RATE_WINDOW_MS)
    .fetch_one(&mut **tx)
    .await?;
    let counted: i64 = row.try_get("n")?;
    if counted < i64::from(per_hour) {
        return Ok(None);
    }
    // Counted, not the oldest: with more than the limit in the window (a limit lowered
    // meanwhile), the one whose ageing out makes room.
    let oldest: i64 = sqlx::query(
        "SELECT created_at FROM deployments WHERE app = ? AND created_at > ? AND rate_exempt = 0
         ORDER BY created_at DESC LIMIT 1 OFFSET ?",
    )
    .bind(app.as_str())
    .bind(now - RATE_WINDOW_MS)
    .bind(i64::from(per_hour) - 1)
    .fetch_optional(&mut **tx)
    .await?
    .map(|r| r.try_get("created_at"))
    .transpose()?
    .unwrap_or(row.try_get::<Option<i64>, _>("oldest")?.unwrap_or(now));
    Ok(Some(RateLimited {
        per_hour,
        retry_after_ms: (oldest + RATE_WINDOW_MS - now).max(1),
    }))
}

/// Ends every older deployment of `app` still queued as `superseded` by `newer`, with a
/// note and a phase row; their ids. A deployment live on some server (a retry queued
/// again) is left alone.
async fn supersede_older(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    app: &AppName,
    newer: i64,
    now: i64,
) -> Result<Vec<i64>, StoreError> {
    let note = format!("superseded by deployment {newer} before it started");
    let rows = sqlx::query(
        "UPDATE deployments SET state = 'superseded', finished_at = ?, error = ?
         WHERE app = ? AND state = 'queued' AND id < ?
           AND NOT EXISTS (SELECT 1 FROM deployment_targets t
                           WHERE t.deployment_id = deployments.id AND t.state = 'live')
         RETURNING id",
    )
    .bind(now)
    .bind(&note)
    .bind(app.as_str())
    .bind(newer)
    .fetch_all(&mut **tx)
    .await?;
    let mut ids = Vec::with_capacity(rows.len());
    for row in rows {
        let id: i64 = row.try_get("id")?;
        end_open_targets(tx, id, DeploymentState::Superseded, &note, now).await?;
        record_phase(tx, id, DeploymentState::Superseded, now).await?;
        ids.push(id);
    }
    Ok(ids)
}

/// Ends each server of a deployment that has not ended there yet in `state`.
async fn end_open_targets(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    id: i64,
    state: DeploymentState,
    note: &str,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE deployment_targets SET state = ?, error = ?, updated_at = ?
         WHERE deployment_id = ? AND state NOT IN ('live', 'superseded', 'failed', 'cancelled')",
    )
    .bind(state.as_str())
    .bind(note)
    .bind(now)
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Store {
    /// Queues a deployment under the queue policy, in one transaction: refused when the
    /// app's rate limit is reached (nothing written), else inserted, and the app's older
    /// deployments still queued superseded by it.
    pub async fn enqueue_with(
        &self,
        new: NewDeployment<'_>,
        limit: RateLimit,
    ) -> Result<Result<Enqueued, RateLimited>, StoreError> {
        let now = now_ms();
        let mut tx = self.pool().begin_with("BEGIN IMMEDIATE").await?;
        if let RateLimit::Counted { per_hour } = limit {
            if let Some(limited) = check_rate(&mut tx, new.app, per_hour, now).await? {
                return Ok(Err(limited));
            }
        }
        let exempt = limit == RateLimit::Exempt;
        let id = insert_queued(&mut tx, &new, now, exempt).await?;
        let superseded = supersede_older(&mut tx, new.app, id, now).await?;
        tx.commit().await?;
        let record = self.deployment(id).await?;
        Ok(Ok(Enqueued { record, superseded }))
    }

    /// Cancels a deployment that is still queued, with `note` as its error; the record as
    /// it ends, or `None` when it is no longer queued (a worker claimed it, or it ended).
    pub async fn cancel_queued(
        &self,
        id: i64,
        note: &str,
    ) -> Result<Option<DeploymentRecord>, StoreError> {
        let now = now_ms();
        let mut tx = self.pool().begin_with("BEGIN IMMEDIATE").await?;
        let row = sqlx::query(
            "UPDATE deployments SET state = 'cancelled', finished_at = ?, error = ?
             WHERE id = ? AND state = 'queued'
               AND NOT EXISTS (SELECT 1 FROM deployment_targets t
                               WHERE t.deployment_id = deployments.id AND t.state = 'live')
             RETURNING *",
        )
        .bind(now)
        .bind(note)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let record = decode(&row)?;
        end_open_targets(&mut tx, id, DeploymentState::Cancelled, note, now).await?;
        record_phase(&mut tx, id, DeploymentState::Cancelled, now).await?;
        tx.commit().await?;
        Ok(Some(record))
    }

    /// Ends each server of a running deployment that was cancelled, where it has not ended.
    pub async fn cancel_open_targets(&self, id: i64, note: &str) -> Result<(), StoreError> {
        let mut tx = self.pool().begin_with("BEGIN IMMEDIATE").await?;
        end_open_targets(&mut tx, id, DeploymentState::Cancelled, note, now_ms()).await?;
        tx.commit().await?;
        Ok(())
    }
}
