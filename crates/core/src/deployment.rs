//! The deployment state machine: which states exist and which moves between them are legal.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Where a deployment is in its life. `Live` is held by at most one deployment per app.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeploymentState {
    Queued,
    Preparing,
    Building,
    Starting,
    HealthChecking,
    Switching,
    Live,
    Superseded,
    Failed,
    Cancelled,
}

impl DeploymentState {
    pub const ALL: [DeploymentState; 10] = [
        Self::Queued,
        Self::Preparing,
        Self::Building,
        Self::Starting,
        Self::HealthChecking,
        Self::Switching,
        Self::Live,
        Self::Superseded,
        Self::Failed,
        Self::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Preparing => "preparing",
            Self::Building => "building",
            Self::Starting => "starting",
            Self::HealthChecking => "health_checking",
            Self::Switching => "switching",
            Self::Live => "live",
            Self::Superseded => "superseded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    /// A worker is executing this deployment right now.
    pub fn is_in_progress(self) -> bool {
        matches!(
            self,
            Self::Preparing
                | Self::Building
                | Self::Starting
                | Self::HealthChecking
                | Self::Switching
        )
    }

    /// The deployment's attempt is over: nothing will change it except being superseded.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            Self::Live | Self::Superseded | Self::Failed | Self::Cancelled
        )
    }

    /// Whether moving from `self` to `next` is a legal step.
    pub fn can_move_to(self, next: DeploymentState) -> bool {
        use DeploymentState::*;
        matches!(
            (self, next),
            (
                Queued,
                Preparing | Starting | Cancelled | Failed | Superseded
            ) | (Preparing, Building | Starting | Failed | Cancelled)
                | (Building, Starting | Failed | Cancelled)
                | (Starting, HealthChecking | Failed | Cancelled)
                | (HealthChecking, Switching | Failed | Cancelled)
                | (Switching, Live | Failed)
                | (Live, Superseded)
        )
    }
}

impl fmt::Display for DeploymentState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DeploymentState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| format!("unknown deployment state {s:?}"))
    }
}

/// What asked for a deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// `POST /apps/{app}/deployments`: fetch, build, release.
    Deploy,
    /// Reuse an earlier release: no fetch, no build.
    Rollback,
    /// New containers from the live release, with the current settings.
    Restart,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Deploy => "deploy",
            Self::Rollback => "rollback",
            Self::Restart => "restart",
        }
    }
}

impl FromStr for Trigger {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "deploy" => Ok(Self::Deploy),
            "rollback" => Ok(Self::Rollback),
            "restart" => Ok(Self::Restart),
            other => Err(format!("unknown trigger {other:?}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_through_strings() {
        for state in DeploymentState::ALL {
            assert_eq!(state.as_str().parse::<DeploymentState>().unwrap(), state);
        }
        assert!("nope".parse::<DeploymentState>().is_err());
    }

    #[test]
    fn finished_states_are_final_except_live() {
        for from in DeploymentState::ALL.into_iter().filter(|s| s.is_finished()) {
            for to in DeploymentState::ALL {
                let allowed = from == DeploymentState::Live && to == DeploymentState::Superseded;
                assert_eq!(from.can_move_to(to), allowed, "{from} -> {to}");
            }
        }
    }

    #[test]
    fn the_happy_path_is_legal() {
        use DeploymentState::*;
        let path = [
            Queued,
            Preparing,
            Building,
            Starting,
            HealthChecking,
            Switching,
            Live,
            Superseded,
        ];
        for pair in path.windows(2) {
            assert!(pair[0].can_move_to(pair[1]), "{} -> {}", pair[0], pair[1]);
        }
        assert!(!Queued.can_move_to(Live));
        assert!(!Building.can_move_to(Switching));
    }

    #[test]
    fn only_a_deployment_that_has_not_switched_can_be_cancelled() {
        use DeploymentState::*;
        for from in [Queued, Preparing, Building, Starting, HealthChecking] {
            assert!(from.can_move_to(Cancelled), "{from}");
        }
        assert!(!Switching.can_move_to(Cancelled));
        assert!(Queued.can_move_to(Superseded));
        assert!(!Preparing.can_move_to(Superseded));
    }
}
