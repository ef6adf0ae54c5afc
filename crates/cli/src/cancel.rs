//! `capstan cancel ID` (also `capstan deploy --cancel ID`): cancel a queued deployment at
//! once, or a running one at its next step before its traffic switch.

use crate::client::{follow_to_end, Api, Connection};
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct CancelArgs {
    /// The deployment's id.
    id: i64,
    /// Wait until a running deployment has stopped (exit status 0 once it is cancelled).
    #[arg(long)]
    wait: bool,
    #[command(flatten)]
    connection: Connection,
}

pub async fn cancel(args: CancelArgs) -> anyhow::Result<ExitCode> {
    let api = args.connection.api()?;
    cancel_id(&api, args.id, args.wait).await
}

/// Asks the daemon to cancel deployment `id` and says what it did; with `wait`, follows a
/// running one until it has stopped.
pub(crate) async fn cancel_id(api: &Api, id: i64, wait: bool) -> anyhow::Result<ExitCode> {
    let answer = api
        .send(
            reqwest::Method::POST,
            &format!("/deployments/{id}/cancel"),
            None,
        )
        .await?;
    let state = answer["state"].as_str().unwrap_or("?");
    println!("{}", said(id, state));
    if state == "cancelled" || !wait {
        return Ok(ExitCode::SUCCESS);
    }
    // It may still have gone live, had the cancel come as it switched.
    follow_to_end(api, id).await?;
    let record = api.get(&format!("/deployments/{id}")).await?;
    Ok(if record["state"] == "cancelled" {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// What a cancel did, from the state the daemon answered with.
fn said(id: i64, state: &str) -> String {
    match state {
        "cancelled" => format!("deployment {id} cancelled (it had not started)"),
        running => format!(
            "deployment {id} is {running}: it stops at its next step, before its traffic switch (the live version keeps serving)"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::said;

    #[test]
    fn the_answer_says_whether_it_stopped_now_or_at_its_next_step() {
        assert!(said(3, "cancelled").contains("cancelled (it had not started)"));
        let running = said(4, "building");
        assert!(running.contains("deployment 4 is building"), "{running}");
        assert!(running.contains("next step"), "{running}");
    }
}
