//! Each app's forge webhook secret as the API and panel use it: read (to verify a
//! delivery), shown (generated on first use: 32 random bytes in hex) and rotated. The
//! secret is sealed under the instance's key in the store; who showed or rotated it is
//! recorded, never the value.

use crate::{ActionError, Caller, Deployer};
use capstan_core::AppName;
use rand::RngCore;

/// A fresh webhook secret: 32 random bytes from the OS, in hex.
fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

impl Deployer {
    /// The app's webhook secret, to verify a delivery; `None` when the app does not exist
    /// or has none yet (no delivery verifies then).
    pub async fn webhook_secret(&self, app: &AppName) -> Result<Option<String>, ActionError> {
        Ok(self
            .store()
            .webhook_secret(&self.settings().secret_key, app)
            .await?)
    }

    /// The app's webhook secret, generated and stored on the first call.
    pub async fn webhook_secret_or_create(
        &self,
        app: &AppName,
        caller: &Caller,
    ) -> Result<String, ActionError> {
        let key = &self.settings().secret_key;
        if let Some(secret) = self.store().webhook_secret(key, app).await? {
            return Ok(secret);
        }
        let candidate = new_secret();
        let secret = self
            .store()
            .webhook_secret_or_insert(key, app, &candidate)
            .await?;
        if secret == candidate {
            self.store()
                .record_event(app, &caller.actor(), "webhook secret created", "")
                .await?;
        }
        Ok(secret)
    }

    /// Replaces the app's webhook secret with a new one: deliveries signed with the old
    /// one no longer verify.
    pub async fn rotate_webhook_secret(
        &self,
        app: &AppName,
        caller: &Caller,
    ) -> Result<String, ActionError> {
        let secret = new_secret();
        self.store()
            .set_webhook_secret(&self.settings().secret_key, app, &secret)
            .await?;
        self.store()
            .record_event(app, &caller.actor(), "webhook secret rotated", "")
            .await?;
        Ok(secret)
    }
}
