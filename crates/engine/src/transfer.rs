//! Moving an image from one engine to another without a registry, sending only the layers
//! the destination lacks: the destination's layer chains are read from its images, the
//! source's export is spooled to a file, rewritten without the layer files whose chain
//! the destination has (its load reads a layer file only when it lacks the chain), and
//! streamed into the destination's load, which is then checked for the same image id.

use crate::transfer_archive::{read_export, write_filtered, ExportedImage};
use crate::{is_not_found, Engine, EngineError};
use bollard::image::{ImportImageOptions, ListImagesOptions};
use futures::StreamExt;
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// How many image inspections run at once while reading the destination's layers.
const INSPECT_CONCURRENCY: usize = 8;

/// What a transfer did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferReport {
    /// The image id (`sha256:…`), the same on both engines.
    pub image_id: String,
    /// The destination had the image already: only the tag was set, nothing was sent.
    pub already_present: bool,
    /// The load without the layers the destination had failed (one removed there since
    /// they were listed), so the whole image was sent after it (`bytes_sent` counts both).
    pub resent_whole: bool,
    /// The size of the source's full export (what a plain save/load would send).
    pub export_bytes: u64,
    /// The size of the archive streamed into the destination's load.
    pub bytes_sent: u64,
    pub layers_sent: usize,
    pub layers_skipped: usize,
    /// The sum of the sizes of the layer files sent.
    pub changed_layer_bytes: u64,
}

/// Why an image could not be moved (beside the engine's own errors).
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    #[error("the source engine has no image {reference}")]
    UnknownImage { reference: String },
    #[error("the source's export is not a usable image archive: {0}")]
    Archive(String),
    #[error("the destination engine did not load the image: {0}")]
    Load(String),
    #[error(
        "after the transfer the destination has {found:?} for {reference}, expected {expected}"
    )]
    Mismatch {
        reference: String,
        expected: String,
        found: Option<String>,
    },
    #[error("registry {registry}: {step} failed: {message}")]
    Registry {
        registry: String,
        step: RegistryStep,
        message: String,
    },
}

/// Which step of a move through a registry failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistryStep {
    Push,
    Pull,
}

impl std::fmt::Display for RegistryStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RegistryStep::Push => "push",
            RegistryStep::Pull => "pull",
        })
    }
}

/// The chain IDs of a stack of layers given bottom-up by diff ID: the first is its diff
/// ID, each next one `sha256(previous + " " + diff ID)` (as the engine's layer store keys
/// them).
pub fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut chains: Vec<String> = Vec::with_capacity(diff_ids.len());
    for diff_id in diff_ids {
        let chain = match chains.last() {
            None => diff_id.clone(),
            Some(previous) => {
                let digest = Sha256::digest(format!("{previous} {diff_id}").as_bytes());
                format!("sha256:{}", hex::encode(digest))
            }
        };
        chains.push(chain);
    }
    chains
}

/// Moves `reference` from `from` to `to`, sending only the layers `to` lacks, and tags it
/// there as on the source. The export and the archive sent are spooled under
/// `spool_dir` and removed whatever happens. (To send one image to several engines,
/// export it once with [`spool_image`] and call [`SpooledImage::send_to`] for each.)
pub async fn send_image(
    from: &Engine,
    to: &Engine,
    reference: &str,
    spool_dir: &Path,
) -> Result<TransferReport, EngineError> {
    let image_id = source_image_id(from, reference).await?;
    if let Some(report) = already_there(to, &image_id, reference).await? {
        return Ok(report);
    }
    spool_image(from, reference, spool_dir)
        .await?
        .send_to(to)
        .await
}

/// An image exported from its engine into a spool file, ready to be sent to any number
/// of engines (each send writes and removes its own archive beside it). The export is
/// removed when this is dropped.
pub struct SpooledImage {
    reference: String,
    image_id: String,
    export_bytes: u64,
    image: Arc<ExportedImage>,
    export: SpoolFile,
}

impl std::fmt::Debug for SpooledImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpooledImage")
            .field("reference", &self.reference)
            .field("image_id", &self.image_id)
            .field("export_bytes", &self.export_bytes)
            .finish()
    }
}

/// Exports `reference` from `from` into a file under `spool_dir` and reads its layers.
pub async fn spool_image(
    from: &Engine,
    reference: &str,
    spool_dir: &Path,
) -> Result<SpooledImage, EngineError> {
    let image_id = source_image_id(from, reference).await?;
    let size = from
        .docker()
        .inspect_image(&image_id)
        .await?
        .size
        .unwrap_or(0);
    let export_file = SpoolFile::new(spool_dir, "export")?;
    let export_bytes = export(
        from,
        &image_id,
        &export_file.0,
        stream_budget(size.max(0) as u64),
    )
    .await?;
    let image = blocking_read(export_file.0.clone()).await?;
    if image.config_digest != image_id {
        return Err(TransferError::Archive(format!(
            "the export holds image {}, expected {image_id}",
            image.config_digest
        ))
        .into());
    }
    Ok(SpooledImage {
        reference: reference.to_string(),
        image_id,
        export_bytes,
        image: Arc::new(image),
        export: export_file,
    })
}

impl SpooledImage {
    pub fn image_id(&self) -> &str {
        &self.image_id
    }

    /// The size of the full export.
    pub fn export_bytes(&self) -> u64 {
        self.export_bytes
    }

    /// Sends the image to `to` (only the layers whose chain it lacks; nothing when it has
    /// the image) and tags it there.
    pub async fn send_to(&self, to: &Engine) -> Result<TransferReport, EngineError> {
        if let Some(report) = already_there(to, &self.image_id, &self.reference).await? {
            return Ok(report);
        }
        let have = if loads_whole_archives(to).await? {
            HashSet::new()
        } else {
            layer_chains(to).await?
        };
        self.send_given(to, &have).await
    }

    /// Sends the image to `to`, leaving out the layers whose chain is in `have` (what the
    /// caller knows `to` holds, e.g. [`layer_chains`] read once for several images). Should
    /// the load miss a layer left out (removed there meanwhile), the whole image is sent.
    pub async fn send_given(
        &self,
        to: &Engine,
        have: &HashSet<String>,
    ) -> Result<TransferReport, EngineError> {
        let diff_ids: Vec<String> = self.image.layers.iter().map(|(d, _)| d.clone()).collect();
        let sent: Vec<usize> = chain_ids(&diff_ids)
            .iter()
            .enumerate()
            .filter(|(_, chain)| !have.contains(*chain))
            .map(|(i, _)| i)
            .collect();
        let dir = self.export.0.parent().unwrap_or(Path::new("."));
        let out = SpoolFile::new(dir, "send")?;
        let filtered = {
            let (export, path, image) = (self.export.0.clone(), out.0.clone(), self.image.clone());
            let sent = sent.clone();
            tokio::task::spawn_blocking(move || write_filtered(&export, &image, &sent, &path))
                .await
                .map_err(|e| TransferError::Archive(format!("the archive writer stopped: {e}")))??
        };
        let mut report = TransferReport {
            image_id: self.image_id.clone(),
            already_present: false,
            resent_whole: false,
            export_bytes: self.export_bytes,
            bytes_sent: filtered.bytes,
            layers_sent: sent.len(),
            layers_skipped: diff_ids.len() - sent.len(),
            changed_layer_bytes: filtered.layer_bytes,
        };
        match load(to, &out.0, stream_budget(filtered.bytes)).await {
            Ok(()) => {}
            Err(EngineError::Transfer(TransferError::Load(reason)))
                if sent.len() < diff_ids.len() =>
            {
                tracing::warn!(image = %self.image_id, %reason, "a load without the layers the engine had failed; sending the whole image");
                drop(out);
                load(to, &self.export.0, stream_budget(self.export_bytes)).await?;
                report.resent_whole = true;
                report.bytes_sent += self.export_bytes;
                report.layers_sent = diff_ids.len();
                report.layers_skipped = 0;
                report.changed_layer_bytes = self.image.layer_bytes();
            }
            Err(err) => return Err(err),
        }
        tag_and_verify(to, &self.image_id, &self.reference).await?;
        Ok(report)
    }
}

/// The id of `reference` on the source engine; an unknown image is a typed error.
async fn source_image_id(from: &Engine, reference: &str) -> Result<String, EngineError> {
    match from.image_id(reference).await? {
        Some(id) => Ok(id),
        None => Err(TransferError::UnknownImage {
            reference: reference.to_string(),
        }
        .into()),
    }
}

/// When `to` has the image already: tags it and says nothing was sent.
async fn already_there(
    to: &Engine,
    image_id: &str,
    reference: &str,
) -> Result<Option<TransferReport>, EngineError> {
    if to.image_id(image_id).await?.as_deref() != Some(image_id) {
        return Ok(None);
    }
    tag_and_verify(to, image_id, reference).await?;
    Ok(Some(TransferReport {
        image_id: image_id.to_string(),
        already_present: true,
        resent_whole: false,
        export_bytes: 0,
        bytes_sent: 0,
        layers_sent: 0,
        layers_skipped: 0,
        changed_layer_bytes: 0,
    }))
}

/// How long a stream of `bytes` may take: two minutes plus a second per 256 KiB.
fn stream_budget(bytes: u64) -> Duration {
    Duration::from_secs(120 + bytes / (256 * 1024))
}

/// Whether `engine` keeps images in containerd's store, whose load needs every blob the
/// archive names (then nothing may be left out).
async fn loads_whole_archives(engine: &Engine) -> Result<bool, EngineError> {
    let info = engine.docker().info().await?;
    Ok(info.driver_status.unwrap_or_default().iter().any(|pair| {
        pair.len() == 2 && pair[0] == "driver-type" && pair[1].starts_with("io.containerd")
    }))
}

/// Every layer chain the engine holds: each prefix of each image's layer stack.
pub async fn layer_chains(engine: &Engine) -> Result<HashSet<String>, EngineError> {
    let options = ListImagesOptions::<String> {
        all: true,
        ..Default::default()
    };
    let images = engine.docker().list_images(Some(options)).await?;
    let stacks: Vec<Result<Vec<String>, EngineError>> = futures::stream::iter(images)
        .map(|summary| async move {
            match engine.docker().inspect_image(&summary.id).await {
                Ok(image) => Ok(image.root_fs.and_then(|r| r.layers).unwrap_or_default()),
                Err(err) if is_not_found(&err) => Ok(Vec::new()),
                Err(err) => Err(err.into()),
            }
        })
        .buffer_unordered(INSPECT_CONCURRENCY)
        .collect()
        .await;
    let mut chains = HashSet::new();
    for stack in stacks {
        chains.extend(chain_ids(&stack?));
    }
    Ok(chains)
}

/// Writes the source's export of `image_id` to `path`; returns its size.
async fn export(
    from: &Engine,
    image_id: &str,
    path: &Path,
    budget: Duration,
) -> Result<u64, EngineError> {
    let docker = from.docker().clone().with_timeout(budget);
    let mut stream = docker.export_image(image_id);
    let mut file = tokio::fs::File::create(path).await?;
    let mut bytes = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        file.write_all(&chunk).await?;
        bytes += chunk.len() as u64;
    }
    file.flush().await?;
    Ok(bytes)
}

async fn blocking_read(path: PathBuf) -> Result<ExportedImage, EngineError> {
    Ok(tokio::task::spawn_blocking(move || read_export(&path))
        .await
        .map_err(|e| TransferError::Archive(format!("the archive reader stopped: {e}")))??)
}

/// Streams the archive at `path` into the destination's load and fails on any error the
/// load reports.
async fn load(to: &Engine, path: &Path, budget: Duration) -> Result<(), EngineError> {
    let file = tokio::fs::File::open(path).await?;
    let read_error: Arc<Mutex<Option<std::io::Error>>> = Arc::default();
    let seen = read_error.clone();
    let body = tokio_util::io::ReaderStream::new(file).scan((), move |_, chunk| {
        futures::future::ready(match chunk {
            Ok(bytes) => Some(bytes),
            Err(err) => {
                if let Ok(mut slot) = seen.lock() {
                    *slot = Some(err);
                }
                None
            }
        })
    });
    let docker = to.docker().clone().with_timeout(budget);
    let mut stream = docker.import_image_stream(ImportImageOptions { quiet: true }, body, None);
    let mut errors = Vec::new();
    while let Some(item) = stream.next().await {
        match item {
            Ok(info) => errors.extend(info.error),
            Err(bollard::errors::Error::DockerStreamError { error }) => errors.push(error),
            Err(err) => return Err(err.into()),
        }
    }
    if let Some(err) = read_error.lock().ok().and_then(|mut slot| slot.take()) {
        return Err(err.into());
    }
    if !errors.is_empty() {
        return Err(TransferError::Load(errors.join("; ")).into());
    }
    Ok(())
}

/// Tags `image_id` as `reference` on `engine` (unless the reference is the id itself or a
/// digest) and checks the reference now names that image.
pub(crate) async fn tag_and_verify(
    engine: &Engine,
    image_id: &str,
    reference: &str,
) -> Result<(), EngineError> {
    // An id or its 12+ hex digit prefix names the image itself (a repository named
    // `cafe` does not, even where the id starts with those letters).
    let short = reference.trim_start_matches("sha256:");
    let names_id = short.len() >= 12
        && short.bytes().all(|b| b.is_ascii_hexdigit())
        && image_id.trim_start_matches("sha256:").starts_with(short);
    if !names_id && !reference.contains('@') {
        let (repo, tag) = split_reference(reference);
        engine
            .docker()
            .tag_image(
                image_id,
                Some(bollard::image::TagImageOptions { repo, tag }),
            )
            .await?;
    }
    let found = engine.image_id(reference).await?;
    if found.as_deref() != Some(image_id) {
        return Err(TransferError::Mismatch {
            reference: reference.to_string(),
            expected: image_id.to_string(),
            found,
        }
        .into());
    }
    Ok(())
}

/// A reference's repository and tag (`latest` when it names none); a registry's port
/// (`host:5000/app`) is not a tag.
pub(crate) fn split_reference(reference: &str) -> (String, String) {
    let name_start = reference.rfind('/').map_or(0, |i| i + 1);
    match reference[name_start..].rfind(':') {
        Some(i) => (
            reference[..name_start + i].to_string(),
            reference[name_start + i + 1..].to_string(),
        ),
        None => (reference.to_string(), "latest".to_string()),
    }
}

/// One spool file, removed when dropped however the transfer ends.
struct SpoolFile(PathBuf);

impl SpoolFile {
    fn new(dir: &Path, role: &str) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let name = format!("capstan-transfer-{:016x}.{role}.tar", rand::random::<u64>());
        Ok(Self(dir.join(name)))
    }
}

impl Drop for SpoolFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_ids_follow_the_layer_store() {
        let diff = |c: char| format!("sha256:{}", c.to_string().repeat(64));
        let chains = chain_ids(&[diff('a'), diff('b')]);
        assert_eq!(chains[0], diff('a'));
        let expected = Sha256::digest(format!("{} {}", diff('a'), diff('b')).as_bytes());
        assert_eq!(chains[1], format!("sha256:{}", hex::encode(expected)));
        assert!(chain_ids(&[]).is_empty());
    }

    #[test]
    fn splits_references_without_mistaking_a_port_for_a_tag() {
        let split = |r: &str| {
            let (repo, tag) = split_reference(r);
            (repo, tag)
        };
        assert_eq!(split("app:v2"), ("app".into(), "v2".into()));
        assert_eq!(split("app"), ("app".into(), "latest".into()));
        assert_eq!(
            split("127.0.0.1:5000/team/app"),
            ("127.0.0.1:5000/team/app".into(), "latest".into())
        );
        assert_eq!(
            split("127.0.0.1:5000/app:1"),
            ("127.0.0.1:5000/app".into(), "1".into())
        );
    }
}
