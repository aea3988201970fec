//! A connection's idle timer: one timer per connection, re-armed lazily.
//!
//! Why not `tokio::time::timeout` around every read and write: that reads
//! the clock for every request, registers a timer in tokio's wheel when the
//! read has to wait (which it almost always does between requests) and
//! clears it again when the read completes: two trips through the timer
//! driver's lock per request, for a timeout of minutes that almost never
//! fires. Here the connection only counts its activity; the timer is
//! armed once and, when it fires, re-armed for another period if there was
//! any activity meanwhile. Precision is what an idle timeout needs: a
//! connection is closed between one and two periods after its last
//! activity (Redis checks its `timeout` from a periodic cron, too).

use std::pin::Pin;
use std::time::Duration;

use tokio::time::{Instant, Sleep};

pub(crate) struct IdleTimer {
    /// `None`: no timeout (`--idle-timeout-ms 0`).
    armed: Option<Armed>,
    /// Bumped by [`IdleTimer::touch`]; compared when the timer fires.
    activity: u64,
}

struct Armed {
    sleep: Pin<Box<Sleep>>,
    period: Duration,
    /// `activity` when the timer was last armed.
    activity_at_arm: u64,
}

impl IdleTimer {
    pub(crate) fn new(period: Option<Duration>) -> IdleTimer {
        IdleTimer {
            armed: period.map(|period| Armed {
                sleep: Box::pin(tokio::time::sleep(period)),
                period,
                activity_at_arm: 0,
            }),
            activity: 0,
        }
    }

    /// The connection did something (bytes came in, replies went out).
    pub(crate) fn touch(&mut self) {
        self.activity = self.activity.wrapping_add(1);
    }

    /// Completes once a whole period has passed without any
    /// [`touch`](Self::touch); never, without a timeout. Cancel-safe: it
    /// only waits and re-arms.
    pub(crate) async fn expired(&mut self) {
        let Some(armed) = self.armed.as_mut() else {
            return std::future::pending().await;
        };
        loop {
            armed.sleep.as_mut().await;
            if armed.activity_at_arm == self.activity {
                return;
            }
            armed.activity_at_arm = self.activity;
            let deadline = Instant::now() + armed.period;
            armed.sleep.as_mut().reset(deadline);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn fires_only_after_a_whole_period_without_activity() {
        let period = Duration::from_millis(100);
        let mut timer = IdleTimer::new(Some(period));
        let started = Instant::now();
        // Activity in the first period: the first expiry re-arms.
        tokio::time::sleep(Duration::from_millis(60)).await;
        timer.touch();
        timer.expired().await;
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(160) && waited <= Duration::from_millis(200),
            "{waited:?}"
        );
        // Expired without activity since: it stays expired.
        let again = Instant::now();
        timer.expired().await;
        assert_eq!(again.elapsed(), Duration::ZERO, "already expired, stays so");
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_period_it_never_fires() {
        let mut timer = IdleTimer::new(None);
        let fired = tokio::time::timeout(Duration::from_secs(3600), timer.expired()).await;
        assert!(fired.is_err());
    }
}
