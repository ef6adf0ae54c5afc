//! Forge webhooks: each app's webhook secret, encrypted like secrets (AES-256-GCM under the
//! instance's key, the app's name as associated data, removed with the app), and the
//! deliveries seen in the last 7 days, by id and by body, so a replay queues nothing.

use crate::{now_ms, SecretKey, Store, StoreError};
use capstan_core::AppName;
use sqlx::Row;

/// How long a delivery id is remembered.
pub const DELIVERY_MEMORY_MS: i64 = 7 * 24 * 3600 * 1000;

fn aad(app: &AppName) -> Vec<u8> {
    format!("capstan-webhook-secret\0{app}").into_bytes()
}

impl Store {
    /// The app's webhook secret, decrypted; `None` when the app has none (or does not
    /// exist). A secret that does not decrypt (another key, a row moved) is an error.
    pub async fn webhook_secret(
        &self,
        key: &SecretKey,
        app: &AppName,
    ) -> Result<Option<String>, StoreError> {
        let Some(row) = sqlx::query("SELECT nonce, sealed FROM webhook_secrets WHERE app = ?")
            .bind(app.as_str())
            .fetch_optional(self.pool())
            .await?
        else {
            return Ok(None);
        };
        let nonce: Vec<u8> = row.try_get("nonce")?;
        let sealed: Vec<u8> = row.try_get("sealed")?;
        key.open(&aad(app), &nonce, &sealed)
            .and_then(|plain| String::from_utf8(plain).ok())
            .map(Some)
            .ok_or_else(|| {
                StoreError::SecretKey(format!(
                    "the webhook secret of app {app} does not decrypt with this key"
                ))
            })
    }

    /// Sets (or replaces: a rotation) the app's webhook secret. Not found when the app
    /// does not exist.
    pub async fn set_webhook_secret(
        &self,
        key: &SecretKey,
        app: &AppName,
        secret: &str,
    ) -> Result<(), StoreError> {
        self.store_webhook_secret(key, app, secret, true).await
    }

    /// The app's webhook secret, `candidate` stored first when it has none: two first
    /// calls at once agree on one secret.
    pub async fn webhook_secret_or_insert(
        &self,
        key: &SecretKey,
        app: &AppName,
        candidate: &str,
    ) -> Result<String, StoreError> {
        self.store_webhook_secret(key, app, candidate, false)
            .await?;
        self.webhook_secret(key, app)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("app {app}")))
    }

    async fn store_webhook_secret(
        &self,
        key: &SecretKey,
        app: &AppName,
        secret: &str,
        replace: bool,
    ) -> Result<(), StoreError> {
        let (nonce, sealed) = key.seal(&aad(app), secret.as_bytes());
        let now = now_ms();
        let on_conflict = if replace {
            "DO UPDATE SET nonce = excluded.nonce, sealed = excluded.sealed,
                updated_at = excluded.updated_at"
        } else {
            "DO NOTHING"
        };
        let sql = format!(
            "INSERT INTO webhook_secrets (app, nonce, sealed, created_at, updated_at)
             SELECT name, ?, ?, ?, ? FROM apps WHERE name = ?
             ON CONFLICT(app) {on_conflict}"
        );
        sqlx::query(&sql)
            .bind(nonce)
            .bind(sealed)
            .bind(now)
            .bind(now)
            .bind(app.as_str())
            .execute(self.pool())
            .await?;
        if !self.app_exists(app).await? {
            return Err(StoreError::NotFound(format!("app {app}")));
        }
        Ok(())
    }

    async fn app_exists(&self, app: &AppName) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT 1 FROM apps WHERE name = ?")
            .bind(app.as_str())
            .fetch_optional(self.pool())
            .await?;
        Ok(row.is_some())
    }

    /// Records a verified delivery as received, forgetting those older than 7 days first.
    /// `false` when it was seen before: the same provider delivered the same id for the
    /// same app, or any forge delivered the same body (`body_sha256`, the SHA-256 of the
    /// raw body in hex) for the same app. A replay is caught by its body even with no id,
    /// a new id, or at another forge's URL. Nothing is recorded for a replay.
    pub async fn record_delivery(
        &self,
        provider: &str,
        app: &AppName,
        delivery_id: Option<&str>,
        body_sha256: &str,
    ) -> Result<bool, StoreError> {
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        for table in ["webhook_deliveries", "webhook_bodies"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE received_at < ?"))
                .bind(now - DELIVERY_MEMORY_MS)
                .execute(&mut *tx)
                .await?;
        }
        let body_new = sqlx::query(
            "INSERT INTO webhook_bodies (app, body_sha256, received_at)
             VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(app.as_str())
        .bind(body_sha256)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        let id_new = match delivery_id {
            None => true,
            Some(id) => {
                sqlx::query(
                    "INSERT INTO webhook_deliveries (provider, app, delivery_id, received_at)
                     VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                )
                .bind(provider)
                .bind(app.as_str())
                .bind(id)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1
            }
        };
        if body_new && id_new {
            tx.commit().await?;
            Ok(true)
        } else {
            tx.rollback().await?;
            Ok(false)
        }
    }

    /// What came of a recorded delivery (`queued deployment 12`, `ignored: ...`), kept
    /// with its id (when it has one) and its body.
    pub async fn set_delivery_outcome(
        &self,
        provider: &str,
        app: &AppName,
        delivery_id: Option<&str>,
        body_sha256: &str,
        outcome: &str,
    ) -> Result<(), StoreError> {
        self.change_delivery(provider, app, delivery_id, body_sha256, Some(outcome))
            .await
    }

    /// Forgets a recorded delivery, its id and its body, so the forge's retry is handled
    /// again (the first attempt failed before anything was queued).
    pub async fn forget_delivery(
        &self,
        provider: &str,
        app: &AppName,
        delivery_id: Option<&str>,
        body_sha256: &str,
    ) -> Result<(), StoreError> {
        self.change_delivery(provider, app, delivery_id, body_sha256, None)
            .await
    }

    /// Sets the outcome of the delivery's rows (its body's, and its id's when it has one),
    /// or deletes them when there is none.
    async fn change_delivery(
        &self,
        provider: &str,
        app: &AppName,
        delivery_id: Option<&str>,
        body_sha256: &str,
        outcome: Option<&str>,
    ) -> Result<(), StoreError> {
        let change = |table: &str| match outcome {
            Some(_) => format!("UPDATE {table} SET outcome = ?"),
            None => format!("DELETE FROM {table}"),
        };
        let with_outcome = |sql| match outcome {
            Some(outcome) => sqlx::query(sql).bind(outcome),
            None => sqlx::query(sql),
        };
        let mut tx = self.pool().begin().await?;
        let sql = change("webhook_bodies") + " WHERE app = ? AND body_sha256 = ?";
        with_outcome(&sql)
            .bind(app.as_str())
            .bind(body_sha256)
            .execute(&mut *tx)
            .await?;
        if let Some(id) = delivery_id {
            let sql = change("webhook_deliveries")
                + " WHERE provider = ? AND app = ? AND delivery_id = ?";
            with_outcome(&sql)
                .bind(provider)
                .bind(app.as_str())
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The outcome recorded for a delivery, if it is remembered.
    pub async fn delivery_outcome(
        &self,
        provider: &str,
        app: &AppName,
        delivery_id: &str,
    ) -> Result<Option<String>, StoreError> {
        let row = sqlx::query(
            "SELECT outcome FROM webhook_deliveries
             WHERE provider = ? AND app = ? AND delivery_id = ?",
        )
        .bind(provider)
        .bind(app.as_str())
        .bind(delivery_id)
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| r.try_get("outcome"))
            .transpose()
            .map_err(Into::into)
    }
}
