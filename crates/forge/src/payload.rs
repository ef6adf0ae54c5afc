//! Reading a verified body as a forge's payload: JSON into typed structs, every problem
//! named by the field it is in, and the pieces the forges share (refs, all-zero ids,
//! changed files).

use std::collections::BTreeSet;

use serde::de::DeserializeOwned;

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
