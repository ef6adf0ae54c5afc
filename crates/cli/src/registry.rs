//! `capstan registry set|show|remove`: the instance's image registry. While one is set, an
//! image moves to a server that lacks it through the registry instead of as a layer
//! archive. `set` reads the password from standard input (never from an argument, so it
//! stays out of shell history and the process list); nothing prints it back.

use crate::client::Connection;
use serde_json::{json, Value};
use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;

#[derive(Debug, clap::Subcommand)]
pub enum RegistryCommand {
    /// Set the registry (replacing the one there); the password is read from standard input.
    Set(SetArgs),
    /// Show the registry: its URL, username and whether a password is set.
    Show(ShowArgs),
    /// Remove the registry: images move as layer archives again.
    Remove(RemoveArgs),
}

#[derive(Debug, clap::Args)]
pub struct SetArgs {
    /// The registry: `host[:port]` with an optional path prefix, optionally after
    /// `https://`.
    #[arg(value_name = "URL")]
    address: String,
    #[arg(long)]
    username: String,
    #[command(flatten)]
    connection: Connection,
}

#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    /// Print the API's JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    connection: Connection,
}

#[derive(Debug, clap::Args)]
pub struct RemoveArgs {
    #[command(flatten)]
    connection: Connection,
}

pub async fn registry(command: RegistryCommand) -> anyhow::Result<ExitCode> {
    match command {
        RegistryCommand::Set(args) => {
            if std::io::stdin().is_terminal() {
                eprint!("password for {} at {}: ", args.username, args.address);
            }
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line)?;
            let password = line.trim_end_matches(['\r', '\n']);
            if password.is_empty() {
                anyhow::bail!("no password given on standard input");
            }
            let api = args.connection.api()?;
            let body =
                json!({"url": args.address, "username": args.username, "password": password});
            let set = api
                .send(reqwest::Method::PUT, "/registry", Some(body))
                .await?;
            println!(
                "registry {} set (user {}); images move to other servers through it",
                text(&set["url"]),
                text(&set["username"])
            );
        }
        RegistryCommand::Show(args) => {
            let api = args.connection.api()?;
            let shown = api.get("/registry").await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&shown)?);
            } else {
                let password = if shown["password_set"] == json!(true) {
                    "set (never shown)"
                } else {
                    "not set"
                };
                for (k, v) in [
                    ("url", text(&shown["url"])),
                    ("username", text(&shown["username"])),
                    ("password", password.to_string()),
                    ("updated", text(&shown["updated_at"])),
                ] {
                    println!("{k:<9} {v}");
                }
            }
        }
        RegistryCommand::Remove(args) => {
            let api = args.connection.api()?;
            api.send(reqwest::Method::DELETE, "/registry", None).await?;
            println!("registry removed; images move to other servers as layer archives");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}
