//! Throttling of failed authentication (reliability.md §5 E-401; dependencies.md §2.3): every
//! failed credential check is charged to the client address and, when the token names one, to its
//! key id, each a GCRA bucket (`governor`) of `burst` failures refilled at `per_sec`. A failure
//! that finds its bucket empty blocks that address or key id until a failure would conform again;
//! while blocked, credentials from that address or naming that key id get 429 with `Retry-After`
//! and cost no database lookup and no argon2 verification.
//!
//! Only failures are charged: a valid key never uses up its address's allowance, so clients on
//! other addresses, and a valid key on an address that is not blocked, are unaffected. Tokens
//! verified within the last minute (the verified-key cache, matched by SHA-256 of the whole token)
//! are accepted even while their address or key id is blocked: they prove knowledge of the secret
//! without new work, so a guesser cannot lock out a working client. Unknown key ids are charged
//! like known ones, so a 429 reveals nothing about which key ids exist.
//!
//! The client address is the TCP peer (`X-Forwarded-For` is not trusted): behind a reverse proxy
//! every client shares the proxy's address. IPv6 addresses are grouped by /64, which one host
//! usually holds whole.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, MonotonicClock, Reference};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::HashMapStateStore;
use governor::{Quota, RateLimiter};
use parking_lot::Mutex;

/// What a failure is charged to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subject {
    /// A client address (IPv6: its /64).
    Addr(IpAddr),
    /// The key id named by a well-formed key, whether or not such a key exists.
    KeyId(String),
}

impl Subject {
    /// The address subject for a peer: IPv4 (also IPv4-mapped IPv6) as is, IPv6 by /64 prefix.
    pub fn addr(ip: IpAddr) -> Self {
        let ip = match ip {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
            },
            v4 => v4,
        };
        Subject::Addr(ip)
    }
}

impl std::fmt::Display for Subject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Subject::Addr(IpAddr::V6(a)) => write!(f, "address {a}/64"),
            Subject::Addr(a) => write!(f, "address {a}"),
            Subject::KeyId(k) => write!(f, "key id {k}"),
        }
    }
}

/// Keys kept before stale ones are dropped (those indistinguishable from a fresh bucket).
const PRUNE_AT: usize = 10_000;

type Limiter<C> = RateLimiter<Subject, HashMapStateStore<Subject>, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// Per-address and per-key-id limits on failed authentication. `burst == 0` disables them.
pub struct AuthLimiter<C: Clock = MonotonicClock> {
    limiter: Option<Limiter<C>>,
    /// Subjects over their limit and until when.
    blocked: Mutex<HashMap<Subject, C::Instant>>,
    clock: C,
}

impl AuthLimiter<MonotonicClock> {
    pub fn new(burst: u32, per_sec: f64) -> Self {
        Self::with_clock(burst, per_sec, MonotonicClock)
    }
}

impl<C: Clock + Clone> AuthLimiter<C> {
    pub fn with_clock(burst: u32, per_sec: f64, clock: C) -> Self {
        let per_sec = if per_sec.is_finite() && per_sec > 0.0 { per_sec } else { 1.0 };
        let period = Duration::from_secs_f64((1.0 / per_sec).clamp(1e-6, 86_400.0));
        let limiter = NonZeroU32::new(burst)
            .and_then(|b| Quota::with_period(period).map(|q| q.allow_burst(b)))
            .map(|quota| RateLimiter::hashmap_with_clock(quota, clock.clone()));
        Self { limiter, blocked: Mutex::default(), clock }
    }

    pub fn enabled(&self) -> bool {
        self.limiter.is_some()
    }

    /// How long the most restricted of these subjects stays blocked, if any is.
    pub fn blocked(&self, subjects: &[Subject]) -> Option<Duration> {
        self.limiter.as_ref()?;
        let now = self.clock.now();
        let blocked = self.blocked.lock();
        subjects
            .iter()
            .filter_map(|s| blocked.get(s))
            .filter(|until| **until > now)
            .map(|until| Duration::from(until.duration_since(now)))
            .max()
    }

    /// Charges one failed authentication to each subject. Returns how long to wait when that
    /// failure went over a limit (the subject is then blocked for that long).
    pub fn failed(&self, subjects: &[Subject]) -> Option<Duration> {
        let limiter = self.limiter.as_ref()?;
        let now = self.clock.now();
        let mut wait: Option<Duration> = None;
        for s in subjects {
            if let Err(not_until) = limiter.check_key(s) {
                let until = not_until.earliest_possible();
                let mut blocked = self.blocked.lock();
                if blocked.len() >= PRUNE_AT {
                    blocked.retain(|_, t| *t > now);
                }
                blocked.insert(s.clone(), until);
                drop(blocked);
                tracing::warn!(subject = %s, "too many failed authentications: throttled (429)");
                let w = Duration::from(until.duration_since(now));
                wait = Some(wait.map_or(w, |x| x.max(w)));
            }
        }
        if limiter.len() >= PRUNE_AT {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        wait
    }
}

/// `Retry-After` in whole seconds, at least 1.
pub fn retry_after_secs(wait: Duration) -> u64 {
    (wait.as_secs_f64().ceil() as u64).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;

    fn ip(s: &str) -> Subject {
        Subject::addr(s.parse().unwrap())
    }

    #[test]
    fn burst_then_blocked_then_refilled() {
        let clock = FakeRelativeClock::default();
        let l = AuthLimiter::with_clock(3, 1.0, clock.clone());
        let a = [ip("192.0.2.1")];
        for _ in 0..3 {
            assert_eq!(l.blocked(&a), None);
            assert_eq!(l.failed(&a), None);
        }
        assert_eq!(l.blocked(&a), None, "the burst itself is allowed");
        let wait = l.failed(&a).expect("the failure after the burst goes over the limit");
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(1), "{wait:?}");
        assert_eq!(l.blocked(&a), Some(wait));
        assert_eq!(retry_after_secs(wait), 1);
        // Other addresses are unaffected.
        assert_eq!(l.blocked(&[ip("192.0.2.2")]), None);
        assert_eq!(l.failed(&[ip("192.0.2.2")]), None);
        clock.advance(Duration::from_millis(500));
        assert!(l.blocked(&a).is_some());
        clock.advance(Duration::from_millis(600));
        assert_eq!(l.blocked(&a), None, "one failure refilled after 1 s");
        assert_eq!(l.failed(&a), None);
        assert!(l.failed(&a).is_some(), "and only one");
    }

    #[test]
    fn key_ids_and_addresses_are_separate_buckets() {
        let clock = FakeRelativeClock::default();
        let l = AuthLimiter::with_clock(2, 0.5, clock.clone());
        let k = Subject::KeyId("0123456789abcdef".into());
        // Two failures from different addresses against one key id use up the key id's bucket.
        assert_eq!(l.failed(&[ip("198.51.100.1"), k.clone()]), None);
        assert_eq!(l.failed(&[ip("198.51.100.2"), k.clone()]), None);
        let wait = l.failed(&[ip("198.51.100.3"), k.clone()]).unwrap();
        assert_eq!(retry_after_secs(wait), 2, "refill of 0.5/s: 2 s");
        assert!(l.blocked(&[ip("198.51.100.9"), k.clone()]).is_some());
        assert_eq!(l.blocked(&[ip("198.51.100.1")]), None, "the addresses themselves are not blocked");
        assert_eq!(l.blocked(&[Subject::KeyId("fedcba9876543210".into())]), None);
        clock.advance(Duration::from_secs(2));
        assert_eq!(l.blocked(&[k]), None);
    }

    #[test]
    fn ipv6_grouped_by_64_and_mapped_v4_normalised() {
        assert_eq!(ip("2001:db8:1:2:aaaa::1"), ip("2001:db8:1:2:ffff::9"));
        assert_ne!(ip("2001:db8:1:2::1"), ip("2001:db8:1:3::1"));
        assert_eq!(ip("::ffff:192.0.2.7"), ip("192.0.2.7"));
    }

    #[test]
    fn zero_burst_disables() {
        let l = AuthLimiter::new(0, 1.0);
        assert!(!l.enabled());
        let a = [ip("192.0.2.1")];
        for _ in 0..100 {
            assert_eq!(l.failed(&a), None);
        }
        assert_eq!(l.blocked(&a), None);
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1001)), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(10)), 10);
    }
}
