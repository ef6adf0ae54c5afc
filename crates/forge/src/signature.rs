//! Delivery signatures, checked over the raw body in constant time before anything is
//! parsed: HMAC-SHA256 for GitHub (`X-Hub-Signature-256: sha256=<hex>`), Gitea/Forgejo
//! (`X-Gitea-Signature` / `X-Forgejo-Signature: <hex>`) and Bitbucket Cloud
//! (`X-Hub-Signature: sha256=<hex>`); GitLab's shared token (`X-Gitlab-Token`). Errors say
//! what was wrong and never carry the secret, the header's value or the body.

use hmac::{Hmac, Mac};
use http::HeaderMap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::Provider;

/// Why a delivery's signature does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the app's webhook secret is empty: no delivery verifies against it")]
    EmptySecret,
    #[error("the delivery has no {header} header")]
    Missing { header: &'static str },
    #[error("the {header} header is malformed: {reason}")]
    Malformed {
        header: &'static str,
        reason: &'static str,
    },
    #[error("the delivery's signature does not match the app's webhook secret")]
    Mismatch,
}

type HmacSha256 = Hmac<Sha256>;

/// Length of a SHA-256 digest written in hex.
const SHA256_HEX_LEN: usize = 64;

pub(crate) fn verify(
    provider: Provider,
    secret: &[u8],
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), SignatureError> {
    if secret.is_empty() {
        return Err(SignatureError::EmptySecret);
    }
    match provider {
        Provider::Github => {
            let header = "X-Hub-Signature-256";
            verify_hmac(header, prefixed_hex(headers, header)?, secret, body)
        }
        Provider::Bitbucket => {
            let header = "X-Hub-Signature";
            verify_hmac(header, prefixed_hex(headers, header)?, secret, body)
        }
        Provider::Gitea => {
            let (header, value) = gitea_header(headers)?;
            verify_hmac(header, value, secret, body)
        }
        Provider::Gitlab => verify_token(headers, secret),
    }
}

/// A header's value as text, `Missing` when absent, `Malformed` when not visible ASCII.
fn header_text<'h>(
    headers: &'h HeaderMap,
    header: &'static str,
) -> Result<&'h str, SignatureError> {
    let value = headers
        .get(header)
        .ok_or(SignatureError::Missing { header })?;
    let text = value.to_str().map_err(|_| SignatureError::Malformed {
        header,
        reason: "not ASCII text",
    })?;
    Ok(text.trim())
}

/// The hex digest after a `sha256=` prefix (the prefix's case ignored).
fn prefixed_hex<'h>(
    headers: &'h HeaderMap,
    header: &'static str,
) -> Result<&'h str, SignatureError> {
    let text = header_text(headers, header)?;
    match text.split_once('=') {
        Some((algorithm, hex)) if algorithm.eq_ignore_ascii_case("sha256") => Ok(hex),
        _ => Err(SignatureError::Malformed {
            header,
            reason: "expected sha256=<hex digest>",
        }),
    }
}

/// Gitea's header, or Forgejo's when Gitea's is absent.
fn gitea_header(headers: &HeaderMap) -> Result<(&'static str, &str), SignatureError> {
    const GITEA: &str = "X-Gitea-Signature";
    const FORGEJO: &str = "X-Forgejo-Signature";
    let header = if headers.contains_key(GITEA) || !headers.contains_key(FORGEJO) {
        GITEA
    } else {
        FORGEJO
    };
    Ok((header, header_text(headers, header)?))
}

/// Checks a hex HMAC-SHA256 of the body, comparing the digests in constant time.
fn verify_hmac(
    header: &'static str,
    hex_digest: &str,
    secret: &[u8],
    body: &[u8],
) -> Result<(), SignatureError> {
    if hex_digest.len() != SHA256_HEX_LEN {
        return Err(SignatureError::Malformed {
            header,
            reason: "the digest is not 64 hex digits",
        });
    }
    let expected = hex::decode(hex_digest).map_err(|_| SignatureError::Malformed {
        header,
        reason: "the digest is not hex",
    })?;
    let mut mac = HmacSha256::new_from_slice(secret).map_err(|_| SignatureError::EmptySecret)?;
    mac.update(body);
    mac.verify_slice(&expected)
        .map_err(|_| SignatureError::Mismatch)
}

/// GitLab sends the secret itself. Both sides are hashed first so the comparison takes
/// the same time whatever the token's length, then compared in constant time.
fn verify_token(headers: &HeaderMap, secret: &[u8]) -> Result<(), SignatureError> {
    const HEADER: &str = "X-Gitlab-Token";
    let token = headers
        .get(HEADER)
        .ok_or(SignatureError::Missing { header: HEADER })?
        .as_bytes();
    if token.is_empty() {
        return Err(SignatureError::Malformed {
            header: HEADER,
            reason: "the token is empty",
        });
    }
    let given = Sha256::digest(token);
    let wanted = Sha256::digest(secret);
    if bool::from(given.ct_eq(&wanted)) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}
