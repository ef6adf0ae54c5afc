//! The limit on sign-in attempts per account and per address. An attempt is counted as a
//! failure *before* its password is checked (a reservation, taken atomically for the
//! account and the address), and handed back only when it succeeds, so however many
//! attempts arrive at once, no more than the limit are ever evaluated.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Failed sign-ins allowed per account, and per address, within [`LOGIN_WINDOW`].
pub const MAX_FAILURES_PER_ACCOUNT: usize = 5;
pub const MAX_FAILURES_PER_ADDRESS: usize = 20;
pub const LOGIN_WINDOW: Duration = Duration::from_secs(15 * 60);
/// How many distinct keys the limiter remembers before it forgets the stale ones.
const MAX_KEYS: usize = 10_000;

/// Who was refused: the account or the address, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Account(Duration),
    Address(Duration),
}

/// An attempt that counts as failed until [`LoginLimiter::succeeded`] hands it back.
#[derive(Debug)]
#[must_use = "an attempt counts as failed unless handed back on success"]
pub struct Reservation {
    keys: Vec<String>,
    at: Instant,
}

/// Attempts per key in a sliding window.
#[derive(Default)]
pub struct LoginLimiter {
    attempts: HashMap<String, VecDeque<Instant>>,
}

impl LoginLimiter {
    /// Counts an attempt for `account` (when given: setup has none) and `address`, or
    /// refuses it when either is at its limit; both are checked and counted in one step.
    pub fn reserve(
        &mut self,
        account: Option<&str>,
        address: Option<IpAddr>,
        now: Instant,
    ) -> Result<Reservation, Refusal> {
        let account = account.map(account_key);
        let address = address.map(|a| format!("address:{}", crate::listener::client_network(a)));
        if let Some(key) = &account {
            if let Some(wait) = self.blocked(key, MAX_FAILURES_PER_ACCOUNT, now) {
                return Err(Refusal::Account(wait));
            }
        }
        if let Some(key) = &address {
            if let Some(wait) = self.blocked(key, MAX_FAILURES_PER_ADDRESS, now) {
                return Err(Refusal::Address(wait));
            }
        }
        let keys: Vec<String> = account.into_iter().chain(address).collect();
        for key in &keys {
            self.count(key.clone(), now);
        }
        Ok(Reservation { keys, at: now })
    }

    /// The attempt succeeded: the account's failures are forgotten and the address's
    /// count for this attempt is handed back.
    pub fn succeeded(&mut self, reservation: Reservation) {
        for key in reservation.keys {
            if key.starts_with("account:") {
                self.attempts.remove(&key);
            } else if let Some(list) = self.attempts.get_mut(&key) {
                if let Some(i) = list.iter().rposition(|t| *t == reservation.at) {
                    list.remove(i);
                }
            }
        }
    }

    /// How long until `key` may try again, when it is at `max` attempts.
    fn blocked(&mut self, key: &str, max: usize, now: Instant) -> Option<Duration> {
        let list = self.attempts.get_mut(key)?;
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

    fn count(&mut self, key: String, now: Instant) {
        // Bounded memory: a flood of distinct keys cannot grow the map without end. The
        // stale ones go first; if that is not enough, the half tried longest ago.
        if self.attempts.len() > MAX_KEYS {
            self.attempts.retain(|_, l| {
                l.back()
                    .is_some_and(|t| now.duration_since(*t) < LOGIN_WINDOW)
            });
        }
        if self.attempts.len() > MAX_KEYS {
            let mut last: Vec<Instant> = self
                .attempts
                .values()
                .filter_map(|l| l.back().copied())
                .collect();
            last.sort_unstable();
            let cut = last[last.len() / 2];
            self.attempts
                .retain(|_, l| l.back().is_some_and(|t| *t > cut));
        }
        let list = self.attempts.entry(key).or_default();
        list.push_back(now);
        if list.len() > MAX_FAILURES_PER_ADDRESS {
            list.pop_front();
        }
    }
}

fn account_key(user: &str) -> String {
    format!("account:{}", user.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOME: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));

    #[test]
    fn attempts_are_counted_before_they_are_checked() {
        let mut limiter = LoginLimiter::default();
        let now = Instant::now();
        let held: Vec<Reservation> = (0..MAX_FAILURES_PER_ACCOUNT)
            .map(|_| limiter.reserve(Some("Ada"), HOME, now).unwrap())
            .collect();
        // None of them has finished, and still a sixth is refused.
        assert!(matches!(
            limiter.reserve(Some("ada"), HOME, now),
            Err(Refusal::Account(wait)) if wait > Duration::from_secs(60)
        ));
        assert!(limiter.reserve(Some("bob"), HOME, now).is_ok());
        let later = now + LOGIN_WINDOW + Duration::from_secs(1);
        assert!(limiter.reserve(Some("ada"), HOME, later).is_ok());
        drop(held);
    }

    #[test]
    fn a_success_hands_its_attempt_back() {
        let mut limiter = LoginLimiter::default();
        let now = Instant::now();
        for _ in 0..MAX_FAILURES_PER_ACCOUNT - 1 {
            let _failed = limiter.reserve(Some("ada"), HOME, now).unwrap();
        }
        let ok = limiter.reserve(Some("ada"), HOME, now).unwrap();
        limiter.succeeded(ok);
        for _ in 0..MAX_FAILURES_PER_ACCOUNT {
            let _failed = limiter.reserve(Some("ada"), HOME, now).unwrap();
        }
        // The address counted the failures but not the success.
        let address = limiter.attempts.get("address:127.0.0.1").unwrap().len();
        assert_eq!(address, 2 * MAX_FAILURES_PER_ACCOUNT - 1);
    }

    #[test]
    fn an_address_is_limited_across_accounts_and_setup() {
        let mut limiter = LoginLimiter::default();
        let now = Instant::now();
        for i in 0..MAX_FAILURES_PER_ADDRESS {
            let name = format!("user{i}");
            let account = (i % 2 == 0).then_some(name.as_str());
            let _failed = limiter.reserve(account, HOME, now).unwrap();
        }
        assert!(matches!(
            limiter.reserve(Some("zed"), HOME, now),
            Err(Refusal::Address(_))
        ));
        assert!(matches!(
            limiter.reserve(None, HOME, now),
            Err(Refusal::Address(_))
        ));
        assert!(limiter.reserve(Some("zed"), None, now).is_ok());
    }
}
