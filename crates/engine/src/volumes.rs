//! A volume's files out and in as tar streams through a helper container (created, never
//! started, so only the Docker API is needed): the proxy's ACME store for backups and
//! restores. Neither direction holds the archive in memory.

use crate::{is_not_found, Engine, EngineError};
use bollard::container::{DownloadFromContainerOptions, UploadToContainerOptions};
use futures::StreamExt;
use std::path::Path;
use tokio::io::AsyncWriteExt;

impl Engine {
    fn volume_helper_name(&self) -> String {
        format!("{}-volume-helper", self.instance())
    }

    /// Writes the files of `volume` as a tar archive (entries under `volume/`) to `out`,
    /// chunk by chunk as the engine sends them; `false` when the volume does not exist.
    pub async fn read_volume_into<W>(
        &self,
        volume: &str,
        helper_image: &str,
        out: &mut W,
    ) -> Result<bool, EngineError>
    where
        W: tokio::io::AsyncWrite + Unpin,
    {
        match self.docker().inspect_volume(volume).await {
            Ok(_) => {}
            Err(err) if is_not_found(&err) => return Ok(false),
            Err(err) => return Err(err.into()),
        }
        let helper = self
            .volume_helper(volume, helper_image, &self.volume_helper_name())
            .await?;
        let copied = async {
            let mut chunks = self.docker().download_from_container(
                &helper,
                Some(DownloadFromContainerOptions { path: "/volume" }),
            );
            while let Some(chunk) = chunks.next().await {
                out.write_all(&chunk?).await?;
            }
            out.flush().await?;
            Ok::<(), EngineError>(())
        }
        .await;
        self.remove_container(&helper).await?;
        copied.map(|()| true)
    }

    /// Creates `volume` (labelled as this instance's, with `role`) if missing and unpacks
    /// the tar archive at `archive` (entries under `volume/`, as
    /// [`Engine::read_volume_into`] writes them) into it, streamed from the file.
    pub async fn fill_volume_from_file(
        &self,
        volume: &str,
        role: &str,
        archive: &Path,
        helper_image: &str,
    ) -> Result<(), EngineError> {
        let file = tokio::fs::File::open(archive).await?;
        self.create_owned_volume(volume, role).await?;
        let helper = self
            .volume_helper(volume, helper_image, &self.volume_helper_name())
            .await?;
        // A read error ends the stream early: the engine then refuses the cut-off archive.
        let body = tokio_util::io::ReaderStream::new(file)
            .scan((), |(), chunk| futures::future::ready(chunk.ok()));
        let upload = self
            .docker()
            .upload_to_container_streaming(
                &helper,
                Some(UploadToContainerOptions {
                    path: "/".to_string(),
                    ..Default::default()
                }),
                body,
            )
            .await;
        self.remove_container(&helper).await?;
        upload?;
        Ok(())
    }
}
