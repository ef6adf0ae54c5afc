//! What a channel is: its kind, the events it wants, and its settings as the API takes
//! them, checked and split into what may be shown (`config`: URLs masked to their scheme
//! and host) and what is sealed in the store (`secret`: the URL with its token, the
//! signing secret Capstan generates for a generic webhook, the SMTP password).

use crate::NotifyError;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Where a channel sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelKind {
    /// Generic JSON webhook, signed (`X-Capstan-Signature`).
    Webhook,
    /// A Slack incoming webhook.
    Slack,
    /// A Discord webhook.
    Discord,
    /// Email over SMTP.
    Email,
}

impl ChannelKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Webhook => "webhook",
            Self::Slack => "slack",
            Self::Discord => "discord",
            Self::Email => "email",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Webhook, Self::Slack, Self::Discord, Self::Email]
            .into_iter()
            .find(|k| k.as_str() == text)
    }
}

/// Every event a channel may choose.
pub const EVENTS: [&str; 6] = [
    "deployment.live",
    "deployment.failed",
    "deployment.rolled_back",
    "deployment.cancelled",
    "deployment.superseded",
    "server.unreachable",
];

/// The events of a channel that names none.
pub const DEFAULT_EVENTS: [&str; 2] = ["deployment.live", "deployment.failed"];

/// How an SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS (required), usually port 587.
    #[default]
    Starttls,
    /// TLS from the first byte, usually port 465.
    Tls,
    /// No TLS: only without credentials, or to a loopback host.
    None,
}

/// A channel as the API takes it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelInput {
    /// `webhook`, `slack`, `discord` or `email`.
    pub kind: String,
    /// Events to send (default `deployment.live`, `deployment.failed`).
    #[serde(default)]
    pub events: Option<Vec<String>>,
    /// The URL to POST to (webhook, slack, discord).
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub smtp_host: Option<String>,
    #[serde(default)]
    pub smtp_port: Option<u16>,
    #[serde(default)]
    pub smtp_tls: Option<SmtpTls>,
    #[serde(default)]
    pub smtp_username: Option<String>,
    #[serde(default)]
    pub smtp_password: Option<String>,
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub to: Option<Vec<String>>,
}

/// A checked channel, ready to be stored.
#[derive(Debug, Clone)]
pub struct CheckedChannel {
    pub kind: ChannelKind,
    pub events: Vec<String>,
    /// What may be shown.
    pub config: Value,
    /// What is sealed. Never logged.
    pub secret: Value,
    /// The signing secret of a generic webhook, shown once when it is created.
    pub signing_secret: Option<String>,
}

fn invalid(field: &str, message: impl Into<String>) -> NotifyError {
    NotifyError::Invalid {
        field: field.to_string(),
        message: message.into(),
    }
}

/// A URL shown without what may carry a token: `https://hooks.slack.com/…`.
pub fn mask_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(parsed) => {
            let host = parsed.host_str().unwrap_or("");
            let port = parsed.port().map(|p| format!(":{p}")).unwrap_or_default();
            format!("{}://{host}{port}/…", parsed.scheme())
        }
        Err(_) => "…".into(),
    }
}

/// An http(s) URL with a host, without user-info.
fn check_url(field: &str, url: Option<&str>) -> Result<String, NotifyError> {
    let url = url.ok_or_else(|| invalid(field, "is required for this kind of channel"))?;
    let parsed = url::Url::parse(url).map_err(|e| invalid(field, format!("is not a URL ({e})")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(invalid(field, "must be an http:// or https:// URL"));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(invalid(field, "must name a host"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(invalid(field, "must not carry a user name or password"));
    }
    Ok(url.to_string())
}

fn check_events(events: Option<Vec<String>>) -> Result<Vec<String>, NotifyError> {
    let events = events.unwrap_or_else(|| DEFAULT_EVENTS.map(str::to_string).to_vec());
    if events.is_empty() {
        return Err(invalid("events", "must name at least one event"));
    }
    let mut out: Vec<String> = Vec::new();
    for event in events {
        if !EVENTS.contains(&event.as_str()) {
            return Err(invalid(
                "events",
                format!("unknown event {event:?}; one of {}", EVENTS.join(", ")),
            ));
        }
        if !out.contains(&event) {
            out.push(event);
        }
    }
    Ok(out)
}

/// A new signing secret: 32 random bytes from the OS, in hex.
pub fn new_signing_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

fn check_mailbox(field: &str, text: &str) -> Result<(), NotifyError> {
    text.parse::<lettre::message::Mailbox>()
        .map(|_| ())
        .map_err(|e| invalid(field, format!("{text:?} is not an email address ({e})")))
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn check_email(input: &ChannelInput) -> Result<(Value, Value), NotifyError> {
    let host = input
        .smtp_host
        .as_deref()
        .filter(|h| {
            !h.is_empty()
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
        })
        .ok_or_else(|| invalid("smtp_host", "is required: a host name or address"))?;
    let tls = input.smtp_tls.unwrap_or_default();
    let port = input.smtp_port.unwrap_or(match tls {
        SmtpTls::Starttls => 587,
        SmtpTls::Tls => 465,
        SmtpTls::None => 25,
    });
    if port == 0 {
        return Err(invalid("smtp_port", "must be 1 to 65535"));
    }
    let username = input.smtp_username.clone().filter(|u| !u.is_empty());
    if tls == SmtpTls::None && username.is_some() && !is_loopback(host) {
        return Err(invalid(
            "smtp_tls",
            "\"none\" sends the password in clear: only to a loopback host",
        ));
    }
    if username.is_some() != input.smtp_password.as_ref().is_some_and(|p| !p.is_empty()) {
        return Err(invalid(
            "smtp_password",
            "give both a username and a password, or neither",
        ));
    }
    let from = input
        .from
        .as_deref()
        .ok_or_else(|| invalid("from", "is required"))?;
    check_mailbox("from", from)?;
    let to = input.to.clone().unwrap_or_default();
    if to.is_empty() {
        return Err(invalid("to", "must name at least one recipient"));
    }
    for address in &to {
        check_mailbox("to", address)?;
    }
    let config = json!({
        "smtp_host": host, "smtp_port": port, "smtp_tls": tls,
        "smtp_username": username, "from": from, "to": to,
    });
    Ok((config, json!({ "smtp_password": input.smtp_password })))
}

/// Checks a channel as the API took it. Every problem names its field.
pub fn check(input: ChannelInput) -> Result<CheckedChannel, NotifyError> {
    let kind = ChannelKind::parse(&input.kind).ok_or_else(|| {
        invalid(
            "kind",
            format!(
                "{:?} is not one of webhook, slack, discord, email",
                input.kind
            ),
        )
    })?;
    let events = check_events(input.events.clone())?;
    let mut signing_secret = None;
    let (config, secret) = match kind {
        ChannelKind::Email => check_email(&input)?,
        ChannelKind::Webhook | ChannelKind::Slack | ChannelKind::Discord => {
            let url = check_url("url", input.url.as_deref())?;
            let mut secret = json!({ "url": url });
            if kind == ChannelKind::Webhook {
                let signing = new_signing_secret();
                secret["signing_secret"] = json!(signing);
                signing_secret = Some(signing);
            }
            (json!({ "url": mask_url(&url) }), secret)
        }
    };
    Ok(CheckedChannel {
        kind,
        events,
        config,
        secret,
        signing_secret,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(kind: &str, url: &str) -> ChannelInput {
        serde_json::from_value(json!({"kind": kind, "url": url})).unwrap()
    }

    fn field_of(result: Result<CheckedChannel, NotifyError>) -> String {
        match result {
            Err(NotifyError::Invalid { field, .. }) => field,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn urls_must_be_http_and_are_shown_masked() {
        assert_eq!(field_of(check(input("slack", "ftp://x/y"))), "url");
        assert_eq!(
            field_of(check(input("slack", "javascript:alert(1)"))),
            "url"
        );
        assert_eq!(field_of(check(input("discord", "https://u:p@h/x"))), "url");
        assert_eq!(field_of(check(input("pager", "https://h/x"))), "kind");
        let ok = check(input(
            "slack",
            "https://hooks.slack.com/services/T/B/secret",
        ))
        .unwrap();
        assert_eq!(ok.config["url"], "https://hooks.slack.com/…");
        assert_eq!(
            ok.secret["url"],
            "https://hooks.slack.com/services/T/B/secret"
        );
        assert_eq!(ok.events, DEFAULT_EVENTS.to_vec());
        assert!(ok.signing_secret.is_none());
        let hook = check(input("webhook", "http://127.0.0.1:9/x?token=1")).unwrap();
        assert_eq!(hook.signing_secret.as_deref().map(str::len), Some(64));
        assert_eq!(hook.config["url"], "http://127.0.0.1:9/…");
    }

    #[test]
    fn events_are_checked() {
        let bad = serde_json::from_value(
            json!({"kind": "slack", "url": "https://h/x", "events": ["deployment.exploded"]}),
        )
        .unwrap();
        assert_eq!(field_of(check(bad)), "events");
        let none =
            serde_json::from_value(json!({"kind": "slack", "url": "https://h/x", "events": []}))
                .unwrap();
        assert_eq!(field_of(check(none)), "events");
    }

    #[test]
    fn email_needs_tls_for_a_password_off_loopback() {
        let base = json!({"kind": "email", "smtp_host": "mail.example.com", "smtp_tls": "none",
            "smtp_username": "u", "smtp_password": "p", "from": "capstan@example.com",
            "to": ["ops@example.com"]});
        let plain: ChannelInput = serde_json::from_value(base.clone()).unwrap();
        assert_eq!(field_of(check(plain)), "smtp_tls");
        let mut local = base.clone();
        local["smtp_host"] = json!("127.0.0.1");
        let ok = check(serde_json::from_value(local).unwrap()).unwrap();
        assert_eq!(ok.config["smtp_port"], 25);
        assert!(ok.config.get("smtp_password").is_none());
        let mut bad_to = base;
        bad_to["to"] = json!(["not an address"]);
        bad_to["smtp_tls"] = json!("starttls");
        assert_eq!(
            field_of(check(serde_json::from_value(bad_to).unwrap())),
            "to"
        );
    }
}
