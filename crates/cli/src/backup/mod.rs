//! Backup and restore of Capstan's own state: one gzip'd tar archive, written 0600, with
//! a manifest (format, schema version, Capstan version, instance), a consistent copy of
//! the database (`VACUUM INTO`, safe while the daemon runs), the secret key, the admin
//! token, the proxy's route files and the proxy's ACME store (read from its volume through
//! the Docker API). `capstan restore` puts them back on a stopped or fresh installation
//! and refuses an archive from a newer schema. The daemon can also write archives on a
//! cron schedule and keep the newest `backup.keep`. The manifest comes first and declares
//! every other entry's size and SHA-256; every entry is streamed from a copy on disk, so
//! neither a backup nor a restore holds a whole file in memory.

mod archive;
mod entries;
mod on_demand;
mod restore;

pub use on_demand::DaemonBackups;
pub use restore::{restore, RestoreArgs};

use crate::config::{Config, ServeArgs};
use anyhow::{bail, Context};
use archive::{Entry, Facts, Manifest, DB, FORMAT, MANIFEST, ROUTES_DIR};
use capstan_engine::Engine;
use capstan_store::Store;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const SCHEDULED_PREFIX: &str = "capstan-backup-";

#[derive(Debug, clap::Args)]
pub struct BackupArgs {
    /// The archive to write (mode 0600); `-` is not allowed (it holds secrets).
    file: PathBuf,
    /// The daemon's configuration file (default /etc/capstan/capstan.toml).
    #[arg(long)]
    config: Option<PathBuf>,
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

fn load_config(config: Option<PathBuf>, data_dir: Option<PathBuf>) -> anyhow::Result<Config> {
    Config::load(&ServeArgs {
        config,
        data_dir,
        ..ServeArgs::default()
    })
}

/// `capstan backup FILE`.
pub async fn backup(args: BackupArgs) -> anyhow::Result<ExitCode> {
    let config = load_config(args.config, args.data_dir)?;
    let db = config.data_dir.join(DB);
    if !db.is_file() {
        bail!(
            "no Capstan database at {}: is --data-dir right?",
            db.display()
        );
    }
    let summary = write_archive(&config, Snapshot::File(&db), &args.file).await?;
    println!("{summary}");
    Ok(ExitCode::SUCCESS)
}

/// Where the database copy comes from: the file (CLI) or the daemon's open store.
pub enum Snapshot<'a> {
    File(&'a Path),
    Store(&'a Store),
}

/// Writes the archive to `out` (through a temporary file beside it, renamed at the end);
/// returns a one-line summary. Every file is copied into a work dir first, so the sizes
/// and hashes the manifest declares are those of what the archive holds, even while the
/// daemon rewrites a route file.
pub async fn write_archive(
    config: &Config,
    db: Snapshot<'_>,
    out: &Path,
) -> anyhow::Result<String> {
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let work = tempfile::tempdir_in(parent)
        .with_context(|| format!("cannot write next to {}", out.display()))?;
    let db_copy = work.path().join(DB);
    let schema_version = match db {
        Snapshot::File(path) => capstan_store::snapshot::snapshot_file(path, &db_copy).await?,
        Snapshot::Store(store) => store.snapshot_into(&db_copy).await?,
    };
    let mut notes = Vec::new();
    let mut files = vec![(Entry::Database, db_copy)];
    files.extend(copy_data_dir_files(
        &config.data_dir,
        work.path(),
        &mut notes,
    )?);
    let acme = work.path().join(archive::PROXY_DATA);
    match proxy_data(config, &acme).await {
        Ok(true) => files.push((Entry::ProxyData, acme)),
        Ok(false) => notes.push("no proxy ACME store yet".to_string()),
        Err(err) => notes.push(format!("the proxy's ACME store was not included: {err:#}")),
    }
    let manifest = Manifest {
        format: FORMAT,
        schema_version,
        capstan_version: env!("CARGO_PKG_VERSION").to_string(),
        created_at: chrono::Utc::now().to_rfc3339(),
        instance: config.instance.clone(),
        files: None,
    };
    let partial = work.path().join("archive.tar.gz");
    let count = files.len() + 1;
    let written = partial.clone();
    tokio::task::spawn_blocking(move || write_tar(&written, manifest, &files))
        .await
        .context("the archive writer stopped")??;
    std::fs::rename(&partial, out).with_context(|| format!("cannot write {}", out.display()))?;
    std::fs::set_permissions(out, std::fs::Permissions::from_mode(0o600))?;
    let mut summary = format!(
        "backup written to {} (schema {schema_version}, {count} files, mode 0600)",
        out.display(),
    );
    for note in notes {
        summary.push_str("; ");
        summary.push_str(&note);
    }
    Ok(summary)
}

/// Copies the secret key, the admin token and the route files from the data dir into
/// `work`; a `.yml` file there that a restore would refuse by its name is left out, with
/// a note.
fn copy_data_dir_files(
    data_dir: &Path,
    work: &Path,
    notes: &mut Vec<String>,
) -> anyhow::Result<Vec<(Entry, PathBuf)>> {
    let mut files = Vec::new();
    for (entry, name) in [
        (Entry::SecretKey, archive::SECRET_KEY),
        (Entry::AdminToken, archive::ADMIN_TOKEN),
    ] {
        let path = data_dir.join(name);
        if path.is_file() {
            let copy = work.join(name);
            std::fs::copy(&path, &copy)
                .with_context(|| format!("cannot read {}", path.display()))?;
            files.push((entry, copy));
        }
    }
    let Ok(dir) = std::fs::read_dir(data_dir.join(ROUTES_DIR)) else {
        return Ok(files);
    };
    let mut names: Vec<String> = dir
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yml"))
        .collect();
    names.sort();
    let copies = work.join("routes");
    std::fs::create_dir(&copies)?;
    let mut routes = 0;
    for name in names {
        let entry = Entry::parse(&format!("{ROUTES_DIR}/{name}"));
        if !matches!(entry, Some(Entry::Route(_))) || routes >= archive::MAX_ROUTES {
            notes.push(format!("route file {name:?} was left out (a restore refuses its name, or there are more than {} route files)", archive::MAX_ROUTES));
            continue;
        }
        let copy = copies.join(&name);
        std::fs::copy(data_dir.join(ROUTES_DIR).join(&name), &copy)?;
        files.extend(entry.map(|e| (e, copy)));
        routes += 1;
    }
    Ok(files)
}

/// Writes the gzip'd tar at `partial` (0600): the manifest first, declaring each file's
/// size and SHA-256, then each file streamed from its copy.
fn write_tar(
    partial: &Path,
    mut manifest: Manifest,
    files: &[(Entry, PathBuf)],
) -> anyhow::Result<()> {
    let mut declared = std::collections::BTreeMap::new();
    for (entry, path) in files {
        declared.insert(entry.path(), archive::facts_of(path)?);
    }
    manifest.files = Some(declared.clone());
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(partial)?;
    let gz = flate2::write::GzEncoder::new(
        std::io::BufWriter::new(file),
        flate2::Compression::default(),
    );
    let mut tar = tar::Builder::new(gz);
    let manifest = serde_json::to_vec_pretty(&manifest)?;
    append(
        &mut tar,
        MANIFEST,
        manifest.len() as u64,
        manifest.as_slice(),
    )?;
    for (entry, path) in files {
        let name = entry.path();
        let Facts { size, .. } = &declared[&name];
        let file = std::fs::File::open(path)?;
        append(&mut tar, &name, *size, std::io::Read::take(file, *size))?;
    }
    let file = tar
        .into_inner()?
        .finish()?
        .into_inner()
        .map_err(|e| e.into_error())?;
    file.sync_all()?;
    Ok(())
}

fn append<W: std::io::Write>(
    tar: &mut tar::Builder<W>,
    name: &str,
    size: u64,
    data: impl std::io::Read,
) -> anyhow::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(size);
    header.set_mode(0o600);
    header.set_mtime(chrono::Utc::now().timestamp().max(0) as u64);
    tar.append_data(&mut header, name, data)?;
    Ok(())
}

/// Streams the proxy's ACME store (a tar of its volume) into the file `into`; `false`
/// (and no file) when there is no store yet.
async fn proxy_data(config: &Config, into: &Path) -> anyhow::Result<bool> {
    let engine = Engine::connect(config.docker_host.as_deref(), &config.instance).await?;
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(into)
        .await?;
    let read = engine
        .read_volume_into(
            &engine.names().proxy_data_volume(),
            &config.proxy_image,
            &mut file,
        )
        .await;
    if !matches!(read, Ok(true)) {
        let _ = std::fs::remove_file(into);
    }
    Ok(read?)
}

/// A cron expression of `backup.schedule` (5 fields, or 6 with seconds first).
pub fn parse_schedule(expr: &str) -> anyhow::Result<croner::Cron> {
    croner::Cron::new(expr)
        .with_seconds_optional()
        .parse()
        .map_err(|e| anyhow::anyhow!("backup.schedule {expr:?} is not a cron expression: {e}"))
}

/// Writes a backup at every time `backup.schedule` names and keeps the newest
/// `backup.keep`, until `stop` turns true.
pub async fn run_schedule(
    config: Config,
    store: Store,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let Some(expr) = config.backup.schedule.clone() else {
        return;
    };
    let Ok(cron) = parse_schedule(&expr) else {
        return;
    };
    let dir = on_demand::backup_dir(&config);
    tracing::info!(schedule = %expr, dir = %dir.display(), keep = config.backup.keep, "scheduled backups on");
    loop {
        let now = chrono::Utc::now();
        let Ok(next) = cron.find_next_occurrence(&now, false) else {
            tracing::warn!(schedule = %expr, "the backup schedule names no future time");
            return;
        };
        let wait = (next - now).to_std().unwrap_or_default();
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        if let Err(err) = scheduled_backup(&config, &store, &dir).await {
            tracing::error!(error = %format!("{err:#}"), "scheduled backup failed");
        }
    }
}

async fn scheduled_backup(config: &Config, store: &Store, dir: &Path) -> anyhow::Result<()> {
    on_demand::prepare_dir(dir)?;
    let name = on_demand::archive_name();
    let summary = write_archive(config, Snapshot::Store(store), &dir.join(&name)).await?;
    tracing::info!("{summary}");
    let mut archives: Vec<String> = std::fs::read_dir(dir)?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(SCHEDULED_PREFIX) && n.ends_with(".tar.gz"))
        .collect();
    archives.sort();
    let excess = archives.len().saturating_sub(config.backup.keep.max(1));
    for old in &archives[..excess] {
        std::fs::remove_file(dir.join(old))?;
        tracing::info!(archive = %old, "removed an old scheduled backup (backup.keep = {})", config.backup.keep);
    }
    Ok(())
}
