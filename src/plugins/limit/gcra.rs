//! The generic cell rate algorithm: a rate of `count` requests per `period`, at most `burst`
//! at once, kept as one number per key (the theoretical arrival time, TAT, of the next
//! request). The same arithmetic runs in-process and, as a script, inside Redis
//! (`redis.rs`), so a limit means the same whichever store keeps it.
//!
//! With `T` the interval between requests (`period / count`) and `tau = (burst - 1) * T`, a
//! request at `now` is allowed when `max(tat, now) - now <= tau`; then `tat` becomes
//! `max(tat, now) + T`.

/// One limit's arithmetic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gcra {
    /// nanoseconds between two requests at the steady rate
    pub interval: u64,
    /// how far ahead of now the TAT may run: `(burst - 1) * interval`
    pub tolerance: u64,
    /// requests allowed at once
    pub burst: u64,
}

/// What one take decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub allowed: bool,
    /// requests that could still be made right now
    pub remaining: u64,
    /// when refused: nanoseconds until one would be allowed
    pub retry_after_ns: u64,
    /// nanoseconds until the whole burst is available again
    pub reset_ns: u64,
}

impl Gcra {
    /// `count` requests per `period_ns`, `burst` (at least 1) at once.
    pub fn new(count: u64, period_ns: u64, burst: u64) -> Gcra {
        let interval = (period_ns / count.max(1)).max(1);
        let burst = burst.max(1);
        Gcra {
            interval,
            tolerance: interval.saturating_mul(burst - 1),
            burst,
        }
    }

    /// Decide a request at `now` with the stored `tat` (0 when none); returns the verdict and
    /// the TAT to store.
    pub fn decide(&self, tat: u64, now: u64) -> (Verdict, u64) {
        let base = tat.max(now);
        let ahead = base - now;
        if ahead > self.tolerance {
            let retry = ahead - self.tolerance;
            return (
                Verdict {
                    allowed: false,
                    remaining: 0,
                    retry_after_ns: retry,
                    reset_ns: ahead,
                },
                tat,
            );
        }
        // saturating: a huge burst (tolerance near u64::MAX) must not overflow
        let new_tat = base.saturating_add(self.interval);
        let used = new_tat - now;
        let cap = self.tolerance.saturating_add(self.interval);
        let room = cap - used.min(cap);
        (
            Verdict {
                allowed: true,
                remaining: room / self.interval,
                retry_after_ns: 0,
                reset_ns: used,
            },
            new_tat,
        )
    }
}

/// Whole seconds, rounded up (what `Retry-After` and `RateLimit-Reset` carry).
pub fn ceil_secs(ns: u64) -> u64 {
    ns.div_ceil(1_000_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steady_rate_after_burst() {
        let g = Gcra::new(10, 1_000_000_000, 1);
        let (v, tat) = g.decide(0, 5_000);
        assert!(v.allowed);
        assert_eq!(v.remaining, 0);
        let (v, _) = g.decide(tat, 5_000 + 50_000_000);
        assert!(!v.allowed);
        assert_eq!(v.retry_after_ns, 50_000_000);
        let (v, _) = g.decide(tat, 5_000 + 100_000_000);
        assert!(v.allowed);
    }

    #[test]
    fn a_huge_burst_does_not_overflow() {
        let g = Gcra::new(1, 86_400_000_000_000, u64::MAX);
        let mut tat = 0;
        for _ in 0..1000 {
            let (v, t) = g.decide(tat, 5);
            assert!(v.allowed);
            tat = t;
        }
        let (v, _) = g.decide(u64::MAX - 1, 5);
        assert!(v.allowed);
    }

    #[test]
    fn rounding_up() {
        assert_eq!(ceil_secs(1), 1);
        assert_eq!(ceil_secs(1_000_000_000), 1);
        assert_eq!(ceil_secs(1_000_000_001), 2);
        assert_eq!(ceil_secs(0), 0);
    }
}
