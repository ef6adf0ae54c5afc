//! Build plan detection: which kind of build a source tree needs, the Dockerfile that
//! build runs, and a clear error that says what was looked for when nothing fits.
//!
//! Order for `type = "auto"`: a Dockerfile, a compose file, a nixpacks provider, a static
//! site. Every plan ends as a Dockerfile plus a context, so all of them build through the
//! same code path.

use crate::compose_file::UserCompose;
use crate::compose_plan::{builds_with_others, compose_file_name, compose_recipe};
pub use crate::compose_plan::{dockerfile_service, service_recipe};
use crate::compose_vars::Variables;
use crate::context::GeneratedFile;
pub use crate::dockerfile_compat::BuilderKind;
use crate::layout;
use crate::nixpacks_plan::{detect_providers, generate as generate_nixpacks};
use crate::BuildError;
use capstan_core::build_spec::{BuildKind, BuildSpec};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Compose file names looked for, in order, when none is configured.
pub const COMPOSE_FILES: [&str; 4] = [
    "compose.yaml",
    "compose.yml",
    "docker-compose.yaml",
    "docker-compose.yml",
];

/// Directories looked in, in order, for a static site's `index.html`.
pub const PUBLISH_DIRS: [&str; 6] = [".", "dist", "build", "public", "_site", "out"];

/// Where generated Dockerfiles are placed in the context.
const GENERATED_DOCKERFILE: &str = ".capstan/Dockerfile";

/// What kind of build was chosen, with the detail that explains it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    Dockerfile {
        path: String,
        target: Option<String>,
    },
    Compose {
        file: String,
        services: Vec<String>,
        /// The service that gets the app's domains, port, health check and replicas.
        web: String,
    },
    Nixpacks {
        providers: Vec<String>,
    },
    Static {
        publish_dir: String,
        image: String,
    },
}

impl Plan {
    pub fn kind(&self) -> BuildKind {
        match self {
            Plan::Dockerfile { .. } => BuildKind::Dockerfile,
            Plan::Compose { .. } => BuildKind::Compose,
            Plan::Nixpacks { .. } => BuildKind::Nixpacks,
            Plan::Static { .. } => BuildKind::Static,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Plan::Dockerfile { path, target } => match target {
                Some(target) => format!("dockerfile ({path}, stage {target})"),
                None => format!("dockerfile ({path})"),
            },
            Plan::Compose {
                file,
                services,
                web,
            } => format!(
                "compose ({file}: services {}; {web} serves the app's domains)",
                services.join(", ")
            ),
            Plan::Nixpacks { providers } => format!("nixpacks ({})", providers.join(", ")),
            Plan::Static { publish_dir, image } => {
                format!("static site ({publish_dir}/ served by httpd from {image})")
            }
        }
    }
}

/// A plan made concrete: the context directory and the Dockerfile to build in it.
#[derive(Debug, Clone)]
pub struct Recipe {
    pub plan: Plan,
    /// Why this plan was chosen, for the deployment log and `capstan plan`.
    pub reason: String,
    /// The build context (the source root joined with `base_dir`, canonical).
    pub context_dir: PathBuf,
    /// The Dockerfile's path inside the context.
    pub dockerfile: String,
    /// The Dockerfile's text, as it will be built.
    pub dockerfile_text: String,
    pub target: Option<String>,
    /// Build arguments the plan needs (nixpacks' variables); the app's own arguments
    /// override them.
    pub build_args: BTreeMap<String, String>,
    /// Files the plan generated, added to the context.
    pub generated: Vec<GeneratedFile>,
    /// For the compose plan: the user's file, read and checked, and the directory it is in
    /// (service build contexts are relative to it).
    pub compose: Option<(UserCompose, PathBuf)>,
    /// What was changed so the Dockerfile builds without BuildKit, for the log.
    pub notes: Vec<String>,
}

impl Recipe {
    /// Whether there is anything to build (a compose web service may be an image).
    pub fn builds(&self) -> bool {
        !self.dockerfile.is_empty()
    }
}

/// Resolves `build.base_dir` inside `root`; it must exist and stay inside, symlinks
/// included.
pub fn context_dir(root: &Path, build: &BuildSpec) -> Result<PathBuf, BuildError> {
    let dir = root.join(&build.base_dir);
    if !dir.is_dir() {
        return Err(BuildError::Source(format!(
            "the base directory {:?} does not exist in the source",
            build.base_dir
        )));
    }
    ensure_inside(root, &dir, &build.base_dir)
}

/// Chooses and prepares the build for the tree at `root`. `port` is the app's port (the
/// static server listens on it). A compose file's variables come only from its `.env`.
pub fn prepare(root: &Path, build: &BuildSpec, port: u16) -> Result<Recipe, BuildError> {
    prepare_with(
        root,
        build,
        port,
        &Variables::default(),
        BuilderKind::default(),
    )
}

/// [`prepare`], with the app's variables for a compose file's interpolation, for the
/// engine's `builder` (the Dockerfile, or the compose web service's, is made ready for it).
pub fn prepare_with(
    root: &Path,
    build: &BuildSpec,
    port: u16,
    vars: &Variables,
    builder: BuilderKind,
) -> Result<Recipe, BuildError> {
    let recipe = choose(root, build, port, vars)?;
    crate::dockerfile_compat::make_compatible(recipe, builder)
}

fn choose(
    root: &Path,
    build: &BuildSpec,
    port: u16,
    vars: &Variables,
) -> Result<Recipe, BuildError> {
    let context = context_dir(root, build)?;
    match build.kind {
        BuildKind::Dockerfile => dockerfile_recipe(&context, build)?
            .map(|r| with_reason(r, "build type set to dockerfile"))
            .ok_or_else(|| below(&context, missing_dockerfile(build))),
        BuildKind::Compose => compose_recipe(&context, build, vars)?
            .map(|r| with_reason(r, "build type set to compose"))
            .ok_or_else(|| below(&context, missing_compose(build))),
        BuildKind::Nixpacks => {
            layout::refuse_a_tree_of_apps(&context)?;
            nixpacks_recipe(&context, build, port, true)?
                .map(|r| with_reason(r, "build type set to nixpacks"))
                .ok_or_else(|| {
                    BuildError::NoPlan(
                        "build type is nixpacks, but no nixpacks provider recognised the source \
                     (Node needs package.json, Python requirements.txt or pyproject.toml, Go \
                     go.mod, Rust Cargo.toml, ...)"
                            .into(),
                    )
                })
        }
        BuildKind::Static => static_recipe(&context, build, port)?
            .map(|r| with_reason(r, "build type set to static"))
            .ok_or_else(|| below(&context, missing_static(build))),
        BuildKind::Auto => detect(&context, build, port, vars),
    }
}

fn with_reason(mut recipe: Recipe, reason: &str) -> Recipe {
    recipe.reason = reason.to_string();
    recipe
}

fn detect(
    context: &Path,
    build: &BuildSpec,
    port: u16,
    vars: &Variables,
) -> Result<Recipe, BuildError> {
    let compose = compose_recipe(context, build, vars);
    if let Some(r) = dockerfile_recipe(context, build)? {
        let found = format!("found a Dockerfile at {}", build.dockerfile);
        return Ok(match compose {
            Ok(Some(c)) => match builds_with_others(&c, context, build) {
                Some((file, others)) => {
                    let reason = format!(
                        "{found} and {file}, whose services build that Dockerfile and add {}: \
                         the compose file is deployed (set build.type to dockerfile for the \
                         Dockerfile alone)",
                        others.join(", ")
                    );
                    with_reason(c, &reason)
                }
                None => {
                    let file = compose_file_name(&c);
                    let reason = format!(
                        "{found}; {file} adds no service to run beside it, so the \
                         Dockerfile is built and run on its own (set build.type to compose to \
                         deploy the compose file as written)"
                    );
                    with_reason(r, &reason)
                }
            },
            Err(err) => {
                let reason = format!("{found}; a compose file was found but not used: {err}");
                with_reason(r, &reason)
            }
            Ok(None) => with_reason(r, &found),
        });
    }
    if let Some(r) = compose? {
        return Ok(with_reason(r, "no Dockerfile; found a compose file"));
    }
    layout::refuse_a_tree_of_apps(context)?;
    if let Some(r) = nixpacks_recipe(context, build, port, false)? {
        return Ok(with_reason(
            r,
            "no Dockerfile or compose file; nixpacks recognised the source",
        ));
    }
    if let Some(r) = static_recipe(context, build, port)? {
        return Ok(with_reason(
            r,
            "no Dockerfile, compose file or language nixpacks knows; found an index.html",
        ));
    }
    Err(BuildError::NoPlan(format!(
        "looked for (1) a Dockerfile at {:?}, (2) a compose file ({}), (3) a language \
         nixpacks recognises (package.json, requirements.txt, pyproject.toml, go.mod, \
         Cargo.toml, composer.json, Gemfile, pom.xml, ...), (4) an index.html in {}; found \
         none in {:?}. Add one of them, or set build.type (and build.dockerfile or \
         build.publish_dir) to say where the app is",
        build.dockerfile,
        COMPOSE_FILES.join(", "),
        PUBLISH_DIRS.join(", "),
        build.base_dir
    )))
}

/// A plan of the configured kind found nothing at the base dir: when subdirectories hold
/// apps, the error names them too.
fn below(context: &Path, err: BuildError) -> BuildError {
    match (err, layout::subdirectory_apps(context)) {
        (BuildError::NoPlan(message), Some(listed)) => BuildError::NoPlan(format!(
            "{message}; {listed} (set build.base_dir to the one to deploy)"
        )),
        (err, _) => err,
    }
}

fn missing_dockerfile(build: &BuildSpec) -> BuildError {
    BuildError::NoPlan(format!(
        "build type is dockerfile, but there is no Dockerfile at {:?} in {:?}; add one, or set \
         build.dockerfile to where it is",
        build.dockerfile, build.base_dir
    ))
}

fn missing_compose(build: &BuildSpec) -> BuildError {
    BuildError::NoPlan(format!(
        "build type is compose, but there is no {} in {:?}; add one, or set \
         build.compose_file",
        build
            .compose_file
            .clone()
            .unwrap_or_else(|| COMPOSE_FILES.join(" or ")),
        build.base_dir
    ))
}

fn missing_static(build: &BuildSpec) -> BuildError {
    BuildError::NoPlan(format!(
        "build type is static, but no index.html was found in {}; build the site first, or \
         set build.publish_dir to the directory that holds it",
        match &build.publish_dir {
            Some(dir) => format!("{dir:?}"),
            None => PUBLISH_DIRS.join(", "),
        }
    ))
}

fn dockerfile_recipe(context: &Path, build: &BuildSpec) -> Result<Option<Recipe>, BuildError> {
    if !context.join(&build.dockerfile).is_file() {
        return Ok(None);
    }
    dockerfile_in(
        context,
        &build.dockerfile,
        build.target.clone(),
        BTreeMap::new(),
    )
    .map(Some)
}

/// A recipe that builds the Dockerfile at `dockerfile` (relative to `context`, which it
/// must not leave, symlinks included).
pub(crate) fn dockerfile_in(
    context: &Path,
    dockerfile: &str,
    target: Option<String>,
    build_args: BTreeMap<String, String>,
) -> Result<Recipe, BuildError> {
    let real = ensure_inside(context, &context.join(dockerfile), dockerfile)?;
    let text = std::fs::read_to_string(&real)
        .map_err(|e| BuildError::Source(format!("cannot read {dockerfile}: {e}")))?;
    Ok(Recipe {
        plan: Plan::Dockerfile {
            path: dockerfile.to_string(),
            target: target.clone(),
        },
        reason: String::new(),
        context_dir: context.to_path_buf(),
        dockerfile: dockerfile.to_string(),
        dockerfile_text: text,
        target,
        build_args,
        generated: Vec::new(),
        compose: None,
        notes: Vec::new(),
    })
}

fn nixpacks_recipe(
    context: &Path,
    build: &BuildSpec,
    port: u16,
    include_staticfile: bool,
) -> Result<Option<Recipe>, BuildError> {
    let providers = detect_providers(context, &build.args)?;
    let languages: Vec<String> = providers
        .into_iter()
        .filter(|p| include_staticfile || p != "staticfile")
        .collect();
    if languages.is_empty() {
        return Ok(None);
    }
    let generated = generate_nixpacks(context, &build.args, port)?;
    Ok(Some(Recipe {
        plan: Plan::Nixpacks {
            providers: languages,
        },
        reason: String::new(),
        context_dir: context.to_path_buf(),
        dockerfile: generated.dockerfile_path,
        dockerfile_text: generated.dockerfile_text,
        target: None,
        build_args: generated.variables,
        generated: generated.files,
        compose: None,
        notes: Vec::new(),
    }))
}

fn static_recipe(
    context: &Path,
    build: &BuildSpec,
    port: u16,
) -> Result<Option<Recipe>, BuildError> {
    let candidates: Vec<&str> = match &build.publish_dir {
        Some(dir) => vec![dir.as_str()],
        None => PUBLISH_DIRS.to_vec(),
    };
    let Some(dir) = candidates
        .into_iter()
        .find(|d| context.join(d).join("index.html").is_file())
    else {
        return Ok(None);
    };
    ensure_inside(context, &context.join(dir), dir)?;
    let text = static_dockerfile(&build.static_image, dir, port);
    Ok(Some(Recipe {
        plan: Plan::Static {
            publish_dir: dir.to_string(),
            image: build.static_image.clone(),
        },
        reason: String::new(),
        context_dir: context.to_path_buf(),
        dockerfile: GENERATED_DOCKERFILE.into(),
        dockerfile_text: text.clone(),
        target: None,
        build_args: BTreeMap::new(),
        generated: vec![GeneratedFile {
            path: GENERATED_DOCKERFILE.into(),
            contents: text.into_bytes(),
        }],
        compose: None,
        notes: Vec::new(),
    }))
}

/// The Dockerfile for a static site: the publish directory copied into the base image and
/// served by busybox's httpd on the app's port. Values are JSON strings (the exec and
/// JSON forms of Dockerfile instructions), so no path can add an instruction.
pub fn static_dockerfile(image: &str, publish_dir: &str, port: u16) -> String {
    let source = if publish_dir == "." {
        "./".to_string()
    } else {
        format!("{}/", publish_dir.trim_end_matches('/'))
    };
    let json = |s: &str| format!("{s:?}");
    format!(
        "# Generated by Capstan for a static site.\n\
         FROM {image}\n\
         COPY [{}, \"/srv/www/\"]\n\
         EXPOSE {port}\n\
         CMD [\"httpd\", \"-f\", \"-v\", \"-p\", \"{port}\", \"-h\", \"/srv/www\"]\n",
        json(&source)
    )
}

pub(crate) fn ensure_inside(root: &Path, path: &Path, shown: &str) -> Result<PathBuf, BuildError> {
    let root = root.canonicalize()?;
    let real = path.canonicalize()?;
    if !real.starts_with(&root) {
        return Err(BuildError::Source(format!(
            "{shown:?} resolves outside the source tree"
        )));
    }
    Ok(real)
}
