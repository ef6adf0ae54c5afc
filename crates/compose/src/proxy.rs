//! The proxy's static configuration, rendered from `proxy/traefik.yml.j2`.

use crate::{render_template, RenderError};
use minijinja::context;

const PROXY_TEMPLATE: &str = include_str!("../../../proxy/traefik.yml.j2");

/// Where the file provider watches inside the proxy container.
pub const DYNAMIC_DIR: &str = "/etc/traefik/dynamic";

pub struct ProxySettings<'a> {
    pub instance: &'a str,
    pub acme_email: Option<&'a str>,
    /// The ACME directory the resolver asks for certificates; unset: Let's Encrypt.
    pub acme_ca_server: Option<&'a str>,
    /// Traefik's `providersThrottleDuration`, e.g. `"200ms"`.
    pub throttle: &'a str,
}

/// The port of Traefik's API entrypoint inside the proxy container.
pub const API_PORT: u16 = 8080;

/// Renders `traefik.yml`: the file provider for the per-app routes (the only source of
/// routes), HTTP and HTTPS entrypoints, the API entrypoint bound to the control network,
/// ACME HTTP-01 resolver, logs as JSON lines (read back for certificate failures).
pub fn render_static_config(settings: &ProxySettings<'_>) -> Result<String, RenderError> {
    render_with(settings, None)
}

/// Where a swarm server's proxy reaches the manager's engine, inside its container.
pub const SWARM_ENDPOINT_SOCKET: &str = "/var/run/docker.sock";

/// How often the swarm provider lists services and tasks again.
pub const SWARM_REFRESH: &str = "1s";

/// Renders `traefik.yml` for a swarm server: the same, plus Traefik's swarm provider on the
/// manager's engine socket, limited to services labelled `capstan.instance=<namespace>`.
pub fn render_swarm_static_config(settings: &ProxySettings<'_>) -> Result<String, RenderError> {
    let constraints = format!(
        "Label(`{}`,`{}`)",
        crate::labels::INSTANCE,
        settings.instance
    );
    let swarm = context! {
        endpoint => format!("unix://{SWARM_ENDPOINT_SOCKET}"),
        refresh => SWARM_REFRESH,
        constraints => constraints,
    };
    render_with(settings, Some(swarm))
}

fn render_with(
    settings: &ProxySettings<'_>,
    swarm: Option<minijinja::Value>,
) -> Result<String, RenderError> {
    let api_alias = capstan_core::InstanceNames::new(settings.instance).proxy_api_alias();
    let text = render_template(
        "traefik.yml.j2",
        PROXY_TEMPLATE,
        context! {
            api_address => format!("{api_alias}:{API_PORT}"),
            dynamic_dir => DYNAMIC_DIR,
            throttle => settings.throttle,
            acme_email => settings.acme_email,
            acme_ca_server => settings.acme_ca_server,
            swarm => swarm,
        },
    )?;
    serde_norway::from_str::<serde_norway::Value>(&text).map_err(|source| RenderError::Yaml {
        name: "traefik.yml.j2",
        source,
    })?;
    Ok(text)
}
