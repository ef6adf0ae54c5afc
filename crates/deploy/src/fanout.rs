//! One release on several servers: the image produced once (on the app's first server, or
//! taken from the stored release), moved to each other server with only the layers it
//! lacks, then cut over on every server in parallel with a bounded number of servers
//! connected at once. Each server's phases and outcome are its own row of the deployment;
//! one failing never stops the others, and a retry runs only where it failed.

use crate::logs::DeployLog;
use crate::pipeline::{Artifact, Failure};
use crate::release::Settled;
use crate::Deployer;
use capstan_core::{DeploymentState, ServerName};
use capstan_store::{DeploymentRecord, SecretValue};
use futures::StreamExt;

/// How many servers of one deployment are connected to (and prepared) at once; once
/// connected, every server's cutover runs at the same time.
pub(crate) const CONNECTS_AT_ONCE: usize = 4;

/// Whether a deployment cut over by a deployer runs on its server only, or on several.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reach {
    /// The deployment's own state moves with this server's cutover.
    Sole,
    /// Only this server's row moves; the fan-out sums the servers up at the end. The
    /// app's pre- and post-deploy commands run on one server only (`hooks`).
    OneOfMany { hooks: bool },
}

/// The image exported once for every server of a fan-out that lacks it (removed when the
/// fan-out ends).
type Spooled = tokio::sync::OnceCell<capstan_engine::transfer::SpooledImage>;

/// What every server of a fan-out shares.
struct Shared<'a> {
    settled: &'a Settled,
    secrets: &'a [SecretValue],
    spooled: Spooled,
    /// Connections (with a first preparation) being made at once.
    connects: tokio::sync::Semaphore,
    log: &'a DeployLog,
}

/// How a deployment ended on one server.
struct ServerOutcome {
    server: ServerName,
    result: Result<(), Failure>,
}

impl Deployer {
    /// Records that the deployment entered `state` on this deployer's server (and, for a
    /// deployment on this server only, the deployment itself). On several servers the
    /// deployment follows the first server to get there.
    pub(crate) async fn enter_phase(
        &self,
        d: &DeploymentRecord,
        state: DeploymentState,
    ) -> Result<(), Failure> {
        self.cancel_gate(d.id, state)?;
        self.store()
            .set_target_state(d.id, self.server().as_str(), state, None)
            .await?;
        match self.reach {
            Reach::Sole => self.enter_state(d, state).await?,
            Reach::OneOfMany { .. } => {
                // Another server got there first: nothing to move.
                let _ = self.enter_state(d, state).await;
            }
        }
        Ok(())
    }

    /// Records the deployment live on this deployer's server (the one live there before
    /// superseded there), and for a deployment on this server only, the app's live one.
    pub(crate) async fn go_live(&self, d: &DeploymentRecord) -> Result<(), Failure> {
        if self.reach == Reach::Sole {
            self.store().mark_live(&d.app, d.id).await?;
        }
        self.store()
            .mark_live_on(&d.app, d.id, self.server().as_str())
            .await?;
        Ok(())
    }

    /// The deployment live on this deployer's server before `d`, if any.
    pub(crate) async fn live_here_before(
        &self,
        d: &DeploymentRecord,
    ) -> Result<Option<i64>, Failure> {
        Ok(self
            .store()
            .live_on(&d.app, self.server().as_str())
            .await?
            .filter(|previous| *previous != d.id))
    }

    /// This deployer, for one server of a deployment on several (running the app's
    /// pre- and post-deploy commands when `hooks`).
    fn one_of_many(&self, hooks: bool) -> Deployer {
        let mut deployer = self.clone();
        deployer.reach = Reach::OneOfMany { hooks };
        deployer
    }

    /// Whether this deployer's cutover runs the app's pre- and post-deploy commands: once
    /// per deployment, so on one server of several.
    pub(crate) fn runs_hooks(&self) -> bool {
        match self.reach {
            Reach::Sole => true,
            Reach::OneOfMany { hooks } => hooks,
        }
    }

    /// Whether the deployment runs on several servers (or on another server than the one
    /// that built its image), and which still have to run it.
    pub(crate) async fn fanout_servers(
        &self,
        d: &DeploymentRecord,
    ) -> Result<Option<Vec<ServerName>>, Failure> {
        let targets = self.store().targets_of(d.id).await?;
        let only_here = match targets.as_slice() {
            [] => true,
            [one] => one.server == self.server().as_str(),
            _ => false,
        };
        if only_here {
            return Ok(None);
        }
        let pending = targets
            .into_iter()
            .filter(|t| t.state == DeploymentState::Queued)
            .map(|t| ServerName::parse(&t.server).map_err(|e| Failure::msg(e.to_string())))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(pending))
    }

    /// Runs a produced (or reused) release on every pending server, then settles the
    /// deployment from its servers: live where at least one went live.
    pub(crate) async fn fan_out(
        &self,
        d: &DeploymentRecord,
        pending: Vec<ServerName>,
        artifact: Artifact,
        settled: Settled,
        secrets: &[SecretValue],
        log: &DeployLog,
    ) -> Result<(), Failure> {
        if let Some(companion) = artifact.companions.first() {
            return Err(Failure::msg(format!(
                "compose apps with services beside the web one ({} ...) run on one server for now: their images, volumes and names are not carried between servers yet; name one server in the app's servers, without a build server",
                companion.container_name
            )));
        }
        self.enter_state(d, DeploymentState::Starting).await?;
        let names: Vec<String> = pending.iter().map(ToString::to_string).collect();
        log.info(format!(
            "deploying to {} server(s): {} (connecting to {} at a time)",
            pending.len(),
            names.join(", "),
            CONNECTS_AT_ONCE
        ))
        .await;
        let shared = Shared {
            settled: &settled,
            secrets,
            // Exported once, by the first server that lacks it, for every other.
            spooled: tokio::sync::OnceCell::new(),
            connects: tokio::sync::Semaphore::new(CONNECTS_AT_ONCE),
            log,
        };
        let outcomes = self.run_servers(d, pending, &artifact, &shared).await?;
        self.settle_fanout(d, outcomes, log).await
    }

    /// Cuts each pending server over, all at once (connecting to 4 at a time); the app's pre- and post-deploy commands
    /// run once, like a migration: a deployment that has any runs on one server first (its
    /// pre-deploy before any new version starts anywhere), then on the others; a retry
    /// runs none (they ran with the release).
    async fn run_servers(
        &self,
        d: &DeploymentRecord,
        pending: Vec<ServerName>,
        artifact: &Artifact,
        shared: &Shared<'_>,
    ) -> Result<Vec<ServerOutcome>, Failure> {
        let hooks = (artifact.spec.pre_deploy.is_some() || artifact.spec.post_deploy.is_some())
            && self.store().release_of(d.id).await?.is_none();
        let mut pending = pending.into_iter();
        let mut outcomes = Vec::new();
        if hooks {
            if let Some(server) = pending.next() {
                let result = self
                    .deploy_on(d, &server, artifact.clone(), shared, true)
                    .await;
                let failed = result.is_err();
                outcomes.push(ServerOutcome {
                    server: server.clone(),
                    result,
                });
                // Without its commands, no other server starts the new version.
                if failed {
                    for other in pending {
                        let reason = format!("not started: it failed on {server}, which runs the app's pre- and post-deploy commands");
                        self.store()
                            .set_target_state(
                                d.id,
                                other.as_str(),
                                DeploymentState::Failed,
                                Some(&reason),
                            )
                            .await?;
                        outcomes.push(ServerOutcome {
                            server: other,
                            result: Err(Failure::msg(reason)),
                        });
                    }
                    return Ok(outcomes);
                }
            }
        }
        let rest: Vec<ServerOutcome> = futures::stream::iter(pending)
            .map(|server| {
                let artifact = artifact.clone();
                async move {
                    let result = self.deploy_on(d, &server, artifact, shared, false).await;
                    ServerOutcome { server, result }
                }
            })
            .buffer_unordered(capstan_core::app::MAX_APP_SERVERS)
            .collect()
            .await;
        outcomes.extend(rest);
        Ok(outcomes)
    }

    /// One server of a fan-out: connected (and prepared the first time), the image moved
    /// there when it lacks it, then the cutover; its row records how it ended.
    async fn deploy_on(
        &self,
        d: &DeploymentRecord,
        server: &ServerName,
        mut artifact: Artifact,
        shared: &Shared<'_>,
        hooks: bool,
    ) -> Result<(), Failure> {
        let log = shared.log.for_server(server.as_str());
        let result: Result<(), Failure> = async {
            self.store()
                .set_target_state(d.id, server.as_str(), DeploymentState::Starting, None)
                .await?;
            let connecting = shared.connects.acquire().await;
            let there = self
                .connect_target(server)
                .await
                .map_err(|e| Failure::msg(e.to_string()))?
                .one_of_many(hooks);
            drop(connecting);
            self.move_image_to(&there, &artifact.image, &shared.spooled, &log)
                .await?;
            there
                .start_and_switch(d, &mut artifact, shared.settled, shared.secrets, &log)
                .await?;
            let keep: Vec<String> = artifact
                .companions
                .iter()
                .map(|c| c.container_name.clone())
                .collect();
            there.remove_stale_companions(&d.app, &keep, &log).await;
            Ok(())
        }
        .await;
        match &result {
            Ok(()) => log.info("live on this server").await,
            Err(failure) => {
                let reason = log.masked(&failure.to_string());
                log.info(format!("failed on this server: {reason}")).await;
                let failed = DeploymentState::Failed;
                let recorded = self
                    .store()
                    .set_target_state(d.id, server.as_str(), failed, Some(&reason))
                    .await;
                // The server's own failure is what the deployment reports.
                if let Err(err) = recorded {
                    tracing::error!(deployment = d.id, %server, %err, "cannot record the server's failure");
                }
            }
        }
        result
    }

    /// Gives `there` the image when it lacks it: through the instance's registry when one
    /// is set, else sending only the layers it lacks.
    async fn move_image_to(
        &self,
        there: &Deployer,
        image: &str,
        spooled: &Spooled,
        log: &DeployLog,
    ) -> Result<(), Failure> {
        if there.target().image_id(image).await?.is_some() {
            return Ok(());
        }
        let (Some(from), Some(to)) = (
            self.target().docker_engine(),
            there.target().docker_engine(),
        ) else {
            return Err(Failure::msg(format!(
                "image {image} is not on server {} and cannot be moved there from {}",
                there.server(),
                self.server()
            )));
        };
        // A configured registry is the alternative to the layer archive.
        if self
            .move_through_registry(from, to, image, there.server(), log)
            .await?
        {
            return Ok(());
        }
        log.info(format!(
            "moving image {image} from server {} (layers it lacks, no registry)",
            self.server()
        ))
        .await;
        let spool = self.settings().workspace_dir.join("transfers");
        let export = spooled
            .get_or_try_init(|| capstan_engine::transfer::spool_image(from, image, &spool))
            .await?;
        let report = export.send_to(to).await?;
        log.info(format!(
            "image moved: {} sent ({} bytes; changed layers {} bytes; {} layer(s) sent, {} already there; a full copy is {})",
            human_bytes(report.bytes_sent),
            report.bytes_sent,
            report.changed_layer_bytes,
            report.layers_sent,
            report.layers_skipped,
            human_bytes(report.export_bytes)
        ))
        .await;
        Ok(())
    }

    /// Sums the servers up: live (with a note of the servers that failed) when at least
    /// one went live, else the failure of each.
    async fn settle_fanout(
        &self,
        d: &DeploymentRecord,
        outcomes: Vec<ServerOutcome>,
        log: &DeployLog,
    ) -> Result<(), Failure> {
        let failed: Vec<String> = outcomes
            .iter()
            .filter_map(|o| match &o.result {
                Err(failure) => Some(format!(
                    "{}: {}",
                    o.server,
                    log.masked(&failure.to_string())
                )),
                Ok(()) => None,
            })
            .collect();
        let live_now = self
            .store()
            .targets_of(d.id)
            .await?
            .iter()
            .filter(|t| t.state == DeploymentState::Live)
            .count();
        if live_now == 0 {
            // Cancelled before it switched anywhere: it ends cancelled, not failed.
            let cancelled = outcomes.iter().find_map(|o| match &o.result {
                Err(Failure::Cancelled(by)) => Some(by.clone()),
                _ => None,
            });
            if let Some(by) = cancelled {
                return Err(Failure::Cancelled(by));
            }
            return Err(Failure::msg(format!(
                "failed on every server: {}",
                failed.join("; ")
            )));
        }
        let note = (!failed.is_empty()).then(|| {
            format!(
                "failed on {} server(s) (retry runs only those): {}",
                failed.len(),
                failed.join("; ")
            )
        });
        if let Some(note) = &note {
            log.info(note).await;
        }
        self.store()
            .settle_from_targets(&d.app, d.id, note.as_deref())
            .await?;
        Ok(())
    }
}

/// A byte count for the log: B, KiB, MiB or GiB.
fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::human_bytes;

    #[test]
    fn byte_counts_read_in_the_largest_whole_unit() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(2048), "2.0 KiB");
        assert_eq!(human_bytes(5 * 1024 * 1024 + 512 * 1024), "5.5 MiB");
    }
}
