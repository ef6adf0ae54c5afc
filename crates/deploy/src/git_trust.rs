//! Git URLs at the trust boundary: the app's own (when settings are saved, and again when
//! a deployment fetches it) and each submodule's (before git fetches it). A path, a
//! `file://` URL or any other local transport is a local source (admin only, inside the
//! operator's `source_dirs`); a loopback or link-local host is the daemon's own host (the
//! app's URL: admin only; a submodule's: only if the operator allows it); a remote helper
//! runs a program and is never fetched.

use crate::{ActionError, Caller, Deployer};
use capstan_build::submodules::Submodule;
use capstan_core::git_url::{is_host_local_ip, locate, GitLocation, RemoteHost};
use capstan_core::redact::redact_url;
use std::time::Duration;

/// How long a host name may take to resolve before it is judged by its spelling alone.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(3);

/// Whether `host` is the daemon's own host: by its spelling, or by what its name resolves
/// to now (a name that does not resolve in time is judged by its spelling).
async fn host_is_local(host: &RemoteHost) -> bool {
    if host.is_host_local() {
        return true;
    }
    let Some(name) = host.name() else {
        return false;
    };
    match tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((name, 0))).await {
        Ok(Ok(mut addresses)) => addresses.any(|a| is_host_local_ip(a.ip())),
        _ => false,
    }
}

/// The refusal for a URL git could not be pointed at safely, whoever asks.
fn unfetchable(what: &str, location: &GitLocation) -> Option<ActionError> {
    match location {
        GitLocation::Helper(transport) => Some(ActionError::Invalid(format!(
            "{what} names git's {transport:?} remote helper, which runs a program on the daemon's host; use an https, ssh or git URL"
        ))),
        GitLocation::Unreadable => Some(ActionError::Invalid(format!(
            "{what}: cannot tell for sure which host it names"
        ))),
        _ => None,
    }
}

impl Deployer {
    /// The app's git URL, for `caller`. `changed`: the caller sets it now (an unchanged
    /// URL keeps the approval of the admin who set it; its path is checked again anyway).
    pub(crate) async fn check_git_source(
        &self,
        url: &str,
        caller: &Caller,
        changed: bool,
    ) -> Result<(), ActionError> {
        let what = format!("source.git.url: {}", redact_url(url));
        let location = locate(url);
        if let Some(refusal) = unfetchable(&what, &location) {
            return Err(refusal);
        }
        match location {
            GitLocation::Local(path) => {
                if changed && !caller.is_admin() {
                    return Err(ActionError::Forbidden(format!(
                        "{what} is a repository on the daemon's host (a local path); deploying one needs a token with the admin scope, as source.path does"
                    )));
                }
                self.check_local_path("source.git.url", &path).map(|_| ())
            }
            GitLocation::Remote(host) if changed && !caller.is_admin() => {
                if host_is_local(&host).await {
                    return Err(ActionError::Forbidden(format!(
                        "{what} points at {host}, an address of the daemon's own host (loopback or link-local); fetching from it needs a token with the admin scope"
                    )));
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// What git fetches the app's own source from: a local repository's checked,
    /// canonical path (and `true`), else the URL itself.
    pub(crate) fn git_fetch_url(&self, url: &str) -> Result<(String, bool), ActionError> {
        let what = format!("source.git.url: {}", redact_url(url));
        let location = locate(url);
        if let Some(refusal) = unfetchable(&what, &location) {
            return Err(refusal);
        }
        match location {
            GitLocation::Local(path) => {
                let real = self.check_local_path("source.git.url", &path)?;
                Ok((real.to_string_lossy().into_owned(), true))
            }
            _ => Ok((url.to_string(), false)),
        }
    }

    /// Refuses a submodule git should not fetch; `Ok(true)` for a checked local one.
    pub(crate) async fn check_submodule(
        &self,
        submodule: &Submodule,
        app_local: bool,
    ) -> Result<bool, ActionError> {
        let what = format!(
            "submodule {:?} ({})",
            submodule.name,
            redact_url(&submodule.declared_url)
        );
        let location = locate(&submodule.url);
        if let Some(refusal) = unfetchable(&what, &location) {
            return Err(refusal);
        }
        match location {
            GitLocation::Local(path) => {
                if !app_local {
                    return Err(ActionError::Forbidden(format!(
                        "{what} is a repository on the daemon's host ({path}); a submodule may be one only when the app's own source is a local repository (set by an admin) and the path is inside source_dirs"
                    )));
                }
                self.check_local_path(&format!("submodule {:?}", submodule.name), &path)?;
                Ok(true)
            }
            GitLocation::Remote(host) => {
                let allowed = self.settings().source_limits.allow_private_submodules;
                if !allowed && host_is_local(&host).await {
                    return Err(ActionError::Forbidden(format!(
                        "{what} points at {host}, an address of the daemon's own host (loopback or link-local); set allow_private_submodules = true in the daemon's configuration to allow it"
                    )));
                }
                Ok(false)
            }
            GitLocation::Helper(_) | GitLocation::Unreadable => Ok(false),
        }
    }
}
