//! Listing and removing this instance's own leftovers for cleanup: stopped containers,
//! dangling images, every image with its app, and app networks. Every list is filtered
//! by `capstan.instance=<instance>`, so nothing another instance or anyone else made is
//! ever seen, let alone removed; nothing here prunes host-wide. Also: how full the disk
//! under the engine's data root is.

use crate::containers::OwnedContainer;
use crate::{is_not_found, Engine, EngineError};
use bollard::container::{ListContainersOptions, RemoveContainerOptions};
use bollard::image::{ListImagesOptions, RemoveImageOptions};
use bollard::network::ListNetworksOptions;
use capstan_compose::labels;
use std::collections::HashMap;

/// One image of this instance.
#[derive(Debug, Clone)]
pub struct OwnedImage {
    pub id: String,
    pub tags: Vec<String>,
    /// The app it was built for (`capstan.app`), if labelled.
    pub app: Option<String>,
    pub size: i64,
}

/// How full a filesystem is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DiskUsage {
    pub total_bytes: u64,
    pub free_bytes: u64,
}

impl DiskUsage {
    pub fn used_percent(&self) -> f64 {
        if self.total_bytes == 0 {
            return 0.0;
        }
        100.0 * (self.total_bytes - self.free_bytes) as f64 / self.total_bytes as f64
    }
}

/// `statvfs` of the filesystem holding `path` (space available to unprivileged users
/// counts as free, as `df` shows it).
pub fn disk_usage(path: &std::path::Path) -> Option<DiskUsage> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs writes into the zeroed struct we own; the path is NUL-terminated.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c_path.as_ptr(), &mut stat) } != 0 {
        return None;
    }
    let block = stat.f_frsize as u64;
    Some(DiskUsage {
        total_bytes: stat.f_blocks as u64 * block,
        free_bytes: stat.f_bavail as u64 * block,
    })
}

impl Engine {
    /// A `label` filter on this instance, and on the `extra` labels (`key=value`).
    pub(crate) fn instance_filter(&self, extra: &[String]) -> HashMap<String, Vec<String>> {
        let mut label = vec![labels::filter(labels::INSTANCE, self.instance())];
        label.extend(extra.iter().cloned());
        HashMap::from([("label".to_string(), label)])
    }

    /// Containers of this instance that are not running (exited, created, dead).
    pub async fn stopped_containers(&self) -> Result<Vec<OwnedContainer>, EngineError> {
        let mut found = Vec::new();
        for status in ["exited", "created", "dead"] {
            let mut filters = self.instance_filter(&[]);
            filters.insert("status".into(), vec![status.to_string()]);
            let list = self
                .docker()
                .list_containers(Some(ListContainersOptions {
                    all: true,
                    filters,
                    ..Default::default()
                }))
                .await?;
            found.extend(list.into_iter().map(OwnedContainer::from));
        }
        Ok(found)
    }

    /// Removes a stopped container (and its anonymous volumes); gone already is fine.
    pub async fn remove_stopped_container(&self, id: &str) -> Result<(), EngineError> {
        let options = RemoveContainerOptions {
            v: true,
            force: false,
            link: false,
        };
        match self.docker().remove_container(id, Some(options)).await {
            Err(err) if !is_not_found(&err) => Err(err.into()),
            _ => Ok(()),
        }
    }

    /// Every image of this instance; `dangling` limits it to untagged ones.
    pub async fn owned_images(&self, dangling: bool) -> Result<Vec<OwnedImage>, EngineError> {
        let mut filters = self.instance_filter(&[]);
        if dangling {
            filters.insert("dangling".into(), vec!["true".into()]);
        }
        let list = self
            .docker()
            .list_images(Some(ListImagesOptions {
                filters,
                ..Default::default()
            }))
            .await?;
        Ok(list
            .into_iter()
            .map(|i| OwnedImage {
                app: i.labels.get(labels::APP).cloned(),
                id: i.id,
                tags: i
                    .repo_tags
                    .into_iter()
                    .filter(|t| t != "<none>:<none>")
                    .collect(),
                size: i.size,
            })
            .collect())
    }

    /// Removes an untagged image by id (never forced: an image a container uses stays,
    /// and the error says so).
    pub async fn remove_image_id(&self, id: &str) -> Result<(), EngineError> {
        let options = RemoveImageOptions {
            force: false,
            noprune: false,
        };
        match self.docker().remove_image(id, Some(options), None).await {
            Err(err) if !is_not_found(&err) => Err(err.into()),
            _ => Ok(()),
        }
    }

    /// The app networks of this instance with the app each belongs to.
    pub async fn app_networks_by_app(&self) -> Result<Vec<(String, String)>, EngineError> {
        let filters = self.instance_filter(&[labels::filter(labels::ROLE, "app-network")]);
        let list = self
            .docker()
            .list_networks(Some(ListNetworksOptions { filters }))
            .await?;
        Ok(list
            .into_iter()
            .filter_map(|n| Some((n.name?, n.labels?.get(labels::APP)?.clone())))
            .collect())
    }

    /// Removes a network of this instance by name (the proxy is disconnected first).
    pub async fn remove_network_named(&self, name: &str) -> Result<(), EngineError> {
        let _ = self
            .docker()
            .disconnect_network(
                name,
                bollard::network::DisconnectNetworkOptions {
                    container: self.names().proxy_container(),
                    force: true,
                },
            )
            .await;
        match self.docker().remove_network(name).await {
            Err(err) if !is_not_found(&err) => Err(err.into()),
            _ => Ok(()),
        }
    }

    /// The engine's data root (`DockerRootDir`), where images and containers live.
    pub async fn data_root(&self) -> Result<Option<String>, EngineError> {
        Ok(self.docker().info().await?.docker_root_dir)
    }
}
