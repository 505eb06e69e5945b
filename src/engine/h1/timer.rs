//! One timer per connection, moved for each wait instead of made anew.
//!
//! A `tokio::time::timeout` per read registers an entry in the runtime's timer wheel when the
//! read is pending and takes the wheel's lock again to remove it when the read is done: two
//! lock round trips and a clock read per read, about 1,000 instructions each time, several
//! times per proxied request. A [`Timer`] keeps one `Sleep` for the connection's life. Moving
//! its deadline later (the usual case: each wait ends later than the last) is one atomic
//! store, with no lock: the wheel finds the new deadline when the old one comes round and
//! files the entry again. Only a deadline earlier than the one filed takes the lock.
//!
//! The client side and each upstream connection have their own timer, so each one's waits
//! are of one length (the keep-alive or header time; the upstream's read timeout) and their
//! deadlines only move forward.

use std::future::Future;
use std::pin::{pin, Pin};
use std::task::Poll;
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// Where a new timer's deadline starts (it is moved before each wait; never polled there).
const FAR: Duration = Duration::from_secs(86_400 * 365);

/// A reusable deadline for one connection's sequential waits, and when the last one began.
pub struct Timer {
    sleep: Pin<Box<Sleep>>,
    last_start: Option<Instant>,
}

impl Default for Timer {
    fn default() -> Self {
        Timer::new()
    }
}

impl Timer {
    /// A timer of the current runtime (it must be made inside one).
    pub fn new() -> Timer {
        Timer {
            sleep: Box::pin(tokio::time::sleep_until(Instant::now() + FAR)),
            last_start: None,
        }
    }

    /// When the last wait with a limit began ([`Timer::within`]): a time already read,
    /// for whoever needs "about now, a little earlier" without reading the clock again.
    pub fn last_start(&self) -> Option<Instant> {
        self.last_start
    }

    /// `f`, unless `limit` passes first (`None`). No limit: `f` as it is.
    pub async fn within<F: Future>(&mut self, limit: Option<Duration>, f: F) -> Option<F::Output> {
        match limit {
            Some(d) => {
                let now = Instant::now();
                self.last_start = Some(now);
                self.until(now + d, f).await
            }
            None => Some(f.await),
        }
    }

    /// As [`Timer::within`], but the deadline is set only when `f` is not ready at its first
    /// poll: a write into a socket with room costs no clock read.
    pub async fn within_lazy<F: Future>(
        &mut self,
        limit: Option<Duration>,
        f: F,
    ) -> Option<F::Output> {
        let mut f = pin!(f);
        let first = std::future::poll_fn(|cx| Poll::Ready(f.as_mut().poll(cx))).await;
        if let Poll::Ready(v) = first {
            return Some(v);
        }
        self.within(limit, f).await
    }

    /// `f`, unless `deadline` passes first (`None`).
    pub async fn until<F: Future>(&mut self, deadline: Instant, f: F) -> Option<F::Output> {
        self.sleep.as_mut().reset(deadline);
        let mut f = pin!(f);
        let sleep = &mut self.sleep;
        std::future::poll_fn(|cx| {
            if let Poll::Ready(v) = f.as_mut().poll(cx) {
                return Poll::Ready(Some(v));
            }
            match sleep.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_wait_ends_at_its_deadline_and_the_next_gets_its_own() {
        let mut t = Timer::new();
        let never = std::future::pending::<()>();
        let started = Instant::now();
        assert_eq!(t.within(Some(Duration::from_secs(5)), never).await, None);
        assert_eq!(started.elapsed(), Duration::from_secs(5));
        // after it fired, the same timer times the next wait from now, later and earlier
        let v = t.within(Some(Duration::from_secs(60)), async { 7 }).await;
        assert_eq!(v, Some(7));
        let started = Instant::now();
        let r = t
            .within(Some(Duration::from_secs(2)), std::future::pending::<()>())
            .await;
        assert_eq!(r, None);
        assert_eq!(started.elapsed(), Duration::from_secs(2));
        // moved later without firing: the first deadline does not cut the second wait
        let _ = t.within(Some(Duration::from_secs(1)), async {}).await;
        let started = Instant::now();
        let late = async {
            tokio::time::sleep(Duration::from_secs(3)).await;
            9
        };
        assert_eq!(t.within(Some(Duration::from_secs(10)), late).await, Some(9));
        assert_eq!(started.elapsed(), Duration::from_secs(3));
    }
}
