//! Panel accounts: argon2id password hashes (behind a gate that bounds their memory), the
//! one-time setup code that guards the first admin account, sessions (random secrets kept
//! server-side by hash), the limit on sign-in attempts per account and per address, and
//! the anti-forgery token of the forms posted before a session exists.

mod form_token;
mod limiter;
mod passwords;

pub use form_token::{FormTokens, FORM_COOKIE};
pub use limiter::{
    LoginLimiter, Refusal, Reservation, LOGIN_WINDOW, MAX_FAILURES_PER_ACCOUNT,
    MAX_FAILURES_PER_ADDRESS,
};
pub use passwords::{PasswordGate, DECOY_HASH, HASH_QUEUE, HASH_SLOTS};

use crate::ApiError;
use axum::http::StatusCode;
use capstan_core::Role;
use capstan_store::{Store, UserRecord};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a session lasts after sign-in.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);
pub const MIN_PASSWORD_LEN: usize = 10;

/// Accounts state shared by the handlers.
#[derive(Clone)]
pub struct Accounts {
    setup_code_path: Option<PathBuf>,
    limiter: Arc<Mutex<LoginLimiter>>,
    /// Every password hash and check passes here.
    pub passwords: PasswordGate,
    /// Tokens of the sign-in and setup forms.
    pub form_tokens: FormTokens,
    /// The panel's one-time messages, per session.
    pub flashes: crate::panel::Flashes,
}

impl Accounts {
    /// `data_dir` holds `setup-code` while no account exists; `None` disables setup (then
    /// users come only from the API).
    pub fn new(data_dir: Option<&Path>) -> Self {
        Self {
            setup_code_path: data_dir.map(|d| d.join(SETUP_CODE_FILE)),
            limiter: Arc::new(Mutex::new(LoginLimiter::default())),
            passwords: PasswordGate::default(),
            form_tokens: FormTokens::default(),
            flashes: crate::panel::Flashes::default(),
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

    /// Counts an attempt for `user` (none for setup) and `address` as failed before it is
    /// checked, or refuses it with 429 when either is at its limit.
    pub fn reserve_attempt(
        &self,
        user: Option<&str>,
        address: Option<IpAddr>,
    ) -> Result<Reservation, ApiError> {
        let mut limiter = self.limiter.lock().expect("login limiter poisoned");
        limiter
            .reserve(user, address, Instant::now())
            .map_err(|refusal| match refusal {
                Refusal::Account(wait) => too_many("this account", wait),
                Refusal::Address(wait) => too_many("this address", wait),
            })
    }

    /// The attempt succeeded: it no longer counts as a failure.
    pub fn attempt_succeeded(&self, reservation: Reservation) {
        let mut limiter = self.limiter.lock().expect("login limiter poisoned");
        limiter.succeeded(reservation);
    }
}

/// The file, in the data dir, that holds the one-time setup code until setup is done.
pub const SETUP_CODE_FILE: &str = "setup-code";

fn too_many(whom: &str, wait: Duration) -> ApiError {
    let minutes = wait.as_secs().div_ceil(60).max(1);
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        format!("too many failed sign-ins for {whom}; try again in {minutes} minute(s)"),
    )
    .retry_after(wait.as_secs().max(1))
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

/// Checks a name and password against the store. The attempt is counted before the
/// password is checked (so concurrent attempts cannot pass the limit) and handed back on
/// success; the check itself waits for a slot at the password gate.
pub async fn sign_in(
    store: &Store,
    accounts: &Accounts,
    name: &str,
    password: &str,
    address: Option<IpAddr>,
) -> Result<UserRecord, ApiError> {
    // A name no account can have is counted against the address only: the limiter never
    // keeps what a stranger typed beyond what a real name can be.
    let account = check_user_name(name).is_ok().then_some(name);
    let attempt = accounts.reserve_attempt(account, address)?;
    let found = match account {
        Some(name) => store.user_with_hash(name).await?,
        None => None,
    };
    let hash = found.as_ref().map_or(DECOY_HASH, |(_, h)| h.as_str());
    let valid = accounts.passwords.verify(password, hash).await?;
    match found {
        Some((user, _)) if valid => {
            accounts.attempt_succeeded(attempt);
            Ok(user)
        }
        _ => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "Wrong user name or password.",
        )),
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
    fn names_and_passwords_are_checked() {
        assert!(check_user_name("ada@example.com").is_ok());
        assert!(check_user_name("").is_err());
        assert!(check_user_name("a b").is_err());
        assert!(check_password("short").is_err());
        assert!(check_password("long enough password").is_ok());
    }
}
