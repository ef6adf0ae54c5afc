//! Client commands that manage apps: `apps`, `app create|show`, `rollback`, `restart`,
//! `secrets set|list|rm`, `status`, `login`. Read commands take `--json`; errors are one
//! line.

use crate::client::{check, follow_to_end, Api, Connection};
use anyhow::{bail, Context};
use serde_json::{json, Value};
use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct AppsArgs {
    /// Print the API's JSON instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    connection: Connection,
}

#[derive(Debug, clap::Subcommand)]
pub enum AppCommand {
    /// Create an app from flags or from a JSON or TOML file of settings.
    Create(AppCreateArgs),
    /// Show an app's settings and live deployment.
    Show(AppShowArgs),
    /// Show the app's forge webhook secret and URLs (`--rotate` replaces the secret).
    Webhooks(crate::webhooks::WebhooksArgs),
}

#[derive(Debug, clap::Args)]
pub struct AppCreateArgs {
    name: String,
    /// Deploy from this git repository.
    #[arg(long, conflicts_with_all = ["image", "file"])]
    git: Option<String>,
    /// Branch, tag or commit of `--git` (default main).
    #[arg(long = "ref", requires = "git")]
    git_ref: Option<String>,
    /// Run this image.
    #[arg(long, conflicts_with = "file")]
    image: Option<String>,
    /// Settings as a JSON (`.json`) or TOML (`.toml`) file, as the API takes them.
    #[arg(long)]
    file: Option<std::path::PathBuf>,
    /// A domain the proxy routes to the app (repeat for more).
    #[arg(long = "domain")]
    domains: Vec<String>,
    #[arg(long)]
    port: Option<u16>,
    /// `KEY=VALUE` environment variables (repeat for more).
    #[arg(long = "env")]
    env: Vec<String>,
    /// A server the app runs on (repeat for more; default `local`).
    #[arg(long = "server")]
    servers: Vec<String>,
    /// The server that builds the app's images (default: the first of its servers); the
    /// image is moved from it to each server that runs the app.
    #[arg(long)]
    build_server: Option<String>,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    connection: Connection,
}

#[derive(Debug, clap::Args)]
pub struct AppShowArgs {
    name: String,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    connection: Connection,
}

#[derive(Debug, clap::Args)]
pub struct RollbackArgs {
    app: String,
    /// The deployment to return to (default: the previous successful release).
    #[arg(long = "to")]
    to: Option<i64>,
    /// Follow the log and exit non-zero if it fails.
    #[arg(long)]
    wait: bool,
    #[command(flatten)]
    connection: Connection,
}

#[derive(Debug, clap::Args)]
pub struct RestartArgs {
    app: String,
    #[arg(long)]
    wait: bool,
    #[command(flatten)]
    connection: Connection,
}

#[derive(Debug, clap::Subcommand)]
pub enum SecretsCommand {
    /// Set a secret; the value comes from `--value` or standard input.
    Set(SecretSetArgs),
    /// List an app's secrets (names only; values are never shown).
    List(SecretListArgs),
    /// Remove a secret.
    Rm(SecretRmArgs),
}

#[derive(Debug, clap::Args)]
pub struct SecretSetArgs {
    app: String,
    name: String,
    /// The value (default: read from standard input, so it stays out of shell history).
    #[arg(long)]
    value: Option<String>,
    /// Also give it to builds: as a BuildKit secret (`RUN --mount=type=secret,id=NAME`, and
    /// read into the Dockerfile's `ARG NAME`), or as a build argument where the engine
    /// has no BuildKit.
    #[arg(long)]
    build: bool,
    #[command(flatten)]
    connection: Connection,
}

#[derive(Debug, clap::Args)]
pub struct SecretListArgs {
    app: String,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    connection: Connection,
}

#[derive(Debug, clap::Args)]
pub struct SecretRmArgs {
    app: String,
    name: String,
    #[command(flatten)]
    connection: Connection,
}

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    connection: Connection,
}

#[derive(Debug, clap::Args)]
pub struct LoginArgs {
    /// The daemon's URL, e.g. https://paas.example.com
    url: String,
    /// The token (default: asked for on standard input).
    #[arg(long, env = "CAPSTAN_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

fn print_json(value: &Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Rows as aligned columns, the first row being the header.
fn print_table(rows: &[Vec<String>]) {
    let widths: Vec<usize> = (0..rows.first().map_or(0, Vec::len))
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        println!("{}", cells.join("  ").trim_end());
    }
}

pub async fn apps(args: AppsArgs) -> anyhow::Result<ExitCode> {
    let api = args.connection.api()?;
    let list = api.get("/apps").await?;
    if args.json {
        print_json(&list)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut rows = vec![vec![
        "NAME".to_string(),
        "LIVE".into(),
        "COMMIT".into(),
        "DOMAINS".into(),
    ]];
    for app in list.as_array().into_iter().flatten() {
        let live = &app["live"];
        rows.push(vec![
            text(&app["name"]),
            live["id"]
                .as_i64()
                .map_or("-".into(), |id| format!("#{id}")),
            live["commit"]
                .as_str()
                .map_or("-".into(), |c| c.chars().take(8).collect()),
            app["domains"]
                .as_array()
                .map(|d| d.iter().map(text).collect::<Vec<_>>().join(","))
                .filter(|d| !d.is_empty())
                .unwrap_or_else(|| "-".into()),
        ]);
    }
    print_table(&rows);
    Ok(ExitCode::SUCCESS)
}

pub async fn app(command: AppCommand) -> anyhow::Result<ExitCode> {
    match command {
        AppCommand::Create(args) => create(args).await,
        AppCommand::Webhooks(args) => crate::webhooks::webhooks(args).await,
        AppCommand::Show(args) => {
            let api = args.connection.api()?;
            let app = api.get(&format!("/apps/{}", args.name)).await?;
            if args.json {
                print_json(&app)?;
            } else {
                let live = &app["live"];
                println!("app:     {}", text(&app["name"]));
                println!("source:  {}", app["source"]);
                println!("domains: {}", app["domains"]);
                println!("servers: {}", app["servers"]);
                if let Some(builder) = app["build_server"].as_str() {
                    println!("builds on: {builder}");
                }
                println!(
                    "live:    {}",
                    live["id"].as_i64().map_or("none".into(), |id| format!(
                        "#{id} ({}, {} by {})",
                        text(&live["commit"]),
                        text(&live["trigger"]),
                        text(&live["actor"])
                    ))
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn create(args: AppCreateArgs) -> anyhow::Result<ExitCode> {
    let mut body: Value = match &args.file {
        Some(path) => {
            let raw = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            if path.extension().is_some_and(|e| e == "toml") {
                let value: toml::Value =
                    toml::from_str(&raw).with_context(|| format!("{}", path.display()))?;
                serde_json::to_value(value)?
            } else {
                serde_json::from_str(&raw).with_context(|| format!("{}", path.display()))?
            }
        }
        None => match (&args.git, &args.image) {
            (Some(url), _) => json!({"source": {"git": {
                "url": url, "ref": args.git_ref.clone().unwrap_or_else(|| "main".into())
            }}}),
            (None, Some(image)) => json!({"source": {"image": image}}),
            (None, None) => bail!("give --git URL, --image REF or --file SETTINGS"),
        },
    };
    let object = body
        .as_object_mut()
        .context("the settings must be an object")?;
    object.insert("name".into(), json!(args.name));
    if !args.domains.is_empty() {
        object.insert("domains".into(), json!(args.domains));
    }
    if let Some(port) = args.port {
        object.insert("port".into(), json!(port));
    }
    if !args.servers.is_empty() {
        object.insert("servers".into(), json!(args.servers));
    }
    if let Some(builder) = &args.build_server {
        object.insert("build_server".into(), json!(builder));
    }
    if !args.env.is_empty() {
        let mut env = serde_json::Map::new();
        for pair in &args.env {
            let (key, value) = pair
                .split_once('=')
                .with_context(|| format!("--env {pair:?}: expected KEY=VALUE"))?;
            env.insert(key.into(), json!(value));
        }
        object.insert("env".into(), Value::Object(env));
    }
    let api = args.connection.api()?;
    let created = api.send(reqwest::Method::POST, "/apps", Some(body)).await?;
    if args.json {
        print_json(&created)?;
    } else {
        println!("app {} created", text(&created["name"]));
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints a queued deployment and, with `wait`, follows it; failure is a non-zero exit.
async fn queued(api: &Api, answer: Value, wait: bool) -> anyhow::Result<ExitCode> {
    let id = answer["id"]
        .as_i64()
        .context("the daemon returned no deployment id")?;
    println!("deployment {id} queued");
    if !wait {
        return Ok(ExitCode::SUCCESS);
    }
    follow_to_end(api, id).await
}

pub async fn rollback(args: RollbackArgs) -> anyhow::Result<ExitCode> {
    let api = args.connection.api()?;
    let body = match args.to {
        Some(id) => json!({ "deployment": id }),
        None => json!({}),
    };
    let answer = api
        .send(
            reqwest::Method::POST,
            &format!("/apps/{}/rollback", args.app),
            Some(body),
        )
        .await?;
    queued(&api, answer, args.wait).await
}

pub async fn restart(args: RestartArgs) -> anyhow::Result<ExitCode> {
    let api = args.connection.api()?;
    let answer = api
        .send(
            reqwest::Method::POST,
            &format!("/apps/{}/restart", args.app),
            None,
        )
        .await?;
    queued(&api, answer, args.wait).await
}

pub async fn secrets(command: SecretsCommand) -> anyhow::Result<ExitCode> {
    match command {
        SecretsCommand::Set(args) => {
            let value = match args.value {
                Some(value) => value,
                None => {
                    if std::io::stdin().is_terminal() {
                        eprint!("value for {}: ", args.name);
                    }
                    let mut line = String::new();
                    std::io::stdin().lock().read_line(&mut line)?;
                    line.trim_end_matches(['\r', '\n']).to_string()
                }
            };
            let api = args.connection.api()?;
            let answer = api
                .send(
                    reqwest::Method::PUT,
                    &format!("/apps/{}/secrets/{}", args.app, args.name),
                    Some(json!({"value": value, "build": args.build})),
                )
                .await?;
            println!("secret {} of {} set", args.name, args.app);
            if let Some(warning) = answer["warning"].as_str() {
                eprintln!("warning: {warning}");
            }
        }
        SecretsCommand::List(args) => {
            let api = args.connection.api()?;
            let list = api.get(&format!("/apps/{}/secrets", args.app)).await?;
            if args.json {
                print_json(&list)?;
            } else {
                let mut rows = vec![vec!["NAME".to_string(), "BUILD".into(), "UPDATED".into()]];
                for secret in list.as_array().into_iter().flatten() {
                    rows.push(vec![
                        text(&secret["name"]),
                        text(&secret["build"]),
                        text(&secret["updated_at"]),
                    ]);
                }
                print_table(&rows);
            }
        }
        SecretsCommand::Rm(args) => {
            let api = args.connection.api()?;
            api.send(
                reqwest::Method::DELETE,
                &format!("/apps/{}/secrets/{}", args.app, args.name),
                None,
            )
            .await?;
            println!("secret {} of {} removed", args.name, args.app);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `capstan login URL`: checks the token against the daemon and stores both, mode 0600.
pub async fn login(args: LoginArgs) -> anyhow::Result<ExitCode> {
    let token = match args.token {
        Some(token) => token,
        None => {
            if std::io::stdin().is_terminal() {
                eprint!("API token for {}: ", args.url);
            }
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line)?;
            line.trim().to_string()
        }
    };
    if token.is_empty() {
        bail!("no token given");
    }
    let url = args.url.trim_end_matches('/').to_string();
    let response = reqwest::Client::new()
        .get(format!("{url}/api/v1/apps"))
        .bearer_auth(&token)
        .send()
        .await
        .with_context(|| format!("cannot reach {url}"))?;
    check(response).await?;
    let path = crate::client::save_login(&url, &token)?;
    println!("logged in to {url} (saved in {})", path.display());
    Ok(ExitCode::SUCCESS)
}

/// A size from the API in the unit that reads best, or `-`.
fn size(bytes: &Value) -> String {
    bytes.as_u64().map_or("-".into(), capstan_core::units::size)
}

/// `capstan status`: the daemon, engine, proxy and queue at a glance.
pub async fn status(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let api = args.connection.api()?;
    let status = api.get("/server").await?;
    if args.json {
        print_json(&status)?;
        return Ok(ExitCode::SUCCESS);
    }
    let daemon = &status["daemon"];
    let engine = &status["engine"];
    println!(
        "daemon  {} (instance {}), {} resident",
        text(&daemon["version"]),
        text(&daemon["instance"]),
        size(&daemon["rss_bytes"])
    );
    if engine["reachable"].as_bool() == Some(true) {
        println!(
            "engine  Docker {} (API {}, {}, {} builder), {} images of this instance, {}",
            text(&engine["version"]),
            text(&engine["api_version"]),
            text(&engine["platform"]),
            text(&engine["builder"]),
            text(&engine["images"]),
            size(&engine["image_bytes"])
        );
    } else {
        println!("engine  NOT REACHABLE: {}", text(&engine["error"]));
    }
    println!("proxy   {}", text(&status["proxy"]));
    let disk = &status["disk"];
    if disk.is_object() {
        println!(
            "disk    {}% used, {} free under {}",
            text(&disk["used_percent"]),
            size(&disk["free_bytes"]),
            text(&disk["engine_root"])
        );
    } else {
        println!("disk    unknown (the engine is not local)");
    }
    println!("apps    {}", text(&status["apps"]));
    println!(
        "queue   {} queued, {} running",
        text(&status["queue"]["queued"]),
        text(&status["queue"]["running"])
    );
    Ok(ExitCode::SUCCESS)
}
