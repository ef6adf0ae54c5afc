//! `GET /api/v1/apps/{app}/certificates`: each domain of the app and its certificate as
//! Traefik has it now (issued with its expiry, expired, pending, failed with the reason,
//! served over plain HTTP, or not served yet). The panel's app page shows the same list.

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
    pub state: CertificateStateName,
    /// When the certificate expires or expired (RFC 3339, UTC): issued and expired only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// Why Traefik could not obtain the certificate (or renew an expired one), as it
    /// logged it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A domain's certificate state.
#[derive(Serialize, utoipa::ToSchema, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum CertificateStateName {
    /// Traefik's ACME store holds a certificate in force.
    Issued,
    /// The certificate Traefik holds is past its expiry (its renewal failed or has not
    /// happened); browsers refuse it.
    Expired,
    /// Routed with the certificate resolver; nothing stored or failed yet.
    Pending,
    /// Traefik logged that it could not obtain one.
    Failed,
    /// The app does not ask for TLS.
    HttpOnly,
    /// Nothing is deployed, so the domain is not routed.
    NotServed,
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
        .map(|c| from_state(c.domain, c.state))
        .collect())
}

fn from_state(domain: String, state: CertificateState) -> DomainCertificate {
    let rfc3339 = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
    };
    let (name, expires_at, reason) = match state {
        CertificateState::Issued { expires_at_ms } => {
            (CertificateStateName::Issued, rfc3339(expires_at_ms), None)
        }
        CertificateState::Expired {
            expires_at_ms,
            reason,
        } => (
            CertificateStateName::Expired,
            rfc3339(expires_at_ms),
            reason,
        ),
        CertificateState::Pending => (CertificateStateName::Pending, None, None),
        CertificateState::Failed { reason } => (CertificateStateName::Failed, None, Some(reason)),
        CertificateState::HttpOnly => (CertificateStateName::HttpOnly, None, None),
        CertificateState::NotServed => (CertificateStateName::NotServed, None, None),
    };
    DomainCertificate {
        domain,
        state: name,
        expires_at,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_expired_certificate_says_when_and_why() {
        let expired = from_state(
            "a.test".into(),
            CertificateState::Expired {
                expires_at_ms: 1_799_235_899_000,
                reason: Some("renewal failed".into()),
            },
        );
        assert_eq!(
            serde_json::to_value(&expired).unwrap(),
            serde_json::json!({"domain": "a.test", "state": "expired",
                "expires_at": "2027-01-06T11:44:59Z", "reason": "renewal failed"})
        );
    }
}
