//! Backoff for repeated failed logins, so that guessing a password gets slower with every wrong
//! guess, without letting anyone lock a user out.
//!
//! Failures are counted per (username, client IP), an IPv6 client by its /64 (one host or
//! home network usually holds a whole /64, so each of its addresses is no fresh start). The
//! first `FREE_FAILURES` cost nothing
//! extra; after that each attempt of that client for that username must wait twice as long as
//! the one before (capped), whether or not the user exists, so the throttle reveals nothing. A
//! client with no failures of its own is never held back: an attacker failing from one address
//! does not stop the real user logging in from another. Guessing from many addresses is what
//! the per-IP limit of the token endpoint (`LOGIN_RATE_LIMIT_PER_MINUTE`) is for.
//!
//! State is per process (with `REDIS_URL`, `crate::limits::redis` keeps it in Redis instead,
//! by the same `backoff` rule) and bounded by memory: at most `MAX_TRACKED` (username, client) pairs.
//! When the table is full, the pair whose last failure is oldest is forgotten first, and
//! failures older than `MEMORY` are dropped as new ones come in. The table is never cleared
//! wholesale, which would hand every throttled client a fresh start.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::domain::Username;
use crate::middleware::ClientIp;

const FREE_FAILURES: u32 = 5;
const MAX_WAIT: Duration = Duration::from_secs(300);
/// Failures older than this are forgotten.
pub const MEMORY: Duration = Duration::from_secs(15 * 60);
/// Most (username, client) pairs remembered. A pair costs about 200 bytes with a long
/// username, so the table stays around 10 MiB at worst.
pub const MAX_TRACKED: usize = 50_000;

/// How long after its last failure a client that has failed `count` times in a row must wait
/// before its next attempt: nothing for the first `FREE_FAILURES`, then 1 s, doubling with
/// each failure up to `MAX_WAIT`. Also the rule of the Redis-backed throttle
/// (`crate::limits::redis`).
pub fn backoff(count: u32) -> Option<Duration> {
    if count < FREE_FAILURES {
        return None;
    }
    Some(Duration::from_secs(1 << (count - FREE_FAILURES).min(16)).min(MAX_WAIT))
}

/// Whose failures these are: a username (validated, so at most 64 bytes) from one client.
type Key = (String, Option<IpAddr>);

/// The address failures are counted under: an IPv4 address (also when written IPv4-mapped),
/// or the /64 network of an IPv6 address — the same unit as the per-IP rate limit.
fn network(ip: IpAddr) -> IpAddr {
    crate::middleware::rate_limit::bucket(ip)
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
    /// Position of the last failure in `Tracked::by_age`.
    seq: u64,
}

#[derive(Default)]
struct Tracked {
    by_key: HashMap<Arc<Key>, Failures>,
    /// The same keys by the order of their last failure: the first is the oldest.
    by_age: BTreeMap<u64, Arc<Key>>,
    next_seq: u64,
}

impl Tracked {
    fn forget_oldest(&mut self) {
        if let Some((_, key)) = self.by_age.pop_first() {
            self.by_key.remove(&key);
        }
    }

    fn remove(&mut self, key: &Key) {
        if let Some(failures) = self.by_key.remove(key) {
            self.by_age.remove(&failures.seq);
        }
    }
}

/// Failed logins by (username, client), bounded in size.
pub struct LoginThrottle {
    tracked: Mutex<Tracked>,
    capacity: usize,
}

impl Default for LoginThrottle {
    fn default() -> Self {
        Self::with_capacity(MAX_TRACKED)
    }
}

impl LoginThrottle {
    /// A throttle that remembers at most `capacity` (username, client) pairs.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            tracked: Mutex::default(),
            capacity: capacity.max(1),
        }
    }

    fn key(username: &Username, client: ClientIp) -> Key {
        (username.as_str().to_owned(), client.0.map(network))
    }

    /// `Err(wait)` when this client must wait before its next attempt for `username`.
    pub fn check(&self, username: &Username, client: ClientIp) -> Result<(), Duration> {
        let tracked = self.tracked.lock().unwrap_or_else(|e| e.into_inner());
        let Some(f) = tracked.by_key.get(&Self::key(username, client)) else {
            return Ok(());
        };
        let Some(wait) = backoff(f.count) else {
            return Ok(());
        };
        match (f.last + wait).checked_duration_since(Instant::now()) {
            Some(left) if !left.is_zero() => Err(left),
            _ => Ok(()),
        }
    }

    /// Counts a failed attempt of this client for `username`.
    pub fn failed(&self, username: &Username, client: ClientIp) {
        let mut tracked = self.tracked.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let key = Self::key(username, client);
        let count = match tracked.by_key.get(&key) {
            Some(f) if now.duration_since(f.last) < MEMORY => f.count,
            _ => 0,
        };
        tracked.remove(&key);
        // The oldest failures go first: those past `MEMORY`, then, when full, whatever is
        // oldest.
        while let Some((_, oldest)) = tracked.by_age.first_key_value() {
            let stale = tracked
                .by_key
                .get(oldest)
                .is_none_or(|f| now.duration_since(f.last) >= MEMORY);
            if !stale && tracked.by_key.len() < self.capacity {
                break;
            }
            tracked.forget_oldest();
        }
        let seq = tracked.next_seq;
        tracked.next_seq += 1;
        let key = Arc::new(key);
        tracked.by_age.insert(seq, key.clone());
        tracked.by_key.insert(
            key,
            Failures {
                count: count.saturating_add(1),
                last: now,
                seq,
            },
        );
    }

    /// Forgets the failures of this client for `username` after it logged in.
    pub fn succeeded(&self, username: &Username, client: ClientIp) {
        self.tracked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&Self::key(username, client));
    }

    /// How many (username, client) pairs are remembered.
    pub fn tracked(&self) -> usize {
        self.tracked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .by_key
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str) -> Username {
        Username::parse(name).expect("a valid username")
    }

    fn from(last_octet: u8) -> ClientIp {
        ClientIp(Some(IpAddr::from([203, 0, 113, last_octet])))
    }

    fn fail_freely(throttle: &LoginThrottle, name: &str, client: ClientIp) {
        for _ in 0..FREE_FAILURES {
            throttle.failed(&user(name), client);
        }
    }

    #[test]
    fn the_backoff_doubles_after_the_free_failures_up_to_its_cap() {
        assert_eq!(backoff(0), None);
        assert_eq!(backoff(FREE_FAILURES - 1), None);
        assert_eq!(backoff(FREE_FAILURES), Some(Duration::from_secs(1)));
        assert_eq!(backoff(FREE_FAILURES + 1), Some(Duration::from_secs(2)));
        assert_eq!(backoff(FREE_FAILURES + 3), Some(Duration::from_secs(8)));
        assert_eq!(backoff(FREE_FAILURES + 9), Some(MAX_WAIT));
        assert_eq!(backoff(u32::MAX), Some(MAX_WAIT));
    }

    #[test]
    fn the_first_failures_are_free_and_then_the_client_must_wait() {
        let throttle = LoginThrottle::default();
        let alice = user("alice");
        for _ in 0..FREE_FAILURES {
            assert!(throttle.check(&alice, from(1)).is_ok());
            throttle.failed(&alice, from(1));
        }
        let wait = throttle
            .check(&alice, from(1))
            .expect_err("the sixth attempt waits");
        assert!(wait <= Duration::from_secs(1));
        assert!(
            throttle.check(&user("bob"), from(1)).is_ok(),
            "other usernames are not affected"
        );
        throttle.succeeded(&alice, from(1));
        assert!(throttle.check(&alice, from(1)).is_ok());
    }

    #[test]
    fn failures_from_one_client_do_not_hold_back_another() {
        let throttle = LoginThrottle::default();
        let alice = user("alice");
        fail_freely(&throttle, "alice", from(1));
        throttle.failed(&alice, from(1));

        assert!(throttle.check(&alice, from(1)).is_err());
        assert!(throttle.check(&alice, from(2)).is_ok());
        assert!(throttle.check(&alice, ClientIp(None)).is_ok());
        throttle.succeeded(&alice, from(2));
        assert!(
            throttle.check(&alice, from(1)).is_err(),
            "another client's success does not clear the attacker's failures"
        );
    }

    #[test]
    fn an_ipv6_client_counts_by_its_64_and_a_mapped_ipv4_as_itself() {
        let throttle = LoginThrottle::default();
        let alice = user("alice");
        let v6 = |s: &str| ClientIp(Some(s.parse().unwrap()));
        fail_freely(&throttle, "alice", v6("2001:db8:1:2::1"));
        throttle.failed(&alice, v6("2001:db8:1:2::1"));

        assert!(throttle.check(&alice, v6("2001:db8:1:2:ffff::9")).is_err());
        assert!(throttle.check(&alice, v6("2001:db8:1:3::1")).is_ok());
        fail_freely(&throttle, "alice", from(1));
        throttle.failed(&alice, from(1));
        assert!(throttle.check(&alice, v6("::ffff:203.0.113.1")).is_err());
    }

    #[test]
    fn the_table_stays_bounded_and_forgets_the_oldest_failures_first() {
        let throttle = LoginThrottle::with_capacity(3);
        for name in ["user.a", "user.b", "user.c"] {
            fail_freely(&throttle, name, from(1));
        }
        // A new failure of `user.a` makes `user.b` the oldest.
        throttle.failed(&user("user.a"), from(1));

        fail_freely(&throttle, "user.d", from(1));

        assert_eq!(throttle.tracked(), 3);
        assert!(
            throttle.check(&user("user.b"), from(1)).is_ok(),
            "forgotten"
        );
        for kept in ["user.a", "user.c", "user.d"] {
            assert!(throttle.check(&user(kept), from(1)).is_err(), "{kept}");
        }
    }

    #[test]
    fn many_usernames_never_grow_the_table_past_its_bound() {
        let throttle = LoginThrottle::with_capacity(1_000);
        for i in 0..20_000 {
            throttle.failed(&user(&format!("guess{i}")), from((i % 200) as u8));
        }
        assert_eq!(throttle.tracked(), 1_000);
        let tracked = throttle.tracked.lock().unwrap();
        assert_eq!(tracked.by_age.len(), 1_000, "both indexes agree");
        assert!(
            tracked
                .by_key
                .contains_key(&("guess19999".to_owned(), from(199).0)),
            "the newest is kept"
        );
        assert!(
            !tracked
                .by_key
                .contains_key(&("guess0".to_owned(), from(0).0)),
            "the oldest went first"
        );
    }
}
