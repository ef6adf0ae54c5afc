//! The maintenance page server: one small container per instance, on the control network
//! where only the proxy reaches it, running the health probe binary in its page-server
//! mode from the probe volume (so it needs no image of its own: it runs in the proxy's
//! image). Locked down: read-only root, no capabilities, an unprivileged user, small
//! memory and process limits.

use crate::{is_not_found, Engine, EngineError};
use bollard::container::{Config, CreateContainerOptions};
use bollard::models::{HostConfig, Mount, MountTypeEnum, RestartPolicy, RestartPolicyNameEnum};
use capstan_compose::render::PROBE_MOUNT;
use capstan_core::names::MAINTENANCE_PAGES_PORT;
use sha2::{Digest, Sha256};

impl Engine {
    /// Makes sure the page server runs from `image` with the probe whose bytes are
    /// `probe`: kept when it already does, recreated when either changed.
    pub async fn ensure_maintenance_pages(
        &self,
        image: &str,
        probe: &[u8],
    ) -> Result<(), EngineError> {
        let name = self.names().maintenance_pages();
        let fingerprint = {
            let mut hash = Sha256::new();
            hash.update(image.as_bytes());
            hash.update([0]);
            hash.update(probe);
            hex::encode(&hash.finalize()[..8])
        };
        match self.docker().inspect_container(&name, None).await {
            Ok(info) => {
                let same = info
                    .config
                    .as_ref()
                    .and_then(|c| c.labels.as_ref())
                    .and_then(|l| l.get(capstan_compose::labels::FINGERPRINT))
                    == Some(&fingerprint);
                if same {
                    if info.state.and_then(|s| s.running) != Some(true) {
                        self.docker().start_container::<String>(&name, None).await?;
                    }
                    return Ok(());
                }
                self.remove_container(&name).await?;
            }
            Err(err) if is_not_found(&err) => {}
            Err(err) => return Err(err.into()),
        }
        let mut labels = self.owned_labels("maintenance-pages");
        labels.insert(capstan_compose::labels::FINGERPRINT.into(), fingerprint);
        let config = Config {
            image: Some(image.to_string()),
            entrypoint: Some(vec![
                format!("{PROBE_MOUNT}/capstan-probe"),
                "--serve-maintenance".to_string(),
                format!("0.0.0.0:{MAINTENANCE_PAGES_PORT}"),
            ]),
            cmd: Some(Vec::new()),
            user: Some("65534:65534".to_string()),
            // PID 1 without a SIGTERM handler: stopping need not wait the usual 10 s.
            stop_timeout: Some(1),
            labels: Some(labels),
            host_config: Some(HostConfig {
                network_mode: Some(self.names().control_network()),
                mounts: Some(vec![Mount {
                    source: Some(self.names().probe_volume()),
                    target: Some(PROBE_MOUNT.to_string()),
                    typ: Some(MountTypeEnum::VOLUME),
                    read_only: Some(true),
                    ..Default::default()
                }]),
                restart_policy: Some(RestartPolicy {
                    name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
                    maximum_retry_count: None,
                }),
                readonly_rootfs: Some(true),
                cap_drop: Some(vec!["ALL".to_string()]),
                security_opt: Some(vec!["no-new-privileges".to_string()]),
                memory: Some(32 * 1024 * 1024),
                pids_limit: Some(64),
                ..Default::default()
            }),
            ..Default::default()
        };
        self.docker()
            .create_container(
                Some(CreateContainerOptions {
                    name: name.clone(),
                    platform: None,
                }),
                config,
            )
            .await?;
        self.docker().start_container::<String>(&name, None).await?;
        Ok(())
    }
}
