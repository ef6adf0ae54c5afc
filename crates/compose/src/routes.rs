//! The proxy's per-app route file (Traefik file provider): the app's routers, built from
//! its domains, and the service that sends to the containers of the serving deployment.
//! Routes come only from these files, never from container or image labels.

use crate::{render_template, RenderError};
use capstan_core::AppNames;
use minijinja::context;

/// The ACME resolver defined in `proxy/traefik.yml.j2`.
pub const CERT_RESOLVER: &str = "letsencrypt";

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

/// Renders the route file of an app.
pub fn render_routes(names: &AppNames, target: &RouteTarget) -> Result<String, RenderError> {
    let rule = target
        .domains
        .iter()
        .map(|d| format!("Host(`{}`)", d.to_ascii_lowercase()))
        .collect::<Vec<_>>()
        .join(" || ");
    let text = render_template(
        "routes.yml.j2",
        ROUTES_TEMPLATE,
        context! {
            rule => rule,
            tls => target.tls,
            cert_resolver => CERT_RESOLVER,
            servers => target.server_urls(),
            names => context! {
                http => names.http_router(),
                https => names.https_router(),
                redirect => names.https_redirect(),
                service => names.traefik_service(),
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

const ROUTES_TEMPLATE: &str = include_str!("../../../compose-templates/routes.yml.j2");
