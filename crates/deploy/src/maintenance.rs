//! Maintenance mode: switching an app's route between its containers and the instance's
//! maintenance page server. The state is stored first, so it survives restarts and every
//! later route write (a cutover, a restart's re-apply) carries it; then the route in force
//! is rewritten at once and confirmed through Traefik's API.

use crate::routing::PROXY_TIMEOUT;
use crate::{ActionError, Caller, Deployer};
use capstan_core::{AppName, MaintenancePage};
use capstan_store::MaintenanceRecord;
use std::time::{Duration, Instant};

/// An app's maintenance state.
#[derive(Debug, Clone)]
pub struct MaintenanceState {
    /// Set while maintenance is on.
    pub record: Option<MaintenanceRecord>,
    /// Whether the app has a route the state is applied to; `false` when nothing is live
    /// (turning maintenance on is refused then).
    pub applied: bool,
}

impl Deployer {
    pub async fn maintenance(&self, app: &AppName) -> Result<MaintenanceState, ActionError> {
        let here = self.for_app_named(app).await?;
        here.maintenance_here(app).await
    }

    /// [`Self::maintenance`] on this deployer's server.
    async fn maintenance_here(&self, app: &AppName) -> Result<MaintenanceState, ActionError> {
        self.store().app(app).await?;
        let record = self.store().maintenance(app).await?;
        let applied = self.route_in_force(app).await.is_some();
        Ok(MaintenanceState { record, applied })
    }

    /// Turns maintenance on with `page` (`Some`) or off (`None`), and waits until the
    /// proxy shows the change. Turning it on is refused (409) while nothing of the app
    /// was ever deployed: there is no site to put a page in front of.
    pub async fn set_maintenance(
        &self,
        app: &AppName,
        page: Option<MaintenancePage>,
        caller: &Caller,
    ) -> Result<MaintenanceState, ActionError> {
        let stored = self.store().app(app).await?;
        // Every server is reached first: a refusal changes nothing stored.
        let mut servers = Vec::new();
        for server in &stored.spec.servers {
            servers.push(self.connect_target(server).await?);
        }
        let (record, event) = match &page {
            Some(page) => {
                page.validate()
                    .map_err(|e| ActionError::Invalid(e.to_string()))?;
                if stored.live_deployment_id.is_none() {
                    return Err(ActionError::Conflict(format!(
                        "nothing is deployed yet: maintenance can be turned on once a version of {app} is live"
                    )));
                }
                let record = self
                    .store()
                    .set_maintenance(app, page, &caller.actor())
                    .await?;
                (Some(record), "maintenance on")
            }
            None => {
                self.store().clear_maintenance(app).await?;
                (None, "maintenance off")
            }
        };
        let detail = page.as_ref().map(|p| p.message.clone()).unwrap_or_default();
        self.store()
            .record_event(app, &caller.actor(), event, &detail)
            .await?;
        let mut applied = false;
        for here in &servers {
            let here_applied = here.rewrite_route(app).await.map_err(|failure| {
                ActionError::Unavailable(format!(
                    "maintenance is {} for {app} but the proxy of server {} has not applied it: {failure}",
                    if page.is_some() { "on" } else { "off" },
                    here.server()
                ))
            })?;
            if here_applied {
                here.wait_maintenance_router(app, page.is_some()).await?;
            }
            applied |= here_applied;
        }
        Ok(MaintenanceState { record, applied })
    }

    /// Waits until Traefik has (or no longer has) the app's maintenance router.
    async fn wait_maintenance_router(&self, app: &AppName, on: bool) -> Result<(), ActionError> {
        let router = format!(
            "{}@file",
            self.target().names().app(app).maintenance_router()
        );
        let deadline = Instant::now() + PROXY_TIMEOUT;
        while Instant::now() < deadline {
            if self.target().router_enabled(&router).await == on {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(ActionError::Unavailable(format!(
            "the proxy did not apply maintenance {} for {app} within {}s{}",
            if on { "on" } else { "off" },
            PROXY_TIMEOUT.as_secs(),
            self.proxy_state_hint().await
        )))
    }
}
