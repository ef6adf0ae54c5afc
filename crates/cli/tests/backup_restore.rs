//! Backup and restore of Capstan's own state: `capstan backup` while the daemon runs →
//! stop → wipe the data dir and the instance's proxy (a fresh host) → `capstan restore` →
//! the daemon starts → apps, history and secrets are back (values still decrypt: a
//! redeploy serves the secret) and the proxy's ACME store is back in its volume. An
//! archive from a newer schema is refused; scheduled backups keep the newest `keep`.

mod support;

use reqwest::Method;
use serde_json::json;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn capstan(instance: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_capstan"))
        .args(args)
        .env("CAPSTAN_INSTANCE", instance)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_wipe_restore_and_redeploy() {
    let mut daemon = support::start_daemon().await;
    let _repo = daemon.live_sample("shop", "shop.test", &[]).await;
    let (status, body) = daemon
        .call(
            Method::PUT,
            "/apps/shop/secrets/GREETING",
            Some(json!({"value": "hello-from-the-backup"})),
        )
        .await;
    assert!(status < 300, "{body}");
    daemon.deploy_expect("shop", None, "live").await;
    assert_eq!(
        daemon.via_proxy("shop.test", "/env/GREETING").await.1,
        "hello-from-the-backup\n"
    );
    // Something in the proxy's ACME volume (a real certificate needs a public domain).
    let proxy = format!("{}-proxy", daemon.instance);
    let marker = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(marker.path(), "{\"letsencrypt\": {}}").unwrap();
    let copied = Command::new("docker")
        .args([
            "cp",
            marker.path().to_str().unwrap(),
            &format!("{proxy}:/data/acme.json"),
        ])
        .status()
        .unwrap();
    assert!(copied.success());

    let data_dir = daemon.data_dir.path().to_path_buf();
    let data = data_dir.to_str().unwrap().to_string();
    let instance = daemon.instance.clone();
    let out_dir = tempfile::tempdir().unwrap();
    let archive = out_dir.path().join("capstan.tar.gz");
    let archive_arg = archive.to_str().unwrap();
    let mut args = vec!["backup", archive_arg, "--data-dir", &data];
    let (ok, out) = capstan(&instance, &args);
    assert!(ok, "{out}");
    assert!(
        out.contains("backup written") && !out.contains("not included"),
        "{out}"
    );
    let mode = std::fs::metadata(&archive).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    // A fresh host: the daemon gone, its data dir emptied, its proxy and volume removed.
    let deployments_before = deployments(&daemon).await;
    daemon.kill();
    for entry in std::fs::read_dir(&data_dir).unwrap().flatten() {
        if entry.file_name() != "daemon.log" {
            let path = entry.path();
            if path.is_dir() {
                std::fs::remove_dir_all(path).unwrap();
            } else {
                std::fs::remove_file(path).unwrap();
            }
        }
    }
    support::docker(&["rm", "-f", &proxy]);
    support::docker(&[
        "volume",
        "rm",
        "-f",
        &format!("{}-proxy-data", daemon.instance),
    ]);

    // A damaged archive and one from a newer schema are refused, changing nothing.
    let newer = out_dir.path().join("newer.tar.gz");
    rewrite_manifest(&archive, &newer, |m| m["schema_version"] = json!(9999));
    let (ok, out) = capstan(
        &instance,
        &["restore", newer.to_str().unwrap(), "--data-dir", &data],
    );
    assert!(
        !ok && out.contains("newer Capstan") && out.contains("schema 9999"),
        "{out}"
    );
    assert!(!data_dir.join("capstan.db").exists());
    let junk = out_dir.path().join("junk.tar.gz");
    std::fs::write(&junk, b"not an archive").unwrap();
    let (ok, out) = capstan(
        &instance,
        &["restore", junk.to_str().unwrap(), "--data-dir", &data],
    );
    assert!(
        !ok && (out.contains("not a gzip'd tar archive") || out.contains("damaged")),
        "{out}"
    );

    args = vec!["restore", archive_arg, "--data-dir", &data];
    let (ok, out) = capstan(&instance, &args);
    assert!(ok, "{out}");
    assert!(
        out.contains(
            "the database, the secret key, the admin token, 1 route file, the proxy's ACME store"
        ) && !out.contains("declares no sizes"),
        "{out}"
    );
    // Restoring again over the restored database needs --force.
    let (ok, out) = capstan(&instance, &args);
    assert!(!ok && out.contains("--force"), "{out}");

    daemon.spawn().await;
    assert_eq!(
        deployments(&daemon).await,
        deployments_before,
        "the history is back"
    );
    let (_, apps) = daemon.call(Method::GET, "/apps", None).await;
    assert_eq!(apps[0]["name"], "shop", "{apps}");
    let (_, secrets) = daemon.call(Method::GET, "/apps/shop/secrets", None).await;
    assert_eq!(secrets[0]["name"], "GREETING", "{secrets}");
    // The restored proxy reads its restored ACME store.
    let acme = Command::new("docker")
        .args(["cp", &format!("{proxy}:/data/acme.json"), "-"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&acme.stdout).contains("letsencrypt"));
    // A redeploy brings the app up, with its secret decrypted by the restored key.
    daemon.deploy_expect("shop", None, "live").await;
    assert_eq!(
        daemon.via_proxy("shop.test", "/env/GREETING").await.1,
        "hello-from-the-backup\n"
    );
}

/// The app's deployments (id and state), newest first.
async fn deployments(daemon: &capstan_testkit::Daemon) -> Vec<(i64, String)> {
    let (_, list) = daemon
        .call(Method::GET, "/apps/shop/deployments", None)
        .await;
    list.as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["id"].as_i64().unwrap(),
                d["state"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Copies a backup archive with its manifest changed by `edit`.
fn rewrite_manifest(from: &Path, to: &Path, edit: impl Fn(&mut serde_json::Value)) {
    let work = tempfile::tempdir().unwrap();
    let ok = Command::new("tar")
        .arg("-xzf")
        .arg(from)
        .arg("-C")
        .arg(work.path())
        .status()
        .unwrap();
    assert!(ok.success());
    let path = work.path().join("manifest.json");
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    edit(&mut manifest);
    std::fs::write(&path, serde_json::to_vec(&manifest).unwrap()).unwrap();
    let ok = Command::new("tar")
        .arg("-czf")
        .arg(to)
        .arg("-C")
        .arg(work.path())
        .arg(".")
        .status()
        .unwrap();
    assert!(ok.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_backups_keep_the_newest() {
    let config_dir = tempfile::tempdir().unwrap();
    let backups = config_dir.path().join("backups");
    let config = config_dir.path().join("capstan.toml");
    std::fs::write(
        &config,
        format!(
            "[backup]\nschedule = \"* * * * * *\"\nkeep = 2\ndir = \"{}\"\n",
            backups.display()
        ),
    )
    .unwrap();
    let daemon = support::start_daemon_with(&["--config", config.to_str().unwrap()]).await;
    let archives = || -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&backups)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.ends_with(".tar.gz"))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !daemon
        .daemon_log()
        .contains("removed an old scheduled backup")
    {
        assert!(Instant::now() < deadline, "{}", daemon.daemon_log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let kept = archives();
    assert!(kept.len() <= 2, "{kept:?}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let later = archives();
    assert!(
        later.len() == 2 && later != kept,
        "newer archives replace older: {kept:?} {later:?}"
    );
    for name in &later {
        let mode = std::fs::metadata(backups.join(name))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{name}");
    }
    // A bad schedule is refused at start with a reason.
    std::fs::write(&config, "[backup]\nschedule = \"every tuesday\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_capstan"))
        .args(["serve", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && text.contains("backup.schedule"),
        "{text}"
    );
}
