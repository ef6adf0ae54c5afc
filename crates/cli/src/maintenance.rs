//! `capstan maintenance APP on|off|status`: an app's maintenance mode at the proxy.

use crate::client::Connection;
use serde_json::{json, Value};
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct MaintenanceArgs {
    app: String,
    /// `on` (every request but the health path gets a 503 page), `off`, or `status`.
    #[arg(value_enum, default_value_t = Switch::Status)]
    switch: Switch,
    /// With `on`: the page's text (default: a generic "down for maintenance").
    #[arg(long)]
    message: Option<String>,
    /// With `on`: seconds sent as `Retry-After` (default 300).
    #[arg(long)]
    retry_after: Option<u32>,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    connection: Connection,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Switch {
    On,
    Off,
    Status,
}

pub async fn maintenance(args: MaintenanceArgs) -> anyhow::Result<ExitCode> {
    let api = args.connection.api()?;
    let path = format!("/apps/{}/maintenance", args.app);
    if args.switch != Switch::On && (args.message.is_some() || args.retry_after.is_some()) {
        anyhow::bail!("--message and --retry-after go with `on`");
    }
    let state = match args.switch {
        Switch::Status => api.get(&path).await?,
        Switch::Off => api.send(reqwest::Method::DELETE, &path, None).await?,
        Switch::On => {
            let mut page = serde_json::Map::new();
            if let Some(message) = args.message {
                page.insert("message".into(), json!(message));
            }
            if let Some(secs) = args.retry_after {
                page.insert("retry_after_secs".into(), json!(secs));
            }
            api.send(reqwest::Method::PUT, &path, Some(Value::Object(page)))
                .await?
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&state)?);
    } else {
        println!("{}", describe(&args.app, &state));
    }
    Ok(ExitCode::SUCCESS)
}

fn describe(app: &str, state: &Value) -> String {
    if state["enabled"] != json!(true) {
        return format!("{app}: maintenance off (traffic goes to the app)");
    }
    let mut line = format!(
        "{app}: maintenance on since {} by {} (503, Retry-After {}s): {}",
        state["since"].as_str().unwrap_or("?"),
        state["actor"].as_str().unwrap_or("?"),
        state["retry_after_secs"],
        state["message"].as_str().unwrap_or("")
    );
    if state["applied"] != json!(true) {
        line.push_str("\n(nothing is live yet: the page is shown once a version goes live)");
    }
    line
}
