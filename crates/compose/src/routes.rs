//! The proxy's per-app route file (Traefik file provider): the app's routers, built from
//! its domains, and the service that sends to the containers of the serving deployment.
//! Routes come only from these files, never from container or image labels.

use crate::{render_template, RenderError};
use capstan_core::AppNames;
use minijinja::context;

/// The ACME resolver defined in `proxy/traefik.yml.j2`.
pub const CERT_RESOLVER: &str = "letsencrypt";

/// The request header that carries an app's maintenance message (percent-encoded UTF-8)
/// to the page server; `capstan-probe --serve-maintenance` reads it.
pub const MAINTENANCE_MESSAGE_HEADER: &str = "X-Capstan-Maintenance-Message";
/// The request header with the `Retry-After` seconds the page server answers with.
pub const MAINTENANCE_RETRY_AFTER_HEADER: &str = "X-Capstan-Retry-After";
/// Above any rule an app's own router can have (Traefik's default priority is the rule's
/// length).
const MAINTENANCE_PRIORITY: u32 = 1_000_000;

/// An app in maintenance: every request goes to the page server, but `passthrough_path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaintenanceRoute {
    pub message: String,
    pub retry_after_secs: u32,
    /// A path still sent to the app (its health endpoint, so outside monitors see the
    /// app itself); `None` when that path is `/`, which would be the whole site.
    pub passthrough_path: Option<String>,
    /// The page server as the proxy reaches it.
    pub pages_url: String,
}

/// What one app's route sends where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteTarget {
    /// Host names routed to the app (already validated DNS names).
    pub domains: Vec<String>,
    /// HTTPS with an ACME certificate, plain HTTP redirected.
    pub tls: bool,
    /// The containers of the serving deployment (reached by name on the app network).
    pub containers: Vec<String>,
    /// The port the app listens on in its containers.
    pub port: u16,
    /// Set while the app is in maintenance.
    pub maintenance: Option<MaintenanceRoute>,
}

impl RouteTarget {
    /// The server URLs Traefik sends to, in the order the route file lists them.
    pub fn server_urls(&self) -> Vec<String> {
        self.containers
            .iter()
            .map(|c| format!("http://{c}:{}", self.port))
            .collect()
    }
}

/// The port browsers reach HTTPS on when none is named.
pub const DEFAULT_HTTPS_PORT: u16 = 443;

/// Renders the route file of an app. `https_port` is the host port the proxy's HTTPS
/// entry point is published on: the redirect from plain HTTP names it unless it is 443.
pub fn render_routes(
    names: &AppNames,
    target: &RouteTarget,
    https_port: u16,
) -> Result<String, RenderError> {
    let rule = target
        .domains
        .iter()
        .map(|d| format!("Host(`{}`)", d.to_ascii_lowercase()))
        .collect::<Vec<_>>()
        .join(" || ");
    let maintenance = target.maintenance.as_ref().map(|m| {
        let rule = match m.passthrough_path.as_deref().filter(|p| !p.contains('`')) {
            Some(path) if path != "/" => format!("({rule}) && !Path(`{path}`)"),
            _ => rule.clone(),
        };
        context! {
            rule => rule,
            priority => MAINTENANCE_PRIORITY,
            message_header => MAINTENANCE_MESSAGE_HEADER,
            message => percent_encode(&m.message),
            retry_after_header => MAINTENANCE_RETRY_AFTER_HEADER,
            retry_after => m.retry_after_secs.to_string(),
            pages_url => m.pages_url,
        }
    });
    let text = render_template(
        "routes.yml.j2",
        ROUTES_TEMPLATE,
        context! {
            rule => rule,
            tls => target.tls,
            redirect_port => (https_port != DEFAULT_HTTPS_PORT).then(|| https_port.to_string()),
            cert_resolver => CERT_RESOLVER,
            servers => target.server_urls(),
            maintenance => maintenance,
            names => context! {
                http => names.http_router(),
                https => names.https_router(),
                redirect => names.https_redirect(),
                service => names.traefik_service(),
                maintenance_router => names.maintenance_router(),
                maintenance_headers => names.maintenance_headers(),
                maintenance_service => names.maintenance_service(),
            },
        },
    )?;
    // Read it back so a broken template fails here, not silently in the proxy.
    serde_norway::from_str::<serde_norway::Value>(&text).map_err(|source| RenderError::Yaml {
        name: "routes.yml.j2",
        source,
    })?;
    Ok(text)
}

/// Every byte but ASCII letters, digits and `-._~` as `%XX`, so any message is a valid
/// header value.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

const ROUTES_TEMPLATE: &str = include_str!("../../../compose-templates/routes.yml.j2");
