//! Turning an app's source into something the engine can build: fetching git sources with
//! the `git` CLI (argv only), reading the repo's `capstan.toml`, detecting the build plan,
//! and packing the build context.

pub mod compose_file;
pub mod compose_host;
mod compose_mounts;
mod compose_plan;
mod compose_service;
pub mod compose_vars;
pub mod context;
pub mod dockerfile_compat;
mod dockerfile_lines;
pub mod dockerfile_scope;
mod dockerfile_stages;
pub mod layout;
pub mod nixpacks_plan;
pub mod plan;
pub mod procfile;
pub mod python_start;
pub mod repo_config;
mod run_flags;
pub mod snapshot;
pub mod source;
pub mod submodules;
pub mod tree;

pub use context::{pack_context, GeneratedFile};
pub use plan::{prepare, prepare_with, Plan, Recipe};
pub use repo_config::{apply_repo_config, load_repo_config, RepoSettings};
pub use source::{fetch_git, local_commit, Checkout};
pub use tree::check_tree_links;

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
    #[error("{0}")]
    RepoConfig(#[from] capstan_core::RepoConfigError),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// A local source directory larger than the operator's limit.
    #[error("source: the directory holds more than {limit_mib} MiB (what .dockerignore leaves out of the build is not copied if it re-includes nothing); raise local_source_max_mb in the daemon's configuration or leave large directories out with .dockerignore")]
    SourceTooLarge { limit_mib: u64 },
}

impl BuildError {
    /// Whether a git failure is the remote's or the network's (unreachable host, refused
    /// or timed-out connection), not the request's.
    pub fn is_network(&self) -> bool {
        let BuildError::Git { detail, .. } = self else {
            return false;
        };
        let detail = detail.to_ascii_lowercase();
        [
            "could not resolve host",
            "connection refused",
            "connection timed out",
            "timed out",
            "no progress",
            "network is unreachable",
            "could not read from remote repository",
            "unable to access",
            "connection reset",
            "early eof",
            "the remote end hung up",
        ]
        .iter()
        .any(|needle| detail.contains(needle))
    }
}
