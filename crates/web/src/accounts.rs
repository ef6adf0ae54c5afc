//! Panel accounts: argon2id password hashes, the one-time setup code that guards the first
//! admin account, sessions (random secrets kept server-side by hash) and the limit on
//! failed sign-ins per account and per address.

use crate::ApiError;
use axum::http::StatusCode;
use capstan_core::Role;
use capstan_store::{Store, UserRecord};
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a session lasts after sign-in.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);
/// Failed sign-ins allowed per account, and per address, within [`LOGIN_WINDOW`].
pub const MAX_FAILURES_PER_ACCOUNT: usize = 5;
pub const MAX_FAILURES_PER_ADDRESS: usize = 20;
pub const LOGIN_WINDOW: Duration = Duration::from_secs(15 * 60);
pub const MIN_PASSWORD_LEN: usize = 10;

/// Accounts state shared by the handlers.
#[derive(Clone)]
pub struct Accounts {
    setup_code_path: Option<PathBuf>,
    limiter: Arc<Mutex<LoginLimiter>>,
}

impl Accounts {
    /// `data_dir` holds `setup-code` while no account exists; `None` disables setup (then
    /// users come only from the API).
    pub fn new(data_dir: Option<&Path>) -> Self {
        Self {
            setup_code_path: data_dir.map(|d| d.join(SETUP_CODE_FILE)),
            limiter: Arc::new(Mutex::new(LoginLimiter::default())),
        }
    }

    pub fn setup_code_path(&self) -> Option<&Path> {
        self.setup_code_path.as_deref()
    }

    /// Whether `code` is the one written to the setup-code file (compared in constant
    /// time).
    pub fn setup_code_matches(&self, code: &str) -> bool {
        let Some(path) = &self.setup_code_path else {
            return false;
        };
        let Ok(stored) = std::fs::read_to_string(path) else {
            return false;
        };
        let (stored, given) = (stored.trim().as_bytes(), code.trim().as_bytes());
        !stored.is_empty() && bool::from(subtle::ConstantTimeEq::ct_eq(stored, given))
    }

    /// The setup code is spent once the first account exists.
    pub fn spend_setup_code(&self) {
        if let Some(path) = &self.setup_code_path {
            let _ = std::fs::remove_file(path);
        }
    }

    /// Refuses a sign-in attempt when the account or the address failed too often lately.
    pub fn check_allowed(&self, user: &str, address: Option<IpAddr>) -> Result<(), ApiError> {
        let mut limiter = self.limiter.lock().expect("login limiter poisoned");
        let now = Instant::now();
        if let Some(wait) = limiter.blocked(&account_key(user), MAX_FAILURES_PER_ACCOUNT, now) {
            return Err(too_many("this account", wait));
        }
        if let Some(address) = address {
            let key = format!("address:{address}");
            if let Some(wait) = limiter.blocked(&key, MAX_FAILURES_PER_ADDRESS, now) {
                return Err(too_many("this address", wait));
            }
        }
        Ok(())
    }

    pub fn record_failure(&self, user: &str, address: Option<IpAddr>) {
        let mut limiter = self.limiter.lock().expect("login limiter poisoned");
        let now = Instant::now();
        limiter.fail(account_key(user), now);
        if let Some(address) = address {
            limiter.fail(format!("address:{address}"), now);
        }
    }

    pub fn record_success(&self, user: &str) {
        let mut limiter = self.limiter.lock().expect("login limiter poisoned");
        limiter.failures.remove(&account_key(user));
    }
}

/// The file, in the data dir, that holds the one-time setup code until setup is done.
pub const SETUP_CODE_FILE: &str = "setup-code";

fn account_key(user: &str) -> String {
    format!("account:{}", user.to_ascii_lowercase())
}

fn too_many(whom: &str, wait: Duration) -> ApiError {
    let minutes = wait.as_secs().div_ceil(60).max(1);
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        format!("too many failed sign-ins for {whom}; try again in {minutes} minute(s)"),
    )
}

/// Failed sign-ins per key in a sliding window.
#[derive(Default)]
struct LoginLimiter {
    failures: HashMap<String, VecDeque<Instant>>,
}

impl LoginLimiter {
    /// How long until `key` may try again, when it is over `max` failures.
    fn blocked(&mut self, key: &str, max: usize, now: Instant) -> Option<Duration> {
        let list = self.failures.get_mut(key)?;
        while list
            .front()
            .is_some_and(|t| now.duration_since(*t) > LOGIN_WINDOW)
        {
            list.pop_front();
        }
        if list.len() < max {
            return None;
        }
        let oldest = *list.front()?;
        Some(LOGIN_WINDOW.saturating_sub(now.duration_since(oldest)))
    }

    fn fail(&mut self, key: String, now: Instant) {
        // Bounded memory: a flood of distinct names cannot grow the map without end.
        if self.failures.len() > 10_000 {
            self.failures.retain(|_, l| {
                l.back()
                    .is_some_and(|t| now.duration_since(*t) < LOGIN_WINDOW)
            });
        }
        let list = self.failures.entry(key).or_default();
        list.push_back(now);
        if list.len() > MAX_FAILURES_PER_ADDRESS {
            list.pop_front();
        }
    }
}

/// Checks a new user's name: 1 to 64 letters, digits, `.`, `_`, `-` or `@`.
pub fn check_user_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if ok {
        Ok(())
    } else {
        Err("1 to 64 letters, digits, '.', '_', '-' or '@'".into())
    }
}

/// Checks a new password's length (there is no other rule to game).
pub fn check_password(password: &str) -> Result<(), String> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(format!("at least {MIN_PASSWORD_LEN} characters"));
    }
    if password.len() > 1024 {
        return Err("at most 1024 bytes".into());
    }
    Ok(())
}

/// An argon2id PHC string for `password` (hashed on a blocking thread: it is slow by
/// design).
pub async fn hash_password(password: &str) -> Result<String, ApiError> {
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || {
        use argon2::password_hash::{rand_core::OsRng, PasswordHasher, SaltString};
        let salt = SaltString::generate(&mut OsRng);
        argon2::Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())
    .and_then(|r| r)
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("hashing: {e}")))
}

/// A valid argon2id hash of a password nobody knows: verifying against it when the user
/// does not exist takes as long as for a real user, so timing does not reveal names.
const DECOY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$O4sEw7y2S1bJ0FPAGVzN7qFqDhO6yT5rQd7QZcB4tTg";

async fn verify_password(password: &str, hash: &str) -> bool {
    let (password, hash) = (password.to_owned(), hash.to_owned());
    tokio::task::spawn_blocking(move || {
        use argon2::password_hash::{PasswordHash, PasswordVerifier};
        PasswordHash::new(&hash).is_ok_and(|parsed| {
            argon2::Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
    })
    .await
    .unwrap_or(false)
}

/// Checks a name and password against the store, with the rate limit applied and
/// updated; the user on success.
pub async fn sign_in(
    store: &Store,
    accounts: &Accounts,
    name: &str,
    password: &str,
    address: Option<IpAddr>,
) -> Result<UserRecord, ApiError> {
    accounts.check_allowed(name, address)?;
    let found = store.user_with_hash(name).await?;
    let hash = found.as_ref().map_or(DECOY_HASH, |(_, h)| h.as_str());
    let valid = verify_password(password, hash).await;
    match found {
        Some((user, _)) if valid => {
            accounts.record_success(name);
            Ok(user)
        }
        _ => {
            accounts.record_failure(name, address);
            Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "wrong user name or password",
            ))
        }
    }
}

/// A random URL-safe secret of 256 bits.
pub fn random_secret() -> String {
    use base64::Engine as _;
    let mut bytes = [0u8; 32];
    rand::Rng::fill(&mut rand::rngs::OsRng, &mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Starts a session: the secret for the cookie (the store keeps its hash).
pub async fn start_session(store: &Store, user: &UserRecord) -> Result<String, ApiError> {
    let secret = random_secret();
    let csrf = random_secret();
    let lifetime = i64::try_from(SESSION_LIFETIME.as_millis()).unwrap_or(i64::MAX);
    store.add_session(user.id, &secret, &csrf, lifetime).await?;
    Ok(secret)
}

/// The role stored for a user; an unknown stored value grants only reading.
pub fn role_of(user: &UserRecord) -> Role {
    Role::parse(&user.role).unwrap_or(Role::Viewer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limiter_blocks_after_the_allowed_failures_and_forgets_after_the_window() {
        let mut limiter = LoginLimiter::default();
        let start = Instant::now();
        for _ in 0..MAX_FAILURES_PER_ACCOUNT {
            assert!(limiter
                .blocked("a", MAX_FAILURES_PER_ACCOUNT, start)
                .is_none());
            limiter.fail("a".into(), start);
        }
        let wait = limiter
            .blocked("a", MAX_FAILURES_PER_ACCOUNT, start)
            .unwrap();
        assert!(wait > Duration::from_secs(60));
        assert!(limiter
            .blocked("b", MAX_FAILURES_PER_ACCOUNT, start)
            .is_none());
        let later = start + LOGIN_WINDOW + Duration::from_secs(1);
        assert!(limiter
            .blocked("a", MAX_FAILURES_PER_ACCOUNT, later)
            .is_none());
    }

    #[test]
    fn names_and_passwords_are_checked() {
        assert!(check_user_name("ada@example.com").is_ok());
        assert!(check_user_name("").is_err());
        assert!(check_user_name("a b").is_err());
        assert!(check_password("short").is_err());
        assert!(check_password("long enough password").is_ok());
    }

    #[tokio::test]
    async fn hashes_are_argon2id_and_verify() {
        let hash = hash_password("correct horse battery").await.unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(verify_password("correct horse battery", &hash).await);
        assert!(!verify_password("wrong horse battery", &hash).await);
        assert!(
            argon2::password_hash::PasswordHash::new(DECOY_HASH).is_ok(),
            "the decoy must parse, or unknown users would answer faster"
        );
    }
}
