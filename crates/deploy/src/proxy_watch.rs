//! Keeps the proxy serving without a daemon restart: a periodic check that the proxy
//! container runs and answers; when it does not, the container is started or recreated,
//! its API address (a loopback port the engine picks) is read again, and every app's
//! route is re-applied and confirmed. The same check (one inspect of the proxy) finds an
//! app network with a live deployment that the proxy is no longer on (disconnected by
//! hand) and reconnects it. The state is reported by `/api/v1/health`. Every connected SSH
//! server's proxy is watched the same way, less often, by a task of its own
//! (`watch_server_proxies`), so a slow server never delays the local check; a server whose
//! engine does not answer is left to the server check (`servers::watch`).

use crate::Deployer;
use capstan_core::ServerName;
use capstan_engine::proxy::ProxySpec;
use std::collections::{BTreeSet, HashMap};
use std::time::Duration;
use tokio::sync::watch;

/// How often the proxy is checked.
const CHECK_EVERY: Duration = Duration::from_secs(2);
/// How often each connected server's proxy is checked.
const SERVER_CHECK_EVERY: Duration = Duration::from_secs(10);

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
        let servers = self.clone();
        let server_shutdown = shutdown.clone();
        tokio::spawn(async move { servers.watch_server_proxies(server_shutdown).await });
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
        let live_here =
            |a: &&capstan_store::AppRecord| a.live_deployment_id.is_some() && self.serves(a);
        for app in apps.iter().filter(live_here) {
            let network = self.target().names().app(&app.name).network();
            if joined.contains(&network) {
                continue;
            }
            match self.target().join_proxy(&network).await {
                Ok(true) => {
                    self.publish(crate::events::DeployEvent::ProxyNetworkRejoined {
                        app: app.name.clone(),
                        network: network.clone(),
                    });
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

impl Deployer {
    /// Watches the proxy of every connected SSH server until `shutdown` turns true: every
    /// [`SERVER_CHECK_EVERY`], all servers at once, each as the local one is watched.
    async fn watch_server_proxies(&self, mut shutdown: watch::Receiver<bool>) {
        let silent = std::sync::Mutex::new(HashMap::<ServerName, u32>::new());
        loop {
            tokio::select! {
                _ = tokio::time::sleep(SERVER_CHECK_EVERY) => {}
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
            let connected: Vec<ServerName> = {
                let targets = self.inner.targets.read().expect("targets lock");
                targets.keys().filter(|s| !s.is_local()).cloned().collect()
            };
            let bound = self.settings().ssh_timeout * 2;
            let checks = connected
                .into_iter()
                .filter_map(|s| self.on(&s))
                .map(|here| {
                    let silent = &silent;
                    async move {
                        let server = here.server().clone();
                        let before = silent.lock().expect("silent checks").get(&server).copied();
                        let check = here.check_server_proxy(before.unwrap_or(0));
                        let after = tokio::time::timeout(bound, check).await.unwrap_or(0);
                        silent.lock().expect("silent checks").insert(server, after);
                    }
                });
            futures::future::join_all(checks).await;
        }
    }

    /// One check of this deployer's (remote) server's proxy, `silent` checks in a row
    /// having found it silent; how many in a row have now. A proxy that is stopped, gone
    /// or silent twice is brought back with the server's proxy settings; an engine that
    /// does not answer is not this watcher's to judge.
    async fn check_server_proxy(&self, silent: u32) -> u32 {
        let Ok(status) = self.target().proxy_status().await else {
            return 0;
        };
        let running = status.as_ref().is_some_and(|s| s.running);
        let answers = running && self.target().proxy_answers().await;
        if let (true, Some(status)) = (answers, &status) {
            self.rejoin_app_networks(&status.networks).await;
            return 0;
        }
        if running && silent < 1 {
            return silent + 1;
        }
        let server = self.server();
        tracing::warn!(%server, running, "the server's proxy is not serving; bringing it back");
        let spec = match self.store().server(server).await {
            Ok(record) => self.server_setup(&record.spec).map(|setup| setup.proxy),
            Err(err) => Err(err.into()),
        };
        let restored = match spec {
            Ok(spec) => self.restore_proxy(&spec).await,
            Err(err) => Err(err.to_string()),
        };
        match restored {
            Ok(()) => {
                tracing::info!(%server, "the server's proxy is back; routes re-applied");
                0
            }
            Err(err) => {
                tracing::error!(%server, %err, "cannot bring the server's proxy back; retrying");
                silent + 1
            }
        }
    }
}
