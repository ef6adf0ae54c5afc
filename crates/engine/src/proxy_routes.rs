//! Where the proxy's route files live: a host directory bind-mounted read-only (the engine
//! beside the daemon, written by [`RouteFiles`](crate::proxy::RouteFiles)), or a named
//! volume on the engine's host, written through the Docker API only (a remote server:
//! nothing of the daemon's filesystem is there). A route file goes into the proxy
//! container's watched directory as a one-entry archive holding its final name; Traefik's
//! image has no shell, so a removed route is an emptied file (no routers, no services).

use crate::setup::single_file_tar;
use crate::{Engine, EngineError};
use bollard::container::UploadToContainerOptions;
use bollard::models::{Mount, MountTypeEnum};
use std::path::PathBuf;

/// What a removed route's file holds: valid YAML that configures nothing.
pub const EMPTY_ROUTE: &str = "# removed by Capstan: no routes\n";

/// Where the proxy reads its per-app route files from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoutesSource {
    /// A host directory, bind-mounted read-only (written on the host, atomically).
    HostDir(PathBuf),
    /// A named volume on the engine's host, mounted read-write so the Docker API can
    /// write into it through the proxy container; created with the proxy.
    Volume(String),
}

impl RoutesSource {
    /// The part of the proxy's fingerprint naming the source (a host directory's path,
    /// as before volumes existed, so an existing local proxy is kept).
    pub(crate) fn fingerprint_part(&self) -> String {
        match self {
            Self::HostDir(dir) => dir.to_string_lossy().into_owned(),
            Self::Volume(name) => format!("volume:{name}"),
        }
    }

    /// The proxy container's mount of the source at `target`.
    pub(crate) fn mount(&self, target: &str) -> Mount {
        let (source, typ, read_only) = match self {
            Self::HostDir(dir) => (
                dir.to_string_lossy().into_owned(),
                MountTypeEnum::BIND,
                true,
            ),
            Self::Volume(name) => (name.clone(), MountTypeEnum::VOLUME, false),
        };
        Mount {
            source: Some(source),
            target: Some(target.to_string()),
            typ: Some(typ),
            read_only: Some(read_only),
            ..Default::default()
        }
    }
}

/// A route name as a file name: letters, digits, `-`, `_` and `.` (not first).
fn route_file_name(name: &str) -> Result<String, EngineError> {
    let valid = !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if valid {
        Ok(format!("{name}.yml"))
    } else {
        Err(EngineError::Proxy(format!("invalid route name {name:?}")))
    }
}

impl Engine {
    /// Replaces the route file `<name>.yml` in the proxy container's directory `dir` (the
    /// mount of a [`RoutesSource::Volume`]) through the Docker API: one archive entry with
    /// the final name, unpacked by the engine in place. The proxy container must exist
    /// (running or not).
    pub async fn write_proxy_route(
        &self,
        dir: &str,
        name: &str,
        content: &str,
    ) -> Result<(), EngineError> {
        let file = route_file_name(name)?;
        let archive = single_file_tar(&file, content.as_bytes(), 0o644)?;
        self.docker()
            .upload_to_container(
                &self.proxy_container_name(),
                Some(UploadToContainerOptions {
                    path: dir.to_string(),
                    ..Default::default()
                }),
                archive.into(),
            )
            .await?;
        Ok(())
    }

    /// Empties the route file `<name>.yml` in the proxy's directory `dir` (see
    /// [`EMPTY_ROUTE`]): the proxy then has none of its routers or services.
    pub async fn clear_proxy_route(&self, dir: &str, name: &str) -> Result<(), EngineError> {
        self.write_proxy_route(dir, name, EMPTY_ROUTE).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_names_are_plain_file_names() {
        assert_eq!(route_file_name("web-1_x.v2").unwrap(), "web-1_x.v2.yml");
        for bad in ["", ".hidden", "../etc", "a/b", "a b"] {
            assert!(route_file_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_host_directory_keeps_its_old_fingerprint_part_and_read_only_bind() {
        let dir = RoutesSource::HostDir(PathBuf::from("/var/lib/capstan/routes"));
        assert_eq!(dir.fingerprint_part(), "/var/lib/capstan/routes");
        let mount = dir.mount("/etc/traefik/dynamic");
        assert_eq!(mount.typ, Some(MountTypeEnum::BIND));
        assert_eq!(mount.read_only, Some(true));
        let volume = RoutesSource::Volume("x-proxy-routes".into());
        assert_eq!(volume.mount("/d").read_only, Some(false));
        assert_ne!(volume.fingerprint_part(), "x-proxy-routes");
    }
}
