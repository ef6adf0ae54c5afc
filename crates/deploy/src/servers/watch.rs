//! The background check of every server: each one's engine is asked what it is every
//! [`WATCH_EVERY`] (a remote one through the daemon's one connection to it); after
//! [`FAILURES_FOR_UNREACHABLE`] failures in a row the server counts as unreachable, which
//! the API, the panel and `/metrics` (`capstan_server_reachable`) show. It never disables
//! anything: a deployment to an unreachable server still tries, and fails on its own.

use super::ConnectError;
use crate::Deployer;
use capstan_core::{ServerKind, ServerName};
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::watch;

/// How often each server is asked.
pub const WATCH_EVERY: Duration = Duration::from_secs(30);
/// Failures in a row before a server counts as unreachable.
pub const FAILURES_FOR_UNREACHABLE: u32 = 3;
/// How much longer than the connection's own bound (`ssh_timeout`) one ask may take, so a
/// server that is slow to connect is told apart from one that never answers.
const ASK_MARGIN: Duration = Duration::from_secs(10);

/// What one ask found.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Asked {
    Answered,
    Failed(String),
    /// It answers, but its host key is not confirmed yet: nothing was sent to it.
    Unconfirmed(String),
}

/// What the background check knows of a server.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Reachability {
    /// `unknown` (not asked yet), `reachable`, `unreachable`, or `unconfirmed` (its host
    /// key is not pinned yet, so it is not logged in to).
    pub state: &'static str,
    /// Failures in a row since it last answered.
    pub failures: u32,
    /// When it was last asked (ms since the epoch).
    pub checked_at: Option<i64>,
    /// Why the last ask failed.
    pub last_error: Option<String>,
}

/// Every server's [`Reachability`], by name.
#[derive(Default)]
pub(crate) struct Watched {
    servers: std::sync::Mutex<HashMap<ServerName, Reachability>>,
}

impl Watched {
    /// Drops what was found of a removed server.
    pub(crate) fn forget(&self, server: &ServerName) {
        self.servers
            .lock()
            .expect("server watch lock")
            .remove(server);
    }

    fn record(&self, server: &ServerName, outcome: Asked) -> Reachability {
        let mut servers = self.servers.lock().expect("server watch lock");
        let entry = servers.entry(server.clone()).or_default();
        entry.checked_at = Some(capstan_store::now_ms());
        match outcome {
            Asked::Answered => {
                entry.failures = 0;
                entry.last_error = None;
                entry.state = "reachable";
            }
            Asked::Unconfirmed(reason) => {
                entry.failures = 0;
                entry.last_error = Some(reason);
                entry.state = "unconfirmed";
            }
            Asked::Failed(reason) => {
                entry.failures += 1;
                entry.last_error = Some(reason);
                if entry.failures >= FAILURES_FOR_UNREACHABLE {
                    entry.state = "unreachable";
                } else if entry.state.is_empty() {
                    entry.state = "unknown";
                }
            }
        }
        entry.clone()
    }
}

impl Deployer {
    /// What the background check last found of a server.
    pub fn server_reachability(&self, server: &ServerName) -> Reachability {
        let servers = self
            .inner
            .watched
            .servers
            .lock()
            .expect("server watch lock");
        servers.get(server).cloned().unwrap_or(Reachability {
            state: "unknown",
            ..Default::default()
        })
    }

    /// Asks every server in turn until `stop` turns true.
    pub async fn run_server_watch(&self, mut stop: watch::Receiver<bool>) {
        loop {
            self.watch_servers_once().await;
            tokio::select! {
                _ = tokio::time::sleep(WATCH_EVERY) => {}
                _ = stop.wait_for(|stop| *stop) => return,
            }
        }
    }

    /// Asks every server once, concurrently, and records what each said.
    pub async fn watch_servers_once(&self) {
        let servers = match self.store().servers().await {
            Ok(servers) => servers,
            Err(err) => {
                tracing::warn!(%err, "cannot list servers to check them");
                return;
            }
        };
        let asks = servers.into_iter().map(|server| async move {
            let bound = self.settings().ssh_timeout + ASK_MARGIN;
            let outcome = tokio::time::timeout(bound, self.ask_server(&server.spec))
                .await
                .unwrap_or_else(|_| {
                    Asked::Failed(format!("no answer within {} s", bound.as_secs()))
                });
            let name = &server.spec.name;
            let seen = self.inner.watched.record(name, outcome);
            self.publish(crate::events::DeployEvent::ServerChecked {
                server: name.to_string(),
                reachable: seen.state != "unreachable",
            });
            if seen.failures == FAILURES_FOR_UNREACHABLE {
                tracing::warn!(server = %name, error = ?seen.last_error, "server unreachable");
            }
        });
        futures::future::join_all(asks).await;
    }

    async fn ask_server(&self, spec: &capstan_core::ServerSpec) -> Asked {
        let answered = if spec.kind == ServerKind::Local {
            self.target()
                .status()
                .await
                .map(drop)
                .map_err(|e| e.to_string())
        } else {
            match self.server_engine(spec).await {
                Ok(engine) => engine
                    .host_facts()
                    .await
                    .map(drop)
                    .map_err(|e| e.to_string()),
                Err(err @ ConnectError::Unpinned { .. }) => {
                    return Asked::Unconfirmed(err.to_string())
                }
                Err(err) => Err(err.to_string()),
            }
        };
        match answered {
            Ok(()) => Asked::Answered,
            Err(reason) => Asked::Failed(reason),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_is_unreachable_only_after_failures_in_a_row() {
        let watched = Watched::default();
        let name = ServerName::parse("web1").unwrap();
        let failed = || Asked::Failed("connection refused".to_string());
        assert_eq!(watched.record(&name, failed()).state, "unknown");
        assert_eq!(watched.record(&name, failed()).state, "unknown");
        let third = watched.record(&name, failed());
        assert_eq!(third.state, "unreachable");
        assert_eq!(third.failures, 3);
        assert_eq!(third.last_error.as_deref(), Some("connection refused"));
        let back = watched.record(&name, Asked::Answered);
        assert_eq!(
            (back.state, back.failures, back.last_error),
            ("reachable", 0, None)
        );
        // One failure after answering does not mark it unreachable again.
        assert_eq!(watched.record(&name, failed()).state, "reachable");
        // A server whose key is not confirmed is not counted as failing.
        let unconfirmed = watched.record(&name, Asked::Unconfirmed("shows SHA256:x".into()));
        assert_eq!(
            (unconfirmed.state, unconfirmed.failures),
            ("unconfirmed", 0)
        );
    }
}
