//! Where the proxy's route files live: a host directory bind-mounted read-only (the engine
//! beside the daemon, written by [`RouteFiles`](crate::proxy::RouteFiles)), or a named
//! volume on the engine's host, written through the Docker API only (a remote server:
//! nothing of the daemon's filesystem is there). Traefik's image has no shell, so a
//! removed route is an emptied file (no routers, no services).
//!
//! The engine unpacks an archive entry by removing the file and writing a new one, not by
//! a rename: Traefik, woken by the removal, can read the directory while the file is
//! missing or half written, and would drop the app's routes until its next reload (seen:
//! 156 of 2332 requests answered 404 during 40 rewrites). So each write is one archive of
//! three entries, unpacked in order: a guard file that sorts before every route file
//! becomes a dangling symlink (a directory read then fails, and Traefik keeps the routes
//! it has), the route file is replaced, the guard becomes an empty file again. Two
//! writes must not overlap (one's guard would end while the other replaces its file):
//! callers serialize them.

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

/// The guard file: `-` sorts before the letters and digits route names start with.
const GUARD: &str = "-capstan-guard.yml";
/// What the guard points at while a route file is replaced: never there.
const GUARD_TARGET: &str = "-capstan-guard.missing";

/// A route name as a file name: letters, digits, `-`, `_` and `.`, starting with a letter
/// or digit.
fn route_file_name(name: &str) -> Result<String, EngineError> {
    let valid = name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if valid {
        Ok(format!("{name}.yml"))
    } else {
        Err(EngineError::Proxy(format!("invalid route name {name:?}")))
    }
}

/// The guard as a dangling symlink, `file` with `content`, the guard as an empty file.
fn guarded_archive(file: &str, content: &[u8]) -> Result<Vec<u8>, EngineError> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut link = tar::Header::new_gnu();
    link.set_entry_type(tar::EntryType::Symlink);
    link.set_size(0);
    link.set_mode(0o777);
    link.set_mtime(0);
    builder.append_link(&mut link, GUARD, GUARD_TARGET)?;
    for (path, data) in [(file, content), (GUARD, &b""[..])] {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        builder.append_data(&mut header, path, data)?;
    }
    Ok(builder.into_inner()?)
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
        let archive = guarded_archive(&file, content.as_bytes())?;
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
        for bad in ["", ".hidden", "-capstan-guard", "../etc", "a/b", "a b"] {
            assert!(route_file_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_write_guards_the_directory_then_replaces_the_file_then_clears_the_guard() {
        let archive = guarded_archive("web.yml", b"http: {}\n").unwrap();
        let mut archive = tar::Archive::new(archive.as_slice());
        let entries: Vec<(String, tar::EntryType, Option<String>)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let link = e.link_name().unwrap().map(|l| l.display().to_string());
                let path = e.path().unwrap().display().to_string();
                (path, e.header().entry_type(), link)
            })
            .collect();
        assert_eq!(
            entries,
            vec![
                (
                    GUARD.into(),
                    tar::EntryType::Symlink,
                    Some(GUARD_TARGET.into())
                ),
                ("web.yml".into(), tar::EntryType::Regular, None),
                (GUARD.into(), tar::EntryType::Regular, None),
            ]
        );
        assert!(GUARD < "0" && GUARD.ends_with(".yml"));
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
