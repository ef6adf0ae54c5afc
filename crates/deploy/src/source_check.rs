//! Whether an app's source answers, asked when its settings are created or its source is
//! changed, before anything is stored: a git URL and ref through `git ls-remote` (the
//! fetch's own runner, guards and limits, shortened so a request never hangs), a local
//! directory that exists inside `source_dirs`, an image reference the engine can read.
//! Only what the trust checks allowed is ever asked.

use crate::{ActionError, Deployer};
use capstan_build::source::{remote_ref, FetchLimits};
use capstan_build::BuildError;
use capstan_core::redact::redact_url;
use capstan_core::{AppSpec, Source};
use capstan_engine::images::ImageLookup;
use std::time::Duration;

/// How long asking a git remote may take in all, and without a word: a request waits for
/// it, so it is far shorter than a fetch's limits (which bound it too).
const GIT_CHECK_LIMIT: Duration = Duration::from_secs(15);
/// How long the engine may take to say whether it can read an image reference; past it
/// the reference is left for the deployment to check.
const ENGINE_LOOKUP_LIMIT: Duration = Duration::from_secs(5);

/// The limits of a check: the fetch's, but never past [`GIT_CHECK_LIMIT`].
fn check_limits(fetch: FetchLimits) -> FetchLimits {
    FetchLimits {
        total: fetch.total.min(GIT_CHECK_LIMIT),
        idle: fetch.idle.min(GIT_CHECK_LIMIT),
    }
}

/// git's own words for why it could not read a remote: its first line, without `fatal:`.
fn first_line(detail: &str) -> &str {
    let line = detail
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or(detail);
    line.strip_prefix("fatal:").map_or(line, str::trim)
}

impl Deployer {
    /// Refuses a source that does not answer now (see the module's doc). Call it only
    /// after the trust checks passed for the same settings.
    pub(crate) async fn check_source_answers(&self, spec: &AppSpec) -> Result<(), ActionError> {
        match &spec.source {
            Source::Git { url, reference } => self.check_git_answers(url, reference).await,
            Source::Path(dir) => {
                let real = self.check_source_dir(dir)?;
                if !real.is_dir() {
                    return Err(ActionError::Invalid(format!(
                        "source.path: {dir} is not a directory"
                    )));
                }
                Ok(())
            }
            Source::Image(image) => self.check_image_readable(image).await,
        }
    }

    async fn check_git_answers(&self, url: &str, reference: &str) -> Result<(), ActionError> {
        let (fetch_url, _) = self.git_fetch_url(url)?;
        let limits = check_limits(self.settings().fetch_limits);
        // git runs in the daemon's own workspace, never in a directory others can write.
        let cwd = &self.settings().workspace_dir;
        std::fs::create_dir_all(cwd)
            .map_err(|e| ActionError::Internal(format!("cannot make the workspace dir: {e}")))?;
        match remote_ref(&fetch_url, reference, cwd, limits).await {
            Ok(_) => Ok(()),
            Err(err @ BuildError::UnknownRef { .. }) => {
                Err(ActionError::Invalid(format!("source.git.ref: {err}")))
            }
            Err(BuildError::Git { detail, .. }) => Err(ActionError::Invalid(format!(
                "source.git.url: no git repository answers at {}: {}",
                redact_url(url),
                first_line(&detail)
            ))),
            Err(other) => Err(ActionError::Internal(other.to_string())),
        }
    }

    /// An image reference the engine cannot read is refused, as a deployment of it would
    /// fail; one it does not hold is fine (the deployment pulls it), and so is any answer
    /// the engine cannot give now (the deployment asks again).
    async fn check_image_readable(&self, image: &str) -> Result<(), ActionError> {
        let lookup =
            tokio::time::timeout(ENGINE_LOOKUP_LIMIT, self.target().look_up_image(image)).await;
        match lookup {
            Ok(Ok(ImageLookup::Unreadable(reason))) => Err(ActionError::Invalid(format!(
                "source.image: the Docker engine does not read {image:?} as an image reference ({reason})"
            ))),
            Ok(Ok(ImageLookup::Present | ImageLookup::Absent)) => Ok(()),
            Ok(Err(err)) => {
                tracing::info!(%image, %err, "cannot ask the engine about an image; the deployment will");
                Ok(())
            }
            Err(_) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_check_never_waits_longer_than_its_own_limit_or_the_fetchs() {
        let long = FetchLimits::default();
        let checked = check_limits(long);
        assert_eq!(checked.total, GIT_CHECK_LIMIT);
        assert_eq!(checked.idle, GIT_CHECK_LIMIT);
        let short = FetchLimits {
            total: Duration::from_secs(60),
            idle: Duration::from_secs(2),
        };
        assert_eq!(check_limits(short).idle, Duration::from_secs(2));
    }

    #[test]
    fn gits_reason_is_its_first_line() {
        let detail = "fatal: '/tmp/x' does not appear to be a git repository\nfatal: Could not read from remote repository.\n\nPlease make sure";
        assert_eq!(
            first_line(detail),
            "'/tmp/x' does not appear to be a git repository"
        );
        assert_eq!(first_line("no progress for 2s"), "no progress for 2s");
    }
}
