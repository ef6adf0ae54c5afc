//! Servers as the API manages them: add one (with a key pair made for it), list, show,
//! remove (refused for `local` and while apps target it), and its preflight checks
//! (`checks`), the daemon's one SSH connection per server (`connections`) and the
//! background check of every server (`watch`), and the daemon's duties on each server
//! (`duties`: recovery, cleanup's servers, their disks). An app may only name servers that
//! exist.

pub mod checks;
pub mod connections;
mod duties;
mod keys;
mod resolve;
pub(crate) mod targets;
pub mod watch;

pub use checks::{Check, Preflight};
pub use connections::ConnectError;
pub use targets::ProxyOptions;
pub use watch::Reachability;

use crate::{ActionError, Caller, Deployer};
use capstan_core::{AppName, AppSpec, ServerKind, ServerName, ServerSpec};
use capstan_store::ServerRecord;
use checks::DiskAccess;

impl Deployer {
    /// Adds a server with a new ed25519 key pair (the public half is in the answer, for
    /// the server's `authorized_keys`; the private half is stored encrypted).
    pub async fn create_server(
        &self,
        spec: ServerSpec,
        caller: &Caller,
    ) -> Result<ServerRecord, ActionError> {
        spec.validate()
            .map_err(|e| ActionError::Invalid(e.to_string()))?;
        if self.store().server(&spec.name).await.is_ok() {
            return Err(ActionError::Conflict(format!(
                "server {} already exists",
                spec.name
            )));
        }
        let comment = format!("capstan@{}/{}", self.target().instance(), spec.name);
        let (public, private) = keys::generate(&comment)?;
        let record = self
            .store()
            .create_server(&self.settings().secret_key, &spec, &public, &private)
            .await?;
        tracing::info!(server = %spec.name, kind = spec.kind.as_str(), host = %spec.host,
            actor = %caller.actor(), "server added");
        Ok(record)
    }

    pub async fn servers(&self) -> Result<Vec<ServerRecord>, ActionError> {
        Ok(self.store().servers().await?)
    }

    pub async fn server_record(&self, name: &ServerName) -> Result<ServerRecord, ActionError> {
        Ok(self.store().server(name).await?)
    }

    /// The apps whose settings name `server`, by name.
    pub async fn apps_on_server(&self, server: &ServerName) -> Result<Vec<AppName>, ActionError> {
        Ok(self
            .store()
            .apps()
            .await?
            .into_iter()
            .filter(|app| app.spec.servers.contains(server))
            .map(|app| app.name)
            .collect())
    }

    /// Removes a server and its key pair. `local` stays, and a server stays while any app
    /// targets it (the conflict names them); checked and removed under the settings lock,
    /// so no app starts targeting it meanwhile.
    pub async fn delete_server(
        &self,
        name: &ServerName,
        caller: &Caller,
    ) -> Result<(), ActionError> {
        if name.is_local() {
            return Err(ActionError::Conflict(
                "server local is the daemon's own engine; it cannot be removed".into(),
            ));
        }
        let _settings = self.inner.settings_lock.lock().await;
        self.store().server(name).await?;
        let apps = self.apps_on_server(name).await?;
        if !apps.is_empty() {
            let names: Vec<String> = apps.iter().map(ToString::to_string).collect();
            return Err(ActionError::Conflict(format!(
                "server {name} is targeted by app{} {}; remove it from their servers first",
                if names.len() == 1 { "" } else { "s" },
                names.join(", ")
            )));
        }
        self.store().delete_server(name).await?;
        self.remove_target(name);
        self.inner.watched.forget(name);
        self.publish(crate::events::DeployEvent::ServerRemoved {
            server: name.to_string(),
        });
        self.drop_connections(name).await;
        tracing::info!(server = %name, actor = %caller.actor(), "server removed");
        Ok(())
    }

    /// Runs the server's preflight checks. `local` is checked through its engine; an SSH
    /// or swarm server's address is connected to, and its engine checks say the SSH
    /// transport is not connected yet.
    pub async fn check_server(&self, name: &ServerName) -> Result<Preflight, ActionError> {
        let server = self.store().server(name).await?;
        let checks = match server.spec.kind {
            ServerKind::Local => self.check_local().await,
            _ => self.check_over_ssh(&server.spec).await,
        };
        Ok(Preflight::new(checks))
    }

    /// An SSH server: its address answers with sshd's greeting, the daemon logs in with
    /// the pinned host key, and its engine passes the same checks as the local one.
    async fn check_over_ssh(&self, spec: &ServerSpec) -> Vec<Check> {
        let reachable = checks::ssh_reachable(&spec.host, spec.port).await;
        let answers = reachable.ok;
        let mut list = vec![reachable];
        if !answers {
            list.extend(checks::not_connected(&[]));
            return list;
        }
        let engine = match self.server_engine(spec).await {
            Ok(engine) => engine,
            Err(err) => {
                if let ConnectError::Engine { .. } = err {
                    list.push(checks::ssh_ok(&spec.host_key_fingerprint));
                    list.push(Check {
                        name: "engine".into(),
                        ok: false,
                        detail: err.to_string(),
                    });
                } else {
                    list.push(checks::ssh_failed(&err.to_string()));
                }
                list.extend(checks::not_connected(&[]));
                return list;
            }
        };
        list.push(checks::ssh_ok(&spec.host_key_fingerprint));
        let disk = DiskAccess::Measured(self.remote_disk(&engine).await);
        let engine_checks = checks::engine_checks(&engine, disk, None).await;
        if spec.kind == ServerKind::Swarm {
            list.push(crate::swarm::manager_check(&engine).await);
        }
        // The engine answering is its own check beside the SSH address answering.
        list.extend(engine_checks.into_iter().map(|mut check| {
            if check.name == "reachable" {
                check.name = "engine".into();
            }
            check
        }));
        list
    }

    async fn check_local(&self) -> Vec<Check> {
        let Some(engine) = self.target().docker_engine() else {
            return vec![Check {
                name: "reachable".into(),
                ok: false,
                detail: "this daemon's host is not reached through a Docker engine".into(),
            }];
        };
        let answers = self.target().proxy_answers().await;
        checks::engine_checks(engine, DiskAccess::ThisHost, Some(answers)).await
    }

    /// What an app's servers may change to: servers may be added (the next deployment
    /// reaches them), and taken away where no version of the app is live; a server it is
    /// live on stays (its containers and route would stay behind there).
    pub(crate) async fn check_server_change(
        &self,
        current: Option<&capstan_store::AppRecord>,
        next: &AppSpec,
    ) -> Result<(), ActionError> {
        let Some(current) = current else {
            return Ok(());
        };
        let mut live_there = Vec::new();
        for server in current
            .spec
            .servers
            .iter()
            .filter(|s| !next.servers.contains(s))
        {
            if self
                .store()
                .live_on(&current.name, server.as_str())
                .await?
                .is_some()
            {
                live_there.push(server.to_string());
            }
        }
        if live_there.is_empty() {
            return Ok(());
        }
        Err(ActionError::Invalid(format!(
            "servers: {} is live on {}; taking a server it runs on away is not available yet (its containers and route would stay there): keep it in the list, or delete the app and create it again",
            current.name,
            live_there.join(", ")
        )))
    }

    /// Pins the host key the server must present. A server that answers must present
    /// exactly this key (422 naming both otherwise, so a mistyped fingerprint is caught
    /// before anything trusts it); one that does not answer yet is pinned as given.
    pub async fn confirm_host_key(
        &self,
        name: &ServerName,
        fingerprint: &str,
        caller: &Caller,
    ) -> Result<ServerRecord, ActionError> {
        capstan_core::server::check_fingerprint(fingerprint)
            .map_err(|e| ActionError::Invalid(e.to_string()))?;
        let server = self.store().server(name).await?;
        if server.spec.kind == ServerKind::Local {
            return Err(ActionError::Conflict(
                "server local is the daemon's own engine; it has no host key".into(),
            ));
        }
        let mut unpinned = server.spec.clone();
        unpinned.host_key_fingerprint = None;
        match self.server_connection(&unpinned).await {
            Err(ConnectError::Unpinned { fingerprint: shown, .. }) if shown != fingerprint => {
                return Err(ActionError::Invalid(format!(
                    "fingerprint: {name} presents {shown}, not {fingerprint}; check the key on the server"
                )))
            }
            _ => {}
        }
        let record = self
            .store()
            .set_host_key_fingerprint(name, fingerprint)
            .await?;
        // Connections made under another pinned key are not reused.
        self.remove_target(name);
        self.drop_connections(name).await;
        tracing::info!(server = %name, %fingerprint, actor = %caller.actor(), "host key pinned");
        Ok(record)
    }

    /// Every server the settings name exists (422 naming the first that does not).
    pub(crate) async fn check_servers_exist(&self, spec: &AppSpec) -> Result<(), ActionError> {
        let named = spec.servers.iter().map(|s| ("servers", s));
        for (field, server) in named.chain(spec.build_server.iter().map(|s| ("build_server", s))) {
            match self.store().server(server).await {
                Ok(_) => {}
                Err(capstan_store::StoreError::NotFound(_)) => {
                    return Err(ActionError::Invalid(format!(
                        "{field}: there is no server {server} (add it with `capstan server add`, or see `capstan server list`)"
                    )))
                }
                Err(err) => return Err(err.into()),
            }
        }
        Ok(())
    }
}
