//! `capstan server add|list|show|remove|check|trust`: the hosts apps run on. `add` prints the
//! public key line to put in the server's `authorized_keys`; `check` exits non-zero when
//! a preflight check fails.

use crate::client::Connection;
use serde_json::{json, Value};
use std::process::ExitCode;

#[derive(Debug, clap::Subcommand)]
pub enum ServerCommand {
    /// Add a server; prints the public key to put in its `authorized_keys`.
    Add(AddArgs),
    /// List servers.
    List(ReadArgs),
    /// Show a server's settings, public key and the apps that target it.
    Show(NamedArgs),
    /// Remove a server (refused for `local` and while apps target it).
    Remove(NamedArgs),
    /// Run a server's preflight checks; exits with 1 when one fails.
    Check(NamedArgs),
    /// Pin the host key a server must present (as its first check showed it, once compared
    /// with `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` on the server).
    Trust(TrustArgs),
}

#[derive(Debug, clap::Args)]
pub struct TrustArgs {
    name: String,
    /// `SHA256:...`, as `ssh-keygen -lf` prints it.
    fingerprint: String,
    #[command(flatten)]
    connection: Connection,
}

#[derive(Debug, clap::Args)]
pub struct AddArgs {
    name: String,
    /// The server's host name or IP address.
    #[arg(long)]
    host: String,
    /// The SSH port (default 22).
    #[arg(long)]
    port: Option<u16>,
    /// The user Capstan logs in as (default root).
    #[arg(long)]
    user: Option<String>,
    /// The host key fingerprint to pin, as `ssh-keygen -lf` prints it (`SHA256:...`).
    #[arg(long)]
    fingerprint: Option<String>,
    /// `ssh` (default) or `swarm` (a Docker Swarm manager).
    #[arg(long)]
    kind: Option<String>,
    /// The port the server's proxy serves HTTP on (default 80).
    #[arg(long)]
    proxy_http_port: Option<u16>,
    /// The port the server's proxy serves HTTPS on (default 443).
    #[arg(long)]
    proxy_https_port: Option<u16>,
    /// The prefix of the Docker objects Capstan owns there (default: the instance's name).
    #[arg(long)]
    namespace: Option<String>,
    /// The Docker engine's socket on the server (default /var/run/docker.sock; a rootless
    /// engine's is /run/user/UID/docker.sock).
    #[arg(long)]
    docker_socket: Option<String>,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    connection: Connection,
}

#[derive(Debug, clap::Args)]
pub struct ReadArgs {
    /// Print the API's JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    connection: Connection,
}

#[derive(Debug, clap::Args)]
pub struct NamedArgs {
    name: String,
    /// Print the API's JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    connection: Connection,
}

pub async fn server(command: ServerCommand) -> anyhow::Result<ExitCode> {
    match command {
        ServerCommand::Add(args) => add(args).await,
        ServerCommand::List(args) => list(args).await,
        ServerCommand::Show(args) => {
            let api = args.connection.api()?;
            let server = api.get(&format!("/servers/{}", args.name)).await?;
            print(&server, args.json, describe)
        }
        ServerCommand::Remove(args) => {
            let api = args.connection.api()?;
            let path = format!("/servers/{}", args.name);
            api.send(reqwest::Method::DELETE, &path, None).await?;
            println!("server {} removed", args.name);
            Ok(ExitCode::SUCCESS)
        }
        ServerCommand::Check(args) => check(args).await,
        ServerCommand::Trust(args) => {
            let api = args.connection.api()?;
            let path = format!("/servers/{}/host-key", args.name);
            let body = json!({ "fingerprint": args.fingerprint });
            api.send(reqwest::Method::PUT, &path, Some(body)).await?;
            println!("server {}: host key {} pinned", args.name, args.fingerprint);
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn add(args: AddArgs) -> anyhow::Result<ExitCode> {
    let api = args.connection.api()?;
    let mut body = json!({ "name": args.name, "host": args.host });
    let optional = [
        ("port", args.port.map(|p| json!(p))),
        ("user", args.user.map(|u| json!(u))),
        ("host_key_fingerprint", args.fingerprint.map(|f| json!(f))),
        ("kind", args.kind.map(|k| json!(k))),
        ("proxy_http_port", args.proxy_http_port.map(|p| json!(p))),
        ("proxy_https_port", args.proxy_https_port.map(|p| json!(p))),
        ("namespace", args.namespace.map(|n| json!(n))),
        ("docker_socket", args.docker_socket.map(|n| json!(n))),
    ];
    for (key, value) in optional {
        if let Some(value) = value {
            body[key] = value;
        }
    }
    let server = api
        .send(reqwest::Method::POST, "/servers", Some(body))
        .await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&server)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("server {} added", text(&server["name"]));
    println!(
        "Add this line to ~{}/.ssh/authorized_keys on {}:",
        text(&server["user"]),
        text(&server["host"])
    );
    println!("{}", text(&server["public_key"]));
    if server["host_key_fingerprint"].is_null() {
        println!("(no host key fingerprint given: it is pinned on first contact)");
    }
    Ok(ExitCode::SUCCESS)
}

async fn list(args: ReadArgs) -> anyhow::Result<ExitCode> {
    let api = args.connection.api()?;
    let servers = api.get("/servers").await?;
    print(&servers, args.json, |servers| {
        let mut lines = vec![format!(
            "{:<20} {:<6} {:<30} {:<12} APPS",
            "NAME", "KIND", "ADDRESS", "NAMESPACE"
        )];
        for s in servers.as_array().into_iter().flatten() {
            lines.push(format!(
                "{:<20} {:<6} {:<30} {:<12} {}",
                text(&s["name"]),
                text(&s["kind"]),
                address(s),
                text(&s["namespace"]),
                names(&s["apps"])
            ));
        }
        lines.join("\n")
    })
}

async fn check(args: NamedArgs) -> anyhow::Result<ExitCode> {
    let api = args.connection.api()?;
    let path = format!("/servers/{}/check", args.name);
    let result = api.send(reqwest::Method::POST, &path, None).await?;
    let ok = result["ok"] == json!(true);
    print(&result, args.json, |result| {
        let mut lines = Vec::new();
        for c in result["checks"].as_array().into_iter().flatten() {
            let mark = if c["ok"] == json!(true) {
                "ok  "
            } else {
                "FAIL"
            };
            lines.push(format!(
                "{mark} {:<15} {}",
                text(&c["name"]),
                text(&c["detail"])
            ));
        }
        let verdict = if ok { "ready" } else { "not ready" };
        lines.push(format!("server {}: {verdict}", args.name));
        lines.join("\n")
    })?;
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn print(value: &Value, json: bool, human: impl Fn(&Value) -> String) -> anyhow::Result<ExitCode> {
    if json {
        println!("{}", serde_json::to_string_pretty(value)?);
    } else {
        println!("{}", human(value));
    }
    Ok(ExitCode::SUCCESS)
}

fn describe(s: &Value) -> String {
    let fields = [
        ("name", text(&s["name"])),
        ("kind", text(&s["kind"])),
        ("address", address(s)),
        ("fingerprint", text(&s["host_key_fingerprint"])),
        ("namespace", text(&s["namespace"])),
        ("docker socket", text(&s["docker_socket"])),
        (
            "proxy ports",
            format!(
                "{} / {}",
                text(&s["proxy_http_port"]),
                text(&s["proxy_https_port"])
            ),
        ),
        ("build slots", text(&s["build_slots"])),
        ("labels", s["labels"].to_string()),
        ("apps", names(&s["apps"])),
        ("public key", text(&s["public_key"])),
    ];
    fields
        .iter()
        .map(|(k, v)| format!("{k:<12} {v}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `user@host:port`, or `-` for a server without an address (`local`).
fn address(s: &Value) -> String {
    match s["host"].as_str() {
        Some(host) if !host.is_empty() => format!("{}@{host}:{}", text(&s["user"]), s["port"]),
        _ => "-".into(),
    }
}

fn names(list: &Value) -> String {
    let names: Vec<String> = list.as_array().into_iter().flatten().map(text).collect();
    if names.is_empty() {
        "-".into()
    } else {
        names.join(",")
    }
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}
