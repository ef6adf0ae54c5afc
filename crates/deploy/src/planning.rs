//! Planning without deploying: read the repo's `capstan.toml`, detect the build plan, and
//! render the compose spec a deployment would run. The pipeline, the API's plan endpoint
//! and `capstan plan <dir>` all go through here, so a dry run shows exactly what a deploy
//! will do.

use crate::companions::{companions_for, complete_compose_spec, web_template};
pub use crate::ports::DeclaredPort;
use crate::ports::{planned_port, PlannedPort};
use capstan_build::compose_file::UserService;
use capstan_build::compose_vars::Variables;
use capstan_build::plan::dockerfile_service;
pub use capstan_build::plan::BuilderKind;
use capstan_build::procfile::apply_procfile;
use capstan_build::{
    check_tree_links, load_repo_config, prepare_with, BuildError, Plan, Recipe, RepoSettings,
};
use capstan_compose::render::{render_deployment, RenderInput};
use capstan_core::{AppName, AppSpec, Source};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

/// A source tree planned: the settings with the repo's file applied, the build recipe,
/// and the port they name, if any (see [`DeclaredPort::of_settings`]).
#[derive(Debug, Clone)]
pub struct Planned {
    pub settings: RepoSettings,
    pub recipe: Recipe,
    pub declared_port: Option<DeclaredPort>,
}

/// The settings (with the repo's file applied), the build recipe and the declared port for
/// a source tree. `secrets` are the names of the app's secrets (a compose file may use them
/// as variables). Blocking: nixpacks reads the tree synchronously.
pub fn plan_tree(
    root: &Path,
    spec: &AppSpec,
    secrets: &[String],
    builder: BuilderKind,
) -> Result<Planned, BuildError> {
    // Before anything in the tree is read: no symlink may lead out of it.
    check_tree_links(root)?;
    let mut settings = load_repo_config(root, spec)?;
    let vars = Variables {
        values: settings.spec.env.clone(),
        secrets: secrets.iter().cloned().collect(),
    };
    let recipe = prepare_with(
        root,
        &settings.spec.build,
        settings.spec.listen_port(),
        &vars,
        builder,
    )?;
    if let (Plan::Compose { web, .. }, Some((compose, _))) = (&recipe.plan, &recipe.compose) {
        settings.applied.extend(compose.all_notes());
        let from_web = compose_web_settings(&compose.services[web], &mut settings.spec);
        settings.applied.extend(from_web);
    }
    let base_dir = capstan_build::plan::context_dir(root, &settings.spec.build)?;
    let from_procfile = apply_procfile(&base_dir, &recipe, &mut settings.spec)?;
    settings.applied.extend(from_procfile);
    let from_file = settings.applied.iter().any(|l| l.starts_with("port "));
    let builder = dockerfile_service(&settings.spec.build, &vars, &recipe);
    let declared_port =
        DeclaredPort::of_settings(&settings.spec, from_file, &recipe, builder.as_ref());
    Ok(Planned {
        settings,
        recipe,
        declared_port,
    })
}

/// What the compose web service's `deploy` and `stop_grace_period` give the app, where
/// the app's own settings leave them at their defaults; a line for each, for the log.
fn compose_web_settings(web: &UserService, spec: &mut AppSpec) -> Vec<String> {
    let mut applied = Vec::new();
    if let Some(replicas) = web.replicas.filter(|_| spec.replicas == 1) {
        spec.replicas = replicas;
        applied.push(format!(
            "replicas = {replicas} (from the web service's deploy.replicas)"
        ));
    }
    if spec.limits == capstan_core::Limits::default() {
        let memory_mb = web
            .memory
            .as_deref()
            .and_then(capstan_engine::containers::memory_bytes)
            .map(|b| (b / (1024 * 1024)).max(6) as u64);
        let cpus = web.cpus.as_deref().and_then(|c| c.parse::<f64>().ok());
        if memory_mb.is_some() || cpus.is_some() {
            spec.limits = capstan_core::Limits { memory_mb, cpus };
            applied.push(format!(
                "limits = {} (from the web service's deploy.resources.limits)",
                serde_json::to_string(&spec.limits).unwrap_or_default()
            ));
        }
    }
    let grace = web
        .stop_grace_period
        .as_deref()
        .and_then(capstan_core::duration::parse_duration);
    if let Some(grace) = grace.filter(|_| spec.stop_grace_secs == 10) {
        spec.stop_grace_secs = grace.as_secs().clamp(1, 3600) as u32;
        applied.push(format!(
            "stop_grace_secs = {} (from the web service's stop_grace_period)",
            spec.stop_grace_secs
        ));
    }
    applied
}

/// What `capstan plan` prints.
#[derive(Debug, Clone, Serialize)]
pub struct PlanReport {
    /// `dockerfile`, `compose`, `nixpacks`, `static` or `image`.
    pub build_type: String,
    pub plan: String,
    pub reason: String,
    /// Settings the repo's `capstan.toml` supplied.
    pub settings_from_file: Vec<String>,
    /// The port the app will get and where it comes from.
    pub port: String,
    /// The Dockerfile's path in the build context and its text (empty for images).
    pub dockerfile_path: String,
    pub dockerfile: String,
    /// The compose spec a deployment would store and run (with the companions of a
    /// compose app).
    pub compose_spec: String,
    /// The effective settings.
    pub settings: AppSpec,
}

/// Builds the report for `app` whose source tree is at `root` (`None` for image sources).
/// `secrets` are the names of the app's runtime secrets.
pub fn plan_report(
    instance: &str,
    app: &AppName,
    spec: &AppSpec,
    root: Option<&Path>,
    secrets: &[String],
    builder: BuilderKind,
) -> Result<PlanReport, String> {
    let (mut settings, recipe, image, port) = match (&spec.source, root) {
        (Source::Image(image), _) => (
            RepoSettings {
                spec: spec.clone(),
                applied: Vec::new(),
                file: None,
            },
            None,
            image.clone(),
            PlannedPort {
                port: spec.port,
                text: match spec.port {
                    Some(port) => format!("{port} (from the app's settings)"),
                    None => crate::ports::UNNAMED.to_string(),
                },
            },
        ),
        (_, Some(root)) => {
            let planned = plan_tree(root, spec, secrets, builder).map_err(|e| e.to_string())?;
            let port = planned_port(planned.declared_port.as_ref(), &planned.recipe);
            (
                planned.settings,
                Some(planned.recipe),
                capstan_core::InstanceNames::new(instance)
                    .app(app)
                    .image("plan"),
                port,
            )
        }
        (_, None) => return Err("a source tree is needed to plan a build".into()),
    };
    // The spec shown runs on the port the plan names, as a deployment's does.
    settings.spec.port = port.port.or(settings.spec.port);
    let (mut compose, mut compose_spec) = render_deployment(&RenderInput {
        instance,
        app,
        deployment: 0,
        image: &image,
        spec: &settings.spec,
        secrets,
        image_health: None,
    })
    .map_err(|e| e.to_string())?;
    if let Some((Plan::Compose { web, .. }, Some((user, _)))) =
        recipe.as_ref().map(|r| (&r.plan, &r.compose))
    {
        let images: BTreeMap<String, String> = user
            .services
            .values()
            .map(|s| {
                let image = match (&s.build, &s.image) {
                    (None, Some(image)) => image.clone(),
                    _ => capstan_core::InstanceNames::new(instance)
                        .app(app)
                        .companion_image(&s.key, "plan"),
                };
                (s.name.clone(), image)
            })
            .collect();
        let companions = companions_for(instance, app, user, web, &images);
        if user.services[web].build.is_none() {
            if let Some(service) = compose.services.get_mut(app.as_str()) {
                service.image = images[web].clone();
            }
        }
        let template = web_template(instance, app, &user.services[web]);
        compose_spec = complete_compose_spec(
            instance,
            app,
            &mut compose,
            &template,
            &companions,
            settings.spec.env.contains_key("PORT"),
        )?;
    }
    let port = port.text;
    Ok(match recipe {
        Some(recipe) => PlanReport {
            build_type: recipe.plan.kind().as_str().to_string(),
            plan: recipe.plan.describe(),
            reason: recipe.reason,
            settings_from_file: settings.applied,
            port,
            dockerfile_path: recipe.dockerfile,
            dockerfile: recipe.dockerfile_text,
            compose_spec,
            settings: settings.spec,
        },
        None => PlanReport {
            build_type: "image".into(),
            plan: format!("prebuilt image {image} (no build)"),
            reason: "the app's source is an image".into(),
            settings_from_file: Vec::new(),
            port,
            dockerfile_path: String::new(),
            dockerfile: String::new(),
            compose_spec,
            settings: settings.spec,
        },
    })
}

impl crate::Deployer {
    /// A dry run for an existing app: fetch its source (at `git_ref` or the app's ref) into
    /// a scratch workspace, plan it and render its spec. Nothing is built or started.
    pub async fn plan_app(
        &self,
        app: &AppName,
        git_ref: Option<&str>,
    ) -> Result<PlanReport, crate::ActionError> {
        use crate::ActionError;
        let record = self.store().app(app).await?;
        let spec = record.spec;
        if let Some(reference) = git_ref {
            capstan_core::app::check_git_ref(reference)
                .map_err(|e| ActionError::Invalid(e.to_string()))?;
        }
        let secrets: Vec<String> = self
            .store()
            .secret_infos(app)
            .await?
            .into_iter()
            .map(|s| s.name)
            .collect();
        std::fs::create_dir_all(&self.settings().workspace_dir)
            .map_err(|e| ActionError::Internal(format!("cannot make the workspace dir: {e}")))?;
        let scratch = tempfile::Builder::new()
            .prefix("plan-")
            .tempdir_in(&self.settings().workspace_dir)
            .map_err(|e| ActionError::Internal(format!("cannot make a scratch dir: {e}")))?;
        // A dry run copies a local directory whole (no second try without what
        // .dockerignore leaves out), checked as a deployment's is.
        let root = match &spec.source {
            Source::Image(_) => None,
            Source::Path(_) => {
                let dest = scratch.path().join("src");
                Some(
                    self.obtain_source(&spec, "", &dest, false, None)
                        .await?
                        .root,
                )
            }
            Source::Git { reference, .. } => {
                let reference = git_ref.unwrap_or(reference);
                let _fetch = self.fetch_slot().await;
                let dest = scratch.path().join("src");
                let fetched = self
                    .obtain_source(&spec, reference, &dest, false, None)
                    .await?;
                Some(fetched.root)
            }
        };
        let instance = self.target().instance().to_string();
        let app = app.clone();
        let builder = self.builder_kind();
        tokio::task::spawn_blocking(move || {
            plan_report(&instance, &app, &spec, root.as_deref(), &secrets, builder)
        })
        .await
        .map_err(|e| ActionError::Internal(format!("planning panicked: {e}")))?
        .map_err(ActionError::Invalid)
    }
}
