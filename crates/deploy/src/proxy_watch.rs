//! Keeps the proxy serving without a daemon restart: a periodic check that the proxy
//! container runs and answers; when it does not, the container is started or recreated,
//! its API address (a loopback port the engine picks) is read again, and every app's
//! route is re-applied and confirmed. The state is reported by `/api/v1/health`.

use crate::Deployer;
use capstan_engine::proxy::ProxySpec;
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
            let running = self.engine().proxy_running().await.unwrap_or(false);
            let answers = running && self.proxy().is_up().await;
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
                    tracing::info!(api = %self.proxy().base(), "the proxy is back; routes re-applied");
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
            .engine()
            .ensure_proxy(spec)
            .await
            .map_err(|e| e.to_string())?;
        self.proxy().set_base(url);
        let mut up = false;
        for _ in 0..150 {
            if self.proxy().is_up().await {
                up = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        if !up {
            return Err(format!(
                "the proxy did not answer on {}",
                self.proxy().base()
            ));
        }
        self.reapply_routes().await;
        Ok(())
    }
}
