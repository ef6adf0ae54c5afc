//! Releases: the image and compose spec a successful deployment put live.

use crate::{now_ms, Store, StoreError};
use capstan_core::{AppName, AppSpec};
use sqlx::Row;

#[derive(Debug, Clone)]
pub struct ReleaseRecord {
    pub id: i64,
    pub app: AppName,
    pub deployment_id: i64,
    pub image: String,
    pub commit_sha: Option<String>,
    pub compose_spec: String,
    pub app_spec: AppSpec,
    /// The repo's `capstan.toml` (file name, text) the release was built with.
    pub repo_config: Option<(String, String)>,
    pub created_at: i64,
}

/// What a deployment is about to put live.
pub struct NewRelease<'a> {
    pub app: &'a AppName,
    pub deployment_id: i64,
    pub image: &'a str,
    pub commit_sha: Option<&'a str>,
    pub compose_spec: &'a str,
    pub app_spec: &'a AppSpec,
    pub repo_config: Option<(&'a str, &'a str)>,
}

fn decode(row: &sqlx::sqlite::SqliteRow) -> Result<ReleaseRecord, StoreError> {
    let app: String = row.try_get("app")?;
    let spec: String = row.try_get("app_spec")?;
    Ok(ReleaseRecord {
        id: row.try_get("id")?,
        app: AppName::parse(&app).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        deployment_id: row.try_get("deployment_id")?,
        image: row.try_get("image")?,
        commit_sha: row.try_get("commit_sha")?,
        compose_spec: row.try_get("compose_spec")?,
        app_spec: crate::stored_spec::decode(&spec)?,
        repo_config: match (
            row.try_get::<Option<String>, _>("repo_config_file")?,
            row.try_get::<Option<String>, _>("repo_config")?,
        ) {
            (Some(file), Some(text)) => Some((file, text)),
            _ => None,
        },
        created_at: row.try_get("created_at")?,
    })
}

impl Store {
    /// Records the release a deployment is about to start (before its containers exist),
    /// replacing an earlier one for the same deployment.
    pub async fn save_release(&self, new: &NewRelease<'_>) -> Result<ReleaseRecord, StoreError> {
        let spec = crate::stored_spec::encode(new.app_spec);
        let row = sqlx::query(
            "INSERT INTO releases (app, deployment_id, image, commit_sha, compose_spec, app_spec,
                repo_config_file, repo_config, created_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT(deployment_id) DO UPDATE SET image = excluded.image,
                commit_sha = excluded.commit_sha, compose_spec = excluded.compose_spec,
                app_spec = excluded.app_spec, repo_config_file = excluded.repo_config_file,
                repo_config = excluded.repo_config
             RETURNING *",
        )
        .bind(new.app.as_str())
        .bind(new.deployment_id)
        .bind(new.image)
        .bind(new.commit_sha)
        .bind(new.compose_spec)
        .bind(spec)
        .bind(new.repo_config.map(|c| c.0))
        .bind(new.repo_config.map(|c| c.1))
        .bind(now_ms())
        .fetch_one(self.pool())
        .await?;
        decode(&row)
    }

    pub async fn release_of(
        &self,
        deployment_id: i64,
    ) -> Result<Option<ReleaseRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM releases WHERE deployment_id = ?")
            .bind(deployment_id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(decode).transpose()
    }

    pub async fn release(&self, id: i64) -> Result<ReleaseRecord, StoreError> {
        let row = sqlx::query("SELECT * FROM releases WHERE id = ?")
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("release {id}")))?;
        decode(&row)
    }
}
