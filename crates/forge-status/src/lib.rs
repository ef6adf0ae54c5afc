//! Commit statuses back to the forge: a subscriber of the deploy layer's event bus that
//! reports each deployment of an app with forge settings on its commit (pending when
//! queued, then success with the environment's URL, or failure with the reason), for
//! GitHub, GitLab, Gitea/Forgejo and Bitbucket Cloud. What each forge is asked is in
//! `api` (no IO), one try of it in `send`, the subscriber in `reporter`. Reporting never
//! fails or slows a deployment: it runs in its own tasks and only logs what went wrong.

pub mod api;
mod reporter;
pub mod send;

pub use reporter::{ReportError, Reporter, RETRY_DELAYS};

/// Starts the reporter on `deployer`'s bus; it ends when `stop` turns true.
pub fn spawn(
    deployer: &capstan_deploy::Deployer,
    reporter: Reporter,
    stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let events = deployer.subscribe();
    tokio::spawn(reporter.run(events, stop))
}
