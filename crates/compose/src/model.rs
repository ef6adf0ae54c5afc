//! The subset of the compose specification Capstan renders and reads back.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A compose file: one project, its services, and the external network and volume they use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComposeSpec {
    pub name: String,
    pub services: BTreeMap<String, Service>,
    #[serde(default)]
    pub networks: BTreeMap<String, ExternalRef>,
    #[serde(default)]
    pub volumes: BTreeMap<String, ExternalRef>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Service {
    pub image: String,
    pub container_name: String,
    pub restart: String,
    pub stop_grace_period: String,
    /// Run an init process as PID 1 (signals forwarded, zombies reaped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<bool>,
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Healthcheck>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deploy: Option<DeploySection>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default)]
    pub volumes: Vec<VolumeMount>,
    #[serde(default)]
    pub networks: Networks,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Entries for the container's `/etc/hosts`, as `name:address`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_hosts: Vec<String>,
    /// The OCI runtime (the engine's default when `None`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    /// Secrets mounted as files in `/run/secrets`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<SecretMount>,
    /// The secret files' contents by file name: filled only when the container is created,
    /// never written to the stored spec.
    #[serde(skip)]
    pub secret_files: BTreeMap<String, String>,
}

/// A secret as a file: compose's long form, `source` being the app's Capstan secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecretMount {
    pub source: String,
    pub target: String,
}

/// Where secret files are mounted in a container.
pub const SECRETS_DIR: &str = "/run/secrets";

/// A service's networks: compose's list form, or its mapping form with DNS aliases.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Networks {
    List(Vec<String>),
    Aliased(BTreeMap<String, NetworkAttachment>),
}

impl Default for Networks {
    fn default() -> Self {
        Networks::List(Vec::new())
    }
}

/// How a service joins one network.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NetworkAttachment {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
}

impl Networks {
    /// Each network with the aliases the service has on it, in a stable order (the list's
    /// order, or sorted names).
    pub fn attachments(&self) -> Vec<(String, Vec<String>)> {
        match self {
            Networks::List(names) => names.iter().map(|n| (n.clone(), Vec::new())).collect(),
            Networks::Aliased(map) => map
                .iter()
                .map(|(n, a)| (n.clone(), a.aliases.clone()))
                .collect(),
        }
    }
}

/// `deploy:` of a service: the replica count and the resource limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeploySection {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Resources {
    pub limits: ResourceLimits,
}

/// Compose's notation: memory as `"256M"`, cpus as a decimal string.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceLimits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Healthcheck {
    pub test: Vec<String>,
    pub interval: String,
    pub timeout: String,
    pub retries: u32,
    pub start_period: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VolumeMount {
    #[serde(rename = "type")]
    pub kind: String,
    pub source: String,
    pub target: String,
    #[serde(default)]
    pub read_only: bool,
}

/// A top-level network or volume, referred to by its engine name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExternalRef {
    pub name: String,
    #[serde(default)]
    pub external: bool,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

impl ComposeSpec {
    /// The one service of a single-service deployment spec.
    pub fn main_service(&self) -> Option<(&String, &Service)> {
        self.services.iter().next()
    }

    pub fn to_yaml(&self) -> Result<String, serde_norway::Error> {
        serde_norway::to_string(self)
    }

    pub fn from_yaml(text: &str) -> Result<Self, serde_norway::Error> {
        serde_norway::from_str(text)
    }
}

pub use capstan_core::duration::parse_duration;
