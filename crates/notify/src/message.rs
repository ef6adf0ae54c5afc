//! What a notification says: the event as JSON (the generic webhook's body and what the
//! outbox keeps: no secrets in it), and the same in Slack's, Discord's and an email's
//! words. Built from the deploy bus's events.

use capstan_deploy::{DeployEvent, Finished, Outcome};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// One notification, as the generic webhook receives it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// `deployment.live`, `deployment.failed`, … or `test`.
    pub event: String,
    pub app: Option<String>,
    pub deployment: Option<i64>,
    pub environment: Option<String>,
    /// `live`, `failed`, `rolled_back`, `cancelled`, `superseded`.
    pub outcome: Option<String>,
    pub trigger: Option<String>,
    pub commit: Option<String>,
    pub commit_message: Option<String>,
    pub server: Option<String>,
    /// Why it failed: phase, kind and message (secrets masked as in the log).
    pub error: Option<Value>,
    /// When it happened, RFC 3339.
    pub at: String,
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

impl Notification {
    fn blank(event: &str) -> Self {
        Self {
            event: event.into(),
            app: None,
            deployment: None,
            environment: None,
            outcome: None,
            trigger: None,
            commit: None,
            commit_message: None,
            server: None,
            error: None,
            at: now_rfc3339(),
        }
    }

    /// The test message a channel's Test button sends.
    pub fn test(app: Option<&str>) -> Self {
        Self {
            app: app.map(str::to_string),
            ..Self::blank("test")
        }
    }

    /// A finished deployment's notification.
    pub fn finished(finished: &Finished) -> Self {
        let record = &finished.record;
        let (event, outcome, error) = match &finished.outcome {
            Outcome::Live => ("deployment.live", "live", None),
            Outcome::RolledBack => ("deployment.rolled_back", "rolled_back", None),
            Outcome::Cancelled => ("deployment.cancelled", "cancelled", None),
            Outcome::Superseded => ("deployment.superseded", "superseded", None),
            Outcome::Failed(reason) => (
                "deployment.failed",
                "failed",
                Some(json!({
                    "phase": reason.phase.as_str(),
                    "kind": reason.kind.as_str(),
                    "message": reason.message,
                })),
            ),
        };
        Self {
            app: Some(record.app.to_string()),
            deployment: Some(record.id),
            environment: Some(record.environment.clone()),
            outcome: Some(outcome.into()),
            trigger: Some(record.trigger.as_str().into()),
            commit: record.commit_sha.clone(),
            commit_message: record.commit_message.clone(),
            server: Some(record.server.clone()),
            error,
            ..Self::blank(event)
        }
    }

    /// A server found unreachable.
    pub fn server_unreachable(server: &str) -> Self {
        Self {
            server: Some(server.into()),
            ..Self::blank("server.unreachable")
        }
    }

    /// The notification of a bus event, if it makes one (`ServerChecked` transitions are
    /// the caller's to judge).
    pub fn of_event(event: &DeployEvent) -> Option<Self> {
        match event {
            DeployEvent::Finished(finished) => Some(Self::finished(finished)),
            _ => None,
        }
    }

    /// One line: `web: deployment 12 failed (health_checking: never healthy)`.
    pub fn headline(&self) -> String {
        let app = self.app.as_deref().unwrap_or("capstan");
        match (
            self.event.as_str(),
            self.deployment,
            self.outcome.as_deref(),
        ) {
            ("test", ..) => format!("{app}: test notification from Capstan"),
            ("server.unreachable", ..) => format!(
                "server {} is unreachable",
                self.server.as_deref().unwrap_or("?")
            ),
            (_, Some(id), Some(outcome)) => {
                format!("{app}: deployment {id} {}", outcome.replace('_', " "))
            }
            (event, ..) => format!("{app}: {event}"),
        }
    }

    /// The lines after the headline: commit, trigger, server, failure.
    pub fn details(&self) -> Vec<String> {
        let mut lines = Vec::new();
        if let Some(commit) = &self.commit {
            let short: String = commit.chars().take(12).collect();
            let subject = self.commit_message.as_deref().unwrap_or("");
            lines.push(format!("commit {short} {subject}").trim_end().to_string());
        }
        if let (Some(trigger), Some(env)) = (&self.trigger, &self.environment) {
            lines.push(format!("{trigger} of {env}"));
        }
        if let Some(server) = self.server.as_deref().filter(|_| self.deployment.is_some()) {
            lines.push(format!("server {server}"));
        }
        if let Some(error) = &self.error {
            let text = |k: &str| error[k].as_str().unwrap_or("").to_string();
            lines.push(format!(
                "failed in {} ({}): {}",
                text("phase"),
                text("kind"),
                text("message")
            ));
        }
        lines.push(format!("at {}", self.at));
        lines
    }

    fn colour(&self) -> u32 {
        match self.outcome.as_deref() {
            Some("live") => 0x2e_a0_43,
            Some("failed") => 0xd0_2f_2f,
            Some("rolled_back") => 0xe0_a0_00,
            _ if self.event == "server.unreachable" => 0xd0_2f_2f,
            _ => 0x70_70_70,
        }
    }

    /// A Slack incoming webhook's body.
    pub fn slack(&self) -> Value {
        let details = self.details().join("\n");
        json!({
            "text": format!("{}\n{details}", self.headline()),
            "blocks": [{
                "type": "section",
                "text": {"type": "mrkdwn", "text": format!("*{}*\n{details}", self.headline())},
            }],
        })
    }

    /// A Discord webhook's body.
    pub fn discord(&self) -> Value {
        json!({
            "username": "Capstan",
            "embeds": [{
                "title": self.headline(),
                "description": self.details().join("\n"),
                "color": self.colour(),
                "timestamp": self.at,
            }],
        })
    }

    /// An email's subject and plain-text body.
    pub fn email(&self) -> (String, String) {
        let subject = format!("[Capstan] {}", self.headline());
        let body = format!("{}\n\n{}\n", self.headline(), self.details().join("\n"));
        (subject, body)
    }
}
