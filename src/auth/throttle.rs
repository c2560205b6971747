//! Backoff for repeated failed logins of one username, so that guessing one user's password
//! gets slower with every wrong guess.
//!
//! The first few failures cost nothing extra; after that each attempt for the username must
//! wait twice as long as the one before (capped), whether or not the user exists, so the
//! throttle reveals nothing. State is per process and bounded in size.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const FREE_FAILURES: u32 = 5;
const MAX_WAIT: Duration = Duration::from_secs(300);
/// Failures older than this are forgotten.
const MEMORY: Duration = Duration::from_secs(15 * 60);
const MAX_TRACKED: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

#[derive(Default)]
pub struct LoginThrottle {
    failures: Mutex<HashMap<String, Failures>>,
}

impl LoginThrottle {
    /// `Err(wait)` when `username` must wait before its next attempt.
    pub fn check(&self, username: &str) -> Result<(), Duration> {
        let failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let Some(f) = failures.get(username) else {
            return Ok(());
        };
        if f.count < FREE_FAILURES {
            return Ok(());
        }
        let wait = Duration::from_secs(1 << (f.count - FREE_FAILURES).min(16)).min(MAX_WAIT);
        match (f.last + wait).checked_duration_since(Instant::now()) {
            Some(left) if !left.is_zero() => Err(left),
            _ => Ok(()),
        }
    }

    pub fn failed(&self, username: &str) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if failures.len() >= MAX_TRACKED {
            failures.retain(|_, f| now.duration_since(f.last) < MEMORY);
            if failures.len() >= MAX_TRACKED {
                failures.clear();
            }
        }
        let entry = failures.entry(username.to_owned()).or_insert(Failures {
            count: 0,
            last: now,
        });
        if now.duration_since(entry.last) >= MEMORY {
            entry.count = 0;
        }
        entry.count += 1;
        entry.last = now;
    }

    pub fn succeeded(&self, username: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(username);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_failures_are_free_and_then_the_username_must_wait() {
        let throttle = LoginThrottle::default();
        for _ in 0..FREE_FAILURES {
            assert!(throttle.check("alice").is_ok());
            throttle.failed("alice");
        }
        let wait = throttle
            .check("alice")
            .expect_err("the sixth attempt waits");
        assert!(wait <= Duration::from_secs(1));
        assert!(
            throttle.check("bob").is_ok(),
            "other usernames are not affected"
        );
        throttle.succeeded("alice");
        assert!(throttle.check("alice").is_ok());
    }
}
