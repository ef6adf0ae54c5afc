//! `capstan purge`: lists every Docker object of this instance (containers, networks,
//! volumes, images labelled `capstan.instance=<instance>`) and, with `--yes`, removes them
//! all, the daemon stopped. `install.sh --uninstall --purge` runs it; it talks to the
//! engine directly, so it needs neither the daemon nor its database.

use crate::config::{Config, ServeArgs};
use capstan_compose::labels;
use capstan_engine::purge::{image_name, InstanceObjects, Removal};
use capstan_engine::Engine;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub struct PurgeArgs {
    /// Configuration file giving the instance and the engine (default
    /// /etc/capstan/capstan.toml, if it exists).
    #[arg(long)]
    config: Option<PathBuf>,
    /// The instance whose objects these are (overrides the file).
    #[arg(long)]
    instance: Option<String>,
    /// The Docker engine (overrides the file; default the local socket).
    #[arg(long)]
    docker_host: Option<String>,
    /// Remove what is listed (containers stopped with their own grace first, then
    /// networks, volumes, images). Without it nothing is removed.
    #[arg(long)]
    yes: bool,
    /// Only print the list (nothing when there is nothing), for scripts.
    #[arg(long, conflicts_with = "yes")]
    list: bool,
}

pub async fn purge(args: PurgeArgs) -> anyhow::Result<ExitCode> {
    let config = Config::load(&ServeArgs {
        config: args.config.clone(),
        instance: args.instance.clone(),
        docker_host: args.docker_host.clone(),
        ..Default::default()
    })?;
    let engine = Engine::connect(config.docker_host.as_deref(), &config.instance).await?;
    let objects = engine.instance_objects().await?;
    let label = format!("capstan.instance={}", config.instance);
    if objects.is_empty() {
        if !args.list {
            println!("no Docker object is labelled {label}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    print_objects(&objects, &label, &engine.names().proxy_data_volume());
    if args.list {
        return Ok(ExitCode::SUCCESS);
    }
    if !args.yes {
        println!("nothing removed: run again with --yes to remove them (stop the daemon first)");
        return Ok(ExitCode::SUCCESS);
    }
    if daemon_answers(&config.listen).await {
        anyhow::bail!(
            "the daemon answers on {}: stop it first (systemctl stop capstan), or it recreates its proxy and networks",
            config.listen
        );
    }
    let mut kept = 0;
    engine
        .purge(&objects, |removal: Removal| match removal.result {
            Ok(()) => println!("removed {} {}", removal.kind, removal.name),
            Err(err) => {
                kept += 1;
                println!("kept {} {}: {err}", removal.kind, removal.name);
            }
        })
        .await;
    if kept > 0 {
        println!(
            "{kept} of {} objects labelled {label} could not be removed (above); nothing else was touched",
            objects.len()
        );
        return Ok(ExitCode::FAILURE);
    }
    println!(
        "removed all {} objects labelled {label}; nothing else was touched",
        objects.len()
    );
    Ok(ExitCode::SUCCESS)
}

fn print_objects(objects: &InstanceObjects, label: &str, proxy_data: &str) {
    println!("Docker objects labelled {label}:");
    for c in &objects.containers {
        let state = if c.running { "running" } else { "stopped" };
        let about: Vec<&str> = [labels::ROLE, labels::APP]
            .iter()
            .filter_map(|key| c.labels.get(*key).map(String::as_str))
            .chain([state])
            .collect();
        println!("  container {} ({})", c.name, about.join(", "));
    }
    for network in &objects.networks {
        println!("  network {network}");
    }
    for volume in &objects.volumes {
        // Its mount creates it without labels; its name is the instance's.
        let about = if volume == proxy_data {
            " (the proxy's certificates)"
        } else {
            ""
        };
        println!("  volume {volume}{about}");
    }
    for image in &objects.images {
        let size = capstan_core::units::size(image.size.max(0) as u64);
        println!("  image {} ({size})", image_name(image));
    }
}

/// Whether a Capstan daemon answers its health check on `listen`.
async fn daemon_answers(listen: &str) -> bool {
    let Ok(http) = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
    else {
        return false;
    };
    let url = format!("http://{listen}/api/v1/health");
    match http.get(url).send().await {
        Ok(response) if response.status().is_success() => response
            .json::<serde_json::Value>()
            .await
            .is_ok_and(|health| health.get("proxy").is_some()),
        _ => false,
    }
}
