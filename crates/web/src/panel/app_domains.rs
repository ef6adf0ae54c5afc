//! The app page's links: each domain of the app as the address that opens it (the
//! proxy's published port added when it is not the scheme's own), with its certificate
//! as Traefik has it. The page never waits on the engine long: the proxy's ports are
//! read within [`ENGINE_WAIT`] (else the links go without a port), and the certificates
//! Traefik must say are asked by the page's script once the page shows
//! (`GET /apps/{app}/certificates`, `static/app_domains.js`).

use crate::apps::app_name;
use crate::certificates::{CertificateStateName, DomainCertificate};
use crate::panel::session::SignedIn;
use crate::{ApiError, AppState};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use capstan_core::{AppName, Scope};
use std::time::Duration;

/// The longest a panel page waits on the Docker engine before it shows without what the
/// engine would have said.
pub const ENGINE_WAIT: Duration = Duration::from_secs(2);
/// The longest the certificates' route waits on the engine (it copies the ACME store).
const CERTIFICATES_WAIT: Duration = Duration::from_secs(10);

/// What a page says when the engine took longer than [`ENGINE_WAIT`].
pub fn engine_too_slow() -> String {
    format!(
        "the Docker engine did not answer within {} s",
        ENGINE_WAIT.as_secs()
    )
}

/// One domain of the app on its page.
pub struct DomainLink {
    pub domain: String,
    /// `https://a.example.com`, `http://a.test:8081`.
    pub url: String,
    /// The certificate's state as the API names it, empty while the script asks for it.
    pub state: &'static str,
    /// The badge's words and colour class.
    pub label: &'static str,
    pub badge: &'static str,
}

/// One domain's certificate as the page's badge shows it (the script's JSON).
#[derive(serde::Serialize, Debug, PartialEq, Eq)]
pub struct CertificateBadge {
    pub domain: String,
    pub state: CertificateStateName,
    pub label: &'static str,
    pub badge: &'static str,
    /// The expiry of an issued or expired certificate, the reason of a failed one.
    pub detail: String,
}

/// The address of `domain` through the proxy: `port` is the host port the proxy
/// publishes for the scheme's entrypoint (none: the scheme's own).
pub fn domain_url(domain: &str, tls: bool, port: Option<u16>) -> String {
    let (scheme, default_port) = if tls { ("https", 443) } else { ("http", 80) };
    match port.filter(|p| *p != default_port) {
        Some(port) => format!("{scheme}://{domain}:{port}"),
        None => format!("{scheme}://{domain}"),
    }
}

/// The host ports the proxy publishes for HTTP and HTTPS.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ProxyPorts {
    pub http: Option<u16>,
    pub https: Option<u16>,
}

impl ProxyPorts {
    pub fn for_scheme(&self, tls: bool) -> Option<u16> {
        if tls {
            self.https
        } else {
            self.http
        }
    }
}

/// The proxy's published ports as the engine says within [`ENGINE_WAIT`]; none when it
/// does not (the links then go without a port).
pub async fn proxy_ports(state: &AppState) -> ProxyPorts {
    let status = tokio::time::timeout(ENGINE_WAIT, state.deployer.target().proxy_status()).await;
    match status {
        Ok(Ok(Some(proxy))) => ProxyPorts {
            http: proxy.host_port(80),
            https: proxy.host_port(443),
        },
        _ => ProxyPorts::default(),
    }
}

/// The host ports of the proxy that serves an app with these settings: a remote server's
/// proxy publishes the ports its server record names (80 and 443 unless set; nothing is
/// asked over SSH for a page), the local one what its engine says.
pub async fn proxy_ports_for(state: &AppState, spec: &capstan_core::AppSpec) -> ProxyPorts {
    match spec.servers.first().filter(|server| !server.is_local()) {
        None => proxy_ports(state).await,
        Some(server) => match state.deployer.server_record(server).await {
            Ok(record) => server_proxy_ports(&record.spec),
            Err(_) => ProxyPorts::default(),
        },
    }
}

/// The ports a remote server's proxy publishes, from its settings.
pub fn server_proxy_ports(spec: &capstan_core::ServerSpec) -> ProxyPorts {
    ProxyPorts {
        http: Some(spec.proxy_http_port.unwrap_or(80)),
        https: Some(spec.proxy_https_port.unwrap_or(443)),
    }
}

/// Every domain of an app with its address; the certificate's state when it is known
/// without Traefik (plain HTTP, not served), else left for the script to ask.
pub fn domain_links(
    domains: &[String],
    tls: bool,
    served: bool,
    port: Option<u16>,
) -> Vec<DomainLink> {
    let known = match (tls, served) {
        (false, _) => Some(CertificateStateName::HttpOnly),
        (true, false) => Some(CertificateStateName::NotServed),
        (true, true) => None,
    };
    domains
        .iter()
        .map(|domain| {
            let (state, label, badge) = match known {
                Some(name) => {
                    let (label, badge) = badge_of(name);
                    (state_name(name), label, badge)
                }
                None => ("", "certificate …", ""),
            };
            DomainLink {
                domain: domain.clone(),
                url: domain_url(domain, tls, port),
                state,
                label,
                badge,
            }
        })
        .collect()
}

/// A state's words and badge colour.
fn badge_of(state: CertificateStateName) -> (&'static str, &'static str) {
    match state {
        CertificateStateName::Issued => ("certificate issued", "ok"),
        CertificateStateName::Expired => ("certificate expired", "bad"),
        CertificateStateName::Pending => ("certificate pending", "busy"),
        CertificateStateName::Failed => ("certificate failed", "bad"),
        CertificateStateName::HttpOnly => ("HTTP only", ""),
        CertificateStateName::NotServed => ("not deployed yet", ""),
    }
}

/// The state's name as the API writes it.
fn state_name(state: CertificateStateName) -> &'static str {
    match state {
        CertificateStateName::Issued => "issued",
        CertificateStateName::Expired => "expired",
        CertificateStateName::Pending => "pending",
        CertificateStateName::Failed => "failed",
        CertificateStateName::HttpOnly => "http_only",
        CertificateStateName::NotServed => "not_served",
    }
}

/// The badge of one domain's certificate.
pub fn badge(certificate: DomainCertificate) -> CertificateBadge {
    let (label, badge) = badge_of(certificate.state);
    let day = |t: &Option<String>| t.as_deref().map(|t| t.get(..10).unwrap_or(t).to_string());
    let detail = match certificate.state {
        CertificateStateName::Issued => day(&certificate.expires_at).map(|d| format!("until {d}")),
        CertificateStateName::Expired => {
            let since = day(&certificate.expires_at).map(|d| format!("since {d}"));
            match (since, certificate.reason) {
                (Some(since), Some(reason)) => Some(format!("{since}: {reason}")),
                (since, reason) => since.or(reason),
            }
        }
        _ => certificate.reason,
    };
    CertificateBadge {
        domain: certificate.domain,
        state: certificate.state,
        label,
        badge,
        detail: detail.unwrap_or_default(),
    }
}

/// `GET /apps/{app}/certificates` (session, read scope): the badge of each domain's
/// certificate, for the app page's script; a refusal is the API's JSON error.
pub async fn certificates(
    State(state): State<AppState>,
    session: SignedIn,
    Path(app): Path<String>,
) -> Result<Json<Vec<CertificateBadge>>, ApiError> {
    if !session.can(Scope::Read) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "your role, {}, does not allow this (it needs the read scope)",
                session.role.as_str()
            ),
        ));
    }
    let name: AppName = app_name(&app)?;
    let certificates = tokio::time::timeout(
        CERTIFICATES_WAIT,
        crate::certificates::of_app(&state, &name),
    )
    .await
    .map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "the Docker engine did not answer within {} s",
                CERTIFICATES_WAIT.as_secs()
            ),
        )
    })??;
    Ok(Json(certificates.into_iter().map(badge).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_port_is_added_only_when_it_is_not_the_schemes_own() {
        assert_eq!(domain_url("a.test", false, Some(80)), "http://a.test");
        assert_eq!(domain_url("a.test", false, None), "http://a.test");
        assert_eq!(
            domain_url("a.test", false, Some(8081)),
            "http://a.test:8081"
        );
        assert_eq!(domain_url("a.test", true, Some(443)), "https://a.test");
        assert_eq!(
            domain_url("a.test", true, Some(8443)),
            "https://a.test:8443"
        );
    }

    #[test]
    fn an_expired_certificate_is_a_red_badge_saying_since_when_and_why() {
        let expired = DomainCertificate {
            domain: "a.test".into(),
            state: CertificateStateName::Expired,
            expires_at: Some("2027-01-06T11:44:59Z".into()),
            reason: Some("acme: error: 403".into()),
        };
        assert_eq!(
            badge(expired),
            CertificateBadge {
                domain: "a.test".into(),
                state: CertificateStateName::Expired,
                label: "certificate expired",
                badge: "bad",
                detail: "since 2027-01-06: acme: error: 403".into(),
            }
        );
        let issued = DomainCertificate {
            domain: "a.test".into(),
            state: CertificateStateName::Issued,
            expires_at: Some("2027-03-07T11:44:54Z".into()),
            reason: None,
        };
        assert_eq!(badge(issued).detail, "until 2027-03-07");
    }

    #[test]
    fn states_known_without_traefik_are_shown_at_once() {
        let names = ["a.test".to_string()];
        let plain = &domain_links(&names, false, true, Some(8081))[0];
        assert_eq!((plain.state, plain.label), ("http_only", "HTTP only"));
        assert_eq!(plain.url, "http://a.test:8081");
        let unserved = &domain_links(&names, true, false, None)[0];
        assert_eq!(unserved.state, "not_served");
        let asked = &domain_links(&names, true, true, None)[0];
        assert_eq!(asked.state, "", "left for the script");
    }
}
