//! The trust boundary around an app's settings: what only an admin may set (host paths,
//! local source directories), what nobody may set (the daemon's data dir, the Docker
//! socket, `/`), and what one app may not take from another (its domains). Checked when
//! settings are saved and again when a deployment runs them.

use crate::{ActionError, Deployer};
use capstan_core::app::{check_host_path, normalize_host_path};
use capstan_core::{AppName, AppSpec, Source};
use std::path::{Path, PathBuf};

/// What kind of principal a [`Caller`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallerKind {
    /// The daemon itself (deployments it runs, recovery).
    Daemon,
    /// An API token.
    Token,
    /// A user signed in to the panel.
    User,
    /// A forge's signed webhook (`name` is the provider): deploy scope only.
    Webhook,
}

/// Who asks for an action, and what they may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's or user's name, for the record.
    pub name: String,
    pub kind: CallerKind,
    /// What the caller may do; only `admin` may mount host paths and deploy local
    /// directories.
    pub scopes: capstan_core::Scopes,
}

impl Caller {
    /// The daemon itself (deployments it runs, recovery).
    pub fn daemon() -> Self {
        Self {
            name: "capstan".into(),
            kind: CallerKind::Daemon,
            scopes: capstan_core::Scopes::of([capstan_core::Scope::Admin]),
        }
    }

    pub fn token(name: impl Into<String>, scopes: capstan_core::Scopes) -> Self {
        Self {
            name: name.into(),
            kind: CallerKind::Token,
            scopes,
        }
    }

    pub fn user(name: impl Into<String>, role: capstan_core::Role) -> Self {
        Self {
            name: name.into(),
            kind: CallerKind::User,
            scopes: role.scopes(),
        }
    }

    /// A forge's verified webhook delivery, which may only deploy.
    pub fn webhook(provider: impl Into<String>) -> Self {
        Self {
            name: provider.into(),
            kind: CallerKind::Webhook,
            scopes: capstan_core::Scopes::of([capstan_core::Scope::Deploy]),
        }
    }

    /// How the caller is recorded on what it asks for: `token:<name>`, `user:<name>`,
    /// `webhook:<provider>`, or `capstan` for the daemon itself.
    pub fn actor(&self) -> String {
        match self.kind {
            CallerKind::Daemon => self.name.clone(),
            CallerKind::Token => format!("token:{}", self.name),
            CallerKind::User => format!("user:{}", self.name),
            CallerKind::Webhook => format!("webhook:{}", self.name),
        }
    }

    pub fn is_admin(&self) -> bool {
        self.scopes.allows(capstan_core::Scope::Admin)
    }
}

/// Host paths no app may mount, whoever asks: the data dir, the Docker socket and the
/// engine's own state, and the kernel's views of the host.
pub fn protected_host_paths(data_dir: &Path, docker_socket: Option<&Path>) -> Vec<String> {
    let mut paths = vec![
        data_dir.to_string_lossy().into_owned(),
        "/var/run/docker.sock".into(),
        "/run/docker.sock".into(),
        "/var/lib/docker".into(),
        "/run/containerd".into(),
        "/proc".into(),
        "/sys".into(),
        "/etc/capstan".into(),
    ];
    if let Some(socket) = docker_socket {
        paths.push(socket.to_string_lossy().into_owned());
    }
    paths
}

impl Deployer {
    /// Checks settings that cross a trust boundary, for `caller`; the error says what and
    /// why. `app` is the app the settings are for (its own domains are fine). `previous`
    /// are the settings being changed: a source the caller leaves as it is keeps the
    /// approval of the admin who set it (its path is checked again all the same).
    pub(crate) async fn check_trust(
        &self,
        app: &AppName,
        spec: &AppSpec,
        previous: Option<&AppSpec>,
        caller: &Caller,
    ) -> Result<(), ActionError> {
        self.check_settings_trust(spec, previous, caller).await?;
        self.check_domains_free(app, spec).await
    }

    /// [`Self::check_trust`] but for the domains, which depend on the other apps: what
    /// the settings themselves may reach (host paths, the source).
    pub(crate) async fn check_settings_trust(
        &self,
        spec: &AppSpec,
        previous: Option<&AppSpec>,
        caller: &Caller,
    ) -> Result<(), ActionError> {
        let source_changed = previous.is_none_or(|p| p.source != spec.source);
        for volume in spec.volumes.iter().filter(|v| v.is_host_path()) {
            if !caller.is_admin() {
                return Err(ActionError::Forbidden(format!(
                    "volumes.source: {:?} is a host path, which needs a token with the admin scope",
                    volume.source
                )));
            }
            self.check_host_path("volumes.source", &volume.source)?;
        }
        match &spec.source {
            Source::Path(dir) => {
                if source_changed && !caller.is_admin() {
                    return Err(ActionError::Forbidden(
                        "source.path: deploying a directory of the daemon's host needs a token with the admin scope".into(),
                    ));
                }
                self.check_source_dir(dir)?;
            }
            Source::Git { url, .. } => {
                self.check_git_source(url, caller, source_changed).await?;
            }
            Source::Image(_) => {}
        }
        Ok(())
    }

    /// A host path passes the lexical check and, if it exists, so does its real path
    /// (`/var/run` is a link to `/run` on most hosts).
    fn check_host_path(&self, field: &str, path: &str) -> Result<(), ActionError> {
        let protected = &self.settings().protected_paths;
        let invalid = |e: capstan_core::ValidationError| ActionError::Invalid(e.to_string());
        check_host_path(field, path, protected).map_err(invalid)?;
        let real_protected: Vec<String> = protected
            .iter()
            .filter_map(|p| std::fs::canonicalize(p).ok())
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        if let Ok(real) = std::fs::canonicalize(normalize_host_path(path)) {
            let real = real.to_string_lossy().into_owned();
            check_host_path(field, &real, protected).map_err(invalid)?;
            check_host_path(field, &real, &real_protected).map_err(invalid)?;
        }
        Ok(())
    }

    /// A local source directory must lie inside one of the directories the operator
    /// allowed (`source_dirs`; none by default) and never touch the daemon's own paths.
    pub(crate) fn check_source_dir(&self, dir: &str) -> Result<PathBuf, ActionError> {
        self.check_local_path("source.path", dir)
    }

    /// [`Self::check_source_dir`] for any local source (`field` names it in errors): a
    /// source directory, a local git repository or bundle, a submodule's. Returns the
    /// canonical path.
    pub(crate) fn check_local_path(&self, field: &str, dir: &str) -> Result<PathBuf, ActionError> {
        if !dir.starts_with('/') {
            return Err(ActionError::Invalid(format!(
                "{field}: {dir:?} is a relative path of the daemon's host; local sources are absolute paths"
            )));
        }
        self.check_host_path(field, dir)?;
        let allowed = &self.settings().source_dirs;
        let real = std::fs::canonicalize(normalize_host_path(dir))
            .map_err(|_| ActionError::Invalid(format!("{field}: {dir} does not exist")))?;
        let inside = allowed
            .iter()
            .filter_map(|a| std::fs::canonicalize(a).ok())
            .any(|a| real.starts_with(&a));
        // Nobody may, whatever their scopes: the settings are wrong, not the caller.
        if !inside {
            return Err(ActionError::Invalid(format!(
                "{field}: {dir} is not inside a directory the operator allows for local sources ({}); set source_dirs in the daemon's configuration",
                if allowed.is_empty() {
                    "none are allowed".to_string()
                } else {
                    allowed
                        .iter()
                        .map(|a| a.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            )));
        }
        Ok(real)
    }

    /// No two apps route the same host name: the first one keeps it.
    pub(crate) async fn check_domains_free(
        &self,
        app: &AppName,
        spec: &AppSpec,
    ) -> Result<(), ActionError> {
        if spec.domains.is_empty() {
            return Ok(());
        }
        for other in self.store().apps().await? {
            if &other.name == app {
                continue;
            }
            for domain in &spec.domains {
                let taken = other
                    .spec
                    .domains
                    .iter()
                    .any(|d| d.eq_ignore_ascii_case(domain));
                if taken {
                    return Err(ActionError::Conflict(format!(
                        "domains: {} is already routed to app {}",
                        domain.to_ascii_lowercase(),
                        other.name
                    )));
                }
            }
        }
        Ok(())
    }
}
