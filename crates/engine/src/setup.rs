//! Objects an instance needs before any app runs: its network and the volume holding the
//! static health probe that every app container mounts read-only.

use crate::{is_not_found, Engine, EngineError};
use bollard::container::{Config, CreateContainerOptions, UploadToContainerOptions};
use bollard::models::{HostConfig, Mount, MountTypeEnum};
use bollard::network::CreateNetworkOptions;
use bollard::volume::CreateVolumeOptions;
use capstan_core::AppName;
use std::collections::HashMap;

/// The `capstan.role` of an app's private network.
const APP_NETWORK_ROLE: &str = "app-network";

impl Engine {
    pub(crate) fn owned_labels(&self, role: &str) -> HashMap<String, String> {
        HashMap::from([
            (
                capstan_compose::labels::INSTANCE.to_string(),
                self.instance().to_string(),
            ),
            (capstan_compose::labels::ROLE.to_string(), role.to_string()),
        ])
    }

    /// Creates the instance's control network (only the proxy is on it) if missing.
    pub async fn ensure_control_network(&self) -> Result<(), EngineError> {
        let name = self.names().control_network();
        self.create_network_if_missing(&name, self.owned_labels("control-network"))
            .await
    }

    /// The private network of an app, where its containers (and a compose app's services,
    /// by service name) find each other and the proxy reaches them; no other app is on
    /// it. Created if missing, and the proxy is connected to it.
    pub async fn ensure_app_network(&self, app: &AppName) -> Result<String, EngineError> {
        let name = self.names().app(app).network();
        let mut labels = self.owned_labels(APP_NETWORK_ROLE);
        labels.insert(capstan_compose::labels::APP.into(), app.to_string());
        self.create_network_if_missing(&name, labels).await?;
        self.connect_proxy(&name).await?;
        Ok(name)
    }

    /// The app networks of this instance.
    pub(crate) async fn app_networks(&self) -> Result<Vec<String>, EngineError> {
        let filters = HashMap::from([(
            "label".to_string(),
            vec![
                capstan_compose::labels::filter(capstan_compose::labels::INSTANCE, self.instance()),
                capstan_compose::labels::filter(capstan_compose::labels::ROLE, APP_NETWORK_ROLE),
            ],
        )]);
        let list = self
            .docker()
            .list_networks(Some(bollard::network::ListNetworksOptions { filters }))
            .await?;
        Ok(list.into_iter().filter_map(|n| n.name).collect())
    }

    /// Removes an app's private network, if it exists (the proxy is disconnected first).
    pub async fn remove_app_network(&self, app: &AppName) -> Result<(), EngineError> {
        let name = self.names().app(app).network();
        let _ = self
            .docker()
            .disconnect_network(
                &name,
                bollard::network::DisconnectNetworkOptions {
                    container: self.names().proxy_container(),
                    force: true,
                },
            )
            .await;
        match self.docker().remove_network(&name).await {
            Ok(()) => Ok(()),
            Err(err) if is_not_found(&err) => Ok(()),
            Err(err) => Err(err.into()),
        }
    }

    async fn create_network_if_missing(
        &self,
        name: &str,
        labels: HashMap<String, String>,
    ) -> Result<(), EngineError> {
        let name = name.to_string();
        match self.docker().inspect_network::<String>(&name, None).await {
            Ok(_) => return Ok(()),
            Err(err) if is_not_found(&err) => {}
            Err(err) => return Err(err.into()),
        }
        let options = CreateNetworkOptions {
            name: name.clone(),
            driver: "bridge".to_string(),
            labels,
            ..Default::default()
        };
        match self.docker().create_network(options).await {
            Ok(_) => Ok(()),
            // Lost a race with another start of the same instance: fine.
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 409, ..
            }) => Ok(()),
            Err(err) => Err(err.into()),
        }
    }

    /// Creates the probe volume and (re)writes `capstan-probe` into it, using a container of
    /// `helper_image` that is created but never started, so only the Docker API is needed
    /// (the same works against a remote engine).
    pub async fn install_probe(&self, probe: &[u8], helper_image: &str) -> Result<(), EngineError> {
        let volume = self.names().probe_volume();
        self.create_owned_volume(&volume, "probe").await?;
        let archive = single_file_tar("volume/capstan-probe", probe, 0o755)?;
        let helper = self.names().probe_installer();
        self.upload_into_volume(&volume, archive, helper_image, &helper)
            .await
    }
}

/// A tar archive holding one regular file.
pub(crate) fn single_file_tar(
    path: &str,
    content: &[u8],
    mode: u32,
) -> Result<Vec<u8>, EngineError> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(content.len() as u64);
    header.set_mode(mode);
    header.set_mtime(0);
    builder.append_data(&mut header, path, content)?;
    Ok(builder.into_inner()?)
}

impl Engine {
    /// A short-lived container `helper` of `helper_image` (created, never started) with
    /// `volume` at `/volume`, for copying files in and out through the Docker API only
    /// (the same works against a remote engine).
    pub(crate) async fn volume_helper(
        &self,
        volume: &str,
        helper_image: &str,
        helper: &str,
    ) -> Result<String, EngineError> {
        let helper = helper.to_string();
        self.remove_container(&helper).await?;
        let config = Config {
            image: Some(helper_image.to_string()),
            labels: Some(self.owned_labels("volume-helper")),
            host_config: Some(HostConfig {
                mounts: Some(vec![Mount {
                    target: Some("/volume".into()),
                    source: Some(volume.to_string()),
                    typ: Some(MountTypeEnum::VOLUME),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        self.docker()
            .create_container(
                Some(CreateContainerOptions {
                    name: helper.clone(),
                    platform: None,
                }),
                config,
            )
            .await?;
        Ok(helper)
    }

    /// Creates `volume` with this instance's labels and `role`; existing is fine.
    pub(crate) async fn create_owned_volume(
        &self,
        volume: &str,
        role: &str,
    ) -> Result<(), EngineError> {
        self.docker()
            .create_volume(CreateVolumeOptions {
                name: volume.to_string(),
                labels: self.owned_labels(role),
                ..Default::default()
            })
            .await?;
        Ok(())
    }

    /// Unpacks `archive` (entries under `volume/`) into `volume` through a helper container.
    async fn upload_into_volume(
        &self,
        volume: &str,
        archive: Vec<u8>,
        helper_image: &str,
        helper: &str,
    ) -> Result<(), EngineError> {
        let helper = self.volume_helper(volume, helper_image, helper).await?;
        let upload = self
            .docker()
            .upload_to_container(
                &helper,
                Some(UploadToContainerOptions {
                    path: "/".to_string(),
                    ..Default::default()
                }),
                archive.into(),
            )
            .await;
        self.remove_container(&helper).await?;
        upload?;
        Ok(())
    }
}
