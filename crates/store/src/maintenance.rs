//! The app_maintenance table: which apps are in maintenance mode, with what page.

use crate::{now_ms, Store, StoreError};
use capstan_core::{AppName, MaintenancePage};
use sqlx::Row;

/// An app's maintenance mode, as switched on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaintenanceRecord {
    pub page: MaintenancePage,
    /// Unix milliseconds.
    pub since: i64,
    pub actor: String,
}

impl Store {
    /// Turns maintenance on (or changes its page).
    pub async fn set_maintenance(
        &self,
        app: &AppName,
        page: &MaintenancePage,
        actor: &str,
    ) -> Result<MaintenanceRecord, StoreError> {
        let result = sqlx::query(
            "INSERT INTO app_maintenance (app, message, retry_after_secs, since, actor)
             VALUES (?, ?, ?, ?, ?)
             ON CONFLICT (app) DO UPDATE SET message = excluded.message,
                 retry_after_secs = excluded.retry_after_secs, actor = excluded.actor",
        )
        .bind(app.as_str())
        .bind(&page.message)
        .bind(page.retry_after_secs)
        .bind(now_ms())
        .bind(actor)
        .execute(self.pool())
        .await;
        match result {
            Ok(_) => {}
            Err(sqlx::Error::Database(e)) if e.is_foreign_key_violation() => {
                return Err(StoreError::NotFound(format!("app {app}")))
            }
            Err(e) => return Err(e.into()),
        }
        self.maintenance(app)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("app {app}")))
    }

    /// Turns maintenance off; whether it was on.
    pub async fn clear_maintenance(&self, app: &AppName) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM app_maintenance WHERE app = ?")
            .bind(app.as_str())
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Which of `apps` are in maintenance (one query).
    pub async fn in_maintenance(
        &self,
        apps: &[&AppName],
    ) -> Result<std::collections::HashSet<String>, StoreError> {
        if apps.is_empty() {
            return Ok(Default::default());
        }
        let marks = vec!["?"; apps.len()].join(", ");
        let sql = format!("SELECT app FROM app_maintenance WHERE app IN ({marks})");
        let mut query = sqlx::query_scalar::<_, String>(&sql);
        for app in apps {
            query = query.bind(app.as_str());
        }
        Ok(query.fetch_all(self.pool()).await?.into_iter().collect())
    }

    pub async fn maintenance(
        &self,
        app: &AppName,
    ) -> Result<Option<MaintenanceRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM app_maintenance WHERE app = ?")
            .bind(app.as_str())
            .fetch_optional(self.pool())
            .await?;
        row.map(|row| {
            Ok(MaintenanceRecord {
                page: MaintenancePage {
                    message: row.try_get("message")?,
                    retry_after_secs: row.try_get("retry_after_secs")?,
                },
                since: row.try_get("since")?,
                actor: row.try_get("actor")?,
            })
        })
        .transpose()
    }
}
