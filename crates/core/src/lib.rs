//! Capstan's domain: app names and settings, sources, health checks and the deployment
//! state machine. Pure data and validation; no IO lives here.

pub mod app;
pub mod deployment;
pub mod error;
pub mod name;
mod validate;

pub use app::{AppSpec, AppSpecPatch, HealthSpec, HookCommand, Limits, Source, VolumeSpec};
pub use deployment::{DeploymentState, Trigger};
pub use error::ValidationError;
pub use name::AppName;
