//! Backups the daemon writes when asked (the panel's and the API's Backup action): the
//! same archive as `capstan backup` and the schedule, into the backup directory, named
//! like the scheduled ones (so `backup.keep` rotates them together), and the list of the
//! archives there for the server page.

use super::{write_archive, Snapshot, SCHEDULED_PREFIX};
use crate::config::Config;
use capstan_store::Store;
use capstan_web::backups::{BackupError, BackupFile, Backups};
use futures::future::BoxFuture;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The daemon's backups: its configuration and its open store (the database is copied
/// with `VACUUM INTO` while it serves).
pub struct DaemonBackups {
    config: Config,
    store: Store,
    /// One archive at a time: two clicks do not write two at once.
    writing: tokio::sync::Mutex<()>,
}

impl DaemonBackups {
    pub fn new(config: Config, store: Store) -> Self {
        Self {
            config,
            store,
            writing: tokio::sync::Mutex::new(()),
        }
    }

    fn dir_path(&self) -> PathBuf {
        backup_dir(&self.config)
    }

    async fn write(&self) -> Result<BackupFile, BackupError> {
        let _one = self.writing.lock().await;
        let dir = self.dir_path();
        let failed = |err: anyhow::Error| BackupError(format!("{err:#}"));
        prepare_dir(&dir).map_err(failed)?;
        let name = archive_name();
        let summary = write_archive(&self.config, Snapshot::Store(&self.store), &dir.join(&name))
            .await
            .map_err(failed)?;
        tracing::info!("{summary}");
        file_of(&dir, &name).map_err(|e| BackupError(e.to_string()))
    }
}

impl Backups for DaemonBackups {
    fn write_now(&self) -> BoxFuture<'_, Result<BackupFile, BackupError>> {
        Box::pin(self.write())
    }

    fn list(&self) -> Result<Vec<BackupFile>, BackupError> {
        list_archives(&self.dir_path()).map_err(|e| {
            BackupError(format!(
                "cannot read the backup directory {}: {e}",
                self.dir_path().display()
            ))
        })
    }

    fn dir(&self) -> String {
        self.dir_path().display().to_string()
    }
}

/// `backup.dir`, else `<data_dir>/backups`.
pub(super) fn backup_dir(config: &Config) -> PathBuf {
    config
        .backup
        .dir
        .clone()
        .unwrap_or_else(|| config.data_dir.join("backups"))
}

/// Creates the backup directory, readable by its owner only.
pub(super) fn prepare_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    Ok(())
}

/// `capstan-backup-<UTC time to the millisecond>.tar.gz`: names sort by time.
pub(super) fn archive_name() -> String {
    format!(
        "{SCHEDULED_PREFIX}{}.tar.gz",
        chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ")
    )
}

/// The `.tar.gz` files of `dir`, newest first; none when it does not exist yet.
fn list_archives(dir: &Path) -> std::io::Result<Vec<BackupFile>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(err),
    };
    let mut files = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".tar.gz") && entry.file_type().is_ok_and(|t| t.is_file()) {
            // An archive the schedule's rotation removes meanwhile is simply not listed.
            match file_of(dir, &name) {
                Ok(file) => files.push(file),
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => return Err(err),
            }
        }
    }
    files.sort_by(|a, b| (b.modified_ms, &b.name).cmp(&(a.modified_ms, &a.name)));
    Ok(files)
}

fn file_of(dir: &Path, name: &str) -> std::io::Result<BackupFile> {
    let meta = std::fs::metadata(dir.join(name))?;
    let modified_ms = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    Ok(BackupFile {
        name: name.to_string(),
        size_bytes: meta.len(),
        modified_ms,
        mode: format!("{:04o}", meta.permissions().mode() & 0o7777),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archives_are_listed_newest_first_and_other_files_left_out() {
        let dir = tempfile::tempdir().unwrap();
        assert!(list_archives(&dir.path().join("missing"))
            .unwrap()
            .is_empty());
        for name in [
            "capstan-backup-1.tar.gz",
            "notes.txt",
            "capstan-backup-2.tar.gz",
        ] {
            std::fs::write(dir.path().join(name), name).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        std::fs::create_dir(dir.path().join("dir.tar.gz")).unwrap();
        let names: Vec<String> = list_archives(dir.path())
            .unwrap()
            .into_iter()
            .map(|f| f.name)
            .collect();
        assert_eq!(
            names,
            ["capstan-backup-2.tar.gz", "capstan-backup-1.tar.gz"]
        );
    }
}
