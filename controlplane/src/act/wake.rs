//! A wake-up call between threads: a loop that polls on an interval also wakes at once when
//! another thread has news for it (a new command, a node that turned unhealthy).

use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// Set by [`Wake::notify`], consumed by [`Wake::wait`].
#[derive(Debug, Default)]
pub struct Wake {
    pending: Mutex<bool>,
    cv: Condvar,
}

impl Wake {
    /// Wakes the waiting loop (or the next wait returns at once).
    pub fn notify(&self) {
        *self.pending.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.cv.notify_all();
    }

    /// Waits until notified or `timeout`; true when notified.
    pub fn wait(&self, timeout: Duration) -> bool {
        let guard = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let (mut guard, _) = self
            .cv
            .wait_timeout_while(guard, timeout, |p| !*p)
            .unwrap_or_else(|p| p.into_inner());
        std::mem::replace(&mut *guard, false)
    }
}

/// What the API and the scraper tell the other loops: a command was stored (wake the
/// dispatcher), a node turned unhealthy (wake remediation), and the webhooks.
#[derive(Debug, Clone, Default)]
pub struct Links {
    /// Webhooks.
    pub notifier: crate::act::webhooks::Notifier,
    /// Wakes the command dispatcher.
    pub dispatch: std::sync::Arc<Wake>,
    /// Wakes remediation.
    pub remediate: std::sync::Arc<Wake>,
    /// Unhealthy nodes the pool manager holds in service (the budget is full).
    pub held: crate::act::managed::Held,
    /// Wakes the pool manager: a pool changed through the API.
    pub pools: std::sync::Arc<Wake>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Instant;

    #[test]
    fn a_notification_ends_the_wait_and_is_consumed_once() {
        let w = Arc::new(Wake::default());
        w.notify();
        assert!(
            w.wait(Duration::from_secs(5)),
            "a notice given before the wait counts"
        );
        let start = Instant::now();
        assert!(!w.wait(Duration::from_millis(50)), "consumed");
        assert!(start.elapsed() >= Duration::from_millis(50));
        let w2 = w.clone();
        let t = std::thread::spawn(move || w2.wait(Duration::from_secs(10)));
        std::thread::sleep(Duration::from_millis(20));
        w.notify();
        assert!(t.join().unwrap());
    }
}
