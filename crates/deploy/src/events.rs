//! The deploy layer's typed events, on the one bus it owns: what happened to deployments,
//! servers and the proxy. Subscribers (the metrics today; notifications and commit statuses
//! next) take them from [`Deployer::subscribe`]; the pipeline publishes and never calls a
//! subscriber, so a slow or failing subscriber can never slow or fail a deployment.

use crate::pipeline::Failure;
use crate::Deployer;
use capstan_core::{AppName, DeploymentState, Trigger};
use capstan_store::{DeploymentRecord, Phase};
use std::sync::Arc;
use tokio::sync::broadcast;

/// How far a subscriber may fall behind before it misses events (it is told how many).
const BACKLOG: usize = 1024;

/// One thing that happened, as the deploy layer saw it.
#[derive(Debug, Clone)]
pub enum DeployEvent {
    /// A deployment was queued.
    Queued {
        deployment: i64,
        app: AppName,
        trigger: Trigger,
    },
    /// A queued deployment began to run (its app's lock held).
    Started { deployment: i64, app: AppName },
    /// A deployment entered a phase (preparing, building, starting, health checking,
    /// switching); on several servers, each phase once.
    Phase {
        deployment: i64,
        app: AppName,
        phase: DeploymentState,
    },
    /// A deployment ended, with its record and phase times as stored.
    Finished(Arc<Finished>),
    /// A new container never became healthy (or stopped before it did).
    HealthCheckFailed { container: String },
    /// A deployment has its image: built now, or an earlier build reused (`reused`).
    ImageReady { app: AppName, reused: bool },
    /// What the background check found of a server this round.
    ServerChecked { server: String, reachable: bool },
    /// A server was removed.
    ServerRemoved { server: String },
    /// The proxy watch found the proxy off an app's network and reconnected it.
    ProxyNetworkRejoined { app: AppName, network: String },
}

/// A deployment that ended.
#[derive(Debug, Clone)]
pub struct Finished {
    pub record: DeploymentRecord,
    pub phases: Vec<Phase>,
    pub outcome: Outcome,
}

/// How a deployment ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Live (a deploy or a restart).
    Live,
    /// A rollback went live.
    RolledBack,
    Failed(FailureReason),
    /// A newer deployment replaced it before it ran.
    Superseded,
    Cancelled,
}

/// Why a deployment failed: where, what kind of fault, and the words its log shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureReason {
    /// The phase it was in when it failed (`queued` when it never started).
    pub phase: DeploymentState,
    pub kind: FailureKind,
    /// The message, secrets masked (as in the deployment's `error`).
    pub message: String,
}

/// The kind of fault a deployment failed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The repo's `capstan.toml` or compose file.
    RepoConfig,
    /// Fetching the source or planning the build.
    Source,
    /// The engine (build, containers, images, networks).
    Engine,
    /// Rendering the compose spec or the route.
    Render,
    /// A phase did not work out: health, hooks, the proxy, a server.
    Phase,
    /// The switch failed and the route could not be put back.
    Stranded,
    /// The daemon's own database or files.
    Internal,
}

impl FailureKind {
    pub(crate) fn of(failure: &Failure) -> Self {
        match failure {
            Failure::RepoConfig(_) => Self::RepoConfig,
            Failure::Source(_) => Self::Source,
            Failure::Engine(_) => Self::Engine,
            Failure::Render(_) => Self::Render,
            Failure::Phase(_) | Failure::Cancelled(_) => Self::Phase,
            Failure::Stranded(_) => Self::Stranded,
            Failure::Store(_) | Failure::Io(_) => Self::Internal,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::RepoConfig => "repo_config",
            Self::Source => "source",
            Self::Engine => "engine",
            Self::Render => "render",
            Self::Phase => "phase",
            Self::Stranded => "stranded",
            Self::Internal => "internal",
        }
    }
}

impl Outcome {
    /// The outcome a finished deployment's record and phases say, with the kind of fault
    /// when it failed (`None`: it failed before a cause was known).
    fn of(record: &DeploymentRecord, phases: &[Phase], kind: Option<FailureKind>) -> Self {
        match record.state {
            DeploymentState::Live if record.trigger == Trigger::Rollback => Self::RolledBack,
            DeploymentState::Superseded => Self::Superseded,
            DeploymentState::Cancelled => Self::Cancelled,
            DeploymentState::Failed => Self::Failed(FailureReason {
                phase: phases
                    .iter()
                    .rev()
                    .map(|p| p.state)
                    .find(|state| *state != DeploymentState::Failed)
                    .unwrap_or(DeploymentState::Queued),
                kind: kind.unwrap_or(FailureKind::Phase),
                message: record.error.clone().unwrap_or_default(),
            }),
            _ => Self::Live,
        }
    }
}

/// The sending half of the bus; every deployer of the daemon shares one.
pub(crate) struct EventBus {
    sender: broadcast::Sender<DeployEvent>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self {
            sender: broadcast::channel(BACKLOG).0,
        }
    }
}

impl EventBus {
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<DeployEvent> {
        self.sender.subscribe()
    }
}

impl Deployer {
    /// Events from now on. A subscriber that falls more than a thousand events behind is
    /// told how many it missed ([`broadcast::error::RecvError::Lagged`]).
    pub fn subscribe(&self) -> broadcast::Receiver<DeployEvent> {
        self.inner.events.subscribe()
    }

    /// Tells every subscriber; nobody listening is fine.
    pub(crate) fn publish(&self, event: DeployEvent) {
        let _ = self.inner.events.sender.send(event);
    }

    /// Records that deployment `d` entered `phase` and says so on the bus.
    pub(crate) async fn enter_state(
        &self,
        d: &DeploymentRecord,
        phase: DeploymentState,
    ) -> Result<(), Failure> {
        self.cancel_gate(d.id, phase)?;
        self.store().transition(d.id, phase, None).await?;
        self.publish(DeployEvent::Phase {
            deployment: d.id,
            app: d.app.clone(),
            phase,
        });
        Ok(())
    }

    /// Publishes how deployment `id` ended, as the store now records it.
    pub(crate) async fn publish_finished(&self, id: i64, kind: Option<FailureKind>) {
        let (record, phases) = match (
            self.store().deployment(id).await,
            self.store().phases(id).await,
        ) {
            (Ok(record), Ok(phases)) => (record, phases),
            (Err(err), _) | (_, Err(err)) => {
                tracing::warn!(deployment = id, %err, "cannot read the finished deployment for its event");
                return;
            }
        };
        let outcome = Outcome::of(&record, &phases, kind);
        self.publish(DeployEvent::Finished(Arc::new(Finished {
            record,
            phases,
            outcome,
        })));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(state: DeploymentState, trigger: Trigger, error: Option<&str>) -> DeploymentRecord {
        DeploymentRecord {
            id: 7,
            app: AppName::parse("web").unwrap(),
            server: "local".into(),
            environment: "production".into(),
            trigger,
            state,
            git_ref: None,
            commit_sha: None,
            commit_message: None,
            image: None,
            from_release: None,
            no_cache: false,
            error: error.map(str::to_string),
            created_at: 0,
            started_at: None,
            finished_at: None,
            actor: None,
        }
    }

    fn phases(states: &[DeploymentState]) -> Vec<Phase> {
        states
            .iter()
            .enumerate()
            .map(|(i, state)| Phase {
                state: *state,
                at: i as i64,
            })
            .collect()
    }

    #[test]
    fn a_failure_names_the_phase_it_happened_in_and_its_kind() {
        use DeploymentState::*;
        let d = record(Failed, Trigger::Deploy, Some("never healthy"));
        let outcome = Outcome::of(
            &d,
            &phases(&[Queued, Preparing, Starting, HealthChecking, Failed]),
            Some(FailureKind::Phase),
        );
        assert_eq!(
            outcome,
            Outcome::Failed(FailureReason {
                phase: HealthChecking,
                kind: FailureKind::Phase,
                message: "never healthy".into(),
            })
        );
        let unstarted = Outcome::of(&d, &phases(&[Failed]), None);
        assert!(
            matches!(
                unstarted,
                Outcome::Failed(FailureReason { phase: Queued, .. })
            ),
            "{unstarted:?}"
        );
    }

    #[test]
    fn a_rollback_that_went_live_is_a_rollback() {
        use DeploymentState::*;
        let live = phases(&[Queued, Starting, Live]);
        assert_eq!(
            Outcome::of(&record(Live, Trigger::Rollback, None), &live, None),
            Outcome::RolledBack
        );
        assert_eq!(
            Outcome::of(&record(Live, Trigger::Restart, None), &live, None),
            Outcome::Live
        );
        assert_eq!(
            Outcome::of(&record(Cancelled, Trigger::Deploy, None), &live, None),
            Outcome::Cancelled
        );
    }

    #[test]
    fn every_failure_has_a_kind() {
        let kind = FailureKind::of(&Failure::msg("health"));
        assert_eq!(kind.as_str(), "phase");
        let io = Failure::Io(std::io::Error::other("disk"));
        assert_eq!(FailureKind::of(&io), FailureKind::Internal);
    }
}
