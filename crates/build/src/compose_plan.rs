//! The compose plan: the user's compose file read and checked, the service that serves
//! the app's domains, each service's build, and whether a compose file beside a
//! Dockerfile is the fuller description of the app.

use crate::compose_file::{parse_compose_file, ComposeSource, UserCompose, UserService};
use crate::compose_vars::Variables;
use crate::plan::{dockerfile_in, ensure_inside, Plan, Recipe, COMPOSE_FILES};
use crate::BuildError;
use capstan_core::build_spec::BuildSpec;
use std::collections::BTreeMap;
use std::path::Path;

/// The compose file's name in a compose recipe.
pub(crate) fn compose_file_name(recipe: &Recipe) -> String {
    match &recipe.plan {
        Plan::Compose { file, .. } => file.clone(),
        _ => String::new(),
    }
}

/// When a compose recipe's web service builds the very Dockerfile of the `build` settings
/// and the file has other services too: the file's name and the other services.
pub(crate) fn builds_with_others(
    recipe: &Recipe,
    context: &Path,
    build: &BuildSpec,
) -> Option<(String, Vec<String>)> {
    let (compose, dir) = recipe.compose.as_ref()?;
    let ours = context.join(&build.dockerfile).canonicalize().ok()?;
    let builder = compose.services.values().find(|s| {
        s.build.as_ref().is_some_and(|b| {
            dir.join(&b.context)
                .join(&b.dockerfile)
                .canonicalize()
                .is_ok_and(|p| p == ours)
        })
    })?;
    let others: Vec<String> = compose
        .names()
        .into_iter()
        .filter(|n| n != &builder.name)
        .collect();
    (!others.is_empty()).then(|| (compose_file_name(recipe), others))
}

/// For a Dockerfile plan: the compose file beside it and the service in it that builds
/// that very Dockerfile (`build: .`), whose `ports`, `expose` and `PORT` still say where the
/// app listens. Of several such services: the configured `build.compose_service`, else the
/// only one, else the first (in the file's order) that declares a port. A compose file that
/// does not parse gives nothing here (the plan's reason already says why it was not used).
pub fn dockerfile_service(
    build: &BuildSpec,
    vars: &Variables,
    recipe: &Recipe,
) -> Option<(String, UserService)> {
    if !matches!(recipe.plan, Plan::Dockerfile { .. }) || recipe.dockerfile.is_empty() {
        return None;
    }
    let context = &recipe.context_dir;
    let ours = context.join(&recipe.dockerfile).canonicalize().ok()?;
    let file = match &build.compose_file {
        Some(file) => file.as_str(),
        None => COMPOSE_FILES
            .into_iter()
            .find(|n| context.join(n).is_file())?,
    };
    let real = ensure_inside(context, &context.join(file), file).ok()?;
    let text = std::fs::read_to_string(&real).ok()?;
    let dir = real.parent()?.to_path_buf();
    let compose = parse_compose_file(&text, file, &ComposeSource { dir: &dir, vars }).ok()?;
    let builds_ours = |s: &&UserService| {
        s.build.as_ref().is_some_and(|b| {
            dir.join(&b.context)
                .join(&b.dockerfile)
                .canonicalize()
                .is_ok_and(|p| p == ours)
        })
    };
    let builders: Vec<&UserService> = compose
        .order
        .iter()
        .filter_map(|n| compose.services.get(n))
        .filter(builds_ours)
        .collect();
    let chosen = match build.compose_service.as_deref() {
        Some(name) => builders.iter().find(|s| s.name == name),
        None if builders.len() == 1 => builders.first(),
        None => builders.iter().find(|s| s.declared_port().is_some()),
    }?;
    Some((file.to_string(), (*chosen).clone()))
}

pub(crate) fn compose_recipe(
    context: &Path,
    build: &BuildSpec,
    vars: &Variables,
) -> Result<Option<Recipe>, BuildError> {
    let names: Vec<&str> = match &build.compose_file {
        Some(file) => vec![file.as_str()],
        None => COMPOSE_FILES.to_vec(),
    };
    let Some(file) = names.into_iter().find(|n| context.join(n).is_file()) else {
        return Ok(None);
    };
    let real = ensure_inside(context, &context.join(file), file)?;
    let text = std::fs::read_to_string(&real)
        .map_err(|e| BuildError::Source(format!("cannot read {file}: {e}")))?;
    let dir = real
        .parent()
        .expect("a file has a parent directory")
        .to_path_buf();
    let source = ComposeSource { dir: &dir, vars };
    let compose = parse_compose_file(&text, file, &source)?;
    let mut compose = compose;
    let web = pick_web_service(&mut compose, build.compose_service.as_deref())?;
    let dir = real
        .parent()
        .expect("a file has a parent directory")
        .to_path_buf();
    let service = &compose.services[&web];
    let mut recipe = match service_recipe(&dir, service)? {
        Some(recipe) => recipe,
        None => Recipe {
            plan: Plan::Dockerfile {
                path: String::new(),
                target: None,
            },
            reason: String::new(),
            context_dir: dir.clone(),
            dockerfile: String::new(),
            dockerfile_text: String::new(),
            target: None,
            build_args: BTreeMap::new(),
            generated: Vec::new(),
            compose: None,
            notes: Vec::new(),
        },
    };
    recipe.plan = Plan::Compose {
        file: file.to_string(),
        services: compose.names(),
        web,
    };
    recipe.compose = Some((compose, dir));
    Ok(Some(recipe))
}

/// The compose service that serves the app's domains.
/// The compose service that serves the app's domains: the configured one, else the one
/// that publishes ports, else (of several) the one the repo builds, then the one no other
/// depends on (the front), then the only built one, `web` or `app`, the only service, and
/// finally the first in the file that publishes ports (noted, with how to choose another).
fn pick_web_service(
    compose: &mut UserCompose,
    configured: Option<&str>,
) -> Result<String, BuildError> {
    let names = compose.names();
    if let Some(name) = configured {
        return if compose.services.contains_key(name) {
            Ok(name.to_string())
        } else {
            Err(BuildError::Source(format!(
                "{}: build.compose_service is {name:?}, but the services are {}",
                compose.file,
                names.join(", ")
            )))
        };
    }
    let publishing: Vec<String> = compose
        .services
        .values()
        .filter(|s| !s.ports.is_empty())
        .map(|s| s.name.clone())
        .collect();
    if let [only] = publishing.as_slice() {
        return Ok(only.clone());
    }
    // Several publish ports (a database's, say): the one of them the repo builds.
    let publishing_built: Vec<&String> = publishing
        .iter()
        .filter(|n| compose.services[n.as_str()].build.is_some())
        .collect();
    if let [only] = publishing_built.as_slice() {
        return Ok((*only).clone());
    }
    let front: Vec<&String> = publishing
        .iter()
        .filter(|n| {
            !compose
                .services
                .values()
                .any(|s| s.depends_on.iter().any(|d| d == n.as_str()))
        })
        .collect();
    if let [only] = front.as_slice() {
        return Ok((*only).clone());
    }
    let built: Vec<&String> = compose
        .services
        .values()
        .filter(|s| s.build.is_some())
        .map(|s| &s.name)
        .collect();
    if let [only] = built.as_slice() {
        return Ok((*only).clone());
    }
    for name in ["web", "app"] {
        if compose.services.contains_key(name) {
            return Ok(name.to_string());
        }
    }
    if let [only] = names.as_slice() {
        return Ok(only.clone());
    }
    let first_publishing = compose
        .order
        .iter()
        .find(|n| publishing.contains(n))
        .cloned();
    if let Some(first) = first_publishing {
        let listed: Vec<String> = publishing.iter().map(|n| n.to_string()).collect();
        compose.notes.push(format!(
            "several services publish ports ({}); {first}, the first in the file, serves the \
             app's domains (set build.compose_service to choose another)",
            listed.join(", ")
        ));
        return Ok(first);
    }
    Err(BuildError::Source(format!(
        "{}: cannot tell which service serves the app's domains (services: {}); set \
         build.compose_service",
        compose.file,
        names.join(", ")
    )))
}

/// The build of one compose service (`None` when it runs an image), its Dockerfile as the
/// author wrote it (see [`crate::dockerfile_compat::make_compatible`]). Its context must
/// stay inside the source tree.
pub fn service_recipe(dir: &Path, service: &UserService) -> Result<Option<Recipe>, BuildError> {
    let Some(build) = &service.build else {
        return Ok(None);
    };
    let shown = format!("service {} build context {:?}", service.name, build.context);
    let context = dir.join(&build.context);
    if !context.is_dir() {
        return Err(BuildError::Source(format!("{shown} does not exist")));
    }
    let context = ensure_inside(dir, &context, &shown)?;
    let dockerfile = context.join(&build.dockerfile);
    if !dockerfile.is_file() {
        return Err(BuildError::Source(format!(
            "service {} has no Dockerfile at {:?} in its build context",
            service.name, build.dockerfile
        )));
    }
    let recipe = dockerfile_in(
        &context,
        &build.dockerfile,
        build.target.clone(),
        build.args.clone(),
    )?;
    Ok(Some(recipe))
}
