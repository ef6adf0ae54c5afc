//! Deployment logs: every line is masked (secret values and their encodings become `****`,
//! see [`Masker`]), stored, then fanned out live to followers.

use crate::Deployer;
use capstan_core::DeploymentState;
use capstan_store::LogLine;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::broadcast;

/// What a follower of a deployment's log receives.
#[derive(Debug, Clone)]
pub enum LogEvent {
    Line(LogLine),
    /// The deployment reached a finished state; no more lines will come.
    End(DeploymentState),
}

/// An event a [`LogHub`] fans out: the last one of a stream ends it.
pub trait HubEvent: Clone {
    /// Whether no more events follow this one.
    fn is_end(&self) -> bool;
}

impl HubEvent for LogEvent {
    fn is_end(&self) -> bool {
        matches!(self, LogEvent::End(_))
    }
}

/// Live fan-out of log events, one broadcast channel per stream being followed (a
/// deployment's log, a one-off run's output), keyed by its id.
pub struct LogHub<E = LogEvent> {
    channels: Mutex<HashMap<i64, broadcast::Sender<E>>>,
}

impl<E> Default for LogHub<E> {
    fn default() -> Self {
        Self {
            channels: Mutex::default(),
        }
    }
}

impl<E: HubEvent> LogHub<E> {
    /// Subscribes to a stream's future events.
    pub fn subscribe(&self, id: i64) -> broadcast::Receiver<E> {
        let mut channels = self.channels.lock().expect("log hub lock");
        channels
            .entry(id)
            .or_insert_with(|| broadcast::channel(1024).0)
            .subscribe()
    }

    /// Drops the stream's channel once its last follower has gone, so following a
    /// finished stream (for which no end event will come) leaves nothing behind.
    pub fn release(&self, id: i64) {
        let mut channels = self.channels.lock().expect("log hub lock");
        if channels
            .get(&id)
            .is_some_and(|sender| sender.receiver_count() == 0)
        {
            channels.remove(&id);
        }
    }

    /// How many streams have a live channel (for tests and metrics).
    pub fn channel_count(&self) -> usize {
        self.channels.lock().expect("log hub lock").len()
    }

    pub(crate) fn publish(&self, id: i64, event: E) {
        let mut channels = self.channels.lock().expect("log hub lock");
        let end = event.is_end();
        if let Some(sender) = channels.get(&id) {
            let _ = sender.send(event);
        }
        if end {
            channels.remove(&id);
        }
    }
}

pub use crate::masking::{Masker, MIN_SECRET_LEN};

/// A writer for one deployment's log.
#[derive(Clone)]
pub(crate) struct DeployLog {
    deployer: Deployer,
    id: i64,
    masker: Arc<RwLock<Masker>>,
    /// `[server] ` before each line, for one server of a deployment on several.
    prefix: Option<Arc<str>>,
}

impl DeployLog {
    pub(crate) fn new(deployer: &Deployer, id: i64) -> Self {
        Self {
            deployer: deployer.clone(),
            id,
            masker: Arc::default(),
            prefix: None,
        }
    }

    /// This log for one server of a deployment on several: each line names the server.
    pub(crate) fn for_server(&self, server: &str) -> Self {
        Self {
            prefix: Some(format!("[{server}] ").into()),
            ..self.clone()
        }
    }

    /// From now on, these values never reach the stored log or a follower.
    pub(crate) fn mask_values<'a>(&self, values: impl IntoIterator<Item = &'a str>) {
        *self.masker.write().expect("masker lock") = Masker::new(values);
    }

    /// The text with every secret value masked (for error messages stored elsewhere).
    pub(crate) fn masked(&self, text: &str) -> String {
        self.masker.read().expect("masker lock").mask(text)
    }

    /// Stores a line and sends it to followers. A store failure is logged, never fatal:
    /// losing a log line must not fail a deployment.
    pub(crate) async fn line(&self, stream: &str, text: &str) {
        let text = match &self.prefix {
            Some(prefix) => self.masked(&format!("{prefix}{text}")),
            None => self.masked(text),
        };
        match self
            .deployer
            .store()
            .append_log(self.id, stream, &text)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn following_finished_deployments_leaves_no_channel_behind() {
        let hub: LogHub = LogHub::default();
        for _ in 0..1000 {
            let receiver = hub.subscribe(7);
            drop(receiver);
            hub.release(7);
        }
        assert_eq!(hub.channel_count(), 0);
        // A follower still listening keeps its channel.
        let _listening = hub.subscribe(8);
        hub.release(8);
        assert_eq!(hub.channel_count(), 1);
    }
}
