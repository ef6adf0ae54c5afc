//! `capstan cleanup`: removes this instance's leftovers now, or with `--dry-run` lists
//! what it would remove (admin token).

use crate::client::Connection;
use serde_json::{json, Value};
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct CleanupArgs {
    /// Keep only the live and the previous release of each app (as under disk pressure).
    #[arg(long)]
    aggressive: bool,
    /// List what would be removed, removing nothing.
    #[arg(long)]
    dry_run: bool,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    connection: Connection,
}

pub async fn cleanup(args: CleanupArgs) -> anyhow::Result<ExitCode> {
    let api = args.connection.api()?;
    let report = api
        .send(
            reqwest::Method::POST,
            "/server/cleanup",
            Some(json!({"aggressive": args.aggressive, "dry_run": args.dry_run})),
        )
        .await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    let names = |key: &str| -> Vec<String> {
        report[key]
            .as_array()
            .map(|l| {
                l.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    let verb = if args.dry_run {
        "would remove"
    } else {
        "removed"
    };
    let mut removed = 0;
    for (key, kind) in [
        ("containers", "container"),
        ("images", "image"),
        ("networks", "network"),
    ] {
        for name in names(key) {
            println!("{verb} {kind} {name}");
            removed += 1;
        }
    }
    for error in names("errors") {
        println!("kept {error}");
    }
    let images = capstan_core::units::size(report["image_bytes"].as_u64().unwrap_or(0));
    println!(
        "{removed} objects {} ({images} of images); only this instance's objects were considered",
        if args.dry_run {
            "would be removed"
        } else {
            "removed"
        }
    );
    Ok(ExitCode::SUCCESS)
}
