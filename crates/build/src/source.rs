//! Fetching sources: `git clone` + checkout of a branch, tag or commit into a fresh
//! workspace, with every command run as argv and no prompt ever waiting for a terminal.

use crate::BuildError;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::process::Command;

/// How long git may run and how long it may go without printing anything (progress
/// included) before it is killed with every process it started (ssh, remote helpers).
#[derive(Debug, Clone, Copy)]
pub struct FetchLimits {
    pub total: Duration,
    pub idle: Duration,
}

impl Default for FetchLimits {
    fn default() -> Self {
        Self {
            total: Duration::from_secs(300),
            idle: Duration::from_secs(30),
        }
    }
}

/// A checked-out source tree at a resolved commit.
#[derive(Debug, Clone)]
pub struct Checkout {
    pub dir: PathBuf,
    pub commit: String,
}

fn git_error(action: &str, detail: impl Into<String>) -> BuildError {
    BuildError::Git {
        action: action.to_string(),
        detail: detail.into(),
    }
}

/// Kills a whole process group (git and the ssh or helper it started).
fn kill_group(pid: Option<u32>) {
    if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
        // SAFETY: killpg only sends a signal; the group is the one git leads.
        unsafe {
            libc::killpg(pid, libc::SIGKILL);
        }
    }
}

/// Runs `git <args>` in `cwd` in a process group of its own, returning stdout; stderr
/// becomes the error detail. Past `limits`, the group is killed.
pub(crate) async fn git(
    cwd: &Path,
    action: &str,
    args: &[&str],
    limits: FetchLimits,
) -> Result<String, BuildError> {
    let mut command = Command::new("git");
    command
        .args([
            "-c",
            "protocol.ext.allow=never",
            "-c",
            "core.hooksPath=/dev/null",
            // A remote checked as public must not hand git on to another host (a loopback
            // one, say) through an HTTP redirect.
            "-c",
            "http.followRedirects=false",
        ])
        .args(args)
        .current_dir(cwd)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_ASKPASS", "")
        .env("SSH_ASKPASS", "")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = command
        .spawn()
        .map_err(|e| git_error(action, format!("cannot run git: {e}")))?;
    let pid = child.id();
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let mut stderr = child.stderr.take().expect("stderr is piped");
    let collect_stdout = tokio::spawn(async move {
        let mut out = Vec::new();
        let _ = stdout.read_to_end(&mut out).await;
        out
    });
    let deadline = tokio::time::Instant::now() + limits.total;
    let mut errors = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let wait = limits
            .idle
            .min(deadline.saturating_duration_since(tokio::time::Instant::now()));
        match tokio::time::timeout(wait, stderr.read(&mut chunk)).await {
            Ok(Ok(0)) => break,
            Ok(Ok(n)) => errors.extend_from_slice(&chunk[..n]),
            Ok(Err(_)) => break,
            Err(_) => {
                kill_group(pid);
                let _ = child.wait().await;
                let why = if tokio::time::Instant::now() >= deadline {
                    format!("timed out after {}s", limits.total.as_secs())
                } else {
                    format!(
                        "no progress for {}s (the remote accepted but did not answer)",
                        limits.idle.as_secs()
                    )
                };
                return Err(git_error(action, why));
            }
        }
    }
    let status = match tokio::time::timeout_at(deadline, child.wait()).await {
        Ok(status) => status.map_err(|e| git_error(action, format!("git: {e}")))?,
        Err(_) => {
            kill_group(pid);
            let _ = child.wait().await;
            return Err(git_error(
                action,
                format!("timed out after {}s", limits.total.as_secs()),
            ));
        }
    };
    // Whatever git left running in its group (an ssh that outlived it) goes too.
    kill_group(pid);
    let stdout = collect_stdout.await.unwrap_or_default();
    if !status.success() {
        let detail = String::from_utf8_lossy(&errors).trim().to_string();
        return Err(git_error(
            action,
            if detail.is_empty() {
                format!("exit status {status}")
            } else {
                redact_urls(&detail)
            },
        ));
    }
    Ok(String::from_utf8_lossy(&stdout).trim().to_string())
}

pub use capstan_core::redact::{redact_url, redact_urls};

/// Clones `url` into `dest` (which must not exist) and checks out `reference`, which may
/// be a branch, a tag or a commit id. Submodules are left to [`crate::submodules`], so
/// their URLs can be checked before anything is fetched from them.
pub async fn fetch_git(
    url: &str,
    reference: &str,
    dest: &Path,
    limits: FetchLimits,
) -> Result<Checkout, BuildError> {
    let parent = dest
        .parent()
        .ok_or_else(|| BuildError::Source(format!("{} has no parent", dest.display())))?;
    tokio::fs::create_dir_all(parent).await?;
    let dest_str = dest.to_string_lossy().into_owned();
    git(
        parent,
        "clone",
        &["clone", "--progress", "--", url, &dest_str],
        limits,
    )
    .await?;
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
            limits,
        )
        .await
        {
            commit = Some(sha);
            break;
        }
    }
    let commit = commit.ok_or_else(|| BuildError::UnknownRef {
        reference: reference.to_string(),
        url: redact_url(url),
    })?;
    git(
        dest,
        "checkout",
        &["checkout", "--quiet", "--detach", &commit],
        limits,
    )
    .await?;
    Ok(Checkout {
        dir: dest.to_path_buf(),
        commit,
    })
}

/// What a remote said of a ref when asked without fetching anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteRef {
    /// A branch, tag or other ref of that name.
    Listed,
    /// No ref has that name, but it reads as a commit id: remotes list refs, not commits,
    /// so only a fetch can tell whether the commit exists.
    MaybeCommit,
}

/// Whether `reference` reads as a (possibly abbreviated) commit id.
fn looks_like_commit(reference: &str) -> bool {
    (4..=64).contains(&reference.len()) && reference.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Asks the remote at `url` for `reference` (`git ls-remote`, under the same guards and
/// `limits` as a fetch) without fetching anything: whether it answers as a repository,
/// and whether it has a branch or tag of that name, as [`fetch_git`] would resolve it.
/// git runs in `cwd`, which must be the daemon's own (git reads the configuration of a
/// repository around its working directory).
pub async fn remote_ref(
    url: &str,
    reference: &str,
    cwd: &Path,
    limits: FetchLimits,
) -> Result<RemoteRef, BuildError> {
    let listing = git(
        cwd,
        "ls-remote",
        &["ls-remote", "--", url, reference],
        limits,
    )
    .await?;
    let wanted = [
        reference.to_string(),
        format!("refs/heads/{reference}"),
        format!("refs/tags/{reference}"),
    ];
    let listed = listing
        .lines()
        .filter_map(|line| line.split_once('\t'))
        .any(|(_, name)| wanted.iter().any(|w| w == name));
    if listed {
        Ok(RemoteRef::Listed)
    } else if looks_like_commit(reference) {
        Ok(RemoteRef::MaybeCommit)
    } else {
        Err(BuildError::UnknownRef {
            reference: reference.to_string(),
            url: redact_url(url),
        })
    }
}

/// The subject line of `commit` in the repository at `dir` (at most 200 characters), or
/// `None` when git cannot tell.
pub async fn commit_subject(dir: &Path, commit: &str) -> Option<String> {
    let subject = git(
        dir,
        "show",
        &["show", "-s", "--format=%s", "--end-of-options", commit],
        FetchLimits::default(),
    )
    .await
    .ok()?;
    let subject: String = subject.chars().take(200).collect();
    Some(subject).filter(|s| !s.is_empty())
}

/// The HEAD commit of a local directory if it is a git work tree.
pub async fn local_commit(dir: &Path) -> Option<String> {
    if !dir.join(".git").exists() {
        return None;
    }
    git(
        dir,
        "rev-parse",
        &["rev-parse", "HEAD"],
        FetchLimits::default(),
    )
    .await
    .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(dir: &Path, args: &[&str]) {
        let out = std::process::Command::new("git")
            .args(["-c", "user.email=t@example.test", "-c", "user.name=t"])
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {out:?}");
    }

    #[tokio::test]
    async fn a_remote_is_asked_for_a_ref_as_a_fetch_would_resolve_it() {
        let repo = tempfile::tempdir().unwrap();
        run(repo.path(), &["init", "-q", "-b", "main"]);
        run(repo.path(), &["commit", "-q", "--allow-empty", "-m", "one"]);
        run(repo.path(), &["tag", "-a", "v1", "-m", "v1"]);
        run(repo.path(), &["branch", "feature/x"]);
        let url = repo.path().to_string_lossy().into_owned();
        let work = tempfile::tempdir().unwrap();
        let limits = FetchLimits::default();
        for reference in ["main", "v1", "feature/x", "HEAD", "refs/heads/main"] {
            assert_eq!(
                remote_ref(&url, reference, work.path(), limits)
                    .await
                    .unwrap(),
                RemoteRef::Listed,
                "{reference}"
            );
        }
        // A commit id cannot be asked for without fetching; a name that only ends like a
        // branch is not that branch.
        assert_eq!(
            remote_ref(&url, "0123abcd", work.path(), limits)
                .await
                .unwrap(),
            RemoteRef::MaybeCommit
        );
        for missing in ["x", "nope", "ain"] {
            let err = remote_ref(&url, missing, work.path(), limits)
                .await
                .unwrap_err();
            assert!(
                matches!(&err, BuildError::UnknownRef { reference, .. } if reference == missing),
                "{err}"
            );
        }
        let not_a_repo = tempfile::tempdir().unwrap();
        let url = not_a_repo.path().to_string_lossy().into_owned();
        let err = remote_ref(&url, "main", work.path(), limits)
            .await
            .unwrap_err();
        assert!(matches!(err, BuildError::Git { .. }), "{err}");
    }

    #[tokio::test]
    async fn a_remote_that_never_answers_is_given_up_on_quickly() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        // Accepts and holds connections without a word.
        let _hold = std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming().take(4) {
                held.push(stream);
            }
            std::thread::sleep(Duration::from_secs(30));
        });
        let dest = tempfile::tempdir().unwrap();
        let started = std::time::Instant::now();
        let limits = FetchLimits {
            total: Duration::from_secs(60),
            idle: Duration::from_secs(2),
        };
        let url = format!("http://127.0.0.1:{port}/repo.git");
        let err = fetch_git(&url, "main", &dest.path().join("src"), limits)
            .await
            .unwrap_err();
        assert!(err.is_network(), "{err}");
        assert!(err.to_string().contains("no progress"), "{err}");
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{:?}",
            started.elapsed()
        );
    }
}
