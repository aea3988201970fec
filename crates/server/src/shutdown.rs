//! The server's shutdown signal, as every task sees it (after mini-redis's
//! `Shutdown`): the accept loops, the connections and the rate sampler
//! hold a [`Shutdown`]; [`crate::server::run`] holds the one [`Trigger`].

use tokio::sync::watch;

/// Creates the trigger and the first listener of one shutdown.
pub(crate) fn channel() -> (Trigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (Trigger(tx), Shutdown(rx))
}

/// Starts the shutdown every [`Shutdown`] cloned from its pair sees.
pub(crate) struct Trigger(watch::Sender<bool>);

impl Trigger {
    pub(crate) fn fire(&self) {
        // send_replace: no error even if every listener is gone already.
        self.0.send_replace(true);
    }
}

/// Whether the server is shutting down, and a wait for it. Cheap to
/// clone: one per task.
#[derive(Clone)]
pub struct Shutdown(watch::Receiver<bool>);

impl Shutdown {
    /// True once the shutdown has started (never goes back).
    pub fn is_shutdown(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once the shutdown has started (at once if it has), or
    /// when its trigger is gone (nothing could start it any more, and
    /// the server is ending). Cancel-safe: usable as a `select!` branch.
    pub async fn recv(&mut self) {
        // Err: the trigger was dropped, which only happens as `run` ends.
        let _ = self.0.wait_for(|&started| started).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn recv_resolves_once_fired_and_at_once_afterwards() {
        let (trigger, mut shutdown) = channel();
        let mut other = shutdown.clone();
        assert!(!shutdown.is_shutdown());
        let waiting = tokio::time::timeout(std::time::Duration::from_millis(20), shutdown.recv());
        assert!(waiting.await.is_err(), "resolved before the trigger fired");
        trigger.fire();
        assert!(shutdown.is_shutdown());
        let bounded = std::time::Duration::from_secs(5);
        tokio::time::timeout(bounded, shutdown.recv())
            .await
            .unwrap();
        // Again, and on a clone: the state is kept, not consumed.
        tokio::time::timeout(bounded, shutdown.recv())
            .await
            .unwrap();
        tokio::time::timeout(bounded, other.recv()).await.unwrap();
    }

    #[tokio::test]
    async fn recv_resolves_when_the_trigger_is_gone() {
        let (trigger, mut shutdown) = channel();
        drop(trigger);
        let bounded = std::time::Duration::from_secs(5);
        tokio::time::timeout(bounded, shutdown.recv())
            .await
            .unwrap();
    }
}
