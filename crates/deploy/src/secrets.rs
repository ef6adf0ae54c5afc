//! App secrets as the API sees them (set, list, delete; values are never returned) and as
//! a deployment uses them: runtime secrets go into the containers' environment when they
//! are created, build secrets become build arguments, and every value is masked in the
//! deployment's log.

use crate::logs::MIN_SECRET_LEN;
use crate::{ActionError, Deployer};
use capstan_core::app::check_env_key;
use capstan_core::AppName;
use capstan_store::{SecretInfo, SecretValue};

/// The longest secret value accepted (64 KiB: certificates and keys fit).
const MAX_SECRET_LEN: usize = 64 * 1024;

impl Deployer {
    /// Creates or replaces a secret of an existing app.
    pub async fn set_secret(
        &self,
        app: &AppName,
        name: &str,
        value: &str,
        build: bool,
        caller: &crate::Caller,
    ) -> Result<SecretInfo, ActionError> {
        check_env_key(name)
            .map_err(|e| ActionError::Invalid(format!("secret name: {}", e.reason)))?;
        if value.len() < MIN_SECRET_LEN {
            return Err(ActionError::Invalid(format!(
                "secret {name}: the value must be at least {MIN_SECRET_LEN} characters (shorter \
                 values cannot be masked in logs; use an env variable for them)"
            )));
        }
        if value.len() > MAX_SECRET_LEN || value.contains('\0') {
            return Err(ActionError::Invalid(format!(
                "secret {name}: the value must be at most {MAX_SECRET_LEN} bytes and contain no NUL"
            )));
        }
        self.store().app(app).await?;
        self.store()
            .set_secret(&self.settings().secret_key, app, name, value, build)
            .await?;
        let detail = if build { "also passed to builds" } else { "" };
        self.store()
            .record_event(app, &caller.actor(), &format!("secret {name} set"), detail)
            .await?;
        let infos = self.store().secret_infos(app).await?;
        infos
            .into_iter()
            .find(|i| i.name == name)
            .ok_or_else(|| ActionError::Internal(format!("secret {name} vanished")))
    }

    pub async fn secrets(&self, app: &AppName) -> Result<Vec<SecretInfo>, ActionError> {
        self.store().app(app).await?;
        Ok(self.store().secret_infos(app).await?)
    }

    pub async fn delete_secret(
        &self,
        app: &AppName,
        name: &str,
        caller: &crate::Caller,
    ) -> Result<(), ActionError> {
        self.store().app(app).await?;
        self.store().delete_secret(app, name).await?;
        self.store()
            .record_event(app, &caller.actor(), &format!("secret {name} removed"), "")
            .await?;
        Ok(())
    }

    /// The decrypted secrets a deployment of `app` runs with.
    pub(crate) async fn secret_values(
        &self,
        app: &AppName,
    ) -> Result<Vec<SecretValue>, capstan_store::StoreError> {
        self.store()
            .secret_values(&self.settings().secret_key, app)
            .await
    }
}
