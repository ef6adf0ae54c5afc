//! Deployment logs: every line is stored first, then fanned out live to followers.

use crate::Deployer;
use capstan_core::DeploymentState;
use capstan_store::LogLine;
use std::collections::HashMap;
use std::sync::Mutex;
use tokio::sync::broadcast;

/// What a follower of a deployment's log receives.
#[derive(Debug, Clone)]
pub enum LogEvent {
    Line(LogLine),
    /// The deployment reached a finished state; no more lines will come.
    End(DeploymentState),
}

/// Live fan-out of log events, one broadcast channel per deployment being followed.
#[derive(Default)]
pub struct LogHub {
    channels: Mutex<HashMap<i64, broadcast::Sender<LogEvent>>>,
}

impl LogHub {
    /// Subscribes to a deployment's future events.
    pub fn subscribe(&self, deployment: i64) -> broadcast::Receiver<LogEvent> {
        let mut channels = self.channels.lock().expect("log hub lock");
        channels
            .entry(deployment)
            .or_insert_with(|| broadcast::channel(1024).0)
            .subscribe()
    }

    fn publish(&self, deployment: i64, event: LogEvent) {
        let mut channels = self.channels.lock().expect("log hub lock");
        let end = matches!(event, LogEvent::End(_));
        if let Some(sender) = channels.get(&deployment) {
            let _ = sender.send(event);
        }
        if end {
            channels.remove(&deployment);
        }
    }
}

/// A writer for one deployment's log.
#[derive(Clone)]
pub(crate) struct DeployLog {
    deployer: Deployer,
    id: i64,
}

impl DeployLog {
    pub(crate) fn new(deployer: &Deployer, id: i64) -> Self {
        Self {
            deployer: deployer.clone(),
            id,
        }
    }

    /// Stores a line and sends it to followers. A store failure is logged, never fatal:
    /// losing a log line must not fail a deployment.
    pub(crate) async fn line(&self, stream: &str, text: &str) {
        match self
            .deployer
            .store()
            .append_log(self.id, stream, text)
            .await
        {
            Ok(line) => self.deployer.logs().publish(self.id, LogEvent::Line(line)),
            Err(err) => tracing::warn!(deployment = self.id, %err, "cannot store log line"),
        }
    }

    pub(crate) async fn info(&self, text: impl AsRef<str>) {
        self.line("capstan", text.as_ref()).await;
    }

    /// Runs `work` with a channel whose lines land in this log under `stream` as they
    /// arrive (build output, pulls, command output), and waits until all are stored.
    pub(crate) async fn forward<T, Fut>(
        &self,
        stream: &'static str,
        work: impl FnOnce(tokio::sync::mpsc::UnboundedSender<String>) -> Fut,
    ) -> T
    where
        Fut: std::future::Future<Output = T>,
    {
        let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel::<String>();
        let log = self.clone();
        let forwarder = tokio::spawn(async move {
            while let Some(line) = receiver.recv().await {
                log.line(stream, &line).await;
            }
        });
        let result = work(sender).await;
        let _ = forwarder.await;
        result
    }

    pub(crate) fn end(&self, state: DeploymentState) {
        self.deployer.logs().publish(self.id, LogEvent::End(state));
    }
}
