//! `POST /api/v1/webhooks/{provider}/{app}`: a forge's delivery, on the open part of the
//! router. In order: the provider, the app's secret (both before any of the body is
//! read), the body (5 MiB within 10 s), the signature over the RAW body (nothing is parsed
//! before it holds; every refusal gets the same 401 words, the reason goes to the daemon's
//! log only; neither the body, the secret nor the signature is ever logged or echoed),
//! replays (the delivery id per provider, and the body's SHA-256 per app whatever the id or
//! forge), then each event ([`events`]). The answer comes as soon as the deployment is
//! queued: no git, engine or server work happens here.

mod events;

use crate::apps::app_name;
use crate::error::ApiError;
use crate::views::ErrorBody;
use crate::AppState;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use capstan_core::AppName;
use capstan_forge::Provider;
use rand::RngCore;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::sync::OnceLock;
use std::time::Duration;

use events::{Failed, Handled};

/// The largest delivery accepted (GitHub caps its payloads at 25 MB, but a push's is far
/// smaller; the others send less).
pub const MAX_BODY: usize = 5 * 1024 * 1024;

/// How long the body may take to arrive.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The one answer to every refused signature, whatever the reason: a stranger cannot tell
/// which apps exist or have a secret.
pub const REFUSED: &str =
    "the delivery's signature does not verify for this app (or no such app has a webhook secret)";

/// What came of a delivery.
#[derive(Debug, Default, Serialize, utoipa::ToSchema)]
pub struct WebhookAnswer {
    /// `true` when the delivery (its id, or the same body) was seen before: nothing was
    /// done this time.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub duplicate: bool,
    /// The deployment queued, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployment: Option<i64>,
    /// The commit it deploys.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// Why nothing (else) was queued, one sentence per event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What a delivery is remembered by.
struct Delivery {
    provider: Provider,
    id: Option<String>,
    body_sha256: String,
}

#[utoipa::path(post, path = "/webhooks/{provider}/{app}", tag = "webhooks", security(()),
    params(("provider" = String, Path, description = "github, gitlab, gitea, forgejo or bitbucket"),
           ("app" = String, Path, description = "the app's name")),
    request_body(content = serde_json::Value, content_type = "application/json", description = "the forge's payload, signed with the app's webhook secret"),
    responses(
        (status = 200, description = "a ping, or a delivery seen before (`duplicate`: its id, or the same body): nothing queued", body = WebhookAnswer),
        (status = 202, description = "accepted: the deployment queued, or the reason nothing was", body = WebhookAnswer),
        (status = 400, description = "a verified payload that cannot be read", body = ErrorBody),
        (status = 401, description = "the signature does not verify, or no such app has a webhook secret (one answer for all)", body = ErrorBody),
        (status = 404, description = "unknown provider", body = ErrorBody),
        (status = 408, description = "the body did not arrive within 10 s", body = ErrorBody),
        (status = 413, description = "the body is larger than 5 MiB", body = ErrorBody),
        (status = "4XX", description = "the app cannot be deployed", body = ErrorBody),
        (status = 503, description = "the database is unavailable", body = ErrorBody)))]
/// Receives a forge's webhook delivery. Needs no token: the delivery is signed with the
/// app's webhook secret (GitHub `X-Hub-Signature-256`, GitLab `X-Gitlab-Token`,
/// Gitea/Forgejo `X-Gitea-Signature`, Bitbucket `X-Hub-Signature`).
pub async fn receive(
    State(state): State<AppState>,
    Path((provider, app)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<WebhookAnswer>), ApiError> {
    let provider: Provider = provider
        .parse()
        .map_err(|e: capstan_forge::UnknownProvider| {
            ApiError::new(StatusCode::NOT_FOUND, e.to_string())
        })?;
    let key = verification_key(&state, &app).await?;
    let body = read_body(&headers, body, BODY_READ_TIMEOUT).await?;
    let app = verify(provider, key, &app, &headers, &body)?;
    let delivery = Delivery {
        provider,
        id: provider.delivery_id(&headers),
        body_sha256: format!("{:x}", Sha256::digest(&body)),
    };
    let store = state.deployer.store();
    let new = store
        .record_delivery(
            provider.as_str(),
            &app,
            delivery.id.as_deref(),
            &delivery.body_sha256,
        )
        .await?;
    if !new {
        let answer = WebhookAnswer {
            duplicate: true,
            reason: Some("this delivery (its id or its body) was handled before".into()),
            ..Default::default()
        };
        return Ok((StatusCode::OK, Json(answer)));
    }
    let result = events::handle(&state, provider, &app, &headers, &body).await;
    settle(&state, &app, &delivery, result).await
}

/// The app's name and webhook secret, `None` when the name is not an app's or the app has
/// no secret.
async fn verification_key(
    state: &AppState,
    app: &str,
) -> Result<Option<(AppName, String)>, ApiError> {
    let Ok(name) = app_name(app) else {
        return Ok(None);
    };
    let secret = state.deployer.webhook_secret(&name).await?;
    Ok(secret.map(|secret| (name, secret)))
}

/// A key no delivery is signed with, verified against when there is no app or secret so
/// that the refusal takes as long as a real one.
fn dummy_key() -> &'static str {
    static KEY: OnceLock<String> = OnceLock::new();
    KEY.get_or_init(|| {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    })
}

/// The app whose secret the delivery's signature verifies against, else the one 401
/// ([`REFUSED`]); the reason is logged, never answered.
fn verify(
    provider: Provider,
    key: Option<(AppName, String)>,
    app: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<AppName, ApiError> {
    let refused = || ApiError::new(StatusCode::UNAUTHORIZED, REFUSED);
    let Some((name, secret)) = key else {
        // The result is known: the check only spends the time a real one would.
        let _ = provider.verify(dummy_key().as_bytes(), headers, body);
        tracing::warn!(app = ?app, %provider, reason = "no such app, or it has no webhook secret",
            "webhook delivery refused");
        return Err(refused());
    };
    if let Err(reason) = provider.verify(secret.as_bytes(), headers, body) {
        tracing::warn!(app = %name, %provider, %reason, "webhook delivery refused");
        return Err(refused());
    }
    Ok(name)
}

/// Reads the body up to [`MAX_BODY`] within `within`: a larger `Content-Length` is
/// refused before any of it is read, a body that takes longer is 408.
async fn read_body(headers: &HeaderMap, body: Body, within: Duration) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the delivery is larger than {} MiB", MAX_BODY >> 20),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > MAX_BODY as u64) {
        return Err(too_large());
    }
    match tokio::time::timeout(within, axum::body::to_bytes(body, MAX_BODY)).await {
        Err(_) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the delivery's body did not arrive within {} s",
                within.as_secs_f32()
            ),
        )),
        // The only failures are the limit and a body cut short; either way nothing is read.
        Ok(Err(_)) => Err(too_large()),
        Ok(Ok(bytes)) => Ok(bytes),
    }
}

/// What to remember of a handled delivery.
#[derive(Debug, PartialEq, Eq)]
enum Settlement {
    /// Keep it, with what came of it: a retry is a duplicate.
    Outcome(String),
    /// Forget it (its id and its body): nothing was queued, so the forge's retry is
    /// handled again.
    Forget,
}

fn settlement(result: &Result<Handled, Failed>) -> Settlement {
    match result {
        Ok((_, Json(answer))) => Settlement::Outcome(match answer.deployment {
            Some(deployment) => format!("queued deployment {deployment}"),
            None => format!("ignored: {}", answer.reason.as_deref().unwrap_or("")),
        }),
        Err(failed) if failed.queued.is_empty() => Settlement::Forget,
        Err(failed) => Settlement::Outcome(format!(
            "{}, then failed: {}",
            queued_list(&failed.queued),
            failed.error.message
        )),
    }
}

fn queued_list(queued: &[i64]) -> String {
    let ids: Vec<String> = queued.iter().map(i64::to_string).collect();
    format!("queued deployment {}", ids.join(", "))
}

/// Records what came of the delivery and answers it. A failure after an earlier event
/// queued a deployment keeps the delivery (a retry would queue it again) and says so.
async fn settle(
    state: &AppState,
    app: &AppName,
    delivery: &Delivery,
    result: Result<Handled, Failed>,
) -> Result<Handled, ApiError> {
    let store = state.deployer.store();
    let (provider, id, body) = (
        delivery.provider.as_str(),
        delivery.id.as_deref(),
        delivery.body_sha256.as_str(),
    );
    let recorded = match settlement(&result) {
        Settlement::Outcome(outcome) => {
            store
                .set_delivery_outcome(provider, app, id, body, &outcome)
                .await
        }
        Settlement::Forget => store.forget_delivery(provider, app, id, body).await,
    };
    if let Err(e) = recorded {
        tracing::warn!(%app, %provider, error = %e, "webhook delivery outcome not recorded");
    }
    result.map_err(|failed| {
        let mut error = failed.error;
        if !failed.queued.is_empty() {
            error.message = format!(
                "{} before this failure; the delivery is kept, so a retry queues nothing: {}",
                queued_list(&failed.queued),
                error.message
            );
        }
        error
    })
}

#[cfg(test)]
mod tests;
