//! `capstan retry ID`: run a deployment again only on the servers where it failed, and the
//! per-server lines printed under a deployment on several servers when it ends.

use crate::client::{follow_to_end, Connection};
use anyhow::Context;
use serde_json::Value;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct RetryArgs {
    /// The deployment's id.
    id: i64,
    /// Follow it to the end (exit status 0 when it is live on every server).
    #[arg(long)]
    wait: bool,
    #[command(flatten)]
    connection: Connection,
}

pub async fn retry(args: RetryArgs) -> anyhow::Result<ExitCode> {
    let api = args.connection.api()?;
    let answer = api
        .send(
            reqwest::Method::POST,
            &format!("/deployments/{}/retry", args.id),
            None,
        )
        .await?;
    let id = answer["id"]
        .as_i64()
        .context("the daemon returned no deployment id")?;
    println!("deployment {id} queued again for the servers where it failed");
    if !args.wait {
        return Ok(ExitCode::SUCCESS);
    }
    follow_to_end(&api, id).await
}

/// Lines for a deployment on several servers: each server's state (and error), then how
/// to retry the failed ones. Nothing for a deployment on one server.
pub(crate) fn server_lines(record: &Value) -> Vec<String> {
    let Some(servers) = record["servers"].as_array().filter(|s| s.len() > 1) else {
        return Vec::new();
    };
    let mut lines: Vec<String> = servers
        .iter()
        .map(|s| {
            let name = s["server"].as_str().unwrap_or("?");
            let state = s["state"].as_str().unwrap_or("?");
            match s["error"].as_str() {
                Some(error) => format!("  {name}: {state}: {error}"),
                None => format!("  {name}: {state}"),
            }
        })
        .collect();
    if servers.iter().any(|s| s["state"] == "failed") {
        let id = record["id"].as_i64().unwrap_or_default();
        lines.push(format!(
            "  run it again on the failed servers only: capstan retry {id} --wait"
        ));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::server_lines;
    use serde_json::json;

    #[test]
    fn a_deployment_on_several_servers_lists_each_and_how_to_retry() {
        let record = json!({"id": 7, "servers": [
            {"server": "a", "state": "live", "error": null},
            {"server": "b", "state": "failed", "error": "cannot connect"}
        ]});
        assert_eq!(
            server_lines(&record),
            vec![
                "  a: live".to_string(),
                "  b: failed: cannot connect".to_string(),
                "  run it again on the failed servers only: capstan retry 7 --wait".to_string(),
            ]
        );
        let one = json!({"id": 8, "servers": [{"server": "local", "state": "live"}]});
        assert!(server_lines(&one).is_empty());
    }
}
