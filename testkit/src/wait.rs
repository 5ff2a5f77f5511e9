//! Bounded polling.

use std::time::{Duration, Instant};

/// How often [`wait_for`] and [`poll`] try again.
const EVERY: Duration = Duration::from_millis(50);

/// Calls `f` until it returns `Some` or `within` has passed (then `None`); `f` runs at least
/// once and every 50 ms after that.
pub fn poll<T>(within: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(EVERY);
    }
}

/// [`poll`] for at most `secs` seconds; panics with "timed out after {secs}s waiting for
/// {what}" when `f` never returned `Some`.
pub fn wait_for<T>(what: &str, secs: u64, f: impl FnMut() -> Option<T>) -> T {
    poll(Duration::from_secs(secs), f)
        .unwrap_or_else(|| panic!("timed out after {secs}s waiting for {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_returns_the_first_value_and_gives_up_at_the_deadline() {
        let mut n = 0;
        assert_eq!(
            poll(Duration::from_secs(5), || {
                n += 1;
                (n == 3).then_some(n)
            }),
            Some(3)
        );
        let start = Instant::now();
        assert_eq!(poll(Duration::from_millis(120), || None::<()>), None);
        assert!(start.elapsed() >= Duration::from_millis(120));
    }

    #[test]
    #[should_panic(expected = "timed out after 0s waiting for nothing")]
    fn wait_for_panics_with_what_it_waited_for() {
        wait_for("nothing", 0, || None::<()>);
    }
}
