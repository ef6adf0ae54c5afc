//! Servers: the hosts Capstan deploys to. `local` (the engine the daemon runs beside)
//! always exists; others are reached over SSH (`ssh`), or are a Docker Swarm manager
//! (`swarm`). A server's settings and their validation live here; its key pair and its
//! state live in the store.

use crate::name::check_dns_label;
use crate::ValidationError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

/// The name of the server every installation has: the engine the daemon runs beside.
pub const LOCAL_SERVER: &str = "local";

/// The most labels one server may carry.
pub const MAX_LABELS: usize = 32;

/// The most build slots one server may have.
pub const MAX_BUILD_SLOTS: u32 = 64;

/// A validated server name: a lower-case DNS label, like an app name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ServerName(String);

impl ServerName {
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        check_dns_label("name", raw)?;
        Ok(Self(raw.to_string()))
    }

    /// The built-in server `local`.
    pub fn local() -> Self {
        Self(LOCAL_SERVER.to_string())
    }

    pub fn is_local(&self) -> bool {
        self.0 == LOCAL_SERVER
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ServerName {
    type Error = ValidationError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<ServerName> for String {
    fn from(value: ServerName) -> Self {
        value.0
    }
}

impl fmt::Display for ServerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl utoipa::PartialSchema for ServerName {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .min_length(Some(1))
            .max_length(Some(63))
            .pattern(Some("^[a-z0-9]([a-z0-9-]*[a-z0-9])?$"))
            .description(Some("a lower-case DNS label"))
            .into()
    }
}

impl utoipa::ToSchema for ServerName {}

/// How Capstan reaches a server's Docker engine.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum ServerKind {
    /// The engine the daemon runs beside (only the built-in server `local`).
    Local,
    /// A host with sshd and Docker, reached over one SSH connection.
    #[default]
    Ssh,
    /// A Docker Swarm manager, reached over SSH.
    Swarm,
}

impl ServerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ServerKind::Local => "local",
            ServerKind::Ssh => "ssh",
            ServerKind::Swarm => "swarm",
        }
    }

    /// Reads a stored or typed kind.
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        match raw {
            "local" => Ok(ServerKind::Local),
            "ssh" => Ok(ServerKind::Ssh),
            "swarm" => Ok(ServerKind::Swarm),
            other => Err(ValidationError::new(
                "kind",
                format!("{other:?} is not a kind of server: use ssh or swarm"),
            )),
        }
    }
}

/// A server's settings: where it is, how Capstan logs in, and what Capstan owns there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerSpec {
    pub name: ServerName,
    #[serde(default)]
    pub kind: ServerKind,
    /// The SSH address: a host name or an IP address (empty for `local`).
    #[serde(default)]
    pub host: String,
    /// The SSH port.
    #[serde(default = "default_port")]
    #[schema(minimum = 1, maximum = 65535)]
    pub port: u16,
    /// The user Capstan logs in as.
    #[serde(default = "default_user")]
    pub user: String,
    /// The host key Capstan accepts, as OpenSSH prints it (`SHA256:` and 43 base64
    /// characters); unset: pinned on first contact.
    #[serde(default)]
    pub host_key_fingerprint: Option<String>,
    /// How many image builds may run there at once (unset: 1; `local`: the daemon's
    /// `build_slots`).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 64)]
    pub build_slots: Option<u32>,
    /// The port its proxy serves HTTP on (unset: 80; `local`: the daemon's configuration).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 65535)]
    pub proxy_http_port: Option<u16>,
    /// The port its proxy serves HTTPS on (unset: 443; `local`: the daemon's configuration).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 65535)]
    pub proxy_https_port: Option<u16>,
    /// The prefix of the Docker objects Capstan owns there (unset: the instance's name),
    /// so two servers can share one engine.
    #[serde(default)]
    pub namespace: Option<String>,
    /// The Docker engine's socket on the server (unset: `/var/run/docker.sock`; a rootless
    /// engine's is under `/run/user/<uid>/`).
    #[serde(default)]
    pub docker_socket: Option<String>,
    /// Free-form labels (at most 32).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

fn default_port() -> u16 {
    22
}

fn default_user() -> String {
    "root".into()
}

impl ServerSpec {
    /// The settings of the built-in server `local`.
    pub fn local() -> Self {
        Self {
            name: ServerName::local(),
            kind: ServerKind::Local,
            host: String::new(),
            port: default_port(),
            user: default_user(),
            host_key_fingerprint: None,
            build_slots: None,
            proxy_http_port: None,
            proxy_https_port: None,
            namespace: None,
            docker_socket: None,
            labels: BTreeMap::new(),
        }
    }

    /// The namespace of Capstan's objects there: the configured one, else `instance`.
    pub fn namespace_or<'a>(&'a self, instance: &'a str) -> &'a str {
        self.namespace.as_deref().unwrap_or(instance)
    }

    /// Checks every field; the error names the first field that is wrong.
    pub fn validate(&self) -> Result<(), ValidationError> {
        match self.kind {
            ServerKind::Local if !self.name.is_local() => return Err(ValidationError::new(
                "kind",
                "\"local\" is the built-in server named local; add other servers as ssh or swarm",
            )),
            ServerKind::Local => {}
            ServerKind::Ssh | ServerKind::Swarm => {
                if self.name.is_local() {
                    return Err(ValidationError::new(
                        "name",
                        "\"local\" is the built-in server; choose another name",
                    ));
                }
                check_host(&self.host)?;
            }
        }
        if self.port == 0 {
            return Err(ValidationError::new("port", "must be between 1 and 65535"));
        }
        check_user(&self.user)?;
        if let Some(fingerprint) = &self.host_key_fingerprint {
            check_fingerprint(fingerprint)?;
        }
        if let Some(slots) = self.build_slots {
            if !(1..=MAX_BUILD_SLOTS).contains(&slots) {
                return Err(ValidationError::new(
                    "build_slots",
                    format!("must be between 1 and {MAX_BUILD_SLOTS}"),
                ));
            }
        }
        for (field, port) in [
            ("proxy_http_port", self.proxy_http_port),
            ("proxy_https_port", self.proxy_https_port),
        ] {
            if port == Some(0) {
                return Err(ValidationError::new(field, "must be between 1 and 65535"));
            }
        }
        if self.proxy_http_port.is_some() && self.proxy_http_port == self.proxy_https_port {
            return Err(ValidationError::new(
                "proxy_https_port",
                "must differ from proxy_http_port",
            ));
        }
        if let Some(namespace) = &self.namespace {
            check_dns_label("namespace", namespace)?;
        }
        if let Some(socket) = &self.docker_socket {
            check_socket_path(socket)?;
        }
        check_labels(&self.labels)
    }
}

/// The most a socket path may hold (the kernel's `sun_path` is 108 bytes).
const MAX_SOCKET_PATH: usize = 107;

/// An absolute path of a Unix socket, without `..`, control characters or NUL.
fn check_socket_path(path: &str) -> Result<(), ValidationError> {
    let field = "docker_socket";
    if !path.starts_with('/') || path.len() > MAX_SOCKET_PATH {
        return Err(ValidationError::new(
            field,
            format!("must be an absolute path of at most {MAX_SOCKET_PATH} bytes, e.g. /var/run/docker.sock"),
        ));
    }
    if path.chars().any(char::is_control) || path.split('/').any(|part| part == "..") {
        return Err(ValidationError::new(
            field,
            "must not contain control characters or `..`",
        ));
    }
    Ok(())
}

/// A host name (RFC 1123, at most 253 characters) or an IP address.
pub fn check_host(host: &str) -> Result<(), ValidationError> {
    let field = "host";
    if host.is_empty() {
        return Err(ValidationError::new(
            field,
            "missing: the server's host name or IP address",
        ));
    }
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if bare.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    let bad = |why: &str| ValidationError::new(field, format!("{host:?} {why}"));
    if host.len() > 253 {
        return Err(bad("is longer than 253 characters"));
    }
    if host.contains(':') {
        return Err(bad(
            "is not a host name or IP address (give the port in `port`)",
        ));
    }
    let name = host.strip_suffix('.').unwrap_or(host);
    for label in name.split('.') {
        let ok_chars = label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if label.is_empty() || label.len() > 63 || !ok_chars {
            return Err(bad(
                "is not a host name or IP address (labels of letters, digits and '-', separated by '.')",
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(bad("has a label that starts or ends with '-'"));
        }
    }
    if name.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(bad("is not a valid IP address"));
    }
    Ok(())
}

/// A login name: a letter, digit or `_` first, then those, `.` and `-`; at most 32.
fn check_user(user: &str) -> Result<(), ValidationError> {
    let ok = !user.is_empty()
        && user.len() <= 32
        && !user.starts_with(['-', '.'])
        && user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(ValidationError::new(
            "user",
            format!("{user:?} is not a login name (1 to 32 letters, digits, '_', '.' or '-', not starting with '-' or '.')"),
        ))
    }
}

/// An OpenSSH SHA-256 host key fingerprint: `SHA256:` and the digest's 32 bytes in
/// unpadded base64 (43 characters).
pub fn check_fingerprint(fingerprint: &str) -> Result<(), ValidationError> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bad = || {
        ValidationError::new(
            "host_key_fingerprint",
            format!(
                "{:?} is not an OpenSSH SHA-256 fingerprint (`SHA256:` and 43 base64 characters, as `ssh-keygen -lf` prints it)",
                fingerprint.chars().take(80).collect::<String>()
            ),
        )
    };
    let digest = fingerprint.strip_prefix("SHA256:").ok_or_else(bad)?;
    let digest = digest.as_bytes();
    if digest.len() != 43 || !digest.iter().all(|b| ALPHABET.contains(b)) {
        return Err(bad());
    }
    // 43 characters carry 258 bits: the last one's two low bits are padding and zero.
    let last = ALPHABET
        .iter()
        .position(|b| *b == digest[42])
        .unwrap_or_default();
    if last % 4 != 0 {
        return Err(bad());
    }
    Ok(())
}

fn check_labels(labels: &BTreeMap<String, String>) -> Result<(), ValidationError> {
    if labels.len() > MAX_LABELS {
        return Err(ValidationError::new(
            "labels",
            format!(
                "has {} entries; at most {MAX_LABELS} are allowed",
                labels.len()
            ),
        ));
    }
    for (key, value) in labels {
        let key_ok = !key.is_empty()
            && key.len() <= 63
            && key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/'));
        if !key_ok {
            return Err(ValidationError::new(
                "labels",
                format!(
                    "{key:?} is not a label key (1 to 63 letters, digits, '-', '_', '.' or '/')"
                ),
            ));
        }
        if value.len() > 255 || value.chars().any(char::is_control) {
            return Err(ValidationError::new(
                format!("labels.{key}"),
                "must be at most 255 bytes without control characters",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: serde_json::Value) -> Result<ServerSpec, String> {
        let spec: ServerSpec = serde_path_to_error::deserialize(json).map_err(|e| e.to_string())?;
        spec.validate().map_err(|e| e.to_string())?;
        Ok(spec)
    }

    const PRINT: &str = "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s";

    #[test]
    fn defaults_and_a_full_server() {
        let s = spec(serde_json::json!({"name": "web-1", "host": "10.0.0.5"})).unwrap();
        assert_eq!(
            (s.kind, s.port, s.user.as_str()),
            (ServerKind::Ssh, 22, "root")
        );
        assert_eq!(s.namespace_or("capstan"), "capstan");
        let full = spec(
            serde_json::json!({"name": "edge", "kind": "swarm", "host": "edge.example.com",
            "port": 2222, "user": "deploy", "host_key_fingerprint": PRINT, "build_slots": 2,
            "proxy_http_port": 8080, "proxy_https_port": 8443, "namespace": "cap2",
            "labels": {"region": "eu"}}),
        )
        .unwrap();
        assert_eq!(full.namespace_or("capstan"), "cap2");
        for host in ["::1", "[2001:db8::1]", "h", "a.b-c.d."] {
            assert!(
                spec(serde_json::json!({"name": "x", "host": host})).is_ok(),
                "{host}"
            );
        }
        assert!(ServerSpec::local().validate().is_ok());
    }

    #[test]
    fn each_bad_field_is_named() {
        let long_host = format!("{}.test", "a".repeat(64));
        for (json, field) in [
            (serde_json::json!({"name": "Bad"}), "name"),
            (serde_json::json!({"name": "x"}), "host"),
            (serde_json::json!({"name": "x", "host": "a b"}), "host"),
            (serde_json::json!({"name": "x", "host": "h:22"}), "host"),
            (serde_json::json!({"name": "x", "host": "-h"}), "host"),
            (
                serde_json::json!({"name": "x", "host": "300.1.1.1"}),
                "host",
            ),
            (serde_json::json!({"name": "x", "host": long_host}), "host"),
            (
                serde_json::json!({"name": "x", "host": "h", "port": 0}),
                "port",
            ),
            (
                serde_json::json!({"name": "x", "host": "h", "port": 70000}),
                "port",
            ),
            (
                serde_json::json!({"name": "x", "host": "h", "user": "-o"}),
                "user",
            ),
            (
                serde_json::json!({"name": "x", "host": "h", "host_key_fingerprint": "MD5:aa"}),
                "host_key_fingerprint",
            ),
            (
                serde_json::json!({"name": "x", "host": "h", "host_key_fingerprint": "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2t"}),
                "host_key_fingerprint",
            ),
            (
                serde_json::json!({"name": "x", "host": "h", "proxy_http_port": 0}),
                "proxy_http_port",
            ),
            (
                serde_json::json!({"name": "x", "host": "h", "build_slots": 0}),
                "build_slots",
            ),
            (
                serde_json::json!({"name": "x", "host": "h", "namespace": "Not_ok"}),
                "namespace",
            ),
            (
                serde_json::json!({"name": "x", "host": "h", "labels": {"a b": "c"}}),
                "labels",
            ),
            (
                serde_json::json!({"name": "x", "host": "h", "kind": "local"}),
                "kind",
            ),
            (
                serde_json::json!({"name": "x", "host": "h", "kind": "k8s"}),
                "kind",
            ),
            (serde_json::json!({"name": "local", "host": "h"}), "name"),
            (
                serde_json::json!({"name": "x", "host": "h", "hots": "h"}),
                "hots",
            ),
        ] {
            let err = spec(json.clone()).unwrap_err();
            assert!(err.contains(field), "{json}: {err}");
        }
    }
}
