//! The proxy's per-app route file (Traefik file provider): which deployment(s) serve.

use crate::{render_template, RenderError};
use minijinja::context;
use serde::Serialize;

const ROUTES_TEMPLATE: &str = include_str!("../../../compose-templates/routes.yml.j2");

/// One backend of an app's route: a deployment's Traefik service and its weight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Backend {
    pub name: String,
    pub weight: u32,
}

/// Renders the route file for `app_service` sending all traffic to `backends`.
/// Backends are Traefik services from the docker provider (`<name>@docker`).
pub fn render_routes(app_service: &str, backends: &[Backend]) -> Result<String, RenderError> {
    let backends: Vec<Backend> = backends
        .iter()
        .map(|b| Backend {
            name: format!("{}@docker", b.name),
            weight: b.weight,
        })
        .collect();
    let text = render_template(
        "routes.yml.j2",
        ROUTES_TEMPLATE,
        context! { service => app_service, backends => backends },
    )?;
    // Read it back so a broken template fails here, not silently in the proxy.
    serde_norway::from_str::<serde_norway::Value>(&text).map_err(|source| RenderError::Yaml {
        name: "routes.yml.j2",
        source,
    })?;
    Ok(text)
}
