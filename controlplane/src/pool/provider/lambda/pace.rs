//! Pacing requests to the documented limits of the Lambda Cloud API: about one request a
//! second, and one launch per 12 s. A call reserves its slot under a lock, then waits for
//! it outside; a wait longer than `max_wait` is not taken: the call fails at once as
//! rate-limited with `retry_after`, and the pool manager retries it later (a blocking
//! thread is not held for 12 s per queued launch). A 429 from the server pushes the next
//! slot back by its `Retry-After`.

use std::sync::Mutex;
use std::time::Duration;

use crate::clock::SharedClock;
use crate::pool::provider::{ErrorKind, ProviderError, Sleeper};

/// The limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Between two requests of any kind.
    pub request: Duration,
    /// Between two launches.
    pub launch: Duration,
    /// The longest a call waits for its slot before it fails as rate-limited instead.
    pub max_wait: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            request: Duration::from_secs(1),
            launch: Duration::from_secs(12),
            max_wait: Duration::from_secs(2),
        }
    }
}

#[derive(Debug, Default)]
struct Slots {
    /// Unix ms before which no request may start.
    any: i64,
    /// Unix ms before which no launch may start.
    launch: i64,
}

/// The pacer of one API key.
pub struct Pace {
    limits: Limits,
    clock: SharedClock,
    sleep: Sleeper,
    slots: Mutex<Slots>,
}

impl std::fmt::Debug for Pace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pace")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4)
}

impl Pace {
    /// A pacer with `limits` on `clock`, waiting with `sleep`.
    pub fn new(limits: Limits, clock: SharedClock, sleep: Sleeper) -> Self {
        Self {
            limits,
            clock,
            sleep,
            slots: Mutex::default(),
        }
    }

    /// Waits for the next slot of a request (`launch`: of a launch too); a rate-limited
    /// error when that slot is more than `max_wait` away.
    pub fn acquire(&self, launch: bool) -> Result<(), ProviderError> {
        let wait = {
            let mut s = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            let now = self.clock.now_ms();
            let at = if launch { s.any.max(s.launch) } else { s.any }.max(now);
            let wait = at - now;
            if wait > ms(self.limits.max_wait) {
                let d = Duration::from_millis(u64::try_from(wait).unwrap_or(0));
                return Err(ProviderError::new(
                    ErrorKind::RateLimited,
                    format!(
                        "paced to the API's limits ({} a {}): next slot in {}",
                        if launch { "one launch" } else { "one request" },
                        humantime::format_duration(if launch {
                            self.limits.launch
                        } else {
                            self.limits.request
                        }),
                        humantime::format_duration(d)
                    ),
                )
                .with_retry_after(d));
            }
            s.any = at + ms(self.limits.request);
            if launch {
                s.launch = at + ms(self.limits.launch);
            }
            wait
        };
        if wait > 0 {
            (self.sleep)(Duration::from_millis(u64::try_from(wait).unwrap_or(0)));
        }
        Ok(())
    }

    /// The server said 429: no request before `retry_after` from now.
    pub fn back_off(&self, retry_after: Duration) {
        let mut s = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let until = self.clock.now_ms() + ms(retry_after);
        s.any = s.any.max(until);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::clock::{Clock, FakeClock};

    /// A pacer on a fake clock whose sleeps move the clock and are recorded.
    fn pace() -> (Pace, FakeClock, Arc<Mutex<Vec<u64>>>) {
        let clock = FakeClock::at(1_000_000);
        let slept = Arc::new(Mutex::new(Vec::new()));
        let (c, s) = (clock.clone(), slept.clone());
        let sleep: Sleeper = Arc::new(move |d: Duration| {
            s.lock()
                .unwrap()
                .push(u64::try_from(d.as_millis()).unwrap());
            c.advance(i64::try_from(d.as_millis()).unwrap());
        });
        (
            Pace::new(Limits::default(), Arc::new(clock.clone()), sleep),
            clock,
            slept,
        )
    }

    #[test]
    fn requests_are_spaced_a_second_apart() {
        let (p, clock, slept) = pace();
        let start = clock.now_ms();
        for _ in 0..3 {
            p.acquire(false).unwrap();
        }
        assert_eq!(*slept.lock().unwrap(), vec![1_000, 1_000]);
        assert_eq!(clock.now_ms() - start, 2_000);
    }

    #[test]
    fn a_second_launch_within_12_s_is_refused_with_when_to_retry() {
        let (p, clock, slept) = pace();
        p.acquire(true).unwrap();
        let e = p.acquire(true).unwrap_err();
        assert_eq!(e.kind, ErrorKind::RateLimited);
        assert_eq!(e.retry_after, Some(Duration::from_secs(12)));
        assert!(slept.lock().unwrap().is_empty(), "refused without waiting");
        // Other requests go on meanwhile, a second apart.
        p.acquire(false).unwrap();
        assert_eq!(*slept.lock().unwrap(), vec![1_000]);
        clock.advance(10_000);
        // 1 s left of the 12: that is waited for.
        p.acquire(true).unwrap();
        assert_eq!(*slept.lock().unwrap(), vec![1_000, 1_000]);
    }

    #[test]
    fn a_429_pushes_every_request_back() {
        let (p, clock, _) = pace();
        p.back_off(Duration::from_secs(30));
        let e = p.acquire(false).unwrap_err();
        assert_eq!(e.retry_after, Some(Duration::from_secs(30)));
        clock.advance(29_000);
        p.acquire(false).unwrap();
    }
}
