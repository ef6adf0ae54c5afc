//! Sending one notification to one channel: a POST of JSON (the generic webhook signed
//! with `X-Capstan-Signature`, Slack's and Discord's shapes) or an email over SMTP
//! (lettre; STARTTLS, TLS or, without a password or to loopback, plain). Every send is
//! bounded (10 s by default); no redirect is followed. Errors name the channel's masked
//! URL or SMTP host, never a token or a password.

use crate::channel::{mask_url, ChannelKind, SmtpTls};
use crate::message::Notification;
use crate::NotifyError;
use hmac::{Hmac, Mac};
use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde_json::Value;
use sha2::Sha256;
use std::time::Duration;

/// The signature header of the generic webhook.
pub const SIGNATURE_HEADER: &str = "X-Capstan-Signature";

/// `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
pub fn signature(secret: &str, unix: i64, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(unix.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={unix},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// A channel with its sealed part, ready to send to. `Debug` shows no secret.
#[derive(Clone)]
pub struct Target {
    pub kind: ChannelKind,
    pub config: Value,
    pub secret: Value,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("kind", &self.kind)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Sends notifications; one per daemon (its HTTP client is shared).
#[derive(Clone)]
pub struct Sender {
    http: reqwest::Client,
    timeout: Duration,
}

impl Sender {
    /// A sender whose every attempt ends within `timeout`.
    pub fn new(timeout: Duration) -> Result<Self, NotifyError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("capstan/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| NotifyError::Send(format!("cannot make the HTTP client: {e}")))?;
        Ok(Self { http, timeout })
    }

    /// Sends `note` to `target`.
    pub async fn send(&self, target: &Target, note: &Notification) -> Result<(), NotifyError> {
        match target.kind {
            ChannelKind::Webhook => {
                let body = serde_json::to_vec(note)
                    .map_err(|e| NotifyError::Send(format!("cannot encode: {e}")))?;
                let secret = target.secret["signing_secret"].as_str().unwrap_or("");
                let sig = signature(secret, chrono::Utc::now().timestamp(), &body);
                self.post(target, body, Some(sig)).await
            }
            ChannelKind::Slack => {
                self.post(target, note.slack().to_string().into(), None)
                    .await
            }
            ChannelKind::Discord => {
                self.post(target, note.discord().to_string().into(), None)
                    .await
            }
            ChannelKind::Email => self.email(target, note).await,
        }
    }

    async fn post(
        &self,
        target: &Target,
        body: Vec<u8>,
        signature: Option<String>,
    ) -> Result<(), NotifyError> {
        let url = target.secret["url"]
            .as_str()
            .ok_or_else(|| NotifyError::Send("the channel has no URL".into()))?;
        let shown = mask_url(url);
        let mut request = self
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        if let Some(signature) = signature {
            request = request.header(SIGNATURE_HEADER, signature);
        }
        // reqwest's errors name the URL: only the masked one is said.
        let response = request.send().await.map_err(|e| {
            let what = if e.is_timeout() {
                format!("no answer within {} s", self.timeout.as_secs())
            } else if e.is_connect() {
                "cannot connect".to_string()
            } else {
                "request failed".to_string()
            };
            NotifyError::Send(format!("{shown}: {what}"))
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        // Only the status: the body of whatever a channel URL points at (an address inside
        // the host's networks, say) is never shown to the caller.
        Err(NotifyError::Send(format!("{shown} answered {status}")))
    }

    async fn email(&self, target: &Target, note: &Notification) -> Result<(), NotifyError> {
        let config = &target.config;
        let host = config["smtp_host"].as_str().unwrap_or("");
        let port = config["smtp_port"]
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or(25);
        let tls: SmtpTls = serde_json::from_value(config["smtp_tls"].clone()).unwrap_or_default();
        let fail = |what: String| NotifyError::Send(format!("SMTP {host}:{port}: {what}"));
        let (subject, body) = note.email();
        let mailbox = |text: &str| {
            text.parse::<Mailbox>()
                .map_err(|e| fail(format!("{text:?}: {e}")))
        };
        let mut message = Message::builder()
            .from(mailbox(config["from"].as_str().unwrap_or(""))?)
            .subject(subject)
            .header(ContentType::TEXT_PLAIN);
        for to in config["to"].as_array().into_iter().flatten() {
            message = message.to(mailbox(to.as_str().unwrap_or(""))?);
        }
        let message = message.body(body).map_err(|e| fail(e.to_string()))?;
        let mut transport = match tls {
            SmtpTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host),
            SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(host),
            SmtpTls::None => Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(
                host,
            )),
        }
        .map_err(|e| fail(e.to_string()))?
        .port(port)
        .timeout(Some(self.timeout));
        if let (Some(user), Some(password)) = (
            config["smtp_username"].as_str(),
            target.secret["smtp_password"].as_str(),
        ) {
            transport = transport.credentials(Credentials::new(user.into(), password.into()));
        }
        let sent = tokio::time::timeout(self.timeout, transport.build().send(message)).await;
        match sent {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(fail(e.to_string())),
            Err(_) => Err(fail(format!(
                "no answer within {} s",
                self.timeout.as_secs()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_covers_the_time_and_the_body() {
        let a = signature("s3cret", 1_700_000_000, b"{}");
        assert!(a.starts_with("t=1700000000,v1="), "{a}");
        assert_eq!(a.len(), "t=1700000000,v1=".len() + 64);
        assert_ne!(a, signature("s3cret", 1_700_000_001, b"{}"));
        assert_ne!(a, signature("s3cret", 1_700_000_000, b"{ }"));
        assert_ne!(a, signature("other", 1_700_000_000, b"{}"));
    }
}
