//! Getting a deployment's source into its workspace, each part judged before anything of
//! it is read (the rules are in `git_trust` and `trust`): a git URL is fetched from its
//! checked form, each level of submodules only after its URLs pass; a local directory is
//! opened without following links and copied into the deployment's own workspace, and
//! only that copy is planned and built.

use crate::logs::DeployLog;
use crate::pipeline::Failure;
use crate::planning::{plan_tree, Planned};
use crate::{ActionError, Deployer};
use capstan_build::snapshot::SourceDir;
use capstan_build::submodules;
use capstan_build::{fetch_git, local_commit, BuildError};
use capstan_core::{AppSpec, Source};
use capstan_store::DeploymentRecord;
use std::path::{Path, PathBuf};

/// How many levels of submodules inside submodules are fetched.
const MAX_SUBMODULE_DEPTH: usize = 8;
/// Submodules one deployment may fetch in all, at every depth: each is a clone of its
/// own, so a repository could otherwise make a deployment fetch without end.
const MAX_SUBMODULES: usize = 64;

/// Why a source could not be had: refused by a trust rule, or failed to fetch or copy.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SourceError {
    #[error(transparent)]
    Refused(#[from] ActionError),
    #[error(transparent)]
    Build(#[from] BuildError),
}

impl From<SourceError> for ActionError {
    fn from(err: SourceError) -> Self {
        match err {
            SourceError::Refused(err) => err,
            SourceError::Build(err) => err.into(),
        }
    }
}

/// A source tree in the deployment's workspace, ready to plan.
pub(crate) struct Fetched {
    pub root: PathBuf,
    pub commit: Option<String>,
    /// A local directory: held open, to copy again in full if the copy that left out what
    /// `.dockerignore` excludes does not plan from its root.
    pub local: Option<LocalCopy>,
}

impl Fetched {
    /// Where git reads the source's history: the checkout, or the local directory itself
    /// (through its open descriptor, never its path again).
    pub fn history_dir(&self) -> PathBuf {
        match &self.local {
            Some(local) => local.dir.fd_path(),
            None => self.root.clone(),
        }
    }
}

pub(crate) struct LocalCopy {
    dir: SourceDir,
    /// Directories left out as `.dockerignore` says.
    pub pruned: Vec<String>,
}

async fn say(log: Option<&DeployLog>, line: String) {
    if let Some(log) = log {
        log.info(line).await;
    }
}

impl Deployer {
    /// Fetches the app's git source at `reference` into `dest`, or copies its local
    /// directory there, checking each before anything of it is read.
    pub(crate) async fn obtain_source(
        &self,
        spec: &AppSpec,
        reference: &str,
        dest: &Path,
        prune_ignored: bool,
        log: Option<&DeployLog>,
    ) -> Result<Fetched, SourceError> {
        match &spec.source {
            Source::Git { url, .. } => {
                let (fetch_url, local) = self.git_fetch_url(url)?;
                let limits = self.settings().fetch_limits;
                let checkout = fetch_git(&fetch_url, reference, dest, limits).await?;
                self.fetch_submodules(&checkout.dir, local, log).await?;
                Ok(Fetched {
                    root: checkout.dir,
                    commit: Some(checkout.commit),
                    local: None,
                })
            }
            Source::Path(path) => self.copy_local_dir(path, dest, prune_ignored, log).await,
            Source::Image(image) => {
                Err(ActionError::Invalid(format!("image {image} has no source to fetch")).into())
            }
        }
    }

    /// Checks the directory, opens it without following links and copies it into `dest`,
    /// leaving out what its `.dockerignore` excludes.
    async fn copy_local_dir(
        &self,
        path: &str,
        dest: &Path,
        prune_ignored: bool,
        log: Option<&DeployLog>,
    ) -> Result<Fetched, SourceError> {
        let real = self.check_source_dir(path)?;
        let max = self.settings().source_limits.local_source_max_bytes;
        let target = dest.to_path_buf();
        let (dir, copy) = tokio::task::spawn_blocking(move || {
            let dir = SourceDir::open(&real)?;
            let copy = dir.snapshot(&target, max, prune_ignored)?;
            Ok::<_, BuildError>((dir, copy))
        })
        .await
        .map_err(|e| BuildError::Source(format!("copying the source panicked: {e}")))??;
        let commit = local_commit(&dir.fd_path()).await;
        say(
            log,
            format!(
                "using local directory {path}{}: copied {} files ({:.1} MiB) into the deployment's workspace{}",
                commit.as_deref().map(|c| format!(" at commit {c}")).unwrap_or_default(),
                copy.files,
                copy.bytes as f64 / (1024.0 * 1024.0),
                if copy.pruned.is_empty() {
                    String::new()
                } else {
                    format!(", leaving out {} as .dockerignore says", copy.pruned.join(", "))
                }
            ),
        )
        .await;
        if !copy.skipped.is_empty() {
            say(
                log,
                format!("left out (not regular files): {}", copy.skipped.join(", ")),
            )
            .await;
        }
        Ok(Fetched {
            root: dest.to_path_buf(),
            commit,
            local: Some(LocalCopy {
                dir,
                pruned: copy.pruned,
            }),
        })
    }

    /// Replaces a `.dockerignore`-pruned copy of a local directory with a full one.
    pub(crate) async fn copy_in_full(&self, fetched: &mut Fetched) -> Result<(), SourceError> {
        let Some(local) = fetched.local.take() else {
            return Ok(());
        };
        let root = fetched.root.clone();
        let max = self.settings().source_limits.local_source_max_bytes;
        let dir = tokio::task::spawn_blocking(move || {
            std::fs::remove_dir_all(&root)?;
            local.dir.snapshot(&root, max, false)?;
            Ok::<_, BuildError>(local.dir)
        })
        .await
        .map_err(|e| BuildError::Source(format!("copying the source panicked: {e}")))??;
        fetched.local = Some(LocalCopy {
            dir,
            pruned: Vec::new(),
        });
        Ok(())
    }

    /// Fetches the submodules of the checkout at `root`, level by level, each URL checked
    /// first. `app_local`: the app's own source is a local repository (so an admin set it,
    /// and its submodules may be local repositories inside `source_dirs` too).
    async fn fetch_submodules(
        &self,
        root: &Path,
        app_local: bool,
        log: Option<&DeployLog>,
    ) -> Result<(), SourceError> {
        let limits = self.settings().fetch_limits;
        let mut levels = vec![(root.to_path_buf(), 0)];
        let mut fetched = 0;
        while let Some((dir, depth)) = levels.pop() {
            if !submodules::declares_submodules(&dir)? {
                continue;
            }
            if depth >= MAX_SUBMODULE_DEPTH {
                return Err(BuildError::Source(format!(
                    "submodules are nested deeper than {MAX_SUBMODULE_DEPTH} levels"
                ))
                .into());
            }
            let found = submodules::init(&dir, limits).await?;
            fetched += found.len();
            if fetched > MAX_SUBMODULES {
                return Err(BuildError::Source(format!(
                    "the repository declares more than {MAX_SUBMODULES} submodules in all"
                ))
                .into());
            }
            let mut any_local = false;
            for submodule in &found {
                any_local |= self.check_submodule(submodule, app_local).await?;
            }
            let names: Vec<&str> = found.iter().map(|s| s.name.as_str()).collect();
            say(log, format!("fetching submodules: {}", names.join(", "))).await;
            submodules::update(&dir, any_local, limits).await?;
            levels.extend(
                found
                    .iter()
                    .filter_map(|s| submodules::checkout_dir(&dir, s))
                    .map(|d| (d, depth + 1)),
            );
        }
        Ok(())
    }

    /// Fetches a git source into the workspace, or copies a local directory there, each
    /// checked before anything of it is read.
    pub(crate) async fn fetch_source(
        &self,
        d: &DeploymentRecord,
        spec: &AppSpec,
        workspace: &Path,
        log: &DeployLog,
    ) -> Result<Fetched, Failure> {
        let dest = workspace.join("src");
        if let Some(parent) = dest.parent() {
            tokio::fs::create_dir_all(parent).await?;
        }
        let fetched = match &spec.source {
            Source::Git { url, reference } => {
                let reference = d.git_ref.as_deref().unwrap_or(reference);
                let shown = capstan_build::source::redact_url(url);
                let _slot = match self.inner_fetch_slot_now() {
                    Some(slot) => slot,
                    None => {
                        log.info("waiting for a fetch slot (other sources are being fetched)")
                            .await;
                        self.fetch_slot().await
                    }
                };
                log.info(format!("fetching {shown} at {reference}")).await;
                let fetched = self
                    .obtain_source(spec, reference, &dest, true, Some(log))
                    .await;
                if let Ok(Fetched {
                    commit: Some(commit),
                    ..
                }) = &fetched
                {
                    log.info(format!("checked out commit {commit}")).await;
                }
                fetched
            }
            _ => self.obtain_source(spec, "", &dest, true, Some(log)).await,
        };
        fetched.map_err(|e| match e {
            SourceError::Build(e) => Failure::Source(e),
            SourceError::Refused(e) => Failure::msg(e.to_string()),
        })
    }

    /// Plans the tree at `root` off the async runtime (nixpacks reads synchronously).
    pub(crate) async fn plan_source(
        &self,
        root: &Path,
        spec: &AppSpec,
        secrets: &[String],
    ) -> Result<Result<Planned, capstan_build::BuildError>, Failure> {
        let (root, spec, names) = (root.to_path_buf(), spec.clone(), secrets.to_vec());
        let builder = self.builder_kind();
        tokio::task::spawn_blocking(move || plan_tree(&root, &spec, &names, builder))
            .await
            .map_err(|e| Failure::msg(format!("planning the build panicked: {e}")))
    }
}

/// Whether a plan builds only from the root of the tree, so a copy that left out what the
/// root's `.dockerignore` excludes holds everything the build can see.
pub(crate) fn plans_from_root(
    planned: &Result<Planned, capstan_build::BuildError>,
    root: &Path,
) -> bool {
    match planned {
        Ok(Planned { recipe, .. }) => {
            recipe.compose.is_none() && root.canonicalize().is_ok_and(|r| r == recipe.context_dir)
        }
        Err(_) => false,
    }
}
