//! The workload's answer, shaped like the node heartbeat of llama-orch's pool manager
//! (`{"pools":[{"pool_id","ready","draining","slots_free","slots_total",…}]}`; other fields
//! are ignored), summed over the node's pools.

use serde::Deserialize;

/// Most bytes read from the source.
pub const MAX_BYTES: usize = 64 * 1024;

/// Most pools in one answer.
pub const MAX_POOLS: usize = 256;

/// What the node's workload says of itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reading {
    /// Slots free, summed over the pools.
    pub free: u64,
    /// Slots busy (total minus free), summed over the pools.
    pub busy: u64,
    /// At least one pool is ready and not draining.
    pub ready: bool,
}

#[derive(Deserialize)]
struct Heartbeat {
    pools: Vec<PoolStatus>,
}

#[derive(Deserialize)]
struct PoolStatus {
    #[serde(default)]
    pool_id: String,
    ready: bool,
    #[serde(default)]
    draining: bool,
    slots_free: u32,
    slots_total: u32,
}

/// Reads a heartbeat body; what is wrong, in words.
pub fn parse(body: &[u8]) -> Result<Reading, String> {
    if body.len() > MAX_BYTES {
        return Err(format!("answer over {MAX_BYTES} bytes"));
    }
    let hb: Heartbeat = serde_json::from_slice(body).map_err(|e| {
        format!(
            "not a heartbeat ({{\"pools\":[{{\"ready\",\"slots_free\",\"slots_total\"}}]}}): {e}"
        )
    })?;
    if hb.pools.len() > MAX_POOLS {
        return Err(format!("{} pools, more than {MAX_POOLS}", hb.pools.len()));
    }
    let mut r = Reading {
        free: 0,
        busy: 0,
        ready: false,
    };
    for p in &hb.pools {
        if p.slots_free > p.slots_total {
            return Err(format!(
                "pool {:?}: slots_free {} is more than slots_total {}",
                p.pool_id.chars().take(64).collect::<String>(),
                p.slots_free,
                p.slots_total
            ));
        }
        r.free += u64::from(p.slots_free);
        r.busy += u64::from(p.slots_total - p.slots_free);
        r.ready |= p.ready && !p.draining;
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pools_are_summed_and_ready_means_one_pool_takes_work() {
        let body = br#"{"timestamp":"2026-11-30T17:00:00Z","pools":[
            {"pool_id":"a","ready":true,"draining":false,"slots_free":3,"slots_total":4,"vram_free_bytes":1,"engine":"llamacpp"},
            {"pool_id":"b","ready":false,"draining":false,"slots_free":0,"slots_total":2}]}"#;
        assert_eq!(
            parse(body),
            Ok(Reading {
                free: 3,
                busy: 3,
                ready: true
            })
        );
        let draining = br#"{"pools":[{"pool_id":"a","ready":true,"draining":true,"slots_free":1,"slots_total":1}]}"#;
        assert!(!parse(draining).unwrap().ready);
        assert_eq!(
            parse(br#"{"pools":[]}"#),
            Ok(Reading {
                free: 0,
                busy: 0,
                ready: false
            })
        );
    }

    #[test]
    fn bad_answers_are_refused_with_the_reason() {
        for (body, says) in [
            (&b"not json"[..], "not a heartbeat"),
            (br#"{"pools":[{"ready":true}]}"#, "slots_free"),
            (
                br#"{"pools":[{"pool_id":"a","ready":true,"slots_free":5,"slots_total":4}]}"#,
                "more than slots_total",
            ),
            (
                br#"{"pools":[{"ready":true,"slots_free":-1,"slots_total":4}]}"#,
                "not a heartbeat",
            ),
        ] {
            let e = parse(body).unwrap_err();
            assert!(e.contains(says), "{e}");
        }
        let big = vec![b' '; MAX_BYTES + 1];
        assert!(parse(&big).unwrap_err().contains("over"));
    }
}
