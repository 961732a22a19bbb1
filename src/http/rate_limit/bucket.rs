//! One class's token buckets, one per source address (governor's keyed GCRA
//! limiter), and the stricter gate for wrong admin tokens, which only
//! failures spend. Both are generic over the clock so their tests run on a
//! fake one.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;

use governor::clock::{Clock, MonotonicClock, Reference};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::{Quota, RateLimiter};

/// A class's limit: a refill rate and a bucket size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limit {
    /// Tokens added per second; 0 switches the class off.
    pub per_second: f64,
    /// The bucket's size.
    pub burst: u32,
}

impl Limit {
    /// The quota, or `None` when the class is off (or the numbers make no
    /// bucket; validation refuses those at start-up).
    fn quota(self) -> Option<Quota> {
        if self.per_second.is_nan() || self.per_second <= 0.0 {
            return None;
        }
        let period = Duration::try_from_secs_f64(1.0 / self.per_second).ok()?;
        Some(Quota::with_period(period)?.allow_burst(NonZeroU32::new(self.burst)?))
    }
}

/// Token buckets of one class, keyed by source.
pub struct Buckets<C: Clock = MonotonicClock> {
    limiter: RateLimiter<IpAddr, DashMapStateStore<IpAddr>, C, NoOpMiddleware<C::Instant>>,
    clock: C,
}

impl<C: Clock + Clone> Buckets<C> {
    /// Buckets for `limit` on `clock`; `None` when the class is off.
    pub fn new(limit: Limit, clock: C) -> Option<Self> {
        let quota = limit.quota()?;
        Some(Self {
            limiter: RateLimiter::dashmap_with_clock(quota, clock.clone()),
            clock,
        })
    }

    /// Takes a token from `source`'s bucket, or says how long until one is there.
    pub fn check(&self, source: IpAddr) -> Result<(), Duration> {
        self.limiter
            .check_key(&source)
            .map(|_| ())
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// Forgets every bucket that has refilled (it would be made anew, full):
    /// what keeps memory bounded under a flood of distinct sources, to the
    /// sources seen within one refill time.
    pub fn sweep(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }

    /// Buckets held.
    pub fn len(&self) -> usize {
        self.limiter.len()
    }

    /// True when no bucket is held.
    pub fn is_empty(&self) -> bool {
        self.limiter.is_empty()
    }
}

/// Wrong admin tokens: a bucket spent only by failures. A source that has
/// emptied it is cut off, every request refused before its token is even
/// looked at (else the brute force would go on, answered 429 for wrong
/// guesses and 200 for the right one), until its next token is due.
pub struct FailureGate<C: Clock = MonotonicClock> {
    buckets: Buckets<C>,
    cut_off: Mutex<HashMap<IpAddr, C::Instant>>,
    clock: C,
}

impl<C: Clock + Clone> FailureGate<C> {
    /// A gate for `limit` on `clock`; `None` when off.
    pub fn new(limit: Limit, clock: C) -> Option<Self> {
        Some(Self {
            buckets: Buckets::new(limit, clock.clone())?,
            cut_off: Mutex::default(),
            clock,
        })
    }

    fn cut_off(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, C::Instant>> {
        // A panic elsewhere mid-insert leaves a usable map.
        self.cut_off
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// How long `source` stays cut off, if it is.
    pub fn blocked(&self, source: IpAddr) -> Option<Duration> {
        let now = self.clock.now();
        let until = *self.cut_off().get(&source)?;
        (until > now).then(|| until.duration_since(now).into())
    }

    /// Records a failure of `source`; returns how long it is cut off when this
    /// failure was one too many.
    pub fn failed(&self, source: IpAddr) -> Option<Duration> {
        let wait = self.buckets.check(source).err()?;
        let until = self.clock.now() + wait.into();
        self.cut_off().insert(source, until);
        Some(wait)
    }

    /// Forgets refilled buckets and cut-offs that are over.
    pub fn sweep(&self) {
        self.buckets.sweep();
        let now = self.clock.now();
        let mut cut_off = self.cut_off();
        cut_off.retain(|_, until| *until > now);
        cut_off.shrink_to_fit();
    }

    /// Sources tracked (buckets and cut-offs).
    pub fn len(&self) -> usize {
        self.buckets.len() + self.cut_off().len()
    }

    /// True when nothing is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;
    use std::net::Ipv4Addr;

    fn source(i: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i))
    }

    #[test]
    fn a_burst_over_the_bucket_is_refused_until_the_next_token() {
        let clock = FakeRelativeClock::default();
        let buckets = Buckets::new(
            Limit {
                per_second: 2.0,
                burst: 3,
            },
            clock.clone(),
        )
        .unwrap();
        for _ in 0..3 {
            assert_eq!(buckets.check(source(1)), Ok(()));
        }
        assert_eq!(buckets.check(source(1)), Err(Duration::from_millis(500)));
        assert_eq!(
            buckets.check(source(2)),
            Ok(()),
            "another source has its own"
        );
        clock.advance(Duration::from_millis(500));
        assert_eq!(buckets.check(source(1)), Ok(()));
    }

    #[test]
    fn a_rate_of_zero_is_off() {
        let off = Limit {
            per_second: 0.0,
            burst: 10,
        };
        assert!(Buckets::new(off, FakeRelativeClock::default()).is_none());
        assert!(FailureGate::new(off, FakeRelativeClock::default()).is_none());
    }

    #[test]
    fn a_flood_of_distinct_sources_is_forgotten_once_their_buckets_refill() {
        let clock = FakeRelativeClock::default();
        let buckets = Buckets::new(
            Limit {
                per_second: 10.0,
                burst: 20,
            },
            clock.clone(),
        )
        .unwrap();
        for i in 0..10_000 {
            let _ = buckets.check(source(i));
        }
        assert_eq!(buckets.len(), 10_000);
        buckets.sweep();
        assert_eq!(buckets.len(), 10_000, "not yet refilled: still needed");
        // Each spent one token (0.1 s to refill); governor forgets a bucket
        // one period after it is full again.
        clock.advance(Duration::from_millis(200));
        buckets.sweep();
        assert!(buckets.is_empty());
    }

    #[test]
    fn failures_cut_a_source_off_and_successes_spend_nothing() {
        let clock = FakeRelativeClock::default();
        let gate = FailureGate::new(
            Limit {
                per_second: 0.1,
                burst: 3,
            },
            clock.clone(),
        )
        .unwrap();
        for _ in 0..3 {
            assert_eq!(gate.failed(source(1)), None);
            assert_eq!(gate.blocked(source(1)), None, "not yet");
        }
        let cut = gate.failed(source(1)).expect("one failure too many");
        assert_eq!(cut, Duration::from_secs(10));
        assert_eq!(gate.blocked(source(1)), Some(Duration::from_secs(10)));
        assert_eq!(
            gate.blocked(source(2)),
            None,
            "other sources are not cut off"
        );
        clock.advance(Duration::from_secs(4));
        assert_eq!(gate.blocked(source(1)), Some(Duration::from_secs(6)));
        clock.advance(Duration::from_secs(6));
        assert_eq!(gate.blocked(source(1)), None, "one more guess is due");
        assert_eq!(gate.failed(source(1)), None);
        assert!(gate.failed(source(1)).is_some(), "and only one");
        // Memory: everything goes once refilled.
        clock.advance(Duration::from_secs(60));
        gate.sweep();
        assert!(gate.is_empty());
    }
}
