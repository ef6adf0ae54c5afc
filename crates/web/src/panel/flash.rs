//! One-time messages for the page a post redirects to (post/redirect/get): kept in the
//! daemon's memory per session, never in the URL or a cookie, and taken when that page
//! renders, so Back, Forward or a reload never shows one again. A new token's secret
//! travels this way from the post that made it to the one page that shows it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How long a message waits for its page (the redirect follows at once).
const KEPT_FOR: Duration = Duration::from_secs(300);
/// Sessions with a message waiting, at most; the oldest go first.
const MAX_WAITING: usize = 4096;

/// What the next page of a session says once: a confirmation, and a secret to copy when
/// the action made one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flash {
    pub message: String,
    pub secret: Option<String>,
    /// The action failed: shown as a problem, not a confirmation.
    pub failed: bool,
    /// A line to copy that is not a secret (a new server's `authorized_keys` line).
    pub copy: Option<String>,
    /// What each check found, when the action ran checks (a server's preflight).
    pub checks: Vec<FlashCheck>,
}

/// One check's outcome in a one-time message: its name, whether it passed, what it found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlashCheck {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

impl Flash {
    pub fn notice(message: impl Into<String>) -> Self {
        Flash {
            message: message.into(),
            secret: None,
            failed: false,
            copy: None,
            checks: Vec::new(),
        }
    }

    /// An action that was tried and failed (the page it redirects to says so once).
    pub fn failure(message: impl Into<String>) -> Self {
        Flash {
            failed: true,
            ..Flash::notice(message)
        }
    }

    /// A confirmation with a line to copy that is not a secret.
    pub fn with_copy(message: impl Into<String>, line: String) -> Self {
        Flash {
            copy: Some(line),
            ..Flash::notice(message)
        }
    }

    /// The outcome of checks: a problem when any failed, each check listed.
    pub fn with_checks(message: impl Into<String>, checks: Vec<FlashCheck>) -> Self {
        Flash {
            failed: checks.iter().any(|c| !c.ok),
            checks,
            ..Flash::notice(message)
        }
    }

    pub fn with_secret(message: impl Into<String>, secret: String) -> Self {
        Flash {
            secret: Some(secret),
            ..Flash::notice(message)
        }
    }
}

/// The messages waiting, by session (keyed by the session's anti-forgery token, which is
/// random per session and known to the server).
#[derive(Clone, Default)]
pub struct Flashes(Arc<Mutex<HashMap<String, (Instant, Flash)>>>);

impl Flashes {
    /// Leaves `flash` for the session's next page, replacing one still waiting.
    pub fn put(&self, session: &str, flash: Flash) {
        let mut waiting = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        waiting.retain(|_, (at, _)| now.duration_since(*at) < KEPT_FOR);
        while waiting.len() >= MAX_WAITING {
            let oldest = waiting
                .iter()
                .min_by_key(|(_, (at, _))| *at)
                .map(|(key, _)| key.clone());
            match oldest {
                Some(key) => waiting.remove(&key),
                None => break,
            };
        }
        waiting.insert(session.to_string(), (now, flash));
    }

    /// The session's waiting message, removed: it is shown once.
    pub fn take(&self, session: &str) -> Option<Flash> {
        let mut waiting = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let (at, flash) = waiting.remove(session)?;
        (at.elapsed() < KEPT_FOR).then_some(flash)
    }

    /// Drops what waits for a session that ended.
    pub fn forget(&self, session: &str) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(session);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_is_taken_once_and_only_by_its_session() {
        let flashes = Flashes::default();
        flashes.put("a", Flash::with_secret("token made", "cap_x".into()));
        assert_eq!(flashes.take("b"), None, "another session sees nothing");
        let shown = flashes.take("a").unwrap();
        assert_eq!(shown.secret.as_deref(), Some("cap_x"));
        assert_eq!(flashes.take("a"), None, "a reload shows nothing again");
        flashes.put("a", Flash::notice("saved"));
        flashes.forget("a");
        assert_eq!(flashes.take("a"), None, "signing out drops it");
    }

    #[test]
    fn waiting_messages_are_bounded() {
        let flashes = Flashes::default();
        for i in 0..MAX_WAITING + 10 {
            flashes.put(&i.to_string(), Flash::notice("x"));
        }
        let waiting = flashes.0.lock().unwrap().len();
        assert_eq!(waiting, MAX_WAITING);
        assert!(flashes.take(&(MAX_WAITING + 9).to_string()).is_some());
    }
}
