//! Sending one request to a forge: a bounded time per try, and what went wrong in words
//! that never hold the token (the forge's own message is read from its JSON error and
//! any echo of the token in it masked).

use crate::api::ForgeRequest;
use std::time::Duration;

/// The longest a forge may take to answer one try.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The most of a forge's error answer that is read.
const MAX_ERROR_BODY: usize = 4096;
/// The most of a forge's error message that is logged.
const MAX_ERROR_MESSAGE: usize = 300;

/// Why a try did not report the status.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The forge answered with an error status.
    #[error("the forge answered {status}: {message}")]
    Rejected { status: u16, message: String },
    /// No answer: refused, reset, timed out, TLS.
    #[error("the forge did not answer: {0}")]
    Unreachable(String),
}

impl SendError {
    /// Whether another try may work: no answer, a server error, or a rate limit. A
    /// refusal (bad token, unknown repository or commit) would be refused again.
    pub fn is_transient(&self) -> bool {
        match self {
            SendError::Unreachable(_) => true,
            SendError::Rejected { status, .. } => *status >= 500 || matches!(status, 408 | 429),
        }
    }
}

/// The client every report goes through: no redirects (the token is never carried
/// elsewhere), [`REQUEST_TIMEOUT`] per try.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(REQUEST_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("capstan/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

/// One try of `request`.
pub async fn send(
    client: &reqwest::Client,
    request: &ForgeRequest,
    token: &str,
) -> Result<(), SendError> {
    let answer = client
        .post(&request.url)
        .header(request.auth_header, &request.auth_value)
        .header("accept", "application/json")
        .header("x-github-api-version", "2022-11-28")
        .json(&request.body)
        .send()
        .await
        .map_err(|e| SendError::Unreachable(mask(&e.without_url().to_string(), token)))?;
    let status = answer.status();
    if status.is_success() {
        return Ok(());
    }
    let body = answer.bytes().await.unwrap_or_default();
    let body = &body[..body.len().min(MAX_ERROR_BODY)];
    Err(SendError::Rejected {
        status: status.as_u16(),
        message: mask(&forge_message(body), token),
    })
}

/// The message of a forge's JSON error (`message` on GitHub, Gitea and GitLab, GitLab's
/// `error`, Bitbucket's `error.message`), else the start of the body.
fn forge_message(body: &[u8]) -> String {
    let text = match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(json) => [&json["message"], &json["error"]["message"], &json["error"]]
            .into_iter()
            .find_map(|v| match v {
                serde_json::Value::String(s) => Some(s.clone()),
                serde_json::Value::Null => None,
                other if other.is_object() && !other["message"].is_null() => None,
                other => Some(other.to_string()),
            })
            .unwrap_or_default(),
        Err(_) => String::from_utf8_lossy(body).into_owned(),
    };
    let text: String = text.chars().filter(|c| !c.is_control()).collect();
    crate::api::truncate(text.trim(), MAX_ERROR_MESSAGE)
}

/// `text` with every occurrence of the token replaced by `****`.
pub fn mask(text: &str, token: &str) -> String {
    if token.is_empty() {
        return text.to_owned();
    }
    text.replace(token, "****")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_forges_error_message_is_read_and_the_token_masked() {
        let gh = br#"{"message":"Bad credentials for tok123","documentation_url":"x"}"#;
        assert_eq!(
            mask(&forge_message(gh), "tok123"),
            "Bad credentials for ****"
        );
        let bb = br#"{"type":"error","error":{"message":"Repository not found"}}"#;
        assert_eq!(forge_message(bb), "Repository not found");
        let gl = br#"{"error":"invalid_token"}"#;
        assert_eq!(forge_message(gl), "invalid_token");
        let gl_fields = br#"{"message":{"state":["is invalid"]}}"#;
        assert_eq!(forge_message(gl_fields), r#"{"state":["is invalid"]}"#);
        assert_eq!(forge_message(b"<html>oops\n</html>"), "<html>oops</html>");
    }

    #[test]
    fn only_what_may_pass_later_is_retried() {
        let rejected = |status| SendError::Rejected {
            status,
            message: String::new(),
        };
        assert!(rejected(500).is_transient());
        assert!(rejected(429).is_transient());
        assert!(!rejected(401).is_transient());
        assert!(!rejected(422).is_transient());
        assert!(SendError::Unreachable("reset".into()).is_transient());
    }
}
