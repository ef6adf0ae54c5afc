//! Reading a verified body as a forge's payload: JSON into typed structs, every problem
//! named by the field it is in, and the pieces the forges share (refs, all-zero ids,
//! commit ids, changed files, a push built from its listed commits).

use std::collections::BTreeSet;

use serde::de::DeserializeOwned;

use crate::event::{Event, Push, RepoUrls};

/// Why a verified delivery could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("the delivery has no {header} header: its event cannot be told")]
    MissingEvent { header: &'static str },
    #[error("the body is not JSON: {reason}")]
    NotJson { reason: String },
    #[error("the payload's field `{field}` is missing or of the wrong type: {reason}")]
    Field { field: String, reason: String },
    #[error("the payload's field `{field}` is invalid: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("the push moved {count} refs: read it with parse_all")]
    SeveralRefs { count: usize },
}

/// Deserialises a payload, naming the field of the first problem.
pub(crate) fn from_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, PayloadError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let field = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            PayloadError::NotJson {
                reason: inner.to_string(),
            }
        } else {
            PayloadError::Field {
                field,
                reason: inner.to_string(),
            }
        }
    })?;
    de.end().map_err(|e| PayloadError::NotJson {
        reason: e.to_string(),
    })?;
    Ok(value)
}

/// What a pushed ref is.
pub(crate) enum RefName {
    Branch(String),
    Tag(String),
    Other(String),
}

pub(crate) fn ref_name(full: &str) -> RefName {
    if let Some(branch) = full.strip_prefix("refs/heads/") {
        RefName::Branch(branch.to_owned())
    } else if let Some(tag) = full.strip_prefix("refs/tags/") {
        RefName::Tag(tag.to_owned())
    } else {
        RefName::Other(full.to_owned())
    }
}

/// Whether an object id is git's "no object" (all zeros), as forges send for a created
/// ref's old id and a deleted ref's new one.
pub(crate) fn is_zero_id(id: &str) -> bool {
    !id.is_empty() && id.bytes().all(|b| b == b'0')
}

/// Whether `id` is a full git object id: 40 (SHA-1) or 64 (SHA-256) hex digits. A branch
/// or tag name written where a commit belongs (`"production"`) is not one.
pub fn is_full_commit_id(id: &str) -> bool {
    matches!(id.len(), 40 | 64) && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `id` when it is a full commit id, else [`PayloadError::Invalid`] naming `field`.
pub(crate) fn full_commit_id(field: &'static str, id: String) -> Result<String, PayloadError> {
    if is_full_commit_id(&id) {
        Ok(id)
    } else {
        Err(PayloadError::Invalid {
            field,
            reason: "not a commit id (40 or 64 hex digits)".to_owned(),
        })
    }
}

/// What a GitHub-shaped or GitLab push says, read but not yet checked.
pub(crate) struct ListedPush {
    pub repo: RepoUrls,
    pub git_ref: String,
    /// The pushed commit with the field it came from; `None` when the ref was deleted.
    pub commit: Option<(&'static str, String)>,
    pub deleted: bool,
    /// The head commit's message when the payload gives it apart from `commits`.
    pub head_message: Option<String>,
    pub commits: Vec<CommitFiles>,
    /// Created, rewritten, or more commits than listed: the changed files cannot be told.
    pub unknowable: bool,
}

/// The event a listed push is: ignored when the ref is neither a branch nor a tag, else a
/// [`Push`] of a full commit id whose changed files are unknowable (`None`) also when
/// the push lists no commit on a ref it did not delete (a rewind force-push).
pub(crate) fn listed_push(p: ListedPush) -> Result<Event, PayloadError> {
    let (branch, tag) = match ref_name(&p.git_ref) {
        RefName::Branch(b) => (Some(b), None),
        RefName::Tag(t) => (None, Some(t)),
        RefName::Other(r) => {
            return Ok(Event::Ignored {
                event: format!("push to {r}"),
            })
        }
    };
    let commit = match p.commit {
        Some((field, id)) => Some(full_commit_id(field, id)?),
        None => None,
    };
    let head_message = p.head_message.or_else(|| {
        let id = commit.as_deref()?;
        p.commits.iter().find(|c| c.id == id)?.message.clone()
    });
    let unknowable = p.unknowable || p.deleted || p.commits.is_empty();
    Ok(Event::Push(Push {
        repo: p.repo,
        branch,
        tag,
        commit,
        deleted: p.deleted,
        head_message,
        changed_paths: if unknowable {
            None
        } else {
            changed_files(&p.commits)
        },
    }))
}

/// The files one commit touched, as the GitHub-shaped and GitLab payloads list them.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct CommitFiles {
    pub id: String,
    #[serde(default)]
    pub message: Option<String>,
    pub added: Option<Vec<String>>,
    pub modified: Option<Vec<String>>,
    pub removed: Option<Vec<String>>,
}

/// Every file the commits touched, sorted, or `None` when a commit does not list its
/// files.
pub(crate) fn changed_files(commits: &[CommitFiles]) -> Option<Vec<String>> {
    let mut files = BTreeSet::new();
    for commit in commits {
        let lists = [&commit.added, &commit.modified, &commit.removed];
        if lists.iter().all(|list| list.is_none()) {
            return None;
        }
        files.extend(lists.into_iter().flatten().flatten().cloned());
    }
    Some(files.into_iter().collect())
}
