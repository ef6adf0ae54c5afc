//! Cleanup touches only this instance's objects: with foreign containers, images, networks
//! and volumes on the engine (unlabelled, and labelled with another instance), a dry run
//! lists this instance's leftovers and removes nothing, then a cleanup removes exactly
//! those (a stopped container of a deleted app, its network, its image, an untagged
//! image, releases beyond retention) and every foreign object survives. Under disk pressure the daemon's timer cleans harder by itself and logs it.

mod support;

use reqwest::Method;
use serde_json::json;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::docker;

/// Builds a one-layer image from busybox with `labels`, tagged `tag`.
fn build_labelled(tag: &str, labels: &[(&str, &str)], salt: &str) {
    let mut args = vec!["build".to_string(), "-q".into(), "-t".into(), tag.into()];
    for (k, v) in labels {
        args.push("--label".into());
        args.push(format!("{k}={v}"));
    }
    args.push("-".into());
    let mut child = Command::new("docker")
        .args(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("FROM busybox:stable\nLABEL salt={salt}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "docker build {tag}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Objects of an instance named `instance` (this one's or another's), of a deleted app.
struct Planted {
    container: String,
    network: String,
    image: String,
    stage: String,
}

fn plant(instance: &str, salt: &str) -> Planted {
    let inst = format!("capstan.instance={instance}");
    let container = format!("{instance}_ghost_d99");
    docker(&[
        "create",
        "--name",
        &container,
        "--label",
        &inst,
        "--label",
        "capstan.app=ghost",
        "--label",
        "capstan.role=app",
        "--label",
        "capstan.deployment=99",
        "busybox:stable",
        "true",
    ]);
    let network = format!("{instance}_ghost");
    docker(&[
        "network",
        "create",
        "--label",
        &inst,
        "--label",
        "capstan.role=app-network",
        "--label",
        "capstan.app=ghost",
        &network,
    ]);
    let image = format!("{instance}/ghost:d99");
    let labels = [("capstan.instance", instance), ("capstan.app", "ghost")];
    build_labelled(&image, &labels, salt);
    // An untagged image of the same owner: built under a tag that is then taken over.
    let scratch_tag = format!("{instance}/scratch:x");
    build_labelled(
        &scratch_tag,
        &[("capstan.instance", instance)],
        &format!("{salt}-1"),
    );
    build_labelled(
        &scratch_tag,
        &[("capstan.instance", instance)],
        &format!("{salt}-2"),
    );
    // A kept build stage of the deleted app.
    let stage = format!("{instance}/ghost:stage-0");
    docker(&["tag", "busybox:stable", &stage]);
    Planted {
        container,
        network,
        image,
        stage,
    }
}

fn exists(kind: &str, name: &str) -> bool {
    Command::new("docker")
        .args([kind, "inspect", name])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
}

fn dangling_of(instance: &str) -> usize {
    docker(&[
        "images",
        "-q",
        "--filter",
        "dangling=true",
        "--filter",
        &format!("label=capstan.instance={instance}"),
    ])
    .lines()
    .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleanup_removes_only_this_instances_leftovers() {
    let daemon = support::start_daemon().await;
    let repo = daemon.live_sample("web", "web.test", &[]).await;
    repo.commit_version("v2", &[]);
    daemon.deploy_expect("web", None, "live").await;
    repo.commit_version("v3", &[]);
    let live = daemon.deploy_expect("web", None, "live").await;

    let ours = plant(&daemon.instance, &format!("{}-ours", daemon.instance));
    let other = format!("other{:08x}", rand::random::<u32>());
    let theirs = plant(&other, &other);
    let suffix = &other[5..];
    let foreign_container = format!("foreign-c-{suffix}");
    docker(&[
        "create",
        "--name",
        &foreign_container,
        "busybox:stable",
        "true",
    ]);
    let foreign_image = format!("foreign-i-{suffix}:1");
    build_labelled(&foreign_image, &[], suffix);
    let foreign_network = format!("foreign-n-{suffix}");
    docker(&["network", "create", &foreign_network]);
    let foreign_volume = format!("foreign-v-{suffix}");
    docker(&["volume", "create", &foreign_volume]);
    let other_volume = format!("{other}_ghost_data");
    docker(&[
        "volume",
        "create",
        "--label",
        &format!("capstan.instance={other}"),
        &other_volume,
    ]);
    assert_eq!(dangling_of(&daemon.instance), 1);
    assert_eq!(dangling_of(&other), 1);

    let (status, body) = daemon
        .call(
            Method::POST,
            "/server/cleanup",
            Some(json!({"aggressive": "yes"})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    // A dry run lists what would go and removes nothing.
    let (status, preview) = daemon
        .call(
            Method::POST,
            "/server/cleanup",
            Some(json!({"aggressive": true, "dry_run": true})),
        )
        .await;
    assert_eq!(status, 200, "{preview}");
    assert_eq!(preview["dry_run"], true);
    for (key, name) in [
        ("containers", &ours.container),
        ("networks", &ours.network),
        ("images", &ours.image),
    ] {
        assert!(
            preview[key]
                .as_array()
                .unwrap()
                .iter()
                .any(|v| v.as_str() == Some(name)),
            "{key} {name}: {preview}"
        );
    }
    assert!(exists("container", &ours.container));
    assert!(exists("network", &ours.network));
    assert!(exists("image", &ours.image));
    assert_eq!(dangling_of(&daemon.instance), 1);
    let (status, report) = daemon
        .call(
            Method::POST,
            "/server/cleanup",
            Some(json!({"aggressive": true})),
        )
        .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["dry_run"], false);
    for key in ["containers", "networks", "images"] {
        assert_eq!(
            report[key], preview[key],
            "the preview named what went: {key}"
        );
    }
    let listed = |key: &str, name: &str| {
        report[key]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v.as_str() == Some(name))
    };
    assert!(listed("containers", &ours.container), "{report}");
    assert!(listed("networks", &ours.network), "{report}");
    assert!(listed("images", &ours.image), "{report}");
    assert!(listed("images", &ours.stage), "{report}");
    assert!(!exists("image", &ours.stage));
    assert!(report["image_bytes"].as_i64().unwrap() > 0, "{report}");
    assert!(!exists("container", &ours.container));
    assert!(!exists("network", &ours.network));
    assert!(!exists("image", &ours.image));
    assert_eq!(dangling_of(&daemon.instance), 0);
    // Aggressive: the app keeps its live release and the one before; v1's image is gone.
    let images = docker(&[
        "images",
        "--format",
        "{{.Repository}}:{{.Tag}}",
        "--filter",
        "label=capstan.app=web",
        "--filter",
        &format!("label=capstan.instance={}", daemon.instance),
    ]);
    assert_eq!(images.lines().count(), 2, "{images}");
    assert!(images.contains(live["image"].as_str().unwrap()), "{images}");
    assert_eq!(daemon.via_proxy("web.test", "/").await.1, "version: v3\n");
    let (status, rollback) = daemon.call(Method::POST, "/apps/web/rollback", None).await;
    assert_eq!(status, 202, "{rollback}");
    assert_eq!(
        daemon.wait(rollback["id"].as_i64().unwrap()).await["state"],
        "live"
    );

    // Every foreign object survived.
    assert!(exists("container", &theirs.container));
    assert!(exists("network", &theirs.network));
    assert!(exists("image", &theirs.image));
    assert!(exists("image", &theirs.stage));
    assert_eq!(dangling_of(&other), 1);
    assert!(exists("container", &foreign_container));
    assert!(exists("image", &foreign_image));
    assert!(exists("network", &foreign_network));
    assert!(exists("volume", &foreign_volume));
    assert!(exists("volume", &other_volume));

    // The CLI, with nothing left to remove.
    let out = Command::new(env!("CARGO_BIN_EXE_capstan"))
        .args(["cleanup"])
        .env("CAPSTAN_URL", &daemon.api)
        .env("CAPSTAN_TOKEN", &daemon.token)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("only this instance's objects"),
        "{stdout}"
    );

    // `capstan status` shows the disk.
    let out = Command::new(env!("CARGO_BIN_EXE_capstan"))
        .args(["status"])
        .env("CAPSTAN_URL", &daemon.api)
        .env("CAPSTAN_TOKEN", &daemon.token)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("% used"), "{stdout}");

    // Under disk pressure (threshold 0%), the daemon's own timer cleans harder.
    let config_dir = tempfile::tempdir().unwrap();
    let config = config_dir.path().join("capstan.toml");
    std::fs::write(
        &config,
        "[cleanup]\nevery = \"1s\"\ndisk_threshold_percent = 0\n",
    )
    .unwrap();
    let pressed = support::start_daemon_with(&["--config", config.to_str().unwrap()]).await;
    // Only a container: the timer runs every second, and an image built here would be
    // an untagged image of this instance while it builds.
    let leftover = format!("{}_ghost_d7", pressed.instance);
    docker(&[
        "create",
        "--name",
        &leftover,
        "--label",
        &format!("capstan.instance={}", pressed.instance),
        "--label",
        "capstan.app=ghost",
        "--label",
        "capstan.role=app",
        "busybox:stable",
        "true",
    ]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let wanted = format!("cleanup: removed container {leftover}");
    while !pressed.daemon_log().contains(&wanted) {
        assert!(Instant::now() < deadline, "{}", pressed.daemon_log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(pressed.daemon_log().contains("disk pressure"));
    assert!(exists("container", &theirs.container), "still not ours");
    assert!(exists("container", &foreign_container));

    for (kind, name) in [
        ("rm", &foreign_container),
        ("rm", &theirs.container),
        ("rmi", &foreign_image),
        ("rmi", &theirs.image),
        ("rmi", &theirs.stage),
        ("rmi", &format!("{other}/scratch:x")),
    ] {
        docker(&[kind, "-f", name]);
    }
    docker(&["network", "rm", &foreign_network, &theirs.network]);
    docker(&["volume", "rm", &foreign_volume, &other_volume]);
    let dangling = docker(&[
        "images",
        "-q",
        "--filter",
        &format!("label=capstan.instance={other}"),
    ]);
    for id in dangling.lines() {
        docker(&["rmi", "-f", id]);
    }
}
