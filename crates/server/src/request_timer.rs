//! A connection's request deadline: a request that has started arriving
//! must be whole within `--request-timeout-ms`, or the connection is
//! closed. Without it a client sending one byte a second holds its slot
//! forever: every byte resets the idle timer (idle.rs), which is for the
//! time *between* requests.
//!
//! Cheap, like the idle timer: the clock is read only when a connection
//! goes to wait with part of a new request buffered, and the timer is
//! re-armed lazily: it stays set at the deadline of an earlier request and,
//! when it fires, moves to the deadline of the request then arriving (if
//! any). A pipelining client whose reads end mid-request therefore costs a
//! clock read per such read and at most one timer reset per timeout.

use std::pin::Pin;
use std::time::Duration;

use tokio::time::{Instant, Sleep};

/// What a connection tells its client when it closes it for this.
pub(crate) fn timeout_message(timeout_ms: u64) -> String {
    format!(
        "request timeout: a request must arrive whole within {timeout_ms} ms (see request-timeout-ms); closing the connection"
    )
}

pub(crate) struct RequestTimer {
    timeout: Duration,
    /// When the request now arriving was first seen partial; `None`: none.
    started: Option<Instant>,
    /// Created at the first partial request, then reused.
    sleep: Option<Pin<Box<Sleep>>>,
    /// Whether `sleep` is set to a deadline it has not reached yet.
    armed: bool,
}

impl RequestTimer {
    pub(crate) fn new(timeout: Duration) -> RequestTimer {
        RequestTimer {
            timeout,
            started: None,
            sleep: None,
            armed: false,
        }
    }

    /// Called before the connection waits for bytes: `partial` says part
    /// of a request is buffered, `progressed` that a request completed
    /// since the last wait (so the partial one is new).
    #[inline]
    pub(crate) fn before_wait(&mut self, partial: bool, progressed: bool) {
        if !partial {
            self.started = None;
        } else if progressed || self.started.is_none() {
            self.started = Some(Instant::now());
        }
    }

    /// A request is arriving (the deadline applies).
    #[inline]
    pub(crate) fn running(&self) -> bool {
        self.started.is_some()
    }

    /// Completes once the request now arriving has taken the whole
    /// timeout; never while none is. Cancel-safe.
    pub(crate) async fn expired(&mut self) {
        loop {
            let Some(started) = self.started else {
                return std::future::pending().await;
            };
            let deadline = started + self.timeout;
            if Instant::now() >= deadline {
                return;
            }
            let sleep = match &mut self.sleep {
                Some(sleep) if self.armed => sleep,
                Some(sleep) => {
                    sleep.as_mut().reset(deadline);
                    sleep
                }
                None => self
                    .sleep
                    .insert(Box::pin(tokio::time::sleep_until(deadline))),
            };
            self.armed = true;
            // Set for an earlier request, it fires early: the loop then
            // re-arms for this one.
            sleep.as_mut().await;
            self.armed = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_request_must_be_whole_within_the_timeout() {
        let timeout = Duration::from_millis(1000);
        let mut timer = RequestTimer::new(timeout);
        let t0 = Instant::now();
        timer.before_wait(true, false);
        // Bytes of the same request keep arriving: the deadline stays.
        tokio::time::sleep(Duration::from_millis(600)).await;
        timer.before_wait(true, false);
        timer.expired().await;
        assert_eq!(t0.elapsed(), timeout);
    }

    #[tokio::test(start_paused = true)]
    async fn each_new_request_gets_its_own_deadline() {
        let timeout = Duration::from_millis(1000);
        let mut timer = RequestTimer::new(timeout);
        timer.before_wait(true, false);
        tokio::time::sleep(Duration::from_millis(300)).await;
        // A request completed and the next one started (a pipeline).
        timer.before_wait(true, true);
        let t1 = Instant::now();
        // The timer was armed for the first request: it fires early and
        // re-arms for the second.
        timer.expired().await;
        assert_eq!(t1.elapsed(), timeout);
        // Nothing partial: never fires.
        timer.before_wait(false, true);
        assert!(!timer.running());
        let fired = tokio::time::timeout(Duration::from_secs(3600), timer.expired()).await;
        assert!(fired.is_err());
    }
}
