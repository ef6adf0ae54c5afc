//! The client's connection to a daemon (URL and token from flags, the environment, the
//! file `capstan login` saved, or the admin token in the data dir) and the commands that
//! follow deployments: `deploy`, `logs`.

use anyhow::{bail, Context};
use futures::StreamExt;
use serde_json::Value;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

/// Where `capstan serve` listens unless told otherwise.
const DEFAULT_URL: &str = "http://127.0.0.1:8000";

/// The file in the data dir where `capstan serve` writes the URL its API answers at, so
/// the client that takes the admin token from that dir talks to that same daemon.
pub(crate) const API_URL_FILE: &str = "api-url";

#[derive(Debug, clap::Args)]
pub struct Connection {
    /// The daemon's API address (default: the one `capstan login` saved, else the one the
    /// daemon wrote to its data dir, else http://127.0.0.1:8000).
    #[arg(long, env = "CAPSTAN_URL")]
    url: Option<String>,
    /// API token (default: the one `capstan login` saved, else the admin token in the data
    /// dir).
    #[arg(long, env = "CAPSTAN_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// The daemon's data dir, where the admin token and the API's URL are read from when
    /// neither `--token` nor `capstan login` gives them.
    #[arg(long, env = "CAPSTAN_DATA_DIR", default_value = "/var/lib/capstan")]
    data_dir: PathBuf,
}

/// The file `capstan login` writes: `$XDG_CONFIG_HOME/capstan/login.json` (or
/// `~/.config/...`).
fn login_file() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("capstan").join("login.json"))
}

fn saved_login() -> Option<(String, String)> {
    let text = std::fs::read_to_string(login_file()?).ok()?;
    let value: Value = serde_json::from_str(&text).ok()?;
    Some((
        value["url"].as_str()?.to_string(),
        value["token"].as_str()?.to_string(),
    ))
}

/// Saves the URL and token for later commands, readable by the user only.
pub(crate) fn save_login(url: &str, token: &str) -> anyhow::Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let path = login_file().context("neither XDG_CONFIG_HOME nor HOME is set")?;
    let dir = path.parent().expect("the login file has a directory");
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let body = serde_json::json!({ "url": url, "token": token });
    crate::serve::write_private(&path, format!("{body}\n"))?;
    Ok(path)
}

impl Connection {
    pub(crate) fn api(&self) -> anyhow::Result<Api> {
        let (saved_url, token) = match (&self.token, saved_login()) {
            (Some(token), saved) => (saved.map(|(url, _)| url), token.clone()),
            (None, Some((url, token))) => (Some(url), token),
            (None, None) => {
                // The admin token of a data dir goes only to the daemon of that dir.
                let path = self.data_dir.join("admin-token");
                let token = std::fs::read_to_string(&path).with_context(|| {
                    format!(
                        "no --token, no `capstan login`, and cannot read {}",
                        path.display()
                    )
                })?;
                let url = std::fs::read_to_string(self.data_dir.join(API_URL_FILE))
                    .ok()
                    .map(|url| url.trim().to_string())
                    .filter(|url| !url.is_empty());
                (url, token.trim().to_string())
            }
        };
        let url = self
            .url
            .clone()
            .or(saved_url)
            .unwrap_or_else(|| DEFAULT_URL.to_string());
        Ok(Api {
            http: reqwest::Client::new(),
            base: url.trim_end_matches('/').to_string(),
            token,
        })
    }
}

/// The line printed when the daemon cannot be reached: the URL tried and how to choose
/// another.
pub(crate) fn unreachable_hint(err: &anyhow::Error) -> Option<String> {
    let failed = err
        .chain()
        .filter_map(|cause| cause.downcast_ref::<reqwest::Error>())
        .find(|e| e.is_connect())?;
    let tried = failed.url().map_or_else(
        || "the daemon".to_string(),
        |url| format!("{}://{}", url.scheme(), url.authority()),
    );
    Some(format!(
        "cannot reach a Capstan daemon at {tried} (is `capstan serve` running there?); \
         choose the daemon with --url or CAPSTAN_URL, or save it with `capstan login URL`"
    ))
}

/// A daemon's API with a token.
pub(crate) struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    /// The address of a panel page (`path` from `/`) on the same daemon.
    pub(crate) fn page_url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub(crate) fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}/api/v1{path}", self.base))
            .bearer_auth(&self.token)
    }

    /// GET `path` (under `/api/v1`) as JSON.
    pub(crate) async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let response = self.request(reqwest::Method::GET, path).send().await?;
        Ok(check(response).await?.json().await?)
    }

    /// Sends a request with an optional JSON body; the answer's JSON (`Null` if none).
    pub(crate) async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let mut request = self.request(method, path);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = check(request.send().await?).await?;
        let text = response.text().await?;
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

#[derive(Debug, clap::Args)]
pub struct DeployArgs {
    #[arg(required_unless_present = "cancel")]
    app: Option<String>,
    /// Cancel deployment ID instead of queueing one: a queued one at once, a running one
    /// at its next step before its traffic switch (as `capstan cancel ID`).
    #[arg(long, value_name = "ID", conflicts_with_all = ["app", "git_ref", "no_cache"])]
    cancel: Option<i64>,
    /// Git branch, tag or commit to deploy instead of the app's configured ref.
    #[arg(long = "ref")]
    git_ref: Option<String>,
    /// Build from scratch: no image reuse, no layer cache.
    #[arg(long)]
    no_cache: bool,
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
    /// With an app: only this running container (as its lines are prefixed, e.g.
    /// `shop_d12_r2`).
    #[arg(long)]
    container: Option<String>,
    #[command(flatten)]
    connection: Connection,
}

/// The response, or its `{"error": ...}` as one line.
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
    let api = args.connection.api()?;
    if let Some(id) = args.cancel {
        return crate::cancel::cancel_id(&api, id, args.wait).await;
    }
    let app = args.app.context("name the app to deploy")?;
    let mut body = serde_json::json!({ "no_cache": args.no_cache });
    if let Some(reference) = &args.git_ref {
        body["ref"] = Value::String(reference.clone());
    }
    let created = api
        .send(
            reqwest::Method::POST,
            &format!("/apps/{app}/deployments"),
            Some(body),
        )
        .await?;
    let id = created["id"]
        .as_i64()
        .context("the daemon returned no deployment id")?;
    println!("deployment {id} queued");
    println!("  panel:  {}", api.page_url(&format!("/deployments/{id}")));
    if !args.wait {
        println!("  follow: capstan logs {id} --follow");
        return Ok(ExitCode::SUCCESS);
    }
    follow_to_end(&api, id).await
}

/// Follows a deployment to its end: on a terminal, each phase as a heading and the log
/// under it; elsewhere, the plain log. The final state decides the exit code.
pub(crate) async fn follow_to_end(api: &Api, id: i64) -> anyhow::Result<ExitCode> {
    let state = follow(api, id).await?;
    let record = api.get(&format!("/deployments/{id}")).await.ok();
    match record.as_ref().and_then(|r| r["error"].as_str()) {
        Some(error) => println!("deployment {id}: {state}: {error}"),
        _ => println!("deployment {id}: {state}"),
    }
    for line in record
        .as_ref()
        .map(crate::retry::server_lines)
        .unwrap_or_default()
    {
        println!("{line}");
    }
    // Live, but not on every server, is a failure for scripts: a retry is due.
    let failed_somewhere = record
        .as_ref()
        .and_then(|r| r["servers"].as_array())
        .is_some_and(|servers| servers.iter().any(|s| s["state"] == "failed"));
    Ok(if state == "live" && !failed_somewhere {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

pub async fn logs(args: LogsArgs) -> anyhow::Result<ExitCode> {
    let api = args.connection.api()?;
    let Ok(deployment) = args.target.parse::<i64>() else {
        return app_output(&api, &args).await;
    };
    if args.container.is_some() {
        bail!("--container chooses among an app's containers: give the app's name, not a deployment id");
    }
    if args.follow {
        let state = follow(&api, deployment).await?;
        println!("deployment {deployment}: {state}");
        return Ok(ExitCode::SUCCESS);
    }
    let response = api
        .request(
            reqwest::Method::GET,
            &format!("/deployments/{deployment}/logs"),
        )
        .send()
        .await?;
    print!("{}", check(response).await?.text().await?);
    Ok(ExitCode::SUCCESS)
}

/// Server-sent events as (event, data) pairs, from a response's byte stream.
pub(crate) struct Events {
    buffer: String,
    event: String,
}

impl Events {
    pub(crate) fn new() -> Self {
        Self {
            buffer: String::new(),
            event: String::new(),
        }
    }

    /// Feeds a chunk; returns the complete events it finished.
    pub(crate) fn push(&mut self, chunk: &[u8]) -> Vec<(String, String)> {
        self.buffer.push_str(&String::from_utf8_lossy(chunk));
        let mut out = Vec::new();
        while let Some(pos) = self.buffer.find('\n') {
            let line: String = self.buffer.drain(..=pos).collect();
            let line = line.trim_end_matches(['\r', '\n']);
            if let Some(name) = line.strip_prefix("event: ") {
                self.event = name.to_string();
            } else if let Some(data) = line.strip_prefix("data: ") {
                out.push((self.event.clone(), data.to_string()));
            }
        }
        out
    }
}

/// `capstan logs APP`: the running app's output, printed as it arrives.
async fn app_output(api: &Api, args: &LogsArgs) -> anyhow::Result<ExitCode> {
    let mut query = vec![
        ("tail", args.tail.to_string()),
        ("follow", args.follow.to_string()),
    ];
    if let Some(container) = &args.container {
        query.push(("container", container.clone()));
    }
    let response = api
        .request(reqwest::Method::GET, &format!("/apps/{}/logs", args.target))
        .query(&query)
        .send()
        .await?;
    let mut stream = check(response).await?.bytes_stream();
    let mut events = Events::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        if !args.follow {
            print!("{}", String::from_utf8_lossy(&chunk));
            continue;
        }
        for (event, data) in events.push(&chunk) {
            if event == "log" {
                println!("{data}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The phase a log line announces, for the progress headings.
fn phase_of(line: &str) -> Option<&'static str> {
    let text = line.split_once("] ").map_or(line, |(_, rest)| rest);
    [
        ("fetching ", "fetch"),
        ("build plan: ", "plan"),
        ("build context: ", "build"),
        ("started container ", "start"),
        ("waiting for ", "health"),
        ("traffic switched", "switch"),
        ("deployment is live", "live"),
    ]
    .into_iter()
    .find(|(prefix, _)| text.starts_with(prefix))
    .map(|(_, phase)| phase)
}

/// Prints a deployment's log as it streams and returns its final state. On a terminal,
/// a heading marks each phase as it begins.
async fn follow(api: &Api, id: i64) -> anyhow::Result<String> {
    let response = api
        .request(
            reqwest::Method::GET,
            &format!("/deployments/{id}/logs?follow=true"),
        )
        .send()
        .await?;
    let headings = std::io::stdout().is_terminal();
    let mut stream = check(response).await?.bytes_stream();
    let mut events = Events::new();
    let mut shown_phase = None;
    while let Some(chunk) = stream.next().await {
        for (event, data) in events.push(&chunk?) {
            if event == "end" {
                let end: Value = serde_json::from_str(&data).unwrap_or(Value::Null);
                return Ok(end["state"].as_str().unwrap_or("unknown").to_string());
            }
            if headings {
                let phase = phase_of(&data);
                if phase.is_some() && phase != shown_phase {
                    println!("\x1b[1m── {} ──\x1b[0m", phase.unwrap_or_default());
                    shown_phase = phase;
                }
            }
            println!("{data}");
        }
    }
    bail!("the log stream ended before the deployment did")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_read_across_chunks() {
        let mut events = Events::new();
        assert!(events.push(b"event: log\ndata: [info] fetch").is_empty());
        let got = events.push(b"ing x\n\nevent: end\ndata: {\"state\":\"live\"}\n");
        assert_eq!(
            got,
            vec![
                ("log".to_string(), "[info] fetching x".to_string()),
                ("end".to_string(), "{\"state\":\"live\"}".to_string())
            ]
        );
        assert_eq!(phase_of("[info] fetching https://x at main"), Some("fetch"));
        assert_eq!(phase_of("[info] traffic switched to a"), Some("switch"));
        assert_eq!(phase_of("[build] Step 1/3"), None);
    }
}
