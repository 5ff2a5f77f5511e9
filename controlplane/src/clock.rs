//! Time as the control plane sees it: Unix milliseconds from an injectable [`Clock`], so
//! loops that depend on time (offline detection, token expiry, retention) are tested with a
//! [`FakeClock`] instead of sleeps.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// A source of wall-clock time in Unix milliseconds.
pub trait Clock: Send + Sync + 'static {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    }
}

/// A clock that moves only when told to.
#[derive(Debug, Default, Clone)]
pub struct FakeClock(Arc<AtomicI64>);

impl FakeClock {
    /// A fake clock reading `ms`.
    pub fn at(ms: i64) -> Self {
        Self(Arc::new(AtomicI64::new(ms)))
    }
    /// Moves the clock forward by `ms`.
    pub fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for FakeClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// The shared clock handle the control plane passes around.
pub type SharedClock = Arc<dyn Clock>;

/// Formats Unix milliseconds as RFC 3339 (UTC, millisecond precision).
pub fn rfc3339(ms: i64) -> String {
    let t = UNIX_EPOCH + std::time::Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    humantime::format_rfc3339_millis(t).to_string()
}

/// Parses RFC 3339 (`Z` or a `±HH:MM` offset, any case) into Unix milliseconds.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    // humantime reads UTC only: the offset (`+01:00`, `-15:17`) is applied here.
    let s = s.trim().to_ascii_uppercase();
    let (base, offset_ms) = split_offset(&s)?;
    let t = humantime::parse_rfc3339_weak(base).ok()?;
    let d = t.duration_since(UNIX_EPOCH).ok()?;
    i64::try_from(d.as_millis()).ok()?.checked_sub(offset_ms)
}

/// The date-time and its UTC offset in ms: `Z`, `±HH:MM`, or none (UTC).
fn split_offset(s: &str) -> Option<(&str, i64)> {
    if let Some(base) = s.strip_suffix('Z') {
        return Some((base, 0));
    }
    let Some(i) = s.len().checked_sub(6).filter(|i| s.is_char_boundary(*i)) else {
        return Some((s, 0));
    };
    let (base, off) = s.split_at(i);
    let b = off.as_bytes();
    let is_offset = base.contains('T')
        && matches!(b[0], b'+' | b'-')
        && b[3] == b':'
        && [1, 2, 4, 5].iter().all(|&k| b[k].is_ascii_digit());
    if !is_offset {
        return Some((s, 0));
    }
    let num = |r: std::ops::Range<usize>| off[r].parse::<i64>().ok();
    let (h, m) = (num(1..3)?, num(4..6)?);
    if h > 23 || m > 59 {
        return None;
    }
    let ms = (h * 60 + m) * 60_000;
    Some((base, if b[0] == b'-' { -ms } else { ms }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fake_clock_moves_only_when_told() {
        let c = FakeClock::at(1_000);
        assert_eq!(c.now_ms(), 1_000);
        c.advance(500);
        assert_eq!(c.now_ms(), 1_500);
    }

    #[test]
    fn rfc3339_round_trips() {
        let ms = 1_795_000_000_123;
        assert_eq!(parse_rfc3339(&rfc3339(ms)), Some(ms));
        assert_eq!(
            parse_rfc3339("2026-11-23T10:00:00Z"),
            Some(1_795_428_000_000)
        );
        assert_eq!(parse_rfc3339("yesterday"), None);
        // Offsets and lower case, as RFC 3339 allows.
        for same in [
            "2026-11-23T11:00:00+01:00",
            "2026-11-23T09:30:00-00:30",
            "2026-11-23t10:00:00z",
            "2026-11-23T10:00:00.000Z",
        ] {
            assert_eq!(parse_rfc3339(same), Some(1_795_428_000_000), "{same}");
        }
        assert_eq!(parse_rfc3339("2026-11-23T10:00:00+25:00"), None);
    }
}
