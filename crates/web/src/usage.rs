//! `GET /api/v1/apps/{app}/usage`: each running container of the app with its CPU and
//! memory use now, from the engine (the panel's app page polls the same list).

use crate::apps::app_name;
use crate::error::ApiError;
use crate::views::ErrorBody;
use crate::AppState;
use axum::extract::{Path, State};
use axum::Json;
use capstan_core::AppName;
use serde::Serialize;

/// One running container and what it uses.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ContainerUse {
    pub container: String,
    /// `app` (a replica of the routed service) or `companion`.
    pub role: String,
    /// The deployment that started it.
    pub deployment: Option<i64>,
    /// Percent of one core over the engine's last second (200 = two cores busy).
    pub cpu_percent: f64,
    /// Memory in use, without page cache the container could give back.
    pub memory_bytes: u64,
    /// Its memory limit, when it has one.
    pub memory_limit_bytes: Option<u64>,
}

#[utoipa::path(get, path = "/apps/{app}/usage", tag = "apps",
    params(("app" = String, Path, description = "the app's name")),
    responses((status = 200, description = "every running container of the app with its CPU and memory use (takes about a second: the engine samples twice)", body = Vec<ContainerUse>),
        (status = "4XX", description = "what was wrong", body = ErrorBody),
        (status = 503, description = "the Docker engine or the database is unavailable", body = ErrorBody)))]
pub async fn usage(
    State(state): State<AppState>,
    Path(app): Path<String>,
) -> Result<Json<Vec<ContainerUse>>, ApiError> {
    Ok(Json(uses(&state, &app_name(&app)?).await?))
}

/// Every running container of `app` with what it uses now (the API's and the panel's).
pub(crate) async fn uses(state: &AppState, app: &AppName) -> Result<Vec<ContainerUse>, ApiError> {
    let usages = state.deployer.app_usage(app).await?;
    Ok(usages
        .into_iter()
        .map(|u| ContainerUse {
            container: u.container,
            role: u.role.to_string(),
            deployment: u.deployment,
            cpu_percent: u.usage.cpu_percent,
            memory_bytes: u.usage.memory_bytes,
            memory_limit_bytes: u.usage.memory_limit_bytes,
        })
        .collect())
}
