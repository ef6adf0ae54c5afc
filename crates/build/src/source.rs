//! Fetching sources: `git clone` + checkout of a branch, tag or commit into a fresh
//! workspace, with every command run as argv and no prompt ever waiting for a terminal.

use crate::BuildError;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::process::Command;

const GIT_TIMEOUT: Duration = Duration::from_secs(300);

/// A checked-out source tree at a resolved commit.
#[derive(Debug, Clone)]
pub struct Checkout {
    pub dir: PathBuf,
    pub commit: String,
}

/// Runs `git <args>` in `cwd`, returning stdout; stderr becomes the error detail.
async fn git(cwd: &Path, action: &str, args: &[&str]) -> Result<String, BuildError> {
    let mut command = Command::new("git");
    command
        .args([
            "-c",
            "protocol.ext.allow=never",
            "-c",
            "core.hooksPath=/dev/null",
        ])
        .args(args)
        .current_dir(cwd)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_ASKPASS", "")
        .env("SSH_ASKPASS", "")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let output = tokio::time::timeout(GIT_TIMEOUT, command.output())
        .await
        .map_err(|_| BuildError::Git {
            action: action.to_string(),
            detail: format!("timed out after {}s", GIT_TIMEOUT.as_secs()),
        })?
        .map_err(|e| BuildError::Git {
            action: action.to_string(),
            detail: format!("cannot run git: {e}"),
        })?;
    if !output.status.success() {
        let detail = String::from_utf8_lossy(&output.stderr).trim().to_string();
        return Err(BuildError::Git {
            action: action.to_string(),
            detail: if detail.is_empty() {
                format!("exit status {}", output.status)
            } else {
                detail
            },
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// Clones `url` into `dest` (which must not exist) and checks out `reference`, which may
/// be a branch, a tag or a commit id. Submodules are fetched when the tree has any.
pub async fn fetch_git(url: &str, reference: &str, dest: &Path) -> Result<Checkout, BuildError> {
    let parent = dest
        .parent()
        .ok_or_else(|| BuildError::Source(format!("{} has no parent", dest.display())))?;
    tokio::fs::create_dir_all(parent).await?;
    let dest_str = dest.to_string_lossy().into_owned();
    git(parent, "clone", &["clone", "--quiet", "--", url, &dest_str]).await?;
    let candidates = [
        format!("refs/remotes/origin/{reference}"),
        format!("refs/tags/{reference}"),
        reference.to_string(),
    ];
    let mut commit = None;
    for candidate in &candidates {
        let spec = format!("{candidate}^{{commit}}");
        if let Ok(sha) = git(
            dest,
            "rev-parse",
            &[
                "rev-parse",
                "--verify",
                "--quiet",
                "--end-of-options",
                &spec,
            ],
        )
        .await
        {
            commit = Some(sha);
            break;
        }
    }
    let commit = commit.ok_or_else(|| BuildError::UnknownRef {
        reference: reference.to_string(),
        url: url.to_string(),
    })?;
    git(
        dest,
        "checkout",
        &["checkout", "--quiet", "--detach", &commit],
    )
    .await?;
    if dest.join(".gitmodules").exists() {
        git(
            dest,
            "submodule update",
            &["submodule", "update", "--init", "--recursive", "--quiet"],
        )
        .await?;
    }
    Ok(Checkout {
        dir: dest.to_path_buf(),
        commit,
    })
}

/// The HEAD commit of a local directory if it is a git work tree.
pub async fn local_commit(dir: &Path) -> Option<String> {
    if !dir.join(".git").exists() {
        return None;
    }
    git(dir, "rev-parse", &["rev-parse", "HEAD"]).await.ok()
}
