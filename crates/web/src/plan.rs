//! `POST /api/v1/apps/{app}/plan`: a dry run that fetches the app's source, applies its
//! `capstan.toml`, detects the plan and renders the spec, without building or starting.

use crate::apps::app_name;
use crate::error::ApiError;
use crate::views::ErrorBody;
use crate::AppState;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::Json;
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanBody {
    /// A branch, tag or commit other than the app's.
    #[serde(rename = "ref")]
    git_ref: Option<String>,
}

#[utoipa::path(post, path = "/apps/{app}/plan", tag = "deployments", params(("app" = String, Path, description = "the app's name")),
    request_body(content = Option<PlanBody>, description = "optional: another ref"),
    responses((status = 200, description = "the dry run: build plan, reasons, Dockerfile, compose spec, effective settings", body = Object), (status = "4XX", description = "what was wrong", body = ErrorBody), (status = 503, description = "the Docker engine or the database is unavailable", body = ErrorBody)))]
pub async fn plan(
    State(state): State<AppState>,
    Path(app): Path<String>,
    body: Result<Json<PlanBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let app = app_name(&app)?;
    let body = match body {
        Ok(Json(body)) => body,
        // An empty body is a plan of the app's own ref.
        Err(JsonRejection::MissingJsonContentType(_)) => PlanBody::default(),
        Err(other) => return Err(other.into()),
    };
    let report = state
        .deployer
        .plan_app(&app, body.git_ref.as_deref())
        .await?;
    Ok(Json(serde_json::to_value(report).map_err(|e| {
        ApiError::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot encode the plan: {e}"),
        )
    })?))
}
