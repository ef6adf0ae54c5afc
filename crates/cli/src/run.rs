//! `capstan run APP [--timeout SECS] -- CMD...`: a one-off command in a fresh container of
//! the app's live release. The command's output goes to stdout as it arrives (Capstan's
//! own notes to stderr), and the command's exit status becomes this one's (124 when it
//! was killed at its time limit, as timeout(1) does).

use crate::client::{check, Connection, Events};
use anyhow::{bail, Context};
use futures::StreamExt;
use serde_json::{json, Value};
use std::process::ExitCode;

/// The exit status when the command was killed at its time limit.
const TIMED_OUT: u8 = 124;

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    app: String,
    /// Seconds before the command is killed (default 600, at most the server's
    /// `run_timeout_max_secs`).
    #[arg(long, value_name = "SECS")]
    timeout: Option<u32>,
    #[command(flatten)]
    connection: Connection,
    /// The program and its arguments, after `--`, run as they are (no shell: for one,
    /// `-- sh -c '...'`).
    #[arg(last = true, required = true, value_name = "CMD")]
    command: Vec<String>,
}

pub async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let api = args.connection.api()?;
    let mut body = json!({ "command": args.command });
    if let Some(secs) = args.timeout {
        body["timeout_secs"] = json!(secs);
    }
    let base = format!("/apps/{}/runs", args.app);
    let started = api.send(reqwest::Method::POST, &base, Some(body)).await?;
    let id = started["id"]
        .as_i64()
        .context("the daemon returned no run id")?;
    eprintln!(
        "run {id} of {}: {} (in a new container of deployment {})",
        args.app,
        shown(&started["command"]),
        started["deployment"]
    );
    let response = api
        .request(reqwest::Method::GET, &format!("{base}/{id}/output"))
        .query(&[("follow", "true")])
        .send()
        .await?;
    let mut stream = check(response).await?.bytes_stream();
    let mut events = Events::new();
    while let Some(chunk) = stream.next().await {
        for (event, data) in events.push(&chunk?) {
            match event.as_str() {
                "end" => return Ok(ending(id, &data)),
                _ if data.starts_with("[capstan] ") => eprintln!("{data}"),
                _ => println!("{data}"),
            }
        }
    }
    bail!("the output stream ended before run {id} did; see `capstan` API {base}/{id}")
}

/// The argv as one line a shell would read back the same.
fn shown(command: &Value) -> String {
    let parts: Vec<&str> = command
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    shlex::try_join(parts).unwrap_or_else(|_| command.to_string())
}

/// The exit status for the run's end event (`{"state", "exit_code", "error"}`).
fn ending(id: i64, data: &str) -> ExitCode {
    let end: Value = serde_json::from_str(data).unwrap_or(Value::Null);
    let state = end["state"].as_str().unwrap_or("unknown");
    let code = end["exit_code"].as_i64();
    if let Some(error) = end["error"].as_str() {
        eprintln!("run {id}: {error}");
    }
    eprintln!("{}", ending_line(id, state, code));
    ExitCode::from(status_of(state, code))
}

/// The last line of a run: how it ended and the status this command exits with.
fn ending_line(id: i64, state: &str, code: Option<i64>) -> String {
    let status = status_of(state, code);
    match (state, code) {
        ("timed_out", _) => {
            format!("run {id} timed out: stopped at its time limit (exit status {status})")
        }
        (_, Some(code)) if i64::from(status) == code => {
            format!("run {id} exited with status {code}")
        }
        (_, Some(code)) => format!("run {id} exited with status {code} (exit status {status})"),
        _ => format!("run {id} {state} without an exit status (exit status {status})"),
    }
}

fn status_of(state: &str, code: Option<i64>) -> u8 {
    match (state, code) {
        ("succeeded", _) => 0,
        ("timed_out", _) => TIMED_OUT,
        (_, Some(code)) => u8::try_from(code).ok().filter(|c| *c != 0).unwrap_or(1),
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_commands_status_becomes_ours() {
        assert_eq!(status_of("succeeded", Some(0)), 0);
        assert_eq!(status_of("failed", Some(3)), 3);
        assert_eq!(status_of("failed", Some(0)), 1, "a failure never exits 0");
        assert_eq!(status_of("failed", Some(300)), 1);
        assert_eq!(status_of("failed", None), 1);
        assert_eq!(status_of("timed_out", None), TIMED_OUT);
        assert_eq!(
            ending_line(5, "failed", Some(3)),
            "run 5 exited with status 3"
        );
        assert_eq!(
            ending_line(5, "succeeded", Some(0)),
            "run 5 exited with status 0"
        );
        assert_eq!(
            ending_line(6, "timed_out", None),
            "run 6 timed out: stopped at its time limit (exit status 124)"
        );
        assert_eq!(
            ending_line(7, "failed", None),
            "run 7 failed without an exit status (exit status 1)"
        );
        let argv = ["sh", "-c", "echo 'hi there' $HOME"];
        let line = shown(&json!(argv));
        assert!(line.starts_with("sh -c "), "{line}");
        assert_eq!(shlex::split(&line).unwrap(), argv, "{line}");
    }
}
