//! GitHub's payloads and Gitea/Forgejo's, which follow GitHub's shapes: `ping`, `push`
//! (`ref`, `after`, `head_commit`, `commits[]` with their files, `repository.clone_url` /
//! `ssh_url` / `html_url`) and `pull_request` (`number`, `action`, `pull_request.head` /
//! `base` with their repositories, `merged`).

use serde::Deserialize;

use crate::event::{Event, PrAction, PullRequest, RepoUrls};
use crate::payload::{
    from_json, full_commit_id, is_zero_id, listed_push, CommitFiles, ListedPush, PayloadError,
};

/// Which forge wrote the payload; they differ only in small ways.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavour {
    Github,
    Gitea,
}

/// GitHub lists at most this many commits in a push; a push that fills the list may have
/// more.
const GITHUB_MAX_COMMITS: usize = 2048;

pub(crate) fn parse(flavour: Flavour, event: &str, body: &[u8]) -> Result<Event, PayloadError> {
    match event {
        "ping" => Ok(Event::Ping),
        "push" => push(from_json(body)?),
        "pull_request" => pull_request(from_json(body)?),
        other => Ok(Event::Ignored {
            event: format!("{} {other}", flavour_name(flavour)),
        }),
    }
}

fn flavour_name(flavour: Flavour) -> &'static str {
    match flavour {
        Flavour::Github => "GitHub",
        Flavour::Gitea => "Gitea",
    }
}

#[derive(Debug, Deserialize)]
struct Repo {
    full_name: Option<String>,
    clone_url: Option<String>,
    ssh_url: Option<String>,
    html_url: Option<String>,
}

impl Repo {
    fn urls(&self) -> RepoUrls {
        RepoUrls {
            clone: self.clone_url.clone(),
            ssh: self.ssh_url.clone(),
            web: self.html_url.clone(),
        }
    }
}

#[derive(Debug, Deserialize)]
struct PushPayload {
    #[serde(rename = "ref")]
    git_ref: String,
    before: Option<String>,
    after: String,
    created: Option<bool>,
    deleted: Option<bool>,
    forced: Option<bool>,
    commits: Option<Vec<CommitFiles>>,
    head_commit: Option<HeadCommit>,
    /// Gitea: how many commits the push had, of which `commits` may list only some.
    total_commits: Option<u64>,
    repository: Repo,
}

#[derive(Debug, Deserialize)]
struct HeadCommit {
    id: String,
    message: Option<String>,
}

fn push(p: PushPayload) -> Result<Event, PayloadError> {
    let deleted = p.deleted.unwrap_or(false) || is_zero_id(&p.after);
    let created = p.created.unwrap_or(false) || p.before.as_deref().is_some_and(is_zero_id);
    let commits = p.commits.unwrap_or_default();
    let head = p.head_commit.filter(|_| !deleted);
    // The head commit's id is the commit even when `after` is an annotated tag's object.
    let (commit, head_message) = match head {
        Some(head) => (Some(("head_commit.id", head.id)), head.message),
        None if deleted => (None, None),
        None => (Some(("after", p.after)), None),
    };
    let truncated = commits.len() >= GITHUB_MAX_COMMITS
        || p.total_commits
            .is_some_and(|total| total > commits.len() as u64);
    listed_push(ListedPush {
        repo: p.repository.urls(),
        git_ref: p.git_ref,
        commit,
        deleted,
        head_message,
        commits,
        unknowable: created || p.forced.unwrap_or(false) || truncated,
    })
}

#[derive(Debug, Deserialize)]
struct PrPayload {
    action: String,
    number: u64,
    pull_request: PrBody,
    repository: Repo,
}

#[derive(Debug, Deserialize)]
struct PrBody {
    title: String,
    merged: Option<bool>,
    head: Side,
    base: Side,
}

#[derive(Debug, Deserialize)]
struct Side {
    #[serde(rename = "ref")]
    git_ref: String,
    sha: String,
    /// `null` when the head's repository (a fork) was deleted.
    repo: Option<Repo>,
}

fn pull_request(p: PrPayload) -> Result<Event, PayloadError> {
    let pr = p.pull_request;
    let action = match p.action.as_str() {
        "opened" => PrAction::Opened,
        "synchronize" | "synchronized" => PrAction::Synchronized,
        "reopened" => PrAction::Reopened,
        "closed" => PrAction::Closed {
            merged: pr.merged.unwrap_or(false),
        },
        other => PrAction::Other(other.to_owned()),
    };
    let base_repo = pr.base.repo.as_ref().unwrap_or(&p.repository);
    let from_fork = match &pr.head.repo {
        Some(head_repo) => !same_repo(head_repo, base_repo),
        None => true,
    };
    Ok(Event::PullRequest(PullRequest {
        repo: p.repository.urls(),
        number: p.number,
        action,
        head_commit: full_commit_id("pull_request.head.sha", pr.head.sha)?,
        head_branch: pr.head.git_ref,
        base_branch: pr.base.git_ref,
        from_fork,
        head_clone_url: pr.head.repo.and_then(|r| r.clone_url),
        title: pr.title,
    }))
}

/// Whether two repositories are one, by full name, else by clone URL; unknown is "not".
fn same_repo(a: &Repo, b: &Repo) -> bool {
    if let (Some(x), Some(y)) = (&a.full_name, &b.full_name) {
        return x.eq_ignore_ascii_case(y);
    }
    match (&a.clone_url, &b.clone_url) {
        (Some(x), Some(y)) => {
            let x = crate::normalize_repo_url(x);
            x.is_some() && x == crate::normalize_repo_url(y)
        }
        _ => false,
    }
}
