//! Notifications (issue 21): channels per app or global (generic signed webhook, Slack,
//! Discord, email over SMTP), each with its choice of events; an outbox filled by following
//! the deploy layer's event bus and emptied by a delivery worker with retries and backoff.
//! A deployment only publishes its events: nothing here can slow or fail it.

pub mod channel;
pub mod message;
pub mod outbox;
pub mod send;

use capstan_core::AppName;
use capstan_store::{ChannelRecord, NewChannel, SecretKey, Store, StoreError};
use std::sync::Arc;
use std::time::Duration;

pub use channel::{check, ChannelInput, ChannelKind, CheckedChannel, SmtpTls, EVENTS};
pub use message::Notification;
pub use outbox::RetryPolicy;
pub use send::{signature, Sender, Target, SIGNATURE_HEADER};

/// How long one send may take.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// A channel's settings are wrong; `field` names the one.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    /// The channel could not be sent to (the words say why, without secrets).
    #[error("{0}")]
    Send(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The notification service of a daemon: its store, the key channels are sealed with,
/// the sender and the retry policy. Cheap to clone.
#[derive(Clone)]
pub struct Notifier {
    store: Store,
    key: SecretKey,
    sender: Sender,
    policy: RetryPolicy,
    wake: Arc<tokio::sync::Notify>,
}

impl Notifier {
    pub fn new(store: Store, key: SecretKey, policy: RetryPolicy) -> Result<Self, NotifyError> {
        Ok(Self {
            store,
            key,
            sender: Sender::new(SEND_TIMEOUT)?,
            policy,
            wake: Arc::new(tokio::sync::Notify::new()),
        })
    }

    /// Checks and adds a channel (`app` `None`: global). Returns it and, for a generic
    /// webhook, the signing secret (shown once).
    pub async fn add(
        &self,
        app: Option<&AppName>,
        input: ChannelInput,
    ) -> Result<(ChannelRecord, Option<String>), NotifyError> {
        let checked = check(input)?;
        let record = self
            .store
            .add_channel(
                &self.key,
                NewChannel {
                    app,
                    kind: checked.kind.as_str(),
                    events: &checked.events,
                    config: &checked.config,
                    sealed: &checked.secret,
                },
            )
            .await?;
        Ok((record, checked.signing_secret))
    }

    /// The channel `id` with its sealed part, to send to.
    pub async fn target(&self, id: i64) -> Result<Target, NotifyError> {
        let record = self.store.channel(id).await?;
        let kind = ChannelKind::parse(&record.kind)
            .ok_or_else(|| NotifyError::Send(format!("unknown channel kind {:?}", record.kind)))?;
        let secret = self.store.channel_secret(&self.key, &record).await?;
        Ok(Target {
            kind,
            config: record.config,
            secret,
        })
    }

    /// Sends a test message to channel `id` now (not through the outbox).
    pub async fn send_test(&self, id: i64) -> Result<(), NotifyError> {
        let record = self.store.channel(id).await?;
        let target = self.target(id).await?;
        let note = Notification::test(record.app.as_ref().map(AppName::as_str));
        self.sender.send(&target, &note).await
    }

    pub fn store(&self) -> &Store {
        &self.store
    }
}
