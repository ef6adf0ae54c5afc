//! `capstan restore`: every entry of the archive is streamed through a fixed buffer into a
//! staging dir inside the data dir, held to the size the manifest declares for it (or to
//! its kind's cap when an older manifest declares none, which the report says) and checked
//! against the declared SHA-256. An unknown entry, a path outside the backup's layout, a
//! link or a second copy refuses the archive. Only an archive accepted whole is put in
//! place, by renames, so a refused one leaves the data dir as it was.

use super::archive::{self, Entry, Facts, Manifest, DB, FORMAT, ROUTES_DIR};
use super::{entries, load_config};
use crate::config::Config;
use anyhow::{bail, Context};
use capstan_engine::Engine;
use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::process::ExitCode;

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

/// The archive's files, accepted and staged.
struct Staged {
    dir: tempfile::TempDir,
    manifest: Manifest,
    files: BTreeMap<Entry, Facts>,
}

/// Where an entry is staged under `root`.
fn staged_path(root: &Path, entry: &Entry) -> PathBuf {
    match entry {
        Entry::Route(file) => root.join("routes").join(file),
        other => root.join(other.path()),
    }
}

/// How much of an entry is read before it is refused.
struct Limit {
    bytes: u64,
    /// Whether the manifest declared it (else it is the entry kind's cap).
    declared: bool,
}

/// `capstan restore FILE`.
pub async fn restore(args: RestoreArgs) -> anyhow::Result<ExitCode> {
    let config = load_config(args.config.clone(), args.data_dir.clone())?;
    if tokio::net::TcpStream::connect(&config.listen).await.is_ok() {
        bail!(
            "something is listening on {} (a running daemon?): stop it before restoring",
            config.listen
        );
    }
    let data_dir = config.data_dir.clone();
    if data_dir.join(DB).exists() && !args.force {
        bail!(
            "{} already holds a Capstan database; restore onto a fresh data dir, or pass --force to move it aside",
            data_dir.display()
        );
    }
    let created = !data_dir.exists();
    if created {
        std::fs::create_dir_all(&data_dir)?;
        std::fs::set_permissions(&data_dir, std::fs::Permissions::from_mode(0o700))?;
    }
    let outcome = restore_into(&config, &args).await;
    if outcome.is_err() && created {
        let _ = std::fs::remove_dir(&data_dir);
    }
    println!("{}", outcome?);
    println!(
        "start the daemon, then redeploy each app (capstan deploy APP) to run it on this host"
    );
    Ok(ExitCode::SUCCESS)
}

/// Stages and checks the whole archive, puts the ACME store back, then moves the files
/// into place; returns the report.
async fn restore_into(config: &Config, args: &RestoreArgs) -> anyhow::Result<String> {
    let dir = tempfile::Builder::new()
        .prefix(".restore-")
        .tempdir_in(&config.data_dir)
        .with_context(|| format!("cannot stage files in {}", config.data_dir.display()))?;
    let (file, root) = (args.file.clone(), dir.path().to_path_buf());
    let (manifest, files) = tokio::task::spawn_blocking(move || unpack(&file, &root))
        .await
        .context("the archive reader stopped")??;
    let staged = Staged {
        dir,
        manifest,
        files,
    };
    let acme = staged.files.contains_key(&Entry::ProxyData);
    if acme {
        let path = staged_path(staged.dir.path(), &Entry::ProxyData);
        restore_proxy_data(config, &path).await?;
    }
    let moved = move_into_place(&staged, &config.data_dir)?;
    Ok(report(&args.file, &config.data_dir, &staged, &moved, acme))
}

/// Streams every entry of `archive` into `root`, each held to its limit; refuses unknown
/// entries, duplicates, and files that do not match the manifest.
fn unpack(archive: &Path, root: &Path) -> anyhow::Result<(Manifest, BTreeMap<Entry, Facts>)> {
    let file = std::fs::File::open(archive)
        .with_context(|| format!("cannot open {}", archive.display()))?;
    let gz = flate2::read::GzDecoder::new(std::io::BufReader::new(file));
    let mut tar = tar::Archive::new(gz);
    let damaged = format!(
        "{} is damaged (not a whole gzip'd tar archive)",
        archive.display()
    );
    std::fs::create_dir(root.join("routes"))?;
    let mut manifest: Option<Manifest> = None;
    let mut files = BTreeMap::new();
    let mut routes = 0;
    entries::for_each(&mut tar, &damaged, |path, entry| {
        let Some(what) = classify(path, entry.header().entry_type())? else {
            return Ok(());
        };
        let size = entry.header().entry_size()?;
        if what == Entry::Manifest {
            if manifest.is_some() {
                bail!("the archive holds two manifests: refused, nothing was restored");
            }
            manifest = Some(read_manifest(entry, size)?);
            return Ok(());
        }
        if files.contains_key(&what) {
            bail!(
                "the archive holds {} twice: refused, nothing was restored",
                what.path()
            );
        }
        if matches!(what, Entry::Route(_)) {
            routes += 1;
            if routes > archive::MAX_ROUTES {
                bail!(
                    "the archive holds more than {} route files: refused",
                    archive::MAX_ROUTES
                );
            }
        }
        let limit = limit_of(&what, manifest.as_ref())?;
        let facts = stage(entry, size, &what, &limit, root)?;
        files.insert(what, facts);
        Ok(())
    })?;
    let manifest = manifest.context("not a Capstan backup: it has no manifest.json")?;
    verify(&manifest, &files)?;
    Ok((manifest, files))
}

/// The entry at `path`; `None` for a directory the backup's files sit in. Anything that
/// is not a regular file of the backup's layout is refused.
fn classify(path: &str, kind: tar::EntryType) -> anyhow::Result<Option<Entry>> {
    if kind.is_dir() && Entry::is_known_dir(path) {
        return Ok(None);
    }
    if !kind.is_file() {
        bail!("the archive's entry {path:?} is not a regular file ({kind:?}): refused, nothing was restored");
    }
    match Entry::parse(path) {
        Some(entry) => Ok(Some(entry)),
        None => bail!(
            "the archive holds {path:?}, which is no part of a Capstan backup: refused, nothing was restored"
        ),
    }
}

/// Reads and checks the manifest (at most [`Entry::cap`] of it).
fn read_manifest(entry: &mut impl Read, size: u64) -> anyhow::Result<Manifest> {
    let cap = Entry::Manifest.cap();
    let mut bytes = Vec::new();
    if size > cap || archive::copy_limited(entry, &mut bytes, cap)?.is_none() {
        bail!(
            "the backup's manifest.json is larger than {}: refused",
            archive::human(cap)
        );
    }
    let manifest: Manifest =
        serde_json::from_slice(&bytes).context("the backup's manifest.json is unreadable")?;
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
    Ok(manifest)
}

/// The size the manifest declares for `what` (never above its kind's cap: a manifest is
/// the archive's own word), or that cap when the manifest declares none (an older
/// archive, or the manifest has not come yet).
fn limit_of(what: &Entry, manifest: Option<&Manifest>) -> anyhow::Result<Limit> {
    let Some(declared) = manifest.and_then(|m| m.files.as_ref()) else {
        return Ok(Limit {
            bytes: what.cap(),
            declared: false,
        });
    };
    match declared.get(&what.path()) {
        Some(facts) if facts.size <= what.cap() => Ok(Limit {
            bytes: facts.size,
            declared: true,
        }),
        Some(facts) => bail!(
            "the archive's manifest declares {} as {} bytes, more than such a file may hold ({}): refused, nothing was restored",
            what.path(),
            facts.size,
            what.cap()
        ),
        None => bail!(
            "the archive holds {}, which its manifest does not declare: refused, nothing was restored",
            what.path()
        ),
    }
}

/// Streams `entry` into its staging file, refusing it (from its header, and again while
/// reading) when it holds more than `limit`.
fn stage(
    entry: &mut impl Read,
    header_size: u64,
    what: &Entry,
    limit: &Limit,
    root: &Path,
) -> anyhow::Result<Facts> {
    let too_large = || {
        let whose = if limit.declared {
            "its manifest declares"
        } else {
            "an archive without declared sizes may hold for it"
        };
        anyhow::anyhow!(
            "{} in the archive is larger than the {} bytes {whose}: refused, nothing was restored",
            what.path(),
            limit.bytes
        )
    };
    if header_size > limit.bytes {
        return Err(too_large());
    }
    let path = staged_path(root, what);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("cannot stage {}", path.display()))?;
    let facts = archive::copy_limited(entry, &mut file, limit.bytes)?.ok_or_else(too_large)?;
    file.sync_all()?;
    Ok(facts)
}

/// Every staged file matches what the manifest declares, and every declared file is
/// there; the database is there in any case.
fn verify(manifest: &Manifest, files: &BTreeMap<Entry, Facts>) -> anyhow::Result<()> {
    if !files.contains_key(&Entry::Database) {
        bail!("the backup holds no database");
    }
    let Some(declared) = &manifest.files else {
        return Ok(());
    };
    for (entry, facts) in files {
        let name = entry.path();
        match declared.get(&name) {
            Some(expected) if expected == facts => {}
            Some(expected) if expected.size != facts.size => bail!(
                "{name} holds {} bytes where its manifest declares {}: refused, nothing was restored",
                facts.size,
                expected.size
            ),
            Some(_) => bail!("{name} does not match the SHA-256 its manifest declares: refused, nothing was restored"),
            None => bail!("the archive holds {name}, which its manifest does not declare: refused, nothing was restored"),
        }
    }
    let held: std::collections::BTreeSet<String> = files.keys().map(Entry::path).collect();
    if let Some(missing) = declared.keys().find(|name| !held.contains(*name)) {
        bail!("the manifest declares {missing}, which the archive does not hold: refused, nothing was restored");
    }
    Ok(())
}

/// Checks the ACME store's tar (only directories and regular files under `volume/`), then
/// streams it into the proxy's volume through the Docker API.
async fn restore_proxy_data(config: &Config, path: &Path) -> anyhow::Result<()> {
    let checked = path.to_path_buf();
    tokio::task::spawn_blocking(move || check_volume_tar(&checked))
        .await
        .context("the archive reader stopped")??;
    let engine = Engine::connect(config.docker_host.as_deref(), &config.instance).await?;
    engine
        .fill_volume_from_file(
            &engine.names().proxy_data_volume(),
            "proxy-data",
            path,
            &config.proxy_image,
        )
        .await
        .context("cannot put the proxy's ACME store back into its volume")?;
    Ok(())
}

fn check_volume_tar(path: &Path) -> anyhow::Result<()> {
    let file = std::fs::File::open(path)?;
    let mut tar = tar::Archive::new(std::io::BufReader::new(file));
    let damaged = format!("the backup's {} is damaged", archive::PROXY_DATA);
    entries::for_each(&mut tar, &damaged, |name, entry| {
        let kind = entry.header().entry_type();
        let inside = Path::new(name.trim_start_matches("./"))
            .components()
            .enumerate()
            .all(|(i, c)| matches!(c, Component::Normal(n) if i > 0 || n == "volume"));
        if !inside || !(kind.is_dir() || kind.is_file()) {
            bail!(
                "the backup's {} holds {name:?} ({kind:?}), which is not a file or directory of the ACME volume: refused, nothing was restored",
                archive::PROXY_DATA
            );
        }
        Ok(())
    })
}

/// What the restore put in place.
struct Moved {
    aside: Option<PathBuf>,
    secret_key: bool,
    admin_token: bool,
    routes: usize,
}

/// Renames the staged files into the data dir; a database already there is moved aside
/// (with its WAL files), never deleted.
fn move_into_place(staged: &Staged, data_dir: &Path) -> anyhow::Result<Moved> {
    let routes_dir = data_dir.join(ROUTES_DIR);
    std::fs::create_dir_all(&routes_dir)?;
    let mut moved = Moved {
        aside: None,
        secret_key: false,
        admin_token: false,
        routes: 0,
    };
    for entry in staged.files.keys() {
        let from = staged_path(staged.dir.path(), entry);
        let to = match entry {
            Entry::SecretKey => {
                moved.secret_key = true;
                data_dir.join(archive::SECRET_KEY)
            }
            Entry::AdminToken => {
                moved.admin_token = true;
                data_dir.join(archive::ADMIN_TOKEN)
            }
            Entry::Route(file) => {
                // Route files hold no secret; the proxy reads them.
                std::fs::set_permissions(&from, std::fs::Permissions::from_mode(0o644))?;
                moved.routes += 1;
                routes_dir.join(file)
            }
            Entry::Database | Entry::Manifest | Entry::ProxyData => continue,
        };
        std::fs::rename(&from, &to).with_context(|| format!("cannot write {}", to.display()))?;
    }
    let current = data_dir.join(DB);
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
    for suffix in ["", "-wal", "-shm"] {
        let path = data_dir.join(format!("{DB}{suffix}"));
        if path.exists() {
            let aside = data_dir.join(format!("{DB}.before-restore-{stamp}{suffix}"));
            std::fs::rename(&path, &aside)?;
            if suffix.is_empty() {
                moved.aside = Some(aside);
            }
        }
    }
    std::fs::rename(staged_path(staged.dir.path(), &Entry::Database), &current)
        .with_context(|| format!("cannot write {}", current.display()))?;
    std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o700))?;
    Ok(moved)
}

/// Says exactly what was restored, and what the archive lacked.
fn report(file: &Path, data_dir: &Path, staged: &Staged, moved: &Moved, acme: bool) -> String {
    let manifest = &staged.manifest;
    let mut parts = vec!["the database".to_string()];
    if moved.secret_key {
        parts.push("the secret key".into());
    }
    if moved.admin_token {
        parts.push("the admin token".into());
    }
    let plural = if moved.routes == 1 { "" } else { "s" };
    parts.push(format!("{} route file{plural}", moved.routes));
    if acme {
        parts.push("the proxy's ACME store".into());
    }
    let mut lines = Vec::new();
    if let Some(aside) = &moved.aside {
        lines.push(format!("moved the current database to {}", aside.display()));
    }
    lines.push(format!(
        "restored {} into {} (schema {}, written {} by capstan {}): {}",
        file.display(),
        data_dir.display(),
        manifest.schema_version,
        manifest.created_at,
        manifest.capstan_version,
        parts.join(", ")
    ));
    let key = data_dir.join(archive::SECRET_KEY);
    if !moved.secret_key && key.exists() {
        lines.push(format!("the archive holds no secret key: {} was kept, and the restored secrets decrypt only if it is the key they were written with", key.display()));
    } else if !moved.secret_key {
        lines.push(format!("the archive holds no secret key: the restored secrets cannot be decrypted until the key they were written with is put at {} (else the daemon makes a new one)", key.display()));
    }
    if manifest.files.is_none() {
        lines.push(format!(
            "the archive's manifest declares no sizes or checksums (capstan {} did not record them): each entry was held to a limit for its kind instead ({})",
            manifest.capstan_version,
            archive::caps_in_words()
        ));
    }
    lines.join("\n")
}
