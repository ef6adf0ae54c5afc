//! `capstan notify list|add|remove|test|deliveries`: notification channels of an app, or
//! global ones (`--global`, admin). A channel's URL (it carries the hook's token) and an
//! SMTP password are read from standard input, never from an argument, so they stay out of
//! shell history and the process list; nothing prints them back.

use crate::client::Connection;
use serde_json::{json, Value};
use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;

#[derive(Debug, clap::Subcommand)]
pub enum NotifyCommand {
    /// List an app's channels (or the global ones) with their last delivery.
    List(ListArgs),
    /// Add a channel; its URL (or SMTP password) is read from standard input.
    Add(AddArgs),
    /// Remove a channel and its queued messages.
    Remove(IdArgs),
    /// Send a test message to a channel now and say whether it arrived.
    Test(IdArgs),
    /// A channel's recent messages: state, tries and last error.
    Deliveries(IdArgs),
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// The app (omit with --global).
    #[arg(required_unless_present = "global", conflicts_with = "global")]
    app: Option<String>,
    /// The global channels (every app's events and the servers').
    #[arg(long)]
    global: bool,
    /// Print the API's JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    connection: Connection,
}

#[derive(Debug, clap::Args)]
pub struct AddArgs {
    /// The app (omit with --global).
    #[arg(required_unless_present = "global", conflicts_with = "global")]
    app: Option<String>,
    #[arg(long)]
    global: bool,
    /// webhook, slack, discord or email.
    #[arg(long)]
    kind: String,
    /// Comma-separated events (default deployment.live,deployment.failed).
    #[arg(long, value_delimiter = ',')]
    events: Vec<String>,
    #[arg(long)]
    smtp_host: Option<String>,
    #[arg(long)]
    smtp_port: Option<u16>,
    /// starttls (default), tls or none.
    #[arg(long)]
    smtp_tls: Option<String>,
    /// With a username, the password is read from standard input.
    #[arg(long)]
    smtp_username: Option<String>,
    #[arg(long)]
    from: Option<String>,
    /// Comma-separated recipients.
    #[arg(long, value_delimiter = ',')]
    to: Vec<String>,
    #[command(flatten)]
    connection: Connection,
}

#[derive(Debug, clap::Args)]
pub struct IdArgs {
    /// The channel's id (from `capstan notify list`).
    id: i64,
    #[command(flatten)]
    connection: Connection,
}

fn read_line(prompt: &str) -> anyhow::Result<String> {
    if std::io::stdin().is_terminal() {
        eprint!("{prompt}: ");
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let line = line.trim_end_matches(['\r', '\n']).to_string();
    if line.is_empty() {
        anyhow::bail!("nothing given on standard input for the {prompt}");
    }
    Ok(line)
}

fn add_body(args: &AddArgs) -> anyhow::Result<Value> {
    let mut body = json!({ "kind": args.kind });
    if !args.events.is_empty() {
        body["events"] = json!(args.events);
    }
    if args.kind == "email" {
        for (key, value) in [
            ("smtp_host", json!(args.smtp_host)),
            ("smtp_port", json!(args.smtp_port)),
            ("smtp_tls", json!(args.smtp_tls)),
            ("smtp_username", json!(args.smtp_username)),
            ("from", json!(args.from)),
            ("to", json!(args.to)),
        ] {
            if !value.is_null() {
                body[key] = value;
            }
        }
        if args.smtp_username.is_some() {
            body["smtp_password"] = json!(read_line("SMTP password")?);
        }
    } else {
        body["url"] = json!(read_line("URL")?);
    }
    Ok(body)
}

fn channel_line(channel: &Value) -> String {
    let last = &channel["last_delivery"];
    let last = if last.is_null() {
        "no message yet".to_string()
    } else {
        let error = last["last_error"]
            .as_str()
            .map(|e| format!(" ({e})"))
            .unwrap_or_default();
        format!(
            "last: {} {}{error}",
            text(&last["event"]),
            text(&last["state"])
        )
    };
    let config = &channel["config"];
    let target = match config.get("url") {
        Some(url) => text(url),
        None => format!("{} → {}", text(&config["smtp_host"]), text(&config["to"])),
    };
    let events: Vec<String> = channel["events"]
        .as_array()
        .into_iter()
        .flatten()
        .map(text)
        .collect();
    format!(
        "{:<5} {:<8} {target}  [{}]  {last}",
        text(&channel["id"]),
        text(&channel["kind"]),
        events.join(", ")
    )
}

pub async fn notify(command: NotifyCommand) -> anyhow::Result<ExitCode> {
    match command {
        NotifyCommand::List(args) => {
            let api = args.connection.api()?;
            let path = match &args.app {
                Some(app) => format!("/apps/{app}/notifications"),
                None => "/notifications".into(),
            };
            let channels = api.get(&path).await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&channels)?);
            } else {
                for channel in channels.as_array().into_iter().flatten() {
                    println!("{}", channel_line(channel));
                }
            }
        }
        NotifyCommand::Add(args) => {
            let api = args.connection.api()?;
            let path = match &args.app {
                Some(app) => format!("/apps/{app}/notifications"),
                None => "/notifications".into(),
            };
            let body = add_body(&args)?;
            let added = api.send(reqwest::Method::POST, &path, Some(body)).await?;
            println!("added channel {}", channel_line(&added));
            if let Some(secret) = added["signing_secret"].as_str() {
                println!("signing secret (shown this once; X-Capstan-Signature is HMAC-SHA256 of \"<t>.<body>\"): {secret}");
            }
        }
        NotifyCommand::Remove(args) => {
            let api = args.connection.api()?;
            let path = format!("/notifications/{}", args.id);
            api.send(reqwest::Method::DELETE, &path, None).await?;
            println!("channel {} removed", args.id);
        }
        NotifyCommand::Test(args) => {
            let api = args.connection.api()?;
            let path = format!("/notifications/{}/test", args.id);
            let result = api.send(reqwest::Method::POST, &path, None).await?;
            if result["delivered"] == json!(true) {
                println!("test message delivered to channel {}", args.id);
            } else {
                println!("not delivered: {}", text(&result["error"]));
                return Ok(ExitCode::FAILURE);
            }
        }
        NotifyCommand::Deliveries(args) => {
            let api = args.connection.api()?;
            let rows = api
                .get(&format!("/notifications/{}/deliveries", args.id))
                .await?;
            for row in rows.as_array().into_iter().flatten() {
                println!(
                    "{:<6} {:<24} {:<9} tries {}  {}  {}",
                    text(&row["id"]),
                    text(&row["event"]),
                    text(&row["state"]),
                    text(&row["attempts"]),
                    text(&row["created_at"]),
                    text(&row["last_error"])
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        Value::Array(items) => items.iter().map(text).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    }
}
