//! The apps table.

use crate::{now_ms, Store, StoreError};
use capstan_core::{AppName, AppSpec};
use sqlx::Row;

#[derive(Debug, Clone)]
pub struct AppRecord {
    pub name: AppName,
    pub spec: AppSpec,
    pub live_deployment_id: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

fn decode(row: &sqlx::sqlite::SqliteRow) -> Result<AppRecord, StoreError> {
    let name: String = row.try_get("name")?;
    let spec: String = row.try_get("spec")?;
    Ok(AppRecord {
        name: AppName::parse(&name).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        spec: crate::stored_spec::decode(&spec)
            .map_err(|e| StoreError::Corrupt(format!("app {name}: {e}")))?,
        live_deployment_id: row.try_get("live_deployment_id")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn spec_json(spec: &AppSpec) -> String {
    crate::stored_spec::encode(spec)
}

impl Store {
    pub async fn create_app(
        &self,
        name: &AppName,
        spec: &AppSpec,
    ) -> Result<AppRecord, StoreError> {
        let now = now_ms();
        let result = sqlx::query(
            "INSERT INTO apps (name, spec, created_at, updated_at) VALUES (?, ?, ?, ?)",
        )
        .bind(name.as_str())
        .bind(spec_json(spec))
        .bind(now)
        .bind(now)
        .execute(self.pool())
        .await;
        match result {
            Ok(_) => self.app(name).await,
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                Err(StoreError::Conflict(format!("app {name}")))
            }
            Err(e) => Err(e.into()),
        }
    }

    pub async fn app(&self, name: &AppName) -> Result<AppRecord, StoreError> {
        let row = sqlx::query("SELECT * FROM apps WHERE name = ?")
            .bind(name.as_str())
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("app {name}")))?;
        decode(&row)
    }

    pub async fn apps(&self) -> Result<Vec<AppRecord>, StoreError> {
        let rows = sqlx::query("SELECT * FROM apps ORDER BY name")
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(decode).collect()
    }

    /// One page of apps by name, optionally those whose name contains `filter`, and how
    /// many match in all (the dashboard reads only the page it shows).
    pub async fn apps_page(
        &self,
        filter: &str,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<AppRecord>, i64), StoreError> {
        let pattern = format!("%{}%", filter.replace(['%', '_'], ""));
        let rows =
            sqlx::query("SELECT * FROM apps WHERE name LIKE ? ORDER BY name LIMIT ? OFFSET ?")
                .bind(&pattern)
                .bind(limit)
                .bind(offset)
                .fetch_all(self.pool())
                .await?;
        let total: i64 = sqlx::query("SELECT COUNT(*) AS n FROM apps WHERE name LIKE ?")
            .bind(&pattern)
            .fetch_one(self.pool())
            .await?
            .try_get("n")?;
        Ok((rows.iter().map(decode).collect::<Result<_, _>>()?, total))
    }

    /// How many apps are live, and how many have a failed newest deployment.
    pub async fn app_health_counts(&self) -> Result<(i64, i64), StoreError> {
        let row = sqlx::query(
            "SELECT COALESCE(SUM(a.live_deployment_id IS NOT NULL), 0) AS live, \
                    COALESCE(SUM((SELECT state FROM deployments WHERE id = \
                        (SELECT MAX(id) FROM deployments WHERE app = a.name)) = 'failed'), 0) AS failing \
             FROM apps a",
        )
        .fetch_one(self.pool())
        .await?;
        Ok((row.try_get("live")?, row.try_get("failing")?))
    }

    pub async fn update_app_spec(
        &self,
        name: &AppName,
        spec: &AppSpec,
    ) -> Result<AppRecord, StoreError> {
        let done = sqlx::query("UPDATE apps SET spec = ?, updated_at = ? WHERE name = ?")
            .bind(spec_json(spec))
            .bind(now_ms())
            .bind(name.as_str())
            .execute(self.pool())
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("app {name}")));
        }
        self.app(name).await
    }

    pub async fn delete_app(&self, name: &AppName) -> Result<(), StoreError> {
        let done = sqlx::query("DELETE FROM apps WHERE name = ?")
            .bind(name.as_str())
            .execute(self.pool())
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("app {name}")));
        }
        Ok(())
    }
}
