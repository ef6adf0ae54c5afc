//! `GET /api/v1/apps/{app}/logs`: the running app's own output (every replica and
//! companion, or the one `container` names, each line prefixed with its container), as
//! text or, with `follow=true`, as server-sent events (also the panel's, in
//! `panel::app_live`).

use crate::apps::app_name;
use crate::error::ApiError;
use crate::views::ErrorBody;
use crate::AppState;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::stream::BoxStream;
use futures::StreamExt;
use serde::Deserialize;
use std::convert::Infallible;

/// Lines per container when `tail` is not given.
const DEFAULT_TAIL: usize = 100;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputQuery {
    tail: Option<usize>,
    /// One running container of the app, by its name or as its lines show it.
    container: Option<String>,
    #[serde(default)]
    follow: bool,
}

#[utoipa::path(get, path = "/apps/{app}/logs", tag = "apps", params(("app" = String, Path, description = "the app's name"),
           ("tail" = Option<u32>, Query, description = "lines per container (default 100)"),
           ("container" = Option<String>, Query, description = "only this running container of the app (its name, or as its lines are prefixed)"),
           ("follow" = Option<bool>, Query, description = "stream as server-sent events")),
    responses((status = 200, description = "the running app's output, each line prefixed with its container", content((String = "text/plain"), (serde_json::Value = "text/event-stream"))), (status = "4XX", description = "what was wrong", body = ErrorBody), (status = 503, description = "the Docker engine or the database is unavailable", body = ErrorBody)))]
pub async fn output(
    State(state): State<AppState>,
    Path(app): Path<String>,
    query: Result<Query<OutputQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let app = app_name(&app)?;
    let Query(query) = query?;
    let tail = query.tail.unwrap_or(DEFAULT_TAIL);
    let wanted: Vec<&str> = query.container.iter().map(String::as_str).collect();
    let lines = state
        .deployer
        .app_output(&app, &wanted, tail, query.follow)
        .await?;
    if !query.follow {
        let text: String = lines.map(|line| line + "\n").collect().await;
        return Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response());
    }
    Ok(followed(lines))
}

/// The lines as server-sent events: `log` per line, then one `end` once every container
/// stopped.
pub(crate) fn followed(lines: BoxStream<'static, String>) -> Response {
    let events = lines
        .map(|line| Ok::<_, Infallible>(Event::default().event("log").data(line)))
        .chain(futures::stream::once(async {
            Ok(Event::default()
                .event("end")
                .data("every container of the app stopped"))
        }));
    Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response()
}
