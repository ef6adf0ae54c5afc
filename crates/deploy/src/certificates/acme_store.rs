//! Traefik's ACME store (`acme.json`) read for what it says about domains: for each
//! certificate of one resolver, the names it covers and when it expires. Private keys in
//! the store are never kept: only each certificate's names and expiry leave this module.
//! A certificate that cannot be decoded is skipped (and logged for the operator), so one
//! broken entry never hides every other domain's certificate.

use base64::Engine as _;
use std::collections::BTreeMap;
use x509_cert::der::DecodePem;

/// Why an ACME store could not be read.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the proxy's ACME store is not the JSON Traefik writes: {0}")]
    Json(#[from] serde_json::Error),
}

/// The names a resolver holds certificates for, each with the latest expiry among them.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AcmeStore {
    /// Lower-case name (`*.example.com` for a wildcard) → expiry (Unix ms).
    expiries: BTreeMap<String, i64>,
}

#[derive(serde::Deserialize)]
struct Resolver {
    #[serde(rename = "Certificates", default)]
    certificates: Option<Vec<StoredCertificate>>,
}

#[derive(serde::Deserialize)]
struct StoredCertificate {
    domain: StoredDomain,
    /// Base64 of the PEM chain, leaf first.
    certificate: String,
}

#[derive(serde::Deserialize)]
struct StoredDomain {
    main: String,
    #[serde(default)]
    sans: Option<Vec<String>>,
}

impl AcmeStore {
    /// Reads the certificates of `resolver` from the store's bytes (an empty file is an
    /// empty store).
    pub fn parse(bytes: &[u8], resolver: &str) -> Result<Self, StoreError> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self::default());
        }
        let mut resolvers: BTreeMap<String, Option<Resolver>> = serde_json::from_slice(bytes)?;
        let mut store = Self::default();
        let Some(Some(resolver)) = resolvers.remove(resolver) else {
            return Ok(store);
        };
        for stored in resolver.certificates.unwrap_or_default() {
            let expires_at_ms = match leaf_expiry(&stored.certificate) {
                Ok(expires_at_ms) => expires_at_ms,
                Err(reason) => {
                    // The daemon's log only (the operator's), never an answer: the
                    // domain may be another app's.
                    tracing::warn!(
                        domain = %stored.domain.main,
                        %reason,
                        "skipped a certificate of the proxy's ACME store that cannot be read"
                    );
                    continue;
                }
            };
            let names =
                std::iter::once(stored.domain.main).chain(stored.domain.sans.unwrap_or_default());
            for name in names {
                let entry = store
                    .expiries
                    .entry(name.to_ascii_lowercase())
                    .or_insert(expires_at_ms);
                *entry = (*entry).max(expires_at_ms);
            }
        }
        Ok(store)
    }

    /// When the certificate covering `domain` (lower case) expires: one for the name
    /// itself, or a wildcard for its parent.
    pub fn expiry_of(&self, domain: &str) -> Option<i64> {
        let exact = self.expiries.get(domain).copied();
        let wildcard = domain
            .split_once('.')
            .and_then(|(_, parent)| self.expiries.get(&format!("*.{parent}")).copied());
        exact.max(wildcard)
    }
}

/// The expiry (Unix ms) of the first certificate of a base64-encoded PEM chain.
fn leaf_expiry(encoded: &str) -> Result<i64, String> {
    let pem = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|e| format!("not base64: {e}"))?;
    let leaf = first_pem_block(&pem).ok_or("no PEM certificate")?;
    let certificate =
        x509_cert::Certificate::from_pem(leaf).map_err(|e| format!("not X.509: {e}"))?;
    let not_after = certificate
        .tbs_certificate
        .validity
        .not_after
        .to_unix_duration();
    i64::try_from(not_after.as_millis()).map_err(|_| "an expiry out of range".to_string())
}

/// The first `-----BEGIN … END …-----` block of a PEM chain.
fn first_pem_block(pem: &[u8]) -> Option<&[u8]> {
    const END: &[u8] = b"-----END CERTIFICATE-----";
    let start = pem.windows(11).position(|w| w == b"-----BEGIN ")?;
    let end = pem[start..].windows(END.len()).position(|w| w == END)? + start + END.len();
    Some(&pem[start..end])
}
