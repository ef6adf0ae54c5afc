//! `GET /metrics`: the daemon's metrics in the OpenMetrics text format (which Prometheus
//! scrapes), behind a token with the `read` scope. What the store and the process say is
//! read at each scrape; the rest is counted as it happens (`capstan_deploy::Metrics`).

use crate::error::ApiError;
use crate::AppState;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

pub async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    let store = state.deployer.store();
    let counts = store.deployment_counts().await?;
    let (queued, running) = store.queue_depth().await?;
    let metrics = state.deployer.metrics();
    metrics.set_stored(&counts, queued, running);
    metrics.sample_process();
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        metrics.encode(),
    )
        .into_response())
}
