//! The scraper's periodic work beside the scrapes: idle judging, retried health writes, the
//! observation flush (every node's `last_seen`, the rows that are due) and retention pruning;
//! at the stop, every changed observation whole.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::Scraper;

impl Scraper {
    /// The housekeeping thread's loop, until `stop`.
    pub(super) fn housekeeping(
        &self,
        stop: &AtomicBool,
        (flush_every, rows_every): (Duration, Duration),
        retention: (Duration, Duration),
    ) {
        let s = self;
        let mut last_flush = Instant::now();
        let mut last_prune: Option<Instant> = None;
        let mut last_idle = Instant::now();
        while !stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(100));
            if last_idle.elapsed() >= Duration::from_secs(1) {
                // Node rules for offline nodes (node-offline), and degraded verdicts whose
                // condition stopped holding.
                s.judge_idle(s.clock.now_ms());
                s.retry_unsaved();
                last_idle = Instant::now();
            }
            if last_flush.elapsed() >= flush_every {
                let every = i64::try_from(rows_every.as_millis()).unwrap_or(i64::MAX);
                s.flush_due(Some((s.clock.now_ms(), every)));
                last_flush = Instant::now();
            }
            if last_prune.is_none_or(|t| t.elapsed() >= Duration::from_secs(3600)) {
                let now = s.clock.now_ms();
                let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
                match s.store.prune(now - ms(retention.0), now - ms(retention.1)) {
                    Ok((e, a)) if e + a > 0 => {
                        info!(events = e, audit = a, "retention pruned old rows")
                    }
                    Ok(_) => {}
                    Err(e) => warn!(error = %e, "retention pruning failed"),
                }
                last_prune = Some(Instant::now());
            }
        }
        s.flush();
    }
}
