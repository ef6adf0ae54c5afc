//! The app page's links: each domain of the app as the address that opens it (the
//! proxy's published port added when it is not the scheme's own), with its certificate
//! as Traefik has it. An engine or proxy that cannot be read leaves the links without a
//! state rather than failing the page.

use crate::AppState;
use capstan_core::AppName;

/// One domain of the app on its page.
pub struct DomainLink {
    pub domain: String,
    /// `https://a.example.com`, `http://a.test:8081`.
    pub url: String,
    /// The certificate's state (`issued`, `pending`, `failed`, `http_only`,
    /// `not_served`), empty when it could not be read.
    pub state: String,
    /// The badge's words and colour class.
    pub label: &'static str,
    pub badge: &'static str,
    /// The expiry of an issued certificate, the reason of a failed one, or why the state
    /// is unknown.
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

/// Every domain of `app`, its address and its certificate.
pub async fn domain_links(
    state: &AppState,
    app: &AppName,
    domains: &[String],
    tls: bool,
) -> Vec<DomainLink> {
    if domains.is_empty() {
        return Vec::new();
    }
    let proxy = state.deployer.engine().proxy_status().await.ok().flatten();
    let port = proxy.and_then(|p| p.host_port(if tls { 443 } else { 80 }));
    let certificates = crate::certificates::of_app(state, app).await;
    domains
        .iter()
        .enumerate()
        .map(|(i, domain)| {
            let url = domain_url(domain, tls, port);
            let (state, detail) = match &certificates {
                Ok(list) => match list.get(i).filter(|c| &c.domain == domain) {
                    Some(c) => (
                        c.state.clone(),
                        c.reason
                            .clone()
                            .or_else(|| {
                                c.expires_at.as_ref().map(|t| format!("until {}", &t[..10]))
                            })
                            .unwrap_or_default(),
                    ),
                    None => (String::new(), String::new()),
                },
                Err(err) => (
                    String::new(),
                    format!("certificate unknown: {}", err.message),
                ),
            };
            let (label, badge) = match state.as_str() {
                "issued" => ("certificate issued", "ok"),
                "pending" => ("certificate pending", "busy"),
                "failed" => ("certificate failed", "bad"),
                "http_only" => ("HTTP only", ""),
                "not_served" => ("not deployed yet", ""),
                _ => ("certificate unknown", ""),
            };
            DomainLink {
                domain: domain.clone(),
                url,
                state,
                label,
                badge,
                detail,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::domain_url;

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
}
