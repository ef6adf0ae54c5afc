//! The client subcommands: talk to a daemon's API with a bearer token.

use anyhow::{bail, Context};
use futures::StreamExt;
use serde_json::Value;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Connection {
    /// The daemon's API address.
    #[arg(long, env = "CAPSTAN_URL", default_value = "http://127.0.0.1:8000")]
    url: String,
    /// API token; default: the admin token in the data dir.
    #[arg(long, env = "CAPSTAN_TOKEN", hide_env_values = true)]
    token: Option<String>,
    #[arg(long, env = "CAPSTAN_DATA_DIR", default_value = "/var/lib/capstan")]
    data_dir: PathBuf,
}

impl Connection {
    fn token(&self) -> anyhow::Result<String> {
        if let Some(token) = &self.token {
            return Ok(token.clone());
        }
        let path = self.data_dir.join("admin-token");
        let token = std::fs::read_to_string(&path)
            .with_context(|| format!("no --token given and cannot read {}", path.display()))?;
        Ok(token.trim().to_string())
    }

    pub(crate) fn client(&self) -> anyhow::Result<(reqwest::Client, String, String)> {
        Ok((
            reqwest::Client::new(),
            self.url.trim_end_matches('/').to_string(),
            self.token()?,
        ))
    }
}

#[derive(Debug, clap::Args)]
pub struct DeployArgs {
    app: String,
    /// Git branch, tag or commit to deploy instead of the app's configured ref.
    #[arg(long = "ref")]
    git_ref: Option<String>,
    /// Follow the log and exit non-zero if the deployment fails.
    #[arg(long)]
    wait: bool,
    #[command(flatten)]
    connection: Connection,
}

#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    /// A deployment id (its deployment log) or an app name (the running app's own output,
    /// every replica and companion).
    target: String,
    /// Keep printing new lines (a deployment's until it ends, an app's until stopped).
    #[arg(long, short)]
    follow: bool,
    /// With an app: lines per container to start with.
    #[arg(long, default_value_t = 100)]
    tail: usize,
    #[command(flatten)]
    connection: Connection,
}

/// A request body that names a git ref, or an empty object.
pub(crate) fn ref_body(git_ref: Option<&str>) -> Value {
    match git_ref {
        Some(r) => serde_json::json!({ "ref": r }),
        None => serde_json::json!({}),
    }
}

pub(crate) async fn check(response: reqwest::Response) -> anyhow::Result<reqwest::Response> {
    if response.status().is_success() {
        return Ok(response);
    }
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    let message = body
        .get("error")
        .and_then(Value::as_str)
        .unwrap_or("(no message)");
    bail!("{status}: {message}")
}

pub async fn deploy(args: DeployArgs) -> anyhow::Result<ExitCode> {
    let (http, base, token) = args.connection.client()?;
    let body = ref_body(args.git_ref.as_deref());
    let response = http
        .post(format!("{base}/api/v1/apps/{}/deployments", args.app))
        .bearer_auth(&token)
        .json(&body)
        .send()
        .await?;
    let created: Value = check(response).await?.json().await?;
    let id = created["id"]
        .as_i64()
        .context("the daemon returned no deployment id")?;
    println!("deployment {id} queued");
    if !args.wait {
        return Ok(ExitCode::SUCCESS);
    }
    let state = follow(&http, &base, &token, id).await?;
    println!("deployment {id}: {state}");
    Ok(if state == "live" {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

pub async fn logs(args: LogsArgs) -> anyhow::Result<ExitCode> {
    let (http, base, token) = args.connection.client()?;
    let Ok(deployment) = args.target.parse::<i64>() else {
        return app_output(&http, &base, &token, &args).await;
    };
    if args.follow {
        let state = follow(&http, &base, &token, deployment).await?;
        println!("deployment {deployment}: {state}");
        return Ok(ExitCode::SUCCESS);
    }
    let response = http
        .get(format!("{base}/api/v1/deployments/{deployment}/logs"))
        .bearer_auth(&token)
        .send()
        .await?;
    print!("{}", check(response).await?.text().await?);
    Ok(ExitCode::SUCCESS)
}

/// `capstan logs APP`: the running app's output, printed as it arrives.
async fn app_output(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    args: &LogsArgs,
) -> anyhow::Result<ExitCode> {
    let response = http
        .get(format!("{base}/api/v1/apps/{}/logs", args.target))
        .query(&[
            ("tail", args.tail.to_string()),
            ("follow", args.follow.to_string()),
        ])
        .bearer_auth(token)
        .send()
        .await?;
    let mut stream = check(response).await?.bytes_stream();
    let mut buffer = String::new();
    let mut event = String::new();
    while let Some(chunk) = stream.next().await {
        let chunk = String::from_utf8_lossy(&chunk?).into_owned();
        if !args.follow {
            print!("{chunk}");
            continue;
        }
        buffer.push_str(&chunk);
        while let Some(pos) = buffer.find('\n') {
            let line: String = buffer.drain(..=pos).collect();
            let line = line.trim_end_matches(['\r', '\n']);
            if let Some(name) = line.strip_prefix("event: ") {
                event = name.to_string();
            } else if let Some(data) = line.strip_prefix("data: ") {
                if event == "log" {
                    println!("{data}");
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints a deployment's log as it streams and returns its final state.
async fn follow(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    id: i64,
) -> anyhow::Result<String> {
    let response = http
        .get(format!("{base}/api/v1/deployments/{id}/logs?follow=true"))
        .bearer_auth(token)
        .send()
        .await?;
    let mut stream = check(response).await?.bytes_stream();
    let mut buffer = String::new();
    let mut event = String::new();
    while let Some(chunk) = stream.next().await {
        buffer.push_str(&String::from_utf8_lossy(&chunk?));
        while let Some(pos) = buffer.find('\n') {
            let line: String = buffer.drain(..=pos).collect();
            let line = line.trim_end_matches(['\r', '\n']);
            if let Some(name) = line.strip_prefix("event: ") {
                event = name.to_string();
            } else if let Some(data) = line.strip_prefix("data: ") {
                if event == "end" {
                    let end: Value = serde_json::from_str(data).unwrap_or(Value::Null);
                    return Ok(end["state"].as_str().unwrap_or("unknown").to_string());
                }
                println!("{data}");
            }
        }
    }
    bail!("the log stream ended before the deployment did")
}
