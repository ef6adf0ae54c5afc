//! Notification channels and their outbox (migration 0014). A channel's shown settings are
//! plain JSON; what must stay secret (a URL carrying a token, a signing secret, an SMTP
//! password) is JSON sealed like secrets (AES-256-GCM under the instance's key, the
//! channel's app and kind as associated data). The outbox holds one row per message and
//! channel until it is delivered or out of tries; the kinds and their meaning belong to
//! `capstan-notify`, this module only keeps the rows.

use crate::{now_ms, SecretKey, Store, StoreError};
use capstan_core::AppName;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

/// A channel as stored, without its sealed part.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelRecord {
    pub id: i64,
    /// `None`: a global channel (every app's events).
    pub app: Option<AppName>,
    pub kind: String,
    pub events: Vec<String>,
    pub config: serde_json::Value,
    pub created_at: i64,
}

/// A channel to add: `sealed` is encrypted before it is stored.
pub struct NewChannel<'a> {
    pub app: Option<&'a AppName>,
    pub kind: &'a str,
    pub events: &'a [String],
    pub config: &'a serde_json::Value,
    pub sealed: &'a serde_json::Value,
}

/// One outbox row.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxRecord {
    pub id: i64,
    pub channel: i64,
    pub event: String,
    pub payload: serde_json::Value,
    /// `pending`, `delivered` or `failed` (out of tries).
    pub state: String,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub delivered_at: Option<i64>,
}

/// What came of one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    Delivered,
    /// Failed; tried again at `next_at` (ms since the epoch).
    Retry {
        error: String,
        next_at: i64,
    },
    /// Failed and out of tries.
    GaveUp {
        error: String,
    },
}

fn aad(app: Option<&AppName>, kind: &str) -> Vec<u8> {
    let app = app.map(AppName::as_str).unwrap_or("");
    format!("capstan-notification\0{app}\0{kind}").into_bytes()
}

fn json_column(row: &SqliteRow, column: &str) -> Result<serde_json::Value, StoreError> {
    let text: String = row.try_get(column)?;
    serde_json::from_str(&text)
        .map_err(|e| StoreError::Corrupt(format!("notification {column}: {e}")))
}

fn channel_row(row: &SqliteRow) -> Result<ChannelRecord, StoreError> {
    let app: Option<String> = row.try_get("app")?;
    let app = app
        .map(|a| AppName::parse(&a).map_err(|e| StoreError::Corrupt(format!("app name: {e}"))))
        .transpose()?;
    let events = serde_json::from_value(json_column(row, "events")?)
        .map_err(|e| StoreError::Corrupt(format!("notification events: {e}")))?;
    Ok(ChannelRecord {
        id: row.try_get("id")?,
        app,
        kind: row.try_get("kind")?,
        events,
        config: json_column(row, "config")?,
        created_at: row.try_get("created_at")?,
    })
}

fn outbox_row(row: &SqliteRow) -> Result<OutboxRecord, StoreError> {
    Ok(OutboxRecord {
        id: row.try_get("id")?,
        channel: row.try_get("channel")?,
        event: row.try_get("event")?,
        payload: json_column(row, "payload")?,
        state: row.try_get("state")?,
        attempts: row.try_get("attempts")?,
        next_attempt_at: row.try_get("next_attempt_at")?,
        last_error: row.try_get("last_error")?,
        created_at: row.try_get("created_at")?,
        delivered_at: row.try_get("delivered_at")?,
    })
}

const CHANNEL_COLUMNS: &str = "id, app, kind, events, config, created_at";
const OUTBOX_COLUMNS: &str = "id, channel, event, payload, state, attempts, next_attempt_at, \
     last_error, created_at, delivered_at";

impl Store {
    /// Adds a channel; not found when its app does not exist.
    pub async fn add_channel(
        &self,
        key: &SecretKey,
        new: NewChannel<'_>,
    ) -> Result<ChannelRecord, StoreError> {
        if let Some(app) = new.app {
            self.app(app).await?;
        }
        let (nonce, sealed) = key.seal(&aad(new.app, new.kind), new.sealed.to_string().as_bytes());
        let events = serde_json::Value::from(new.events.to_vec()).to_string();
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO notification_channels (app, kind, events, config, nonce, sealed, created_at)
             VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(new.app.map(AppName::as_str))
        .bind(new.kind)
        .bind(events)
        .bind(new.config.to_string())
        .bind(nonce)
        .bind(sealed)
        .bind(now_ms())
        .fetch_one(self.pool())
        .await?;
        self.channel(id).await
    }

    /// One channel (without its sealed part).
    pub async fn channel(&self, id: i64) -> Result<ChannelRecord, StoreError> {
        let sql = format!("SELECT {CHANNEL_COLUMNS} FROM notification_channels WHERE id = ?");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("notification channel {id}")))?;
        channel_row(&row)
    }

    /// The app's channels (`Some`), or the global ones (`None`), oldest first.
    pub async fn channels(&self, app: Option<&AppName>) -> Result<Vec<ChannelRecord>, StoreError> {
        let sql = format!(
            "SELECT {CHANNEL_COLUMNS} FROM notification_channels WHERE app IS ? ORDER BY id"
        );
        let rows = sqlx::query(&sql)
            .bind(app.map(AppName::as_str))
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(channel_row).collect()
    }

    /// The channels an event of `app` goes to: the app's and the global ones.
    pub async fn channels_for(&self, app: &AppName) -> Result<Vec<ChannelRecord>, StoreError> {
        let sql = format!(
            "SELECT {CHANNEL_COLUMNS} FROM notification_channels
             WHERE app IS NULL OR app = ? ORDER BY id"
        );
        let rows = sqlx::query(&sql)
            .bind(app.as_str())
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(channel_row).collect()
    }

    /// The channel's sealed part, decrypted. One that does not decrypt (another key, a row
    /// moved to another app) is an error.
    pub async fn channel_secret(
        &self,
        key: &SecretKey,
        channel: &ChannelRecord,
    ) -> Result<serde_json::Value, StoreError> {
        let row = sqlx::query("SELECT nonce, sealed FROM notification_channels WHERE id = ?")
            .bind(channel.id)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("notification channel {}", channel.id)))?;
        let nonce: Vec<u8> = row.try_get("nonce")?;
        let sealed: Vec<u8> = row.try_get("sealed")?;
        key.open(&aad(channel.app.as_ref(), &channel.kind), &nonce, &sealed)
            .and_then(|plain| serde_json::from_slice(&plain).ok())
            .ok_or_else(|| {
                StoreError::SecretKey(format!(
                    "notification channel {} does not decrypt with this key",
                    channel.id
                ))
            })
    }

    /// Removes a channel and its outbox rows.
    pub async fn delete_channel(&self, id: i64) -> Result<(), StoreError> {
        let done = sqlx::query("DELETE FROM notification_channels WHERE id = ?")
            .bind(id)
            .execute(self.pool())
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("notification channel {id}")));
        }
        Ok(())
    }

    /// Queues a message for a channel, due now.
    pub async fn enqueue_notification(
        &self,
        channel: i64,
        event: &str,
        payload: &serde_json::Value,
    ) -> Result<i64, StoreError> {
        let now = now_ms();
        let id = sqlx::query_scalar(
            "INSERT INTO notification_outbox (channel, event, payload, next_attempt_at, created_at)
             VALUES (?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(channel)
        .bind(event)
        .bind(payload.to_string())
        .bind(now)
        .bind(now)
        .fetch_one(self.pool())
        .await?;
        Ok(id)
    }

    /// Pending messages due at `now` (ms), oldest first, at most `limit`.
    pub async fn due_notifications(
        &self,
        now: i64,
        limit: i64,
    ) -> Result<Vec<OutboxRecord>, StoreError> {
        let sql = format!(
            "SELECT {OUTBOX_COLUMNS} FROM notification_outbox
             WHERE state = 'pending' AND next_attempt_at <= ? ORDER BY next_attempt_at, id LIMIT ?"
        );
        let rows = sqlx::query(&sql)
            .bind(now)
            .bind(limit)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(outbox_row).collect()
    }

    /// When the next pending message is due, if any is pending.
    pub async fn next_notification_due(&self) -> Result<Option<i64>, StoreError> {
        let due: Option<i64> = sqlx::query_scalar(
            "SELECT min(next_attempt_at) FROM notification_outbox WHERE state = 'pending'",
        )
        .fetch_one(self.pool())
        .await?;
        Ok(due)
    }

    /// Records an attempt at message `id`: one more try, and its outcome.
    pub async fn record_attempt(&self, id: i64, attempt: &Attempt) -> Result<(), StoreError> {
        let now = now_ms();
        let (state, error, next_at, delivered_at) = match attempt {
            Attempt::Delivered => ("delivered", None, now, Some(now)),
            Attempt::Retry { error, next_at } => ("pending", Some(error.as_str()), *next_at, None),
            Attempt::GaveUp { error } => ("failed", Some(error.as_str()), now, None),
        };
        sqlx::query(
            "UPDATE notification_outbox SET state = ?, attempts = attempts + 1,
                last_error = coalesce(?, last_error), next_attempt_at = ?, delivered_at = ?
             WHERE id = ?",
        )
        .bind(state)
        .bind(error)
        .bind(next_at)
        .bind(delivered_at)
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Forgets delivered and failed messages created before `before` (ms); pending ones
    /// stay whatever their age. Returns how many went.
    pub async fn prune_notifications(&self, before: i64) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "DELETE FROM notification_outbox WHERE state != 'pending' AND created_at < ?",
        )
        .bind(before)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected())
    }

    /// The channel's most recent messages, newest first.
    pub async fn channel_deliveries(
        &self,
        channel: i64,
        limit: i64,
    ) -> Result<Vec<OutboxRecord>, StoreError> {
        let sql = format!(
            "SELECT {OUTBOX_COLUMNS} FROM notification_outbox WHERE channel = ?
             ORDER BY id DESC LIMIT ?"
        );
        let rows = sqlx::query(&sql)
            .bind(channel)
            .bind(limit)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(outbox_row).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    async fn store() -> (tempfile::TempDir, Store, SecretKey) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db.sqlite")).await.unwrap();
        let key = SecretKey::load_or_create(&dir.path().join("secret.key")).unwrap();
        (dir, store, key)
    }

    #[tokio::test]
    async fn a_global_channel_keeps_its_secret_sealed_and_its_messages_until_delivered() {
        let (dir, store, key) = store().await;
        let events = vec!["deployment.live".to_string()];
        let channel = store
            .add_channel(
                &key,
                NewChannel {
                    app: None,
                    kind: "slack",
                    events: &events,
                    config: &json!({"url": "https://hooks.slack.com/…"}),
                    sealed: &json!({"url": "https://hooks.slack.com/services/T/B/tok3n"}),
                },
            )
            .await
            .unwrap();
        assert_eq!(store.channels(None).await.unwrap(), vec![channel.clone()]);
        let secret = store.channel_secret(&key, &channel).await.unwrap();
        assert_eq!(secret["url"], "https://hooks.slack.com/services/T/B/tok3n");
        for file in ["db.sqlite", "db.sqlite-wal"] {
            let raw = std::fs::read(dir.path().join(file)).unwrap_or_default();
            assert!(
                !raw.windows(5).any(|w| w == b"tok3n"),
                "stored in clear in {file}"
            );
        }
        let wal = std::fs::metadata(dir.path().join("db.sqlite-wal")).map(|m| m.len());
        assert!(
            wal.unwrap_or(0)
                + std::fs::metadata(dir.path().join("db.sqlite"))
                    .unwrap()
                    .len()
                > 0
        );

        let id = store
            .enqueue_notification(channel.id, "deployment.live", &json!({"app": "web"}))
            .await
            .unwrap();
        let later = now_ms() + 60_000;
        let retry = Attempt::Retry {
            error: "HTTP 500".into(),
            next_at: later,
        };
        store.record_attempt(id, &retry).await.unwrap();
        assert!(store
            .due_notifications(now_ms(), 10)
            .await
            .unwrap()
            .is_empty());
        assert_eq!(store.next_notification_due().await.unwrap(), Some(later));
        // A new handle on the same file (a restart) still has it, due later.
        drop(store);
        let store = Store::open(&dir.path().join("db.sqlite")).await.unwrap();
        let due = store.due_notifications(later, 10).await.unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!((due[0].attempts, due[0].state.as_str()), (1, "pending"));
        assert_eq!(due[0].last_error.as_deref(), Some("HTTP 500"));
        let pending = store
            .enqueue_notification(channel.id, "deployment.live", &json!({}))
            .await
            .unwrap();
        assert_eq!(
            store.prune_notifications(i64::MAX).await.unwrap(),
            0,
            "pending stays"
        );
        store.record_attempt(id, &Attempt::Delivered).await.unwrap();
        let rows = store.channel_deliveries(channel.id, 10).await.unwrap();
        assert_eq!((rows[1].state.as_str(), rows[1].attempts), ("delivered", 2));
        assert_eq!(
            store.prune_notifications(0).await.unwrap(),
            0,
            "not old enough"
        );
        assert_eq!(store.prune_notifications(i64::MAX).await.unwrap(), 1);
        let rows = store.channel_deliveries(channel.id, 10).await.unwrap();
        assert_eq!(rows.iter().map(|r| r.id).collect::<Vec<_>>(), vec![pending]);
        store
            .record_attempt(pending, &Attempt::Delivered)
            .await
            .unwrap();
        assert!(store
            .due_notifications(i64::MAX, 10)
            .await
            .unwrap()
            .is_empty());
        store.delete_channel(channel.id).await.unwrap();
        assert!(store
            .channel_deliveries(channel.id, 10)
            .await
            .unwrap()
            .is_empty());
    }

    #[tokio::test]
    async fn an_app_channel_needs_its_app() {
        let (_dir, store, key) = store().await;
        let app = AppName::parse("ghost").unwrap();
        let new = NewChannel {
            app: Some(&app),
            kind: "webhook",
            events: &[],
            config: &json!({}),
            sealed: &json!({}),
        };
        assert!(matches!(
            store.add_channel(&key, new).await,
            Err(StoreError::NotFound(_))
        ));
    }
}
