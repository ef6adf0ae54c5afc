//! Bitbucket Cloud's payloads: `repo:push` (`push.changes[]`, one per ref moved, each with
//! its `new` and `old` state; no file lists) and `pullrequest:*` (`pullrequest` with its
//! `source` and `destination`). Clone URLs are built from the repository's `full_name`.

use serde::Deserialize;

use crate::event::{Event, PrAction, PullRequest, Push, RepoUrls};
use crate::payload::{from_json, full_commit_id, PayloadError};

pub(crate) fn parse(event: &str, body: &[u8]) -> Result<Vec<Event>, PayloadError> {
    if event == "repo:push" {
        return push(from_json(body)?);
    }
    match event.strip_prefix("pullrequest:") {
        Some(action) => pull_request(action, from_json(body)?).map(|e| vec![e]),
        None => Ok(vec![Event::Ignored {
            event: format!("Bitbucket {event}"),
        }]),
    }
}

#[derive(Debug, Deserialize)]
struct Repository {
    full_name: String,
    links: Option<Links>,
}

#[derive(Debug, Deserialize)]
struct Links {
    html: Option<Href>,
}

#[derive(Debug, Deserialize)]
struct Href {
    href: String,
}

impl Repository {
    fn urls(&self) -> RepoUrls {
        RepoUrls {
            clone: Some(https_clone_url(&self.full_name)),
            ssh: Some(format!("git@bitbucket.org:{}.git", self.full_name)),
            web: self
                .links
                .as_ref()
                .and_then(|l| l.html.as_ref())
                .map(|h| h.href.clone()),
        }
    }
}

fn https_clone_url(full_name: &str) -> String {
    format!("https://bitbucket.org/{full_name}.git")
}

#[derive(Debug, Deserialize)]
struct PushPayload {
    push: PushBody,
    repository: Repository,
}

#[derive(Debug, Deserialize)]
struct PushBody {
    changes: Vec<Change>,
}

#[derive(Debug, Deserialize)]
struct Change {
    /// `null` when the ref was deleted.
    new: Option<RefState>,
    /// `null` when the ref was created.
    old: Option<RefState>,
}

#[derive(Debug, Deserialize)]
struct RefState {
    #[serde(rename = "type")]
    kind: String,
    name: String,
    target: Option<Target>,
}

#[derive(Debug, Deserialize)]
struct Target {
    hash: String,
    message: Option<String>,
}

fn push(p: PushPayload) -> Result<Vec<Event>, PayloadError> {
    if p.push.changes.is_empty() {
        return Err(PayloadError::Invalid {
            field: "push.changes",
            reason: "the push lists no changes".to_owned(),
        });
    }
    let repo = p.repository.urls();
    p.push
        .changes
        .into_iter()
        .map(|change| change_event(&repo, change))
        .collect()
}

fn change_event(repo: &RepoUrls, change: Change) -> Result<Event, PayloadError> {
    let deleted = change.new.is_none();
    let Some(state) = change.new.or(change.old) else {
        return Err(PayloadError::Invalid {
            field: "push.changes[].new",
            reason: "a change has neither a new nor an old state".to_owned(),
        });
    };
    let (branch, tag) = match state.kind.as_str() {
        "branch" | "named_branch" => (Some(state.name), None),
        "tag" | "annotated_tag" => (None, Some(state.name)),
        other => {
            return Ok(Event::Ignored {
                event: format!("push of a {other}"),
            })
        }
    };
    let (commit, head_message) = match state.target.filter(|_| !deleted) {
        Some(t) => (
            Some(full_commit_id("push.changes[].new.target.hash", t.hash)?),
            t.message,
        ),
        None => (None, None),
    };
    Ok(Event::Push(Push {
        repo: repo.clone(),
        branch,
        tag,
        commit,
        deleted,
        head_message,
        changed_paths: None,
    }))
}

#[derive(Debug, Deserialize)]
struct PrPayload {
    pullrequest: PrBody,
    /// The destination repository.
    repository: Repository,
}

#[derive(Debug, Deserialize)]
struct PrBody {
    id: u64,
    title: String,
    source: Endpoint,
    destination: Endpoint,
}

#[derive(Debug, Deserialize)]
struct Endpoint {
    branch: Named,
    commit: Option<Commit>,
    /// `null` when the source repository (a fork) was deleted.
    repository: Option<Repository>,
}

#[derive(Debug, Deserialize)]
struct Named {
    name: String,
}

#[derive(Debug, Deserialize)]
struct Commit {
    hash: String,
}

fn pull_request(event_action: &str, p: PrPayload) -> Result<Event, PayloadError> {
    let action = match event_action {
        "created" => PrAction::Opened,
        "updated" => PrAction::Synchronized,
        "fulfilled" => PrAction::Closed { merged: true },
        "rejected" => PrAction::Closed { merged: false },
        other => PrAction::Other(other.to_owned()),
    };
    let pr = p.pullrequest;
    let head_commit = pr
        .source
        .commit
        .map(|c| c.hash)
        .ok_or(PayloadError::Invalid {
            field: "pullrequest.source.commit",
            reason: "the source has no commit".to_owned(),
        })?;
    let destination = pr.destination.repository.as_ref().unwrap_or(&p.repository);
    let from_fork = match &pr.source.repository {
        Some(source) => !source
            .full_name
            .eq_ignore_ascii_case(&destination.full_name),
        None => true,
    };
    Ok(Event::PullRequest(PullRequest {
        repo: p.repository.urls(),
        number: pr.id,
        action,
        head_commit,
        head_branch: pr.source.branch.name,
        base_branch: pr.destination.branch.name,
        from_fork,
        head_clone_url: pr.source.repository.map(|r| https_clone_url(&r.full_name)),
        title: pr.title,
    }))
}
