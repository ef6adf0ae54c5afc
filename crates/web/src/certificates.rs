//! `GET /api/v1/apps/{app}/certificates`: each domain of the app and its certificate as
//! Traefik has it now (issued with its expiry, pending, failed with the reason, served
//! over plain HTTP, or not served yet). The panel's app page shows the same list.

use crate::apps::app_name;
use crate::error::ApiError;
use crate::views::ErrorBody;
use crate::AppState;
use axum::extract::{Path, State};
use axum::Json;
use capstan_core::AppName;
use capstan_deploy::certificates::CertificateState;
use serde::Serialize;

/// One domain of an app and its certificate.
#[derive(Serialize, utoipa::ToSchema)]
pub struct DomainCertificate {
    pub domain: String,
    /// `issued` (Traefik's ACME store holds a certificate), `pending` (routed with the
    /// certificate resolver, nothing stored or failed yet), `failed` (Traefik logged that
    /// it could not obtain one), `http_only` (the app does not ask for TLS) or
    /// `not_served` (nothing is deployed, so the domain is not routed).
    pub state: String,
    /// When an issued certificate expires (RFC 3339, UTC).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// Why Traefik could not obtain the certificate, as it logged it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[utoipa::path(get, path = "/apps/{app}/certificates", tag = "apps",
    params(("app" = String, Path, description = "the app's name")),
    responses((status = 200, description = "every domain of the app with its certificate, read from the proxy", body = Vec<DomainCertificate>),
        (status = "4XX", description = "what was wrong", body = ErrorBody),
        (status = 503, description = "the Docker engine, the proxy or the database is unavailable", body = ErrorBody)))]
pub async fn certificates(
    State(state): State<AppState>,
    Path(app): Path<String>,
) -> Result<Json<Vec<DomainCertificate>>, ApiError> {
    Ok(Json(of_app(&state, &app_name(&app)?).await?))
}

/// Every domain of `app` with its certificate (the API's and the panel's).
pub(crate) async fn of_app(
    state: &AppState,
    app: &AppName,
) -> Result<Vec<DomainCertificate>, ApiError> {
    let certificates = state.deployer.certificates(app).await?;
    Ok(certificates
        .into_iter()
        .map(|c| DomainCertificate {
            domain: c.domain,
            state: c.state.as_str().to_string(),
            expires_at: match c.state {
                CertificateState::Issued { expires_at_ms } => {
                    chrono::DateTime::from_timestamp_millis(expires_at_ms)
                        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                }
                _ => None,
            },
            reason: match c.state {
                CertificateState::Failed { reason } => Some(reason),
                _ => None,
            },
        })
        .collect())
}
