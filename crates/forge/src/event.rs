//! What a verified delivery says, the same for every forge: a ping, a push of one ref, a
//! pull (merge) request's change, or an event Capstan does not act on.

use crate::repo_url::normalize_repo_url;

/// A delivery, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The forge checking the hook works (GitHub's `ping`).
    Ping,
    Push(Push),
    PullRequest(PullRequest),
    /// An event (or a push of a ref that is neither a branch nor a tag) Capstan does not
    /// act on, named for the 202 answer.
    Ignored {
        event: String,
    },
}

/// One ref moved by a push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Push {
    pub repo: RepoUrls,
    /// The branch pushed; `None` for a tag push.
    pub branch: Option<String>,
    /// The tag pushed; `None` for a branch push.
    pub tag: Option<String>,
    /// The commit the ref now points at (for an annotated tag, the commit it tags when the
    /// forge says which), always a full id (40 or 64 hex digits: anything else is refused
    /// as [`crate::PayloadError::Invalid`]); `None` when the ref was deleted.
    pub commit: Option<String>,
    pub deleted: bool,
    /// The message of the pushed head commit, when the payload carries it.
    pub head_message: Option<String>,
    /// Every file added, modified or removed by the pushed commits, sorted. `None` when the
    /// forge does not list files (Bitbucket), the list may be truncated (more commits than
    /// the payload carries), the push created the ref or rewrote it, or it lists no commit
    /// at all (a rewind force-push): the files changed since the old head cannot be told,
    /// and callers then treat every path as touched.
    pub changed_paths: Option<Vec<String>>,
}

/// A pull (merge) request opened, updated, reopened or closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequest {
    /// The BASE repository (the one the request asks to merge into).
    pub repo: RepoUrls,
    /// The request's number in its repository (GitHub/Gitea `number`, GitLab `iid`,
    /// Bitbucket `id`).
    pub number: u64,
    pub action: PrAction,
    /// The head commit, a full id (40 or 64 hex digits) except from Bitbucket Cloud, which
    /// sends it abbreviated (12 hex digits): resolve it after fetching `head_branch`, and
    /// check the prefix.
    pub head_commit: String,
    pub head_branch: String,
    pub base_branch: String,
    /// Whether the head lives in another repository than the base (or its repository is
    /// gone, which is treated as a fork).
    pub from_fork: bool,
    /// Where the head can be fetched from, when the payload says.
    pub head_clone_url: Option<String>,
    pub title: String,
}

/// What happened to a pull request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrAction {
    Opened,
    /// New commits, or (GitLab `update`, Bitbucket `pullrequest:updated`) any other edit:
    /// callers skip a preview already at `head_commit`.
    Synchronized,
    Reopened,
    Closed {
        merged: bool,
    },
    /// Any other action (`edited`, `labeled`, `approved`, ...), named as the forge names it.
    Other(String),
}

/// The URLs a forge gives for a repository.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepoUrls {
    pub clone: Option<String>,
    pub ssh: Option<String>,
    pub web: Option<String>,
}

impl RepoUrls {
    /// True when any of the URLs normalises ([`normalize_repo_url`]) equal to the app's
    /// source URL.
    pub fn matches(&self, app_source_url: &str) -> bool {
        let Some(wanted) = normalize_repo_url(app_source_url) else {
            return false;
        };
        [&self.clone, &self.ssh, &self.web]
            .into_iter()
            .flatten()
            .any(|url| normalize_repo_url(url).as_deref() == Some(wanted.as_str()))
    }
}
