//! Keeps the proxy serving without a daemon restart: a periodic check that the proxy
//! container runs and answers; when it does not, the container is started or recreated,
//! its API address (a loopback port the engine picks) is read again, and every app's
//! route is re-applied and confirmed. The same check (one inspect of the proxy) finds an
//! app network with a live deployment that the proxy is no longer on (disconnected by
//! hand) and reconnects it. The state is reported by `/api/v1/health`.

use crate::Deployer;
use capstan_engine::proxy::ProxySpec;
use std::collections::BTreeSet;
use std::time::Duration;
use tokio::sync::watch;

/// How often the proxy is checked.
const CHECK_EVERY: Duration = Duration::from_secs(2);

/// What the daemon knows about its proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyState {
    Running,
    /// Found stopped, gone or silent; being brought back.
    Recovering,
    /// Could not be brought back on the last try (the next check tries again).
    Down,
}

impl ProxyState {
    pub fn as_str(self) -> &'static str {
        match self {
            ProxyState::Running => "running",
            ProxyState::Recovering => "recovering",
            ProxyState::Down => "down",
        }
    }
}

impl Deployer {
    /// The proxy's state as last checked.
    pub fn proxy_state(&self) -> ProxyState {
        *self.inner.proxy_state.lock().expect("proxy state lock")
    }

    fn set_proxy_state(&self, state: ProxyState) {
        *self.inner.proxy_state.lock().expect("proxy state lock") = state;
    }

    /// Watches the proxy until `shutdown` turns true.
    pub async fn watch_proxy(&self, spec: ProxySpec, mut shutdown: watch::Receiver<bool>) {
        let mut silent_checks = 0;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(CHECK_EVERY) => {}
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
            let status = self.target().proxy_status().await.ok().flatten();
            let running = status.as_ref().is_some_and(|s| s.running);
            let answers = running && self.target().proxy_answers().await;
            if let (true, Some(status)) = (answers, &status) {
                self.rejoin_app_networks(&status.networks).await;
            }
            // One silent check may be a reload; two in a row are not.
            silent_checks = if answers { 0 } else { silent_checks + 1 };
            if answers || (running && silent_checks < 2) {
                if answers {
                    self.set_proxy_state(ProxyState::Running);
                }
                continue;
            }
            tracing::warn!(running, "the proxy is not serving; bringing it back");
            self.set_proxy_state(ProxyState::Recovering);
            match self.restore_proxy(&spec).await {
                Ok(()) => {
                    silent_checks = 0;
                    self.set_proxy_state(ProxyState::Running);
                    tracing::info!(api = %self.target().proxy_address(), "the proxy is back; routes re-applied");
                }
                Err(err) => {
                    self.set_proxy_state(ProxyState::Down);
                    tracing::error!(%err, "cannot bring the proxy back; retrying");
                }
            }
        }
    }

    async fn restore_proxy(&self, spec: &ProxySpec) -> Result<(), String> {
        let url = self
            .target()
            .ensure_proxy(spec)
            .await
            .map_err(|e| e.to_string())?;
        self.target().set_proxy_address(url);
        let mut up = false;
        for _ in 0..150 {
            if self.target().proxy_answers().await {
                up = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        if !up {
            return Err(format!(
                "the proxy did not answer on {}",
                self.target().proxy_address()
            ));
        }
        self.reapply_routes().await;
        Ok(())
    }

    /// Reconnects the proxy to the network of every app with a live deployment that
    /// `joined` (the proxy's networks now) lacks, logging and counting each. Skipped for
    /// this check while settings change or an app is deleted (the lock is held), so a
    /// deleted app's network is never joined again.
    async fn rejoin_app_networks(&self, joined: &BTreeSet<String>) {
        let Ok(_settings) = self.inner.settings_lock.try_lock() else {
            return;
        };
        let apps = match self.store().apps().await {
            Ok(apps) => apps,
            Err(err) => {
                tracing::warn!(%err, "cannot list apps to check the proxy's networks");
                return;
            }
        };
        for app in apps.iter().filter(|a| a.live_deployment_id.is_some()) {
            let network = self.target().names().app(&app.name).network();
            if joined.contains(&network) {
                continue;
            }
            match self.target().join_proxy(&network).await {
                Ok(true) => {
                    self.metrics().proxy_network_rejoined();
                    tracing::warn!(app = %app.name, %network, "the proxy was not on the app's network; reconnected it");
                }
                // The network is gone (with the app's containers): a deploy makes it again.
                Ok(false) => {}
                Err(err) => {
                    tracing::warn!(app = %app.name, %network, %err, "cannot reconnect the proxy to the app's network");
                }
            }
        }
    }
}
