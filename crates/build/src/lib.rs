//! Turning an app's source into something the engine can build: fetching git sources with
//! the `git` CLI (argv only), detecting the build plan, and packing the build context.

pub mod context;
pub mod plan;
pub mod source;

pub use context::pack_context;
pub use plan::{detect_plan, Plan};
pub use source::{fetch_git, local_commit, Checkout};

/// A source that cannot be fetched, planned or packed; the message is for the user.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("git {action} failed: {detail}")]
    Git { action: String, detail: String },
    #[error("ref {reference:?} does not exist in {url}")]
    UnknownRef { reference: String, url: String },
    #[error("no build plan: {0}")]
    NoPlan(String),
    #[error("source: {0}")]
    Source(String),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}
