//! `capstan app webhooks APP [--rotate]`: the app's webhook secret and, per forge, the URL
//! to paste there and the header it signs in (the secret is created on the first look;
//! `--rotate` replaces it, and deliveries signed with the old one are refused).

use crate::client::Connection;
use serde_json::Value;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct WebhooksArgs {
    app: String,
    /// Replace the secret with a new one (give it to each forge again).
    #[arg(long)]
    rotate: bool,
    /// Print the API's JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    connection: Connection,
}

pub async fn webhooks(args: WebhooksArgs) -> anyhow::Result<ExitCode> {
    let api = args.connection.api()?;
    let path = format!("/apps/{}/webhooks", args.app);
    let shown = if args.rotate {
        api.send(reqwest::Method::POST, &path, None).await?
    } else {
        api.get(&path).await?
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&shown)?);
        return Ok(ExitCode::SUCCESS);
    }
    if args.rotate {
        println!("new secret (the old one no longer verifies):");
    }
    println!("secret  {}", text(&shown["secret"]));
    for provider in shown["providers"].as_array().into_iter().flatten() {
        let events: Vec<String> = provider["events"]
            .as_array()
            .into_iter()
            .flatten()
            .map(text)
            .collect();
        println!(
            "{:<10} {}  header {}  events {}",
            text(&provider["provider"]),
            text(&provider["url"]),
            text(&provider["signature_header"]),
            events.join(", ")
        );
    }
    println!("(the URLs use the address this command reached the daemon at; content type application/json)");
    Ok(ExitCode::SUCCESS)
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}
