//! HTTPS only for names a certificate can be had for: Let's Encrypt issues only for
//! public DNS names, so a domain under a name reserved for local or test use (`.localhost`,
//! `.test`, `.internal`, …), a single-label name or an IP address with `tls` on would
//! never get one; it is refused when the settings are saved, unless the operator set an
//! ACME CA of their own.

use crate::ActionError;
use capstan_core::AppSpec;

/// Top-level names no public CA issues for (RFC 2606, 6761, 6762, 8375, and the common
/// private ones).
const PRIVATE_SUFFIXES: [&str; 10] = [
    "localhost",
    "test",
    "local",
    "invalid",
    "example",
    "internal",
    "lan",
    "home.arpa",
    "localdomain",
    "intranet",
];

/// Why no public CA issues for `domain`, if none does.
fn not_public(domain: &str) -> Option<String> {
    let name = domain.trim_end_matches('.').to_ascii_lowercase();
    if name.parse::<std::net::IpAddr>().is_ok() {
        return Some("it is an IP address".into());
    }
    if !name.contains('.') {
        return Some("it is a single-label name".into());
    }
    PRIVATE_SUFFIXES
        .iter()
        .find(|suffix| name == **suffix || name.ends_with(&format!(".{suffix}")))
        .map(|suffix| format!(".{suffix} names are not public"))
}

/// Refuses `tls` on a domain no public CA issues for, unless `own_ca`.
pub(crate) fn check_tls_names(spec: &AppSpec, own_ca: bool) -> Result<(), ActionError> {
    if !spec.tls || own_ca {
        return Ok(());
    }
    match spec
        .domains
        .iter()
        .find_map(|d| not_public(d).map(|why| (d, why)))
    {
        None => Ok(()),
        Some((domain, why)) => Err(ActionError::Invalid(format!(
            "tls: {domain} cannot get a certificate from Let's Encrypt ({why}): turn HTTPS \
             off, use a public domain, or have the operator set acme_ca_server to a CA of \
             their own"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(domains: &[&str], tls: bool) -> AppSpec {
        serde_json::from_value(serde_json::json!({
            "source": {"image": "busybox:stable"},
            "domains": domains,
            "tls": tls,
        }))
        .unwrap()
    }

    #[test]
    fn https_is_refused_only_for_names_no_public_ca_issues_for() {
        for private in [
            "demo.localhost",
            "shop.test",
            "a.b.internal",
            "nas.home.arpa",
            "10.0.0.1",
            "intra",
        ] {
            let err = check_tls_names(&spec(&["ok.example.com", private], true), false);
            let Err(ActionError::Invalid(message)) = err else {
                panic!("{private}: {err:?}")
            };
            assert!(
                message.starts_with(&format!("tls: {private} cannot")),
                "{message}"
            );
        }
        for public in [
            "shop.example.com",
            "testing.io",
            "my-localhost.dev",
            "www.internal-tools.com",
        ] {
            check_tls_names(&spec(&[public], true), false).unwrap();
        }
        check_tls_names(&spec(&["demo.localhost"], false), false).unwrap();
        check_tls_names(&spec(&["shop.test"], true), true).unwrap();
    }
}
