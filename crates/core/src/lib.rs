//! Capstan's domain: app names and settings, sources, health checks and the deployment
//! state machine. Pure data and validation; no IO lives here.

pub mod app;
pub mod app_diff;
pub mod app_patch;
pub mod build_spec;
pub mod deployment;
pub mod duration;
pub mod error;
pub mod forge_settings;
pub mod git_url;
pub mod maintenance;
pub mod name;
pub mod names;
pub mod redact;
pub mod repo_config;
pub mod scope;
pub mod server;
pub mod shell_words;
pub mod units;
pub mod validate;

pub use app::{AppSpec, HealthSpec, HookCommand, Limits, Source, VolumeSpec, DEFAULT_PORT};
pub use app_patch::AppSpecPatch;
pub use build_spec::{BuildKind, BuildSpec};
pub use deployment::{DeploymentState, Trigger};
pub use error::ValidationError;
pub use forge_settings::{ForgeProvider, ForgeSettings};
pub use maintenance::MaintenancePage;
pub use name::AppName;
pub use names::{AppNames, InstanceNames};
pub use repo_config::{RepoConfig, RepoConfigError, REPO_CONFIG_FILE};
pub use scope::{Role, Scope, Scopes};
pub use server::{ServerKind, ServerName, ServerSpec, LOCAL_SERVER};
