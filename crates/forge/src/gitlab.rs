//! GitLab's payloads: `Push Hook` and `Tag Push Hook` (`ref`, `checkout_sha`, `after`,
//! `commits[]` — at most 20 of `total_commits_count` — and `project.git_http_url` /
//! `git_ssh_url` / `web_url`) and `Merge Request Hook` (`object_attributes` with `iid`,
//! `action`, `last_commit`, branches and project ids).

use serde::Deserialize;

use crate::event::{Event, PrAction, PullRequest, RepoUrls};
use crate::payload::{
    from_json, full_commit_id, is_zero_id, listed_push, CommitFiles, ListedPush, PayloadError,
};

pub(crate) fn parse(event: &str, body: &[u8]) -> Result<Event, PayloadError> {
    match event {
        "Push Hook" | "Tag Push Hook" => push(from_json(body)?),
        "Merge Request Hook" => merge_request(from_json(body)?),
        other => Ok(Event::Ignored {
            event: format!("GitLab {other}"),
        }),
    }
}

#[derive(Debug, Deserialize)]
struct Project {
    git_http_url: Option<String>,
    git_ssh_url: Option<String>,
    web_url: Option<String>,
}

impl Project {
    fn urls(&self) -> RepoUrls {
        RepoUrls {
            clone: self.git_http_url.clone(),
            ssh: self.git_ssh_url.clone(),
            web: self.web_url.clone(),
        }
    }
}

#[derive(Debug, Deserialize)]
struct PushPayload {
    #[serde(rename = "ref")]
    git_ref: String,
    before: Option<String>,
    after: String,
    /// The commit checked out: for an annotated tag, the commit it tags (`after` is then
    /// the tag object); `null` when the ref was deleted.
    checkout_sha: Option<String>,
    total_commits_count: Option<u64>,
    commits: Option<Vec<CommitFiles>>,
    project: Project,
}

fn push(p: PushPayload) -> Result<Event, PayloadError> {
    let deleted = is_zero_id(&p.after);
    let created = p.before.as_deref().is_some_and(is_zero_id);
    let commit = if deleted {
        None
    } else {
        Some(match p.checkout_sha.filter(|sha| !is_zero_id(sha)) {
            Some(sha) => ("checkout_sha", sha),
            None => ("after", p.after),
        })
    };
    let commits = p.commits.unwrap_or_default();
    let truncated = p
        .total_commits_count
        .is_none_or(|total| total > commits.len() as u64);
    listed_push(ListedPush {
        repo: p.project.urls(),
        git_ref: p.git_ref,
        commit,
        deleted,
        head_message: None,
        commits,
        unknowable: created || truncated,
    })
}

#[derive(Debug, Deserialize)]
struct MrPayload {
    /// The target project.
    project: Project,
    object_attributes: MrAttributes,
}

#[derive(Debug, Deserialize)]
struct MrAttributes {
    iid: u64,
    action: Option<String>,
    title: String,
    source_branch: String,
    target_branch: String,
    /// `null` when the source project was deleted.
    source_project_id: Option<u64>,
    target_project_id: u64,
    last_commit: LastCommit,
    source: Option<Project>,
}

#[derive(Debug, Deserialize)]
struct LastCommit {
    id: String,
}

fn merge_request(p: MrPayload) -> Result<Event, PayloadError> {
    let mr = p.object_attributes;
    let action = match mr.action.as_deref() {
        Some("open") => PrAction::Opened,
        // Sent for new commits and for edits alike (`oldrev` is only there for the first).
        Some("update") => PrAction::Synchronized,
        Some("reopen") => PrAction::Reopened,
        Some("close") => PrAction::Closed { merged: false },
        Some("merge") => PrAction::Closed { merged: true },
        Some(other) => PrAction::Other(other.to_owned()),
        None => PrAction::Other(String::new()),
    };
    Ok(Event::PullRequest(PullRequest {
        repo: p.project.urls(),
        number: mr.iid,
        action,
        head_commit: full_commit_id("object_attributes.last_commit.id", mr.last_commit.id)?,
        head_branch: mr.source_branch,
        base_branch: mr.target_branch,
        from_fork: mr.source_project_id != Some(mr.target_project_id),
        head_clone_url: mr.source.and_then(|s| s.git_http_url),
        title: mr.title,
    }))
}
