//! What the engine says about itself and this instance's share of it: its version, and
//! the images this instance built, with their total size.

use crate::{Engine, EngineError};
use bollard::image::ListImagesOptions;
use std::collections::HashMap;

/// The engine's version and this instance's images.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineStatus {
    pub version: String,
    pub api_version: String,
    pub os: String,
    pub arch: String,
    /// Images labelled with this instance (every app's builds).
    pub images: usize,
    pub image_bytes: i64,
}

impl Engine {
    pub async fn status(&self) -> Result<EngineStatus, EngineError> {
        let version = self.docker().version().await?;
        let options = ListImagesOptions::<String> {
            filters: HashMap::from([(
                "label".to_string(),
                vec![capstan_compose::labels::filter(
                    capstan_compose::labels::INSTANCE,
                    self.instance(),
                )],
            )]),
            ..Default::default()
        };
        let images = self.docker().list_images(Some(options)).await?;
        Ok(EngineStatus {
            version: version.version.unwrap_or_default(),
            api_version: version.api_version.unwrap_or_default(),
            os: version.os.unwrap_or_default(),
            arch: version.arch.unwrap_or_default(),
            images: images.len(),
            image_bytes: images.iter().map(|i| i.size).sum(),
        })
    }
}
