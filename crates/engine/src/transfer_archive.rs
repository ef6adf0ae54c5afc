//! The archive side of an image transfer: reading what `docker save` wrote (its
//! `manifest.json`, the image config's layer diff IDs, where each layer's file is) in the
//! legacy layout (`<v1id>/layer.tar`) or the OCI one (`blobs/sha256/<digest>`), and writing
//! a copy without the layer files the destination already has. Plain blocking IO over
//! spool files: callers run it on a blocking thread.

use crate::transfer::TransferError;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Component, Path, PathBuf};

/// The largest `manifest.json` or image config read into memory.
const MAX_METADATA_BYTES: u64 = 16 * 1024 * 1024;

/// One entry of `manifest.json` (the fields a load reads).
#[derive(Debug, serde::Deserialize)]
struct ManifestEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

/// The part of an image config that names its layers.
#[derive(Debug, serde::Deserialize)]
struct ImageConfig {
    rootfs: RootFs,
}

#[derive(Debug, serde::Deserialize)]
struct RootFs {
    diff_ids: Vec<String>,
}

/// What an exported archive holds for its one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ExportedImage {
    /// The layers bottom-up: diff ID and the archive path of the layer's file.
    pub layers: Vec<(String, String)>,
    /// `sha256:<hex>` of the image config as exported: the image's id.
    pub config_digest: String,
    /// Every file's size, by normalised path.
    sizes: HashMap<String, u64>,
    /// Every symlink's target, by normalised path (resolved to a normalised path).
    links: HashMap<String, String>,
}

impl ExportedImage {
    /// The normalised path of the file a layer path ends at (through a symlink `docker
    /// save` writes for a layer it already wrote).
    fn resolve(&self, path: &str) -> String {
        let mut path = normalise(path);
        for _ in 0..8 {
            match self.links.get(&path) {
                Some(target) => path = target.clone(),
                None => break,
            }
        }
        path
    }

    /// The sum of the sizes of every layer's file (each file once).
    pub fn layer_bytes(&self) -> u64 {
        let all: Vec<usize> = (0..self.layers.len()).collect();
        self.files_of(&all).1
    }

    /// The paths of the files that the layers in `sent` (indices) need, and their total size.
    fn files_of(&self, sent: &[usize]) -> (HashSet<String>, u64) {
        let mut files = HashSet::new();
        let mut bytes = 0;
        for &i in sent {
            let path = normalise(&self.layers[i].1);
            let target = self.resolve(&path);
            if files.insert(target.clone()) {
                bytes += self.sizes.get(&target).copied().unwrap_or(0);
            }
            files.insert(path);
        }
        (files, bytes)
    }
}

/// A path inside the archive as one comparable string (`./a//b` and `a/b` alike).
fn normalise(path: &str) -> String {
    let mut parts: Vec<String> = Vec::new();
    for component in Path::new(path).components() {
        match component {
            Component::Normal(part) => parts.push(part.to_string_lossy().into_owned()),
            Component::ParentDir => {
                parts.pop();
            }
            _ => {}
        }
    }
    parts.join("/")
}

/// A symlink's target as an archive path (relative to the link's own directory).
fn link_target(link: &str, target: &Path) -> String {
    let base = Path::new(link).parent().unwrap_or(Path::new(""));
    normalise(&base.join(target).to_string_lossy())
}

fn archive_error(reason: impl std::fmt::Display) -> TransferError {
    TransferError::Archive(reason.to_string())
}

/// Reads the archive's one image: `manifest.json`, then the config it names.
pub(crate) fn read_export(archive: &Path) -> Result<ExportedImage, TransferError> {
    let mut sizes = HashMap::new();
    let mut links = HashMap::new();
    let mut manifest = None;
    let mut tar = tar::Archive::new(File::open(archive).map_err(archive_error)?);
    for entry in tar.entries_with_seek().map_err(archive_error)? {
        let mut entry = entry.map_err(archive_error)?;
        let path = normalise(&entry.path().map_err(archive_error)?.to_string_lossy());
        let kind = entry.header().entry_type();
        if kind.is_symlink() || kind.is_hard_link() {
            if let Some(target) = entry.link_name().map_err(archive_error)? {
                let target = if kind.is_hard_link() {
                    normalise(&target.to_string_lossy())
                } else {
                    link_target(&path, &target)
                };
                links.insert(path.clone(), target);
            }
        }
        sizes.insert(path.clone(), entry.size());
        if path == "manifest.json" {
            manifest = Some(read_small(&mut entry, "manifest.json")?);
        }
    }
    let manifest = manifest.ok_or_else(|| archive_error("the export has no manifest.json"))?;
    let mut entries: Vec<ManifestEntry> = serde_json::from_slice(&manifest)
        .map_err(|e| archive_error(format!("manifest.json: {e}")))?;
    if entries.len() != 1 {
        return Err(archive_error(format!(
            "manifest.json lists {} images, expected 1",
            entries.len()
        )));
    }
    let entry = entries.remove(0);
    let config_bytes = read_file(archive, &entry.config)?;
    let config: ImageConfig = serde_json::from_slice(&config_bytes)
        .map_err(|e| archive_error(format!("{}: {e}", entry.config)))?;
    let config_digest = format!("sha256:{}", hex::encode(Sha256::digest(&config_bytes)));
    if config.rootfs.diff_ids.len() != entry.layers.len() {
        return Err(archive_error(format!(
            "the config has {} layers, manifest.json lists {}",
            config.rootfs.diff_ids.len(),
            entry.layers.len()
        )));
    }
    let layers = config
        .rootfs
        .diff_ids
        .into_iter()
        .zip(entry.layers)
        .collect();
    Ok(ExportedImage {
        layers,
        config_digest,
        sizes,
        links,
    })
}

/// Reads one small entry whole.
fn read_small(entry: &mut impl Read, name: &str) -> Result<Vec<u8>, TransferError> {
    let mut bytes = Vec::new();
    entry
        .take(MAX_METADATA_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(archive_error)?;
    if bytes.len() as u64 > MAX_METADATA_BYTES {
        return Err(archive_error(format!("{name} is larger than 16 MiB")));
    }
    Ok(bytes)
}

/// Reads the archive's file at `wanted` (a small one: the image config).
fn read_file(archive: &Path, wanted: &str) -> Result<Vec<u8>, TransferError> {
    let wanted = normalise(wanted);
    let mut tar = tar::Archive::new(File::open(archive).map_err(archive_error)?);
    for entry in tar.entries_with_seek().map_err(archive_error)? {
        let mut entry = entry.map_err(archive_error)?;
        if normalise(&entry.path().map_err(archive_error)?.to_string_lossy()) == wanted {
            return read_small(&mut entry, &wanted);
        }
    }
    Err(archive_error(format!("the export has no {wanted}")))
}

/// What [`write_filtered`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Filtered {
    /// The size of the archive written.
    pub bytes: u64,
    /// The sum of the sizes of the layer files it holds.
    pub layer_bytes: u64,
}

/// Copies `archive` to `out` without the files of the layers not in `sent` (indices into
/// [`ExportedImage::layers`]), keeping a file a sent layer needs even where a skipped one
/// names it too.
pub(crate) fn write_filtered(
    archive: &Path,
    image: &ExportedImage,
    sent: &[usize],
    out: &Path,
) -> Result<Filtered, TransferError> {
    let (keep, layer_bytes) = image.files_of(sent);
    let all: Vec<usize> = (0..image.layers.len()).collect();
    let (every_layer_file, _) = image.files_of(&all);
    let drop: HashSet<&String> = every_layer_file.difference(&keep).collect();
    // The legacy layout's `<v1id>/` directory of a layer left out (its `json` and
    // `VERSION` too: a load with a `manifest.json` reads only the layer file).
    let dirs_of = |paths: &mut dyn Iterator<Item = &String>| -> HashSet<String> {
        paths
            .filter_map(|p| p.strip_suffix("/layer.tar").map(str::to_string))
            .collect()
    };
    let kept_dirs = dirs_of(&mut keep.iter());
    let drop_dirs: HashSet<String> = dirs_of(&mut drop.iter().copied())
        .difference(&kept_dirs)
        .cloned()
        .collect();
    let dropped = |path: &str| {
        drop.contains(&path.to_string())
            || drop_dirs.contains(path)
            || path
                .split_once('/')
                .is_some_and(|(dir, _)| drop_dirs.contains(dir))
    };
    let mut tar = tar::Archive::new(File::open(archive).map_err(archive_error)?);
    let file = File::create(out).map_err(archive_error)?;
    let mut builder = tar::Builder::new(BufWriter::new(file));
    builder.mode(tar::HeaderMode::Complete);
    for entry in tar.entries_with_seek().map_err(archive_error)? {
        let mut entry = entry.map_err(archive_error)?;
        let path: PathBuf = entry.path().map_err(archive_error)?.into_owned();
        if dropped(&normalise(&path.to_string_lossy())) {
            continue;
        }
        let mut header = entry.header().clone();
        let kind = header.entry_type();
        if kind.is_symlink() || kind.is_hard_link() {
            let target = entry
                .link_name()
                .map_err(archive_error)?
                .map(|t| t.into_owned())
                .unwrap_or_default();
            builder
                .append_link(&mut header, &path, &target)
                .map_err(archive_error)?;
        } else {
            builder
                .append_data(&mut header, &path, &mut entry)
                .map_err(archive_error)?;
        }
    }
    let mut writer = builder.into_inner().map_err(archive_error)?;
    writer.flush().map_err(archive_error)?;
    let bytes = writer.get_ref().metadata().map_err(archive_error)?.len();
    Ok(Filtered { bytes, layer_bytes })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An archive like `docker save`'s legacy layout: two layers, the second a symlink to
    /// the first's file (the same diff ID twice), plus one of its own.
    fn legacy_archive(dir: &Path) -> PathBuf {
        let path = dir.join("export.tar");
        let mut builder = tar::Builder::new(File::create(&path).unwrap());
        let mut add = |name: &str, data: &[u8]| {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            builder.append_data(&mut header, name, data).unwrap();
        };
        add("aaa/json", b"{}");
        add("aaa/layer.tar", &[1u8; 3000]);
        add("ccc/layer.tar", &[3u8; 700]);
        add(
            "cfg.json",
            br#"{"rootfs":{"type":"layers","diff_ids":["sha256:a","sha256:a","sha256:c"]}}"#,
        );
        add(
            "manifest.json",
            br#"[{"Config":"cfg.json","RepoTags":["x:1"],"Layers":["aaa/layer.tar","bbb/layer.tar","ccc/layer.tar"]}]"#,
        );
        let mut link = tar::Header::new_gnu();
        link.set_entry_type(tar::EntryType::Symlink);
        link.set_size(0);
        builder
            .append_link(&mut link, "bbb/layer.tar", "../aaa/layer.tar")
            .unwrap();
        builder.finish().unwrap();
        drop(builder);
        path
    }

    fn names(archive: &Path) -> Vec<String> {
        let mut tar = tar::Archive::new(File::open(archive).unwrap());
        tar.entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn reads_the_layers_in_config_order() {
        let dir = std::env::temp_dir().join(format!("capstan-xfer-unit-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let image = read_export(&legacy_archive(&dir)).unwrap();
        assert_eq!(
            image.layers,
            vec![
                ("sha256:a".to_string(), "aaa/layer.tar".to_string()),
                ("sha256:a".to_string(), "bbb/layer.tar".to_string()),
                ("sha256:c".to_string(), "ccc/layer.tar".to_string()),
            ]
        );
        assert_eq!(image.resolve("bbb/layer.tar"), "aaa/layer.tar");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn drops_skipped_layers_but_keeps_a_file_a_sent_symlink_needs() {
        let dir = std::env::temp_dir().join(format!("capstan-xfer-unit-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let archive = legacy_archive(&dir);
        let image = read_export(&archive).unwrap();

        let only_last = dir.join("last.tar");
        let filtered = write_filtered(&archive, &image, &[2], &only_last).unwrap();
        assert_eq!(filtered.layer_bytes, 700);
        assert_eq!(
            names(&only_last),
            ["ccc/layer.tar", "cfg.json", "manifest.json"]
        );
        assert_eq!(filtered.bytes, std::fs::metadata(&only_last).unwrap().len());

        let through_link = dir.join("link.tar");
        let filtered = write_filtered(&archive, &image, &[1, 2], &through_link).unwrap();
        assert_eq!(filtered.layer_bytes, 3700);
        assert_eq!(
            names(&through_link),
            [
                "aaa/json",
                "aaa/layer.tar",
                "ccc/layer.tar",
                "cfg.json",
                "manifest.json",
                "bbb/layer.tar"
            ]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_broken_export_is_an_archive_error() {
        let dir = std::env::temp_dir().join(format!("capstan-xfer-unit-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("empty.tar");
        tar::Builder::new(File::create(&path).unwrap())
            .finish()
            .unwrap();
        assert!(matches!(read_export(&path), Err(TransferError::Archive(_))));
        std::fs::write(&path, b"not a tar at all").unwrap();
        assert!(matches!(read_export(&path), Err(TransferError::Archive(_))));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn reads_and_filters_the_oci_layout_through_its_manifest() {
        let dir = std::env::temp_dir().join(format!("capstan-xfer-unit-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("oci.tar");
        let config = br#"{"rootfs":{"type":"layers","diff_ids":["sha256:11","sha256:22"]}}"#;
        let config_digest = hex::encode(Sha256::digest(config));
        let mut builder = tar::Builder::new(File::create(&path).unwrap());
        let mut add = |name: &str, data: &[u8]| {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            builder.append_data(&mut header, name, data).unwrap();
        };
        add("blobs/sha256/11", &[1u8; 1500]);
        add("blobs/sha256/22", &[2u8; 600]);
        add(&format!("blobs/sha256/{config_digest}"), config);
        add("index.json", b"{}");
        add("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
        let manifest = format!(
            r#"[{{"Config":"blobs/sha256/{config_digest}","RepoTags":null,"Layers":["blobs/sha256/11","blobs/sha256/22"]}}]"#
        );
        add("manifest.json", manifest.as_bytes());
        builder.finish().unwrap();
        drop(builder);

        let image = read_export(&path).unwrap();
        assert_eq!(image.config_digest, format!("sha256:{config_digest}"));
        assert_eq!(
            image.layers[1],
            ("sha256:22".to_string(), "blobs/sha256/22".to_string())
        );
        let out = dir.join("send.tar");
        let filtered = write_filtered(&path, &image, &[1], &out).unwrap();
        assert_eq!(filtered.layer_bytes, 600);
        let kept = names(&out);
        assert!(!kept.contains(&"blobs/sha256/11".to_string()), "{kept:?}");
        assert!(kept.contains(&"blobs/sha256/22".to_string()));
        assert!(
            kept.contains(&"index.json".to_string()) && kept.contains(&"manifest.json".to_string())
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
