//! The record of who changed an app: creation, settings, secrets (by name), deletion.

use crate::{now_ms, Store, StoreError};
use capstan_core::AppName;
use sqlx::Row;

/// One change to an app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppEvent {
    pub id: i64,
    pub at: i64,
    pub app: String,
    /// `token:<name>`.
    pub actor: String,
    pub action: String,
    pub detail: String,
}

impl Store {
    pub async fn record_event(
        &self,
        app: &AppName,
        actor: &str,
        action: &str,
        detail: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO app_events (at, app, actor, action, detail) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(now_ms())
        .bind(app.as_str())
        .bind(actor)
        .bind(action)
        .bind(detail)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The app's newest `limit` events, newest first.
    pub async fn app_events(&self, app: &AppName, limit: i64) -> Result<Vec<AppEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, at, app, actor, action, detail FROM app_events WHERE app = ? ORDER BY id DESC LIMIT ?",
        )
        .bind(app.as_str())
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AppEvent {
                    id: r.try_get("id")?,
                    at: r.try_get("at")?,
                    app: r.try_get("app")?,
                    actor: r.try_get("actor")?,
                    action: r.try_get("action")?,
                    detail: r.try_get("detail")?,
                })
            })
            .collect()
    }
}
