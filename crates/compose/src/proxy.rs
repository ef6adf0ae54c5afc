//! The proxy's static configuration, rendered from `proxy/traefik.yml.j2`.

use crate::{render_template, RenderError};
use minijinja::context;

const PROXY_TEMPLATE: &str = include_str!("../../../proxy/traefik.yml.j2");

/// Where the file provider watches inside the proxy container.
pub const DYNAMIC_DIR: &str = "/etc/traefik/dynamic";

pub struct ProxySettings<'a> {
    pub instance: &'a str,
    pub acme_email: Option<&'a str>,
    /// Traefik's `providersThrottleDuration`, e.g. `"200ms"`.
    pub throttle: &'a str,
}

/// Renders `traefik.yml`: docker provider limited to this instance's containers, file
/// provider for the per-app routes, HTTP and HTTPS entrypoints, ACME HTTP-01 resolver.
pub fn render_static_config(settings: &ProxySettings<'_>) -> Result<String, RenderError> {
    let constraint = format!("Label(`capstan.instance`,`{}`)", settings.instance);
    let text = render_template(
        "traefik.yml.j2",
        PROXY_TEMPLATE,
        context! {
            network => settings.instance,
            constraint => constraint,
            dynamic_dir => DYNAMIC_DIR,
            throttle => settings.throttle,
            acme_email => settings.acme_email,
        },
    )?;
    serde_norway::from_str::<serde_norway::Value>(&text).map_err(|source| RenderError::Yaml {
        name: "traefik.yml.j2",
        source,
    })?;
    Ok(text)
}
