//! Where in the scrape interval each target is scraped.
//!
//! As Prometheus does, a target's phase is a stable hash of the target (and of the scraping
//! replica), so targets spread evenly over the interval and keep their phase across restarts
//! of the control plane: an agent is not scraped twice in quick succession after a restart.

use std::time::Duration;

/// FNV-1a, 64 bit: stable across processes and versions (unlike `DefaultHasher`).
fn fnv1a(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.bytes().chain(std::iter::once(0xff)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// The offset within `interval` at which `target` is scraped by `replica`.
pub fn offset(target: &str, replica: &str, interval: Duration) -> Duration {
    let nanos = interval.as_nanos().max(1);
    Duration::from_nanos((u128::from(fnv1a(&[target, replica])) % nanos) as u64)
}

/// The first scrape time at or after `now` (both measured from the same epoch), for a target
/// with `offset` in a schedule of period `interval`.
pub fn next_at(now: Duration, offset: Duration, interval: Duration) -> Duration {
    let period = interval.as_nanos().max(1);
    let now_n = now.as_nanos();
    let phase = offset.as_nanos() % period;
    let base = now_n - now_n % period;
    let t = if base + phase >= now_n {
        base + phase
    } else {
        base + period + phase
    };
    Duration::from_nanos(t as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const I: Duration = Duration::from_secs(15);

    #[test]
    fn offsets_are_stable_and_within_the_interval() {
        let a = offset("http://10.0.0.1:9410/metrics", "cp-0", I);
        assert_eq!(a, offset("http://10.0.0.1:9410/metrics", "cp-0", I));
        assert!(a < I);
        assert_ne!(
            a,
            offset("http://10.0.0.1:9410/metrics", "cp-1", I),
            "replicas take different phases"
        );
    }

    #[test]
    fn ten_thousand_targets_spread_evenly() {
        let mut buckets = [0u32; 15];
        for i in 0..10_000 {
            let o = offset(&format!("http://node-{i}:9410/metrics"), "cp-0", I);
            buckets[o.as_secs() as usize] += 1;
        }
        // 666 per second on average; a fair hash stays well within ±20 %.
        assert!(
            buckets.iter().all(|&n| (533..=800).contains(&n)),
            "{buckets:?}"
        );
    }

    #[test]
    fn next_scrape_keeps_the_phase() {
        let off = Duration::from_secs(4);
        assert_eq!(
            next_at(Duration::from_secs(100), off, I),
            Duration::from_secs(109)
        );
        assert_eq!(
            next_at(Duration::from_secs(109), off, I),
            Duration::from_secs(109)
        );
        assert_eq!(
            next_at(Duration::from_secs(110), off, I),
            Duration::from_secs(124)
        );
    }
}
