//! Backup and restore of Capstan's own state: one gzip'd tar archive, written 0600, with
//! a manifest (format, schema version, Capstan version, instance), a consistent copy of
//! the database (`VACUUM INTO`, safe while the daemon runs), the secret key, the admin
//! token, the proxy's route files and the proxy's ACME store (read from its volume through
//! the Docker API). `capstan restore` puts them back on a stopped or fresh installation
//! and refuses an archive from a newer schema. The daemon can also write archives on a
//! cron schedule and keep the newest `backup.keep`.

use crate::config::{Config, ServeArgs};
use crate::serve::write_private;
use anyhow::{bail, Context};
use capstan_engine::Engine;
use capstan_store::Store;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The archive layout this build writes and reads.
const FORMAT: u32 = 1;
const MANIFEST: &str = "manifest.json";
const DB: &str = "capstan.db";
const PROXY_DATA: &str = "proxy-data.tar";
/// Data-dir files copied as they are.
const PLAIN_FILES: [&str; 2] = ["secret.key", "admin-token"];
const ROUTES_DIR: &str = "proxy/dynamic";
const SCHEDULED_PREFIX: &str = "capstan-backup-";

#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    format: u32,
    schema_version: i64,
    capstan_version: String,
    created_at: String,
    instance: String,
}

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

#[derive(Debug, clap::Args)]
pub struct RestoreArgs {
    /// An archive written by `capstan backup` or a scheduled backup.
    file: PathBuf,
    #[arg(long)]
    config: Option<PathBuf>,
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Restore over an existing database (it is moved aside, not deleted).
    #[arg(long)]
    force: bool,
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
/// returns a one-line summary.
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
    let manifest = Manifest {
        format: FORMAT,
        schema_version,
        capstan_version: env!("CARGO_PKG_VERSION").to_string(),
        created_at: chrono::Utc::now().to_rfc3339(),
        instance: config.instance.clone(),
    };
    let mut files: Vec<(String, Vec<u8>)> = vec![
        (MANIFEST.into(), serde_json::to_vec_pretty(&manifest)?),
        (DB.into(), std::fs::read(&db_copy)?),
    ];
    for name in PLAIN_FILES {
        let path = config.data_dir.join(name);
        if path.is_file() {
            files.push((name.into(), std::fs::read(&path)?));
        }
    }
    let routes = config.data_dir.join(ROUTES_DIR);
    if let Ok(entries) = std::fs::read_dir(&routes) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".yml") {
                files.push((format!("{ROUTES_DIR}/{name}"), std::fs::read(entry.path())?));
            }
        }
    }
    let mut notes = Vec::new();
    match proxy_data(config).await {
        Ok(Some(tar)) => files.push((PROXY_DATA.into(), tar)),
        Ok(None) => notes.push("no proxy ACME store yet".to_string()),
        Err(err) => notes.push(format!("the proxy's ACME store was not included: {err:#}")),
    }
    let partial = work.path().join("archive.tar.gz");
    {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&partial)?;
        let gz = flate2::write::GzEncoder::new(file, flate2::Compression::default());
        let mut tar = tar::Builder::new(gz);
        for (name, bytes) in &files {
            let mut header = tar::Header::new_gnu();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o600);
            header.set_mtime(chrono::Utc::now().timestamp().max(0) as u64);
            tar.append_data(&mut header, name, bytes.as_slice())?;
        }
        tar.into_inner()?.finish()?.sync_all()?;
    }
    std::fs::rename(&partial, out).with_context(|| format!("cannot write {}", out.display()))?;
    std::fs::set_permissions(out, std::fs::Permissions::from_mode(0o600))?;
    let mut summary = format!(
        "backup written to {} (schema {schema_version}, {} files, mode 0600)",
        out.display(),
        files.len()
    );
    for note in notes {
        summary.push_str("; ");
        summary.push_str(&note);
    }
    Ok(summary)
}

async fn proxy_data(config: &Config) -> anyhow::Result<Option<Vec<u8>>> {
    let engine = Engine::connect(config.docker_host.as_deref(), &config.instance).await?;
    Ok(engine
        .read_volume(&engine.names().proxy_data_volume(), &config.proxy_image)
        .await?)
}

/// `capstan restore FILE`.
pub async fn restore(args: RestoreArgs) -> anyhow::Result<ExitCode> {
    let config = load_config(args.config, args.data_dir)?;
    let files = read_archive(&args.file)?;
    let manifest: Manifest = serde_json::from_slice(
        files
            .get(MANIFEST)
            .context("not a Capstan backup: it has no manifest.json")?,
    )
    .context("the backup's manifest.json is unreadable")?;
    if manifest.format != FORMAT {
        bail!(
            "the backup has archive format {}; this capstan reads format {FORMAT}",
            manifest.format
        );
    }
    let known = capstan_store::snapshot::known_schema_version();
    if manifest.schema_version > known {
        bail!(
            "the backup is from a newer Capstan ({}, database schema {}); this capstan {} knows schema {known} at most: install the newer version, then restore",
            manifest.capstan_version,
            manifest.schema_version,
            env!("CARGO_PKG_VERSION")
        );
    }
    let db = files.get(DB).context("the backup holds no database")?;
    if tokio::net::TcpStream::connect(&config.listen).await.is_ok() {
        bail!(
            "something is listening on {} (a running daemon?): stop it before restoring",
            config.listen
        );
    }
    let data_dir = &config.data_dir;
    std::fs::create_dir_all(data_dir)?;
    std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o700))?;
    let current = data_dir.join(DB);
    if current.exists() {
        if !args.force {
            bail!(
                "{} already holds a Capstan database; restore onto a fresh data dir, or pass --force to move it aside",
                data_dir.display()
            );
        }
        let aside = data_dir.join(format!(
            "capstan.db.before-restore-{}",
            chrono::Utc::now().format("%Y%m%dT%H%M%SZ")
        ));
        std::fs::rename(&current, &aside)?;
        println!("moved the current database to {}", aside.display());
    }
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(data_dir.join(format!("{DB}{suffix}")));
    }
    write_private(&current, db)?;
    for name in PLAIN_FILES {
        if let Some(bytes) = files.get(name) {
            write_private(&data_dir.join(name), bytes)?;
        }
    }
    let routes = data_dir.join(ROUTES_DIR);
    std::fs::create_dir_all(&routes)?;
    let mut route_count = 0;
    for (name, bytes) in &files {
        if let Some(file) = name.strip_prefix(&format!("{ROUTES_DIR}/")) {
            if file.ends_with(".yml") && !file.contains('/') && !file.starts_with('.') {
                std::fs::write(routes.join(file), bytes)?;
                route_count += 1;
            }
        }
    }
    let proxy_note = match files.get(PROXY_DATA) {
        Some(tar) => {
            let engine = Engine::connect(config.docker_host.as_deref(), &config.instance).await?;
            engine
                .fill_volume(
                    &engine.names().proxy_data_volume(),
                    "proxy-data",
                    tar.clone(),
                    &config.proxy_image,
                )
                .await
                .context("cannot put the proxy's ACME store back into its volume")?;
            ", the proxy's ACME store"
        }
        None => "",
    };
    println!(
        "restored {} into {} (schema {}, written {} by capstan {}): the database, the secret key, {route_count} route files{proxy_note}",
        args.file.display(),
        data_dir.display(),
        manifest.schema_version,
        manifest.created_at,
        manifest.capstan_version
    );
    println!(
        "start the daemon, then redeploy each app (capstan deploy APP) to run it on this host"
    );
    Ok(ExitCode::SUCCESS)
}

/// Every regular file of the archive by path. Only names the restore knows are used, so
/// a crafted entry (`../x`, an absolute path) goes nowhere.
fn read_archive(path: &Path) -> anyhow::Result<BTreeMap<String, Vec<u8>>> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut files = BTreeMap::new();
    for entry in archive
        .entries()
        .with_context(|| format!("{} is not a gzip'd tar archive", path.display()))?
    {
        let mut entry = entry.with_context(|| format!("{} is damaged", path.display()))?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        // `tar -C dir .` writes `./name`: the same file.
        let entry_path = entry.path()?.to_string_lossy().into_owned();
        let name = entry_path.trim_start_matches("./").to_string();
        let mut bytes = Vec::new();
        entry
            .read_to_end(&mut bytes)
            .with_context(|| format!("{} is damaged", path.display()))?;
        files.insert(name, bytes);
    }
    Ok(files)
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
    let dir = config
        .backup
        .dir
        .clone()
        .unwrap_or_else(|| config.data_dir.join("backups"));
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
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    let name = format!(
        "{SCHEDULED_PREFIX}{}.tar.gz",
        chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ")
    );
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
