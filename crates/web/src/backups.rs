//! `GET /api/v1/server/backups` lists the archives in the backup directory and
//! `POST /api/v1/server/backups` writes one now, as `capstan backup` and the daemon's
//! schedule do. The archive writer lives in the `capstan` binary; it reaches this crate
//! through [`Backups`], which the binary implements and puts in [`crate::AppState`].

use crate::error::ApiError;
use crate::views::ErrorBody;
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use futures::future::BoxFuture;
use serde::Serialize;

/// Why a backup could not be written or listed (the message says what to fix).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BackupError(pub String);

/// The daemon's backups, as the binary writes them.
pub trait Backups: Send + Sync {
    /// Writes an archive into the backup directory now; its file.
    fn write_now(&self) -> BoxFuture<'_, Result<BackupFile, BackupError>>;
    /// The archives in the backup directory, newest first.
    fn list(&self) -> Result<Vec<BackupFile>, BackupError>;
    /// The backup directory.
    fn dir(&self) -> String;
}

/// One archive in the backup directory.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BackupFile {
    /// The file's name in the backup directory.
    pub name: String,
    pub size_bytes: u64,
    /// When it was last written (Unix ms).
    pub modified_ms: i64,
    /// The file's mode bits (`0600`).
    pub mode: String,
}

/// The backup directory and its archives.
#[derive(Serialize, utoipa::ToSchema)]
pub struct BackupList {
    pub dir: String,
    pub archives: Vec<BackupFile>,
}

fn backups(state: &AppState) -> Result<&dyn Backups, ApiError> {
    state.backups.as_deref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "this daemon was started without backups",
        )
    })
}

fn failed(err: BackupError) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, err.0)
}

#[utoipa::path(get, path = "/server/backups", tag = "server",
    responses((status = 200, description = "the backup directory and the archives in it, newest first", body = BackupList),
        (status = "4XX", description = "what was wrong", body = ErrorBody),
        (status = 503, description = "the daemon has no backup directory", body = ErrorBody)))]
pub async fn list(State(state): State<AppState>) -> Result<Json<BackupList>, ApiError> {
    let backups = backups(&state)?;
    Ok(Json(BackupList {
        dir: backups.dir(),
        archives: backups.list().map_err(failed)?,
    }))
}

#[utoipa::path(post, path = "/server/backups", tag = "server",
    responses((status = 201, description = "an archive of the database, secret key, admin token, route files and the proxy's ACME store, written (mode 0600) into the backup directory", body = BackupFile),
        (status = "4XX", description = "what was wrong", body = ErrorBody),
        (status = 500, description = "the archive could not be written", body = ErrorBody),
        (status = 503, description = "the daemon has no backup directory", body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
) -> Result<(StatusCode, Json<BackupFile>), ApiError> {
    let file = backups(&state)?.write_now().await.map_err(failed)?;
    Ok((StatusCode::CREATED, Json(file)))
}
