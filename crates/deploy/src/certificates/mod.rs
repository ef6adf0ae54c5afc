//! Whether each domain of an app has its certificate, as Traefik sees it: its ACME store
//! says which domains hold a certificate (and until when), its log says which it failed
//! to obtain and why; a domain routed with the resolver and in neither is pending, one
//! whose certificate is past its expiry is expired. An app without TLS is served over
//! plain HTTP. Reads go through [`CertificateSource`], which the engine implements and
//! the tests replace with fixtures; what they say is kept a few seconds ([`FactsCache`]).

mod acme_store;
mod facts_cache;

pub use acme_store::{AcmeStore, StoreError};
pub use facts_cache::{FactsCache, FACTS_TTL};

use crate::target::Target;
use crate::{ActionError, Deployer};
use capstan_core::AppName;
use capstan_engine::EngineError;
use std::collections::BTreeMap;
use std::future::Future;

/// How many of the proxy's last log lines are searched for failures.
const LOG_LINES: usize = 5_000;
/// The longest failure reason kept (lego's errors can quote whole ACME problems).
const REASON_MAX: usize = 600;

/// Where Traefik's certificate facts come from.
pub trait CertificateSource {
    /// The ACME store (`acme.json`) as Traefik wrote it; `None` before it has one.
    fn acme_store(&self) -> impl Future<Output = Result<Option<Vec<u8>>, EngineError>> + Send;
    /// The proxy's last log lines, oldest first.
    fn proxy_log(&self) -> impl Future<Output = Result<Vec<String>, EngineError>> + Send;
}

/// A target's proxy as the source of its certificate facts.
pub(crate) struct TargetProxy<'a>(pub &'a dyn Target);

impl CertificateSource for TargetProxy<'_> {
    async fn acme_store(&self) -> Result<Option<Vec<u8>>, EngineError> {
        self.0.acme_store().await
    }

    async fn proxy_log(&self) -> Result<Vec<String>, EngineError> {
        self.0.proxy_log(LOG_LINES).await
    }
}

/// One domain of an app and its certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainCertificate {
    pub domain: String,
    pub state: CertificateState,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertificateState {
    /// Traefik holds a certificate for the domain, valid until then (Unix ms).
    Issued { expires_at_ms: i64 },
    /// The certificate Traefik holds expired then (Unix ms); the reason is the last
    /// failure Traefik logged for the domain (its renewal), if any.
    Expired {
        expires_at_ms: i64,
        reason: Option<String>,
    },
    /// Routed with the certificate resolver; no certificate yet and no failure logged.
    Pending,
    /// Traefik logged that it could not obtain a certificate for the domain.
    Failed { reason: String },
    /// The app is served over plain HTTP (its settings do not ask for TLS).
    HttpOnly,
    /// No deployment serves the app, so the domain is not routed yet.
    NotServed,
}

impl CertificateState {
    /// The state's name in the API and the panel.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Issued { .. } => "issued",
            Self::Expired { .. } => "expired",
            Self::Pending => "pending",
            Self::Failed { .. } => "failed",
            Self::HttpOnly => "http_only",
            Self::NotServed => "not_served",
        }
    }
}

/// What Traefik says of its certificates: the names its store holds certificates for
/// (with their expiry, nothing else of the store) and the failures it logged.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct TraefikFacts {
    pub store: AcmeStore,
    /// Lower-case domain → the last failure reason logged for it.
    pub failures: BTreeMap<String, String>,
}

/// Reads the ACME store and the proxy's log through `source`.
pub async fn read_facts(source: &impl CertificateSource) -> Result<TraefikFacts, ActionError> {
    let store = match source.acme_store().await? {
        Some(bytes) => AcmeStore::parse(&bytes, capstan_compose::routes::CERT_RESOLVER)
            .map_err(|e| ActionError::Unavailable(e.to_string()))?,
        None => AcmeStore::default(),
    };
    let failures = failures_in_log(&source.proxy_log().await?);
    Ok(TraefikFacts { store, failures })
}

/// The certificate of each of `domains` at `now_ms`, from what `source` reads of
/// Traefik (or what `cache` kept of its last read).
pub async fn domain_certificates(
    cache: &FactsCache,
    source: &impl CertificateSource,
    domains: &[String],
    (tls, served): (bool, bool),
    now_ms: i64,
) -> Result<Vec<DomainCertificate>, ActionError> {
    if !tls || !served || domains.is_empty() {
        let state = if tls {
            CertificateState::NotServed
        } else {
            CertificateState::HttpOnly
        };
        return Ok(domains
            .iter()
            .map(|d| DomainCertificate {
                domain: d.clone(),
                state: state.clone(),
            })
            .collect());
    }
    let facts = cache.get(source, std::time::Instant::now()).await?;
    Ok(states(domains, &facts, now_ms))
}

/// Each domain's state at `now_ms` from the store and the failures logged: a
/// certificate in the store wins while it is in force (a failed renewal keeps it
/// serving), and is expired past its expiry; then a failure, else pending.
pub fn states(domains: &[String], facts: &TraefikFacts, now_ms: i64) -> Vec<DomainCertificate> {
    let TraefikFacts { store, failures } = facts;
    domains
        .iter()
        .map(|domain| {
            let key = domain.to_ascii_lowercase();
            let state = if let Some(expires_at_ms) = store.expiry_of(&key) {
                if expires_at_ms > now_ms {
                    CertificateState::Issued { expires_at_ms }
                } else {
                    CertificateState::Expired {
                        expires_at_ms,
                        reason: failures.get(&key).cloned(),
                    }
                }
            } else if let Some(reason) = failures.get(&key) {
                CertificateState::Failed {
                    reason: reason.clone(),
                }
            } else {
                CertificateState::Pending
            };
            DomainCertificate {
                domain: domain.clone(),
                state,
            }
        })
        .collect()
}

/// The last failure reason Traefik logged for each domain (lower case) of this
/// instance's resolver. The proxy logs JSON lines (`log.format: json`); a failure is an
/// `error` line of the resolver's ACME provider naming its `domains`.
pub fn failures_in_log(lines: &[String]) -> BTreeMap<String, String> {
    let provider = format!("{}.acme", capstan_compose::routes::CERT_RESOLVER);
    let mut failures = BTreeMap::new();
    for line in lines {
        // Read as a map, not a struct: Traefik repeats keys (`providerName`, `time`) in
        // one line, which a struct refuses.
        let Ok(serde_json::Value::Object(entry)) = serde_json::from_str(line.trim()) else {
            continue;
        };
        let text = |key: &str| entry.get(key).and_then(serde_json::Value::as_str);
        if text("level") != Some("error") || text("providerName") != Some(provider.as_str()) {
            continue;
        }
        let (Some(domains), Some(error)) = (
            entry.get("domains").and_then(serde_json::Value::as_array),
            text("error"),
        ) else {
            continue;
        };
        let reason = shorten(error);
        for domain in domains.iter().filter_map(serde_json::Value::as_str) {
            failures.insert(domain.to_ascii_lowercase(), reason.clone());
        }
    }
    failures
}

fn shorten(reason: &str) -> String {
    let reason = reason.trim();
    match reason.char_indices().nth(REASON_MAX) {
        Some((cut, _)) => format!("{}…", &reason[..cut]),
        None => reason.to_string(),
    }
}

impl Deployer {
    /// The certificate of each of the app's domains, as Traefik has them now.
    pub async fn certificates(
        &self,
        name: &AppName,
    ) -> Result<Vec<DomainCertificate>, ActionError> {
        let here = self.for_app_named(name).await?;
        here.certificates_here(name).await
    }

    /// [`Self::certificates`] on this deployer's server.
    async fn certificates_here(
        &self,
        name: &AppName,
    ) -> Result<Vec<DomainCertificate>, ActionError> {
        let app = self.store().app(name).await?;
        // What the proxy routes: the live release's domains and HTTPS (a rollback brings
        // back its own), else the saved ones.
        let routed = match app.live_deployment_id {
            Some(live) => self.store().release_of(live).await?.map(|r| r.app_spec),
            None => None,
        }
        .unwrap_or(app.spec);
        domain_certificates(
            self.certificate_facts(),
            &TargetProxy(self.target()),
            &routed.domains,
            (routed.tls, app.live_deployment_id.is_some()),
            capstan_store::now_ms(),
        )
        .await
    }
}

#[cfg(test)]
mod tests;
