//! `scheduled`: windows of local time, in a named IANA time zone, each with its own
//! bounds; the first window that contains the moment applies.
//!
//! A window's `start` and `end` are wall-clock times, so it follows daylight saving: a
//! `08:00`–`18:00` window in `Europe/Berlin` opens at 07:00 UTC in winter and 06:00 UTC in
//! summer. An `end` earlier than `start` crosses midnight: the window belongs to the day
//! it starts on and ends on the next. On the night the clocks go forward, a window that
//! lies wholly within the skipped hour does not occur. The time zone comes from the
//! system's tz database, or the copy bundled into the binary where there is none.
//!
//! Within a window the fallback autoscaler's answer (or the current size) is held within
//! the window's bounds; outside every window the fallback decides, and without one the
//! answer is 0: the pool returns to its own `min_nodes`.

use jiff::tz::TimeZone;
use jiff::Timestamp;

use super::metrics::{Autoscale, Metrics, Recommendation};
use crate::model::pool::{PoolError, ScheduledSpec, WEEKDAYS};

/// One window, compiled.
#[derive(Debug, Clone, PartialEq)]
struct Window {
    /// Days it starts on: bit 0 Monday … bit 6 Sunday.
    days: u8,
    /// Minutes after local midnight.
    start: u16,
    end: u16,
    min: u32,
    max: u32,
}

/// Windows in a time zone, with a fallback.
#[derive(Debug)]
pub struct Scheduled {
    tz_name: String,
    tz: TimeZone,
    windows: Vec<Window>,
    fallback: Option<Box<dyn Autoscale>>,
}

impl Scheduled {
    /// From its (validated) spec at field path `at`, with its fallback already built.
    pub fn new(
        s: &ScheduledSpec,
        at: &str,
        fallback: Option<Box<dyn Autoscale>>,
    ) -> Result<Scheduled, PoolError> {
        let err = |field: String, message: String| PoolError { field, message };
        let tz = jiff::tz::db()
            .get(&s.timezone)
            .map_err(|e| err(format!("{at}.timezone"), format!("{:?}: {e}", s.timezone)))?;
        let mut windows = Vec::with_capacity(s.windows.len());
        for (i, w) in s.windows.iter().enumerate() {
            let f = |name: &str| format!("{at}.windows[{i}].{name}");
            windows.push(Window {
                days: w.day_bits().map_err(|e| err(f("days"), e))?,
                start: w.start_minute().map_err(|e| err(f("start"), e))?,
                end: w.end_minute().map_err(|e| err(f("end"), e))?,
                min: w.min_nodes,
                max: w.max_nodes,
            });
        }
        Ok(Scheduled {
            tz_name: s.timezone.clone(),
            tz,
            windows,
            fallback,
        })
    }

    /// The index of the window that contains `now_ms`, if any.
    fn window_at(&self, now_ms: i64) -> Option<usize> {
        let ts = Timestamp::from_millisecond(now_ms).ok()?;
        let local = self.tz.to_datetime(ts);
        let today = local.weekday().to_monday_zero_offset() as u8;
        let yesterday = (today + 6) % 7;
        let minute = local.hour() as u16 * 60 + local.minute() as u16;
        let on = |days: u8, d: u8| days & (1 << d) != 0;
        self.windows.iter().position(|w| {
            if w.start < w.end {
                on(w.days, today) && (w.start..w.end).contains(&minute)
            } else {
                (on(w.days, today) && minute >= w.start)
                    || (on(w.days, yesterday) && minute < w.end)
            }
        })
    }
}

fn hhmm(m: u16) -> String {
    format!("{:02}:{:02}", m / 60, m % 60)
}

fn days(bits: u8) -> String {
    if bits == 0x7f {
        return "daily".into();
    }
    let names: Vec<&str> = (0..7)
        .filter(|d| bits & (1 << d) != 0)
        .map(|d| WEEKDAYS[d])
        .collect();
    names.join(",")
}

impl Autoscale for Scheduled {
    fn recommend(&self, m: &Metrics, now_ms: i64) -> Recommendation {
        let inner = self.fallback.as_ref().map(|f| f.recommend(m, now_ms));
        let Some(i) = self.window_at(now_ms) else {
            return match inner {
                Some(r) => Recommendation {
                    nodes: r.nodes,
                    reason: format!(
                        "scheduled: outside every window ({}); {}",
                        self.tz_name, r.reason
                    ),
                },
                None => Recommendation::nodes(
                    0,
                    format!(
                        "scheduled: outside every window ({}): the pool's min_nodes",
                        self.tz_name
                    ),
                ),
            };
        };
        let w = &self.windows[i];
        let (base, why) = match inner {
            Some(Recommendation {
                nodes: Some(n),
                reason,
            }) => (n, reason),
            Some(Recommendation {
                nodes: None,
                reason,
            }) => (m.nodes(), reason),
            None => (m.nodes(), format!("{} nodes now", m.nodes())),
        };
        let to = base.clamp(w.min, w.max);
        Recommendation::nodes(
            to,
            format!(
                "scheduled: window {} {}-{} ({}) holds {}..{}: {to}; {why}",
                days(w.days),
                hhmm(w.start),
                hhmm(w.end),
                self.tz_name,
                w.min,
                w.max
            ),
        )
    }
}

#[cfg(test)]
#[path = "scheduled_tests.rs"]
mod tests;
