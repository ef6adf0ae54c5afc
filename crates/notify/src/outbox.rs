//! The outbox: [`Notifier::follow`] turns the deploy bus's events into outbox rows (one per
//! channel that wants the event; nothing is sent there), and [`Notifier::deliver`] sends
//! the rows that are due, retrying a failure after each delay of the policy until it is
//! delivered or out of tries. Rows live in the database, so a restart loses none;
//! delivered and failed ones are forgotten after 30 days.

use crate::message::Notification;
use crate::{Notifier, NotifyError};
use capstan_deploy::DeployEvent;
use capstan_store::{now_ms, Attempt, OutboxRecord};
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::broadcast::Receiver;
use tokio::sync::watch;

/// Sends the worker makes at once.
const SENDS_AT_ONCE: usize = 8;

/// How long delivered and failed messages are kept (for the deliveries list).
pub const KEEP_MS: i64 = 30 * 24 * 3600 * 1000;

/// When a failed message is tried again: after each delay in turn, then given up.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub delays: Vec<Duration>,
    /// How long the worker waits at most before looking for due rows again.
    pub poll: Duration,
}

impl Default for RetryPolicy {
    /// 6 tries: at once, then after 10 s, 30 s, 2 min, 10 min and 1 h.
    fn default() -> Self {
        Self {
            delays: [10, 30, 120, 600, 3600].map(Duration::from_secs).to_vec(),
            poll: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// What to record after attempt number `attempts` (1 = the first) failed with `error`.
    pub fn after_failure(&self, attempts: usize, error: String, now_ms: i64) -> Attempt {
        match self.delays.get(attempts.saturating_sub(1)) {
            Some(delay) => Attempt::Retry {
                error,
                next_at: now_ms + i64::try_from(delay.as_millis()).unwrap_or(i64::MAX / 2),
            },
            None => Attempt::GaveUp { error },
        }
    }
}

impl Notifier {
    /// Writes an outbox row for each channel of the note's app (and each global channel)
    /// that wants its event; server events go to the global channels only.
    pub async fn enqueue(&self, note: &Notification) -> Result<usize, NotifyError> {
        let channels = match &note.app {
            Some(app) => {
                let app = capstan_core::AppName::parse(app)
                    .map_err(|e| NotifyError::Send(format!("app name: {e}")))?;
                self.store.channels_for(&app).await?
            }
            None => self.store.channels(None).await?,
        };
        let payload = serde_json::to_value(note)
            .map_err(|e| NotifyError::Send(format!("cannot encode: {e}")))?;
        let mut queued = 0;
        for channel in channels.iter().filter(|c| c.events.contains(&note.event)) {
            self.store
                .enqueue_notification(channel.id, &note.event, &payload)
                .await?;
            queued += 1;
        }
        if queued > 0 {
            self.wake.notify_one();
        }
        Ok(queued)
    }

    /// Follows the bus until it closes or `stop` turns true, queuing a row per matching
    /// channel. Never sends: the delivery worker does.
    pub async fn follow(&self, mut events: Receiver<DeployEvent>, mut stop: watch::Receiver<bool>) {
        let mut reachable: HashMap<String, bool> = HashMap::new();
        loop {
            let event = tokio::select! {
                event = events.recv() => event,
                _ = stop.changed() => return,
            };
            let note = match event {
                Ok(DeployEvent::ServerChecked {
                    server,
                    reachable: now,
                }) => {
                    let before = reachable.insert(server.clone(), now);
                    (before == Some(true) && !now)
                        .then(|| Notification::server_unreachable(&server))
                }
                Ok(DeployEvent::ServerRemoved { server }) => {
                    reachable.remove(&server);
                    None
                }
                Ok(event) => Notification::of_event(&event),
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(
                        missed,
                        "notifications fell behind the event bus; some events are not notified"
                    );
                    None
                }
                Err(RecvError::Closed) => return,
            };
            if let Some(note) = note {
                if let Err(err) = self.enqueue(&note).await {
                    tracing::warn!(event = %note.event, %err, "cannot queue a notification");
                }
            }
        }
    }

    /// Sends the rows due now, each once and up to [`SENDS_AT_ONCE`] at a time (a channel
    /// that never answers holds up only its own rows); returns how many were attempted.
    pub async fn deliver_due(&self) -> Result<usize, NotifyError> {
        use futures::StreamExt;
        let due = self.store.due_notifications(now_ms(), 50).await?;
        let count = due.len();
        let recorded: Vec<Result<(), NotifyError>> = futures::stream::iter(due)
            .map(|row| async move { self.attempt(&row).await })
            .buffer_unordered(SENDS_AT_ONCE)
            .collect()
            .await;
        recorded.into_iter().collect::<Result<(), _>>()?;
        Ok(count)
    }

    /// Sends one row and records how it went.
    async fn attempt(&self, row: &OutboxRecord) -> Result<(), NotifyError> {
        let attempt = match self.send_row(row).await {
            Ok(()) => Attempt::Delivered,
            Err(err) => {
                tracing::info!(message = row.id, channel = row.channel, attempt = row.attempts + 1, %err, "notification not delivered");
                let tries = usize::try_from(row.attempts + 1).unwrap_or(usize::MAX);
                self.policy.after_failure(tries, err.to_string(), now_ms())
            }
        };
        self.store.record_attempt(row.id, &attempt).await?;
        Ok(())
    }

    async fn send_row(&self, row: &OutboxRecord) -> Result<(), NotifyError> {
        let note: Notification = serde_json::from_value(row.payload.clone())
            .map_err(|e| NotifyError::Send(format!("unreadable message: {e}")))?;
        let target = self.target(row.channel).await?;
        self.sender.send(&target, &note).await
    }

    /// The delivery worker: sends due rows until `stop` turns true, waking when a row is
    /// queued, when the next retry is due, or after the policy's poll interval.
    pub async fn deliver(&self, mut stop: watch::Receiver<bool>) {
        let mut pruned_at = 0;
        loop {
            if now_ms() - pruned_at > 3_600_000 {
                pruned_at = now_ms();
                if let Err(err) = self.store.prune_notifications(pruned_at - KEEP_MS).await {
                    tracing::warn!(%err, "cannot forget old notifications");
                }
            }
            let delivered = self.deliver_due().await;
            if let Err(err) = &delivered {
                tracing::warn!(%err, "notification delivery");
            }
            let next = self.store.next_notification_due().await.ok().flatten();
            let wait = match (delivered, next) {
                // The store failed: rows still due would make the wait 0 and spin.
                (Err(_), _) | (Ok(_), None) => self.policy.poll,
                (Ok(_), Some(at)) => {
                    Duration::from_millis(u64::try_from(at - now_ms()).unwrap_or(0))
                        .min(self.policy.poll)
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.wake.notified() => {}
                _ = stop.changed() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_back_off_then_give_up() {
        let policy = RetryPolicy::default();
        let at = |n| match policy.after_failure(n, "x".into(), 0) {
            Attempt::Retry { next_at, .. } => Some(next_at),
            _ => None,
        };
        assert_eq!(at(1), Some(10_000));
        assert_eq!(at(2), Some(30_000));
        assert_eq!(at(5), Some(3_600_000));
        assert_eq!(at(6), None);
    }
}
