//! Rendering what the engine and the proxy consume: the compose spec of a deployment
//! (with its Traefik and `capstan.*` labels), the proxy's per-app route file, and the
//! proxy's static configuration. Pure functions over templates in `compose-templates/`
//! and `proxy/`; no IO.

pub mod labels;
pub mod model;
pub mod proxy;
pub mod render;
pub mod routes;
pub mod stack;

pub use model::{ComposeSpec, Healthcheck, Service};
pub use render::{render_deployment, DeploymentNames, RenderInput};

/// Rendering failed: a template is broken or produced something that is not a spec.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("template {name}: {source}")]
    Template {
        name: &'static str,
        #[source]
        source: minijinja::Error,
    },
    #[error("template {name} rendered invalid YAML: {source}")]
    Yaml {
        name: &'static str,
        #[source]
        source: serde_norway::Error,
    },
}

/// Renders one embedded template with `ctx`.
pub(crate) fn render_template(
    name: &'static str,
    source: &'static str,
    ctx: minijinja::Value,
) -> Result<String, RenderError> {
    let mut env = minijinja::Environment::new();
    env.set_keep_trailing_newline(true);
    env.add_template(name, source)
        .and_then(|_| env.get_template(name)?.render(ctx))
        .map_err(|source| RenderError::Template { name, source })
}
