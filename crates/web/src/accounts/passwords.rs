//! Password hashing and checking behind a gate. An argon2id check holds about 19 MiB
//! while it runs, so at most [`HASH_SLOTS`] run at once and at most [`HASH_QUEUE`] wait;
//! anything beyond is turned away at once with 503 and `Retry-After`. The daemon's peak
//! memory is bounded whatever arrives, signed in or not.

use crate::ApiError;
use axum::http::StatusCode;
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// argon2 checks that run at once (each on a blocking thread, ~19 MiB each).
pub const HASH_SLOTS: usize = 2;
/// Checks that may wait for a slot; more are refused rather than queued without end.
pub const HASH_QUEUE: usize = 32;
/// What a refused caller is told to wait, in seconds.
pub const BUSY_RETRY_SECS: u64 = 2;

/// A valid argon2id hash of a password nobody knows: verifying against it when the user
/// does not exist takes as long as for a real user, so timing does not reveal names.
pub const DECOY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$O4sEw7y2S1bJ0FPAGVzN7qFqDhO6yT5rQd7QZcB4tTg";

/// The gate every password hash and check passes.
#[derive(Clone)]
pub struct PasswordGate {
    /// Permits for running and waiting checks together.
    admitted: Arc<Semaphore>,
    /// Permits for running checks.
    running: Arc<Semaphore>,
}

impl Default for PasswordGate {
    fn default() -> Self {
        Self::new(HASH_SLOTS, HASH_QUEUE)
    }
}

impl PasswordGate {
    pub fn new(slots: usize, queue: usize) -> Self {
        Self {
            admitted: Arc::new(Semaphore::new(slots + queue)),
            running: Arc::new(Semaphore::new(slots)),
        }
    }

    /// An argon2id PHC string for `password`.
    pub async fn hash(&self, password: &str) -> Result<String, ApiError> {
        let password = password.to_owned();
        self.run(move || {
            use argon2::password_hash::{rand_core::OsRng, PasswordHasher, SaltString};
            let salt = SaltString::generate(&mut OsRng);
            argon2::Argon2::default()
                .hash_password(password.as_bytes(), &salt)
                .map(|h| h.to_string())
                .map_err(|e| format!("hashing: {e}"))
        })
        .await?
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e))
    }

    /// Whether `password` matches `hash` (an unparsable hash matches nothing).
    pub async fn verify(&self, password: &str, hash: &str) -> Result<bool, ApiError> {
        let (password, hash) = (password.to_owned(), hash.to_owned());
        self.run(move || {
            use argon2::password_hash::{PasswordHash, PasswordVerifier};
            PasswordHash::new(&hash).is_ok_and(|parsed| {
                argon2::Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
        })
        .await
    }

    /// Runs `work` on a blocking thread once a slot is free; refuses at once when the
    /// queue is full.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let admitted = self
            .admitted
            .clone()
            .try_acquire_owned()
            .map_err(|_| busy())?;
        let running: OwnedSemaphorePermit = self
            .running
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| busy())?;
        // The permits go with the work: a client that hangs up drops this future, but the
        // hash it started runs on, and still counts, until it ends.
        let result = tokio::task::spawn_blocking(move || {
            let _held = (running, admitted);
            work()
        })
        .await;
        result.map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("password check stopped: {e}"),
            )
        })
    }
}

fn busy() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        format!(
            "the server is busy checking other passwords; try again in {BUSY_RETRY_SECS} seconds"
        ),
    )
    .retry_after(BUSY_RETRY_SECS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_are_argon2id_and_verify() {
        let gate = PasswordGate::default();
        let hash = gate.hash("correct horse battery").await.unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(gate.verify("correct horse battery", &hash).await.unwrap());
        assert!(!gate.verify("wrong horse battery", &hash).await.unwrap());
        assert!(
            argon2::password_hash::PasswordHash::new(DECOY_HASH).is_ok(),
            "the decoy must parse, or unknown users would answer faster"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn checks_beyond_the_queue_are_refused_at_once() {
        let gate = PasswordGate::new(1, 2);
        let checks: Vec<_> = (0..8)
            .map(|_| {
                let gate = gate.clone();
                tokio::spawn(async move { gate.verify("guess", DECOY_HASH).await })
            })
            .collect();
        let mut refused = 0;
        for check in checks {
            match check.await.unwrap() {
                Ok(valid) => assert!(!valid),
                Err(err) => {
                    assert_eq!(err.status, StatusCode::SERVICE_UNAVAILABLE);
                    assert_eq!(err.retry_after, Some(BUSY_RETRY_SECS));
                    refused += 1;
                }
            }
        }
        // One running and two waiting were admitted; the other five were turned away.
        assert_eq!(refused, 5);
    }
}
