//! Forge webhooks without IO: which forge sent a delivery (`Provider`), whether its
//! signature holds over the raw body (`signature`), what it says (`Event`, read per forge
//! in `github`, `gitlab`, `bitbucket`), and the pure checks the web layer makes before it
//! queues anything: repository URLs compared the way people write them (`repo_url`), skip
//! markers and watch paths (`filters`).

mod bitbucket;
mod event;
mod filters;
mod github;
mod gitlab;
mod headers;
mod payload;
mod repo_url;
mod signature;

use std::fmt;
use std::str::FromStr;

use http::HeaderMap;

pub use event::{Event, PrAction, PullRequest, Push, RepoUrls};
pub use filters::{check_watch_path, skip_marker, touches_watched, WatchPathError};
pub use payload::{is_full_commit_id, PayloadError};
pub use repo_url::normalize_repo_url;
pub use signature::SignatureError;

/// A forge that delivers webhooks. Gitea and Forgejo share one (Forgejo keeps Gitea's
/// payloads and sends both header families).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    Github,
    Gitlab,
    Gitea,
    Bitbucket,
}

/// A provider name that is none of `github`, `gitlab`, `gitea`, `forgejo`, `bitbucket`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown forge {0:?}: expected one of github, gitlab, gitea, forgejo, bitbucket")]
pub struct UnknownProvider(pub String);

impl Provider {
    /// Every provider, in the order the panel lists them.
    pub const ALL: [Provider; 4] = [
        Provider::Github,
        Provider::Gitlab,
        Provider::Gitea,
        Provider::Bitbucket,
    ];

    /// The lowercase name used in the webhook URL (`/api/v1/webhooks/{provider}/{app}`).
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Github => "github",
            Provider::Gitlab => "gitlab",
            Provider::Gitea => "gitea",
            Provider::Bitbucket => "bitbucket",
        }
    }

    /// Checks the delivery's signature over the RAW body, in constant time, before
    /// anything is parsed. An empty secret never verifies.
    pub fn verify(
        self,
        secret: &[u8],
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<(), SignatureError> {
        signature::verify(self, secret, headers, body)
    }

    /// The delivery's id from its header (`X-GitHub-Delivery`; GitLab's `Idempotency-Key`,
    /// kept across retries, else `X-Gitlab-Event-UUID`; `X-Gitea-Delivery` /
    /// `X-Forgejo-Delivery`; `X-Request-UUID`), if any, at most 128 printable characters.
    pub fn delivery_id(self, headers: &HeaderMap) -> Option<String> {
        headers::delivery_id(self, headers)
    }

    /// The event name header (`X-GitHub-Event`, `X-Gitlab-Event`, `X-Gitea-Event` /
    /// `X-Forgejo-Event`, `X-Event-Key`).
    pub fn event_name(self, headers: &HeaderMap) -> Option<String> {
        headers::event_name(self, headers)
    }

    /// Parses a verified delivery into a typed event. A Bitbucket push that moved several
    /// refs at once is an error here ([`PayloadError::SeveralRefs`]): use
    /// [`Provider::parse_all`], which gives one event per ref for every forge.
    pub fn parse(self, headers: &HeaderMap, body: &[u8]) -> Result<Event, PayloadError> {
        let mut events = self.parse_all(headers, body)?;
        match events.len() {
            1 => Ok(events.remove(0)),
            count => Err(PayloadError::SeveralRefs { count }),
        }
    }

    /// Parses a verified delivery into its events: exactly one, except a Bitbucket
    /// `repo:push`, which lists every ref the push moved (one [`Event::Push`] each).
    pub fn parse_all(self, headers: &HeaderMap, body: &[u8]) -> Result<Vec<Event>, PayloadError> {
        let event = self.event_name(headers).ok_or(PayloadError::MissingEvent {
            header: headers::event_header(self),
        })?;
        match self {
            Provider::Github => {
                github::parse(github::Flavour::Github, &event, body).map(|e| vec![e])
            }
            Provider::Gitea => github::parse(github::Flavour::Gitea, &event, body).map(|e| vec![e]),
            Provider::Gitlab => gitlab::parse(&event, body).map(|e| vec![e]),
            Provider::Bitbucket => bitbucket::parse(&event, body),
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Provider {
    type Err = UnknownProvider;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "github" => Ok(Provider::Github),
            "gitlab" => Ok(Provider::Gitlab),
            "gitea" | "forgejo" => Ok(Provider::Gitea),
            "bitbucket" => Ok(Provider::Bitbucket),
            other => Err(UnknownProvider(other.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_forgejo_is_gitea() {
        for p in Provider::ALL {
            assert_eq!(p.to_string().parse::<Provider>(), Ok(p));
        }
        assert_eq!("forgejo".parse::<Provider>(), Ok(Provider::Gitea));
        assert_eq!(
            "GitHub".parse::<Provider>(),
            Err(UnknownProvider("GitHub".into()))
        );
        assert!("".parse::<Provider>().is_err());
    }
}
