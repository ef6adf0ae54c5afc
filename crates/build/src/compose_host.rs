//! Service keys that shape a container's surroundings, accepted within limits:
//! `extra_hosts` (entries in the container's own `/etc/hosts`; a name that is one of the
//! app's services keeps its app-network address) and `runtime` (only runtimes that isolate
//! at least as well as runc and pass no host devices through: WebAssembly shims, gVisor,
//! Kata).

use crate::compose_file::UserService;
use crate::compose_service::string;
use serde_norway::Value;
use std::net::IpAddr;

/// OCI runtimes a repository may ask for. Each must also be registered with the engine
/// by the server's operator; an unknown one fails the container's creation, named.
pub const ALLOWED_RUNTIMES: [&str; 12] = [
    "runc",
    "io.containerd.runc.v2",
    "io.containerd.wasmedge.v1",
    "io.containerd.wasmtime.v1",
    "io.containerd.spin.v2",
    "io.containerd.slight.v1",
    "io.containerd.wws.v1",
    "io.containerd.lunatic.v1",
    "runsc",
    "kata",
    "kata-runtime",
    "io.containerd.kata.v2",
];

/// Reads a service's `extra_hosts`.
pub(crate) fn extra_hosts(service: &Value, out: &mut UserService) -> Result<(), String> {
    if let Some(value) = service.get("extra_hosts").filter(|v| !v.is_null()) {
        let entries: Vec<(String, String)> = match value {
            Value::Sequence(items) => items
                .iter()
                .map(|item| {
                    let item = string(item, "extra_hosts entry")?;
                    // `name:ip`, `name=ip`; an IPv6 address keeps its own colons.
                    let (name, ip) = item
                        .split_once('=')
                        .or_else(|| item.split_once(':'))
                        .ok_or_else(|| {
                            format!("has an extra_hosts entry {item:?} without an address")
                        })?;
                    Ok((name.trim().to_string(), ip.trim().to_string()))
                })
                .collect::<Result<_, String>>()?,
            Value::Mapping(map) => map
                .iter()
                .map(|(k, v)| {
                    Ok((
                        string(k, "extra_hosts name")?,
                        string(v, "extra_hosts address")?,
                    ))
                })
                .collect::<Result<_, String>>()?,
            _ => return Err("has extra_hosts that are neither a list nor a mapping".into()),
        };
        for (name, ip) in entries {
            let ip = ip.trim_start_matches('[').trim_end_matches(']').to_string();
            let name_ok = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b));
            if !name_ok {
                return Err(format!(
                    "has an extra_hosts name {name:?} that is not a host name"
                ));
            }
            if ip != "host-gateway" && ip.parse::<IpAddr>().is_err() {
                return Err(format!(
                    "has an extra_hosts address {ip:?} for {name} that is neither an IP address nor host-gateway"
                ));
            }
            out.extra_hosts.push((name, ip));
        }
    }
    Ok(())
}

/// Reads a service's `runtime`.
pub(crate) fn runtime(service: &Value, out: &mut UserService) -> Result<(), String> {
    if let Some(value) = service.get("runtime").filter(|v| !v.is_null()) {
        let runtime = string(value, "runtime")?;
        if !ALLOWED_RUNTIMES.contains(&runtime.as_str()) {
            return Err(format!(
                "asks for the runtime {runtime:?}, which Capstan does not let a repository choose: \
                 a runtime is the server operator's, and only WebAssembly shims, gVisor (runsc) \
                 and Kata are accepted (they pass no host devices through)"
            ));
        }
        out.notes.push(format!(
            "runs on the engine's {runtime} runtime (it must be installed on the server)"
        ));
        out.runtime = Some(runtime);
    }
    Ok(())
}

/// Drops the `extra_hosts` entries of every service that name one of the app's services:
/// those names resolve on the app network, as the other services expect.
pub(crate) fn keep_service_names(services: &mut std::collections::BTreeMap<String, UserService>) {
    let names: Vec<String> = services.keys().map(|n| n.to_ascii_lowercase()).collect();
    for service in services.values_mut() {
        let before = service.extra_hosts.len();
        service
            .extra_hosts
            .retain(|(name, _)| !names.contains(&name.to_ascii_lowercase()));
        if service.extra_hosts.len() != before {
            service.notes.push(
                "extra_hosts entries naming the app's own services ignored: they are reached by name on the app network".into(),
            );
        }
    }
}

impl UserService {
    /// `extra_hosts` as Docker takes them (`name:address`).
    pub fn host_entries(&self) -> Vec<String> {
        self.extra_hosts
            .iter()
            .map(|(name, ip)| format!("{name}:{ip}"))
            .collect()
    }
}
