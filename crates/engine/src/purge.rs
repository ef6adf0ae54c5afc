//! Every Docker object of one instance, listed and removed for good (`capstan purge`, run
//! by `install.sh --uninstall --purge`): app and companion containers, the proxy, the page
//! server, networks, volumes and images. Only what carries `capstan.instance=<instance>`
//! is listed (plus the proxy's ACME volume, which its mount creates without labels), so
//! another instance's objects and anything else on the host are never seen; nothing is
//! forced past another owner (an image tagged under another name, a network or volume a
//! foreign container still uses stays, and the failure says why).

use crate::cleanup::OwnedImage;
use crate::containers::OwnedContainer;
use crate::{is_not_found, Engine, EngineError};
use bollard::container::{ListContainersOptions, RemoveContainerOptions};
use bollard::image::RemoveImageOptions;
use bollard::network::ListNetworksOptions;
use bollard::volume::{ListVolumesOptions, RemoveVolumeOptions};
use capstan_compose::labels;

/// The kinds of object a purge removes, in the order it removes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    Container,
    Network,
    Volume,
    Image,
}

impl std::fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ObjectKind::Container => "container",
            ObjectKind::Network => "network",
            ObjectKind::Volume => "volume",
            ObjectKind::Image => "image",
        })
    }
}

/// Every object of one instance on the engine.
#[derive(Debug, Clone, Default)]
pub struct InstanceObjects {
    pub containers: Vec<OwnedContainer>,
    /// Network names.
    pub networks: Vec<String>,
    /// Volume names.
    pub volumes: Vec<String>,
    pub images: Vec<OwnedImage>,
}

impl InstanceObjects {
    pub fn len(&self) -> usize {
        self.containers.len() + self.networks.len() + self.volumes.len() + self.images.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// How the removal of one object ended.
#[derive(Debug)]
pub struct Removal {
    pub kind: ObjectKind,
    pub name: String,
    pub result: Result<(), PurgeError>,
}

/// Why an object was not removed.
#[derive(Debug, thiserror::Error)]
pub enum PurgeError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The image also carries tags that are not this instance's: someone else uses it.
    #[error("also tagged {0}, which is not this instance's name")]
    ForeignTags(String),
}

impl Engine {
    /// Lists every object labelled with this instance.
    pub async fn instance_objects(&self) -> Result<InstanceObjects, EngineError> {
        let containers = self
            .docker()
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: self.instance_filter(&[]),
                ..Default::default()
            }))
            .await?
            .into_iter()
            .map(OwnedContainer::from)
            .collect();
        let networks = self
            .docker()
            .list_networks(Some(ListNetworksOptions {
                filters: self.instance_filter(&[]),
            }))
            .await?
            .into_iter()
            .filter_map(|n| n.name)
            .collect();
        let images = self.owned_images(false).await?;
        Ok(InstanceObjects {
            containers,
            networks,
            volumes: self.instance_volumes().await?,
            images,
        })
    }

    /// The labelled volumes, and the proxy's ACME volume (its mount creates it unlabelled;
    /// its name is this instance's by the naming scheme) unless another instance labelled it.
    async fn instance_volumes(&self) -> Result<Vec<String>, EngineError> {
        let mut volumes: Vec<String> = self
            .docker()
            .list_volumes(Some(ListVolumesOptions {
                filters: self.instance_filter(&[]),
            }))
            .await?
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(|v| v.name)
            .collect();
        let proxy_data = self.names().proxy_data_volume();
        match self.docker().inspect_volume(&proxy_data).await {
            Ok(volume) => {
                let owner = volume.labels.get(labels::INSTANCE);
                if owner.is_none_or(|o| o == self.instance()) && !volumes.contains(&proxy_data) {
                    volumes.push(proxy_data);
                }
            }
            Err(err) if is_not_found(&err) => {}
            Err(err) => return Err(err.into()),
        }
        Ok(volumes)
    }

    /// Removes `objects`: containers first (each stopped with its own grace, all at once),
    /// then networks, volumes and images. Every outcome goes to `report` as it happens;
    /// a failure does not stop the rest.
    pub async fn purge(&self, objects: &InstanceObjects, mut report: impl FnMut(Removal)) {
        let stops = objects
            .containers
            .iter()
            .filter(|c| c.running)
            .map(|c| self.docker().stop_container(&c.id, None));
        // Failures show when the container is removed (forced) just below.
        let _ = futures::future::join_all(stops).await;
        for container in &objects.containers {
            let options = RemoveContainerOptions {
                force: true,
                v: true,
                link: false,
            };
            let result = self
                .docker()
                .remove_container(&container.id, Some(options))
                .await;
            report(removal(ObjectKind::Container, &container.name, result));
        }
        for network in &objects.networks {
            let result = self.docker().remove_network(network).await;
            report(removal(ObjectKind::Network, network, result));
        }
        for volume in &objects.volumes {
            let options = RemoveVolumeOptions { force: false };
            let result = self.docker().remove_volume(volume, Some(options)).await;
            report(removal(ObjectKind::Volume, volume, result));
        }
        self.purge_images(&objects.images, report).await;
    }

    /// Removes images in passes: an image another one was built on goes once its child
    /// has gone, so each pass retries what failed while the previous one made progress.
    async fn purge_images(&self, images: &[OwnedImage], mut report: impl FnMut(Removal)) {
        let mut pending: Vec<&OwnedImage> = images.iter().collect();
        loop {
            let tried = pending.len();
            let mut failed = Vec::new();
            for image in pending {
                match self.remove_owned_image(image).await {
                    Ok(()) => report(Removal {
                        kind: ObjectKind::Image,
                        name: image_name(image),
                        result: Ok(()),
                    }),
                    Err(err) => failed.push((image, err)),
                }
            }
            if failed.is_empty() || failed.len() == tried {
                for (image, err) in failed {
                    report(Removal {
                        kind: ObjectKind::Image,
                        name: image_name(image),
                        result: Err(err),
                    });
                }
                return;
            }
            pending = failed.into_iter().map(|(image, _)| image).collect();
        }
    }

    /// Removes the image's tags under this instance's name, then the image itself unless a
    /// tag of another name is left (never forced: an image a container uses stays).
    async fn remove_owned_image(&self, image: &OwnedImage) -> Result<(), PurgeError> {
        let own_prefix = format!("{}/", self.instance());
        let (own, foreign): (Vec<&String>, Vec<&String>) =
            image.tags.iter().partition(|t| t.starts_with(&own_prefix));
        let options = || {
            Some(RemoveImageOptions {
                force: false,
                noprune: false,
            })
        };
        for tag in own {
            match self.docker().remove_image(tag, options(), None).await {
                Err(err) if !is_not_found(&err) => return Err(EngineError::from(err).into()),
                _ => {}
            }
        }
        if !foreign.is_empty() {
            let names: Vec<&str> = foreign.iter().map(|t| t.as_str()).collect();
            return Err(PurgeError::ForeignTags(names.join(", ")));
        }
        match self.docker().remove_image(&image.id, options(), None).await {
            Err(err) if !is_not_found(&err) => Err(EngineError::from(err).into()),
            _ => Ok(()),
        }
    }
}

fn removal(kind: ObjectKind, name: &str, result: Result<(), bollard::errors::Error>) -> Removal {
    let result = match result {
        Err(err) if !is_not_found(&err) => Err(PurgeError::Engine(err.into())),
        _ => Ok(()),
    };
    Removal {
        kind,
        name: name.to_string(),
        result,
    }
}

/// An image's tags, or its short id when it has none.
pub fn image_name(image: &OwnedImage) -> String {
    if image.tags.is_empty() {
        let id = image.id.trim_start_matches("sha256:");
        id.get(..12).unwrap_or(id).to_string()
    } else {
        image.tags.join(", ")
    }
}
