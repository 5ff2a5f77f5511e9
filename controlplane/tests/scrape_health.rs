//! What the default policy makes of scraped bodies and agent events, end to end through the
//! scraper: absent data is unknown (never down), XIDs the table says to ignore do not degrade,
//! NVLink5 XIDs follow the status the driver printed.

use std::time::Duration;

use crate::scrape::{rig, Rig, T0};
use crate::util::{agent_body, Reply, Stub};

fn health(r: &Rig, id: &str) -> String {
    r.store.node(id).unwrap().health
}

#[test]
fn a_gpu_without_an_up_series_is_unknown_not_lost() {
    let r = rig(Duration::from_secs(2), 1 << 20, 10_000);
    // The body: a temperature sample, no `gpuwarden_gpu_up` at all.
    let no_up: String = agent_body(2, 0)
        .lines()
        .filter(|l| !l.contains("gpuwarden_gpu_up"))
        .map(|l| format!("{l}\n"))
        .collect();
    let agent = Stub::start(Reply::text(&no_up));
    r.add("n", &agent.url());
    r.scrape("n");
    let info = r.fleet.get("n").unwrap().scrape;
    assert!(info.up, "{info:?}");
    assert_eq!(health(&r, "n"), "healthy", "not gpu-lost, not cordoned");
    assert!(
        !r.scraper
            .metrics
            .render()
            .contains("gpuwarden_cp_rule_failures_total{"),
        "the default rules guard what may be absent"
    );
    // Reported down, it is lost.
    *agent.reply.lock().unwrap() = Reply::text(&agent_body(2, 0).replace(
        "gpuwarden_gpu_up{gpu=\"1\",uuid=\"GPU-1\",model=\"NVIDIA H100 80GB HBM3\"} 1",
        "gpuwarden_gpu_up{gpu=\"1\",uuid=\"GPU-1\",model=\"NVIDIA H100 80GB HBM3\"} 0",
    ));
    r.clock.advance(15_000);
    r.scrape("n");
    assert_eq!(health(&r, "n"), "unhealthy");
}

/// Scrapes `n` once with one XID event from the agent.
fn with_xid_event(code: u32, message: &str, severity: &str, action: &str) -> Rig {
    let r = rig(Duration::from_secs(2), 1 << 20, 10_000);
    let agent = Stub::start(Reply::text(&agent_body(8, 0)));
    r.add("n", &agent.url());
    r.scrape("n");
    assert_eq!(health(&r, "n"), "healthy");
    *agent.reply.lock().unwrap() =
        Reply::text(&agent_body(8, 0).replace("xid=\"79\"} 0", &format!("xid=\"{code}\"}} 1")));
    let event = serde_json::json!({"events": [{
        "seq": 1, "time": gpuwarden_controlplane::clock::rfc3339(T0 + 10_000),
        "gpu": 2, "uuid": "GPU-2", "kind": "xid", "code": code, "message": message,
        "severity": severity, "action": action, "source": "kmsg"}],
        "next": 1, "instance": "A", "truncated": false});
    *agent.events.lock().unwrap() = event.to_string();
    r.clock.advance(15_000);
    r.scrape("n");
    // The stub goes away with this function; the node keeps what the scrape made of it.
    drop(agent);
    r
}

#[test]
fn xids_the_table_says_to_ignore_do_not_degrade_the_node() {
    for code in [43, 45] {
        let r = with_xid_event(code, "XID: application fault", "info", "ignore");
        assert_eq!(r.store.events_between(0, i64::MAX, 10).unwrap().len(), 1);
        assert_eq!(health(&r, "n"), "healthy", "XID {code}");
    }
    // One the table does not ignore still degrades.
    let r = with_xid_event(
        13,
        "XID 13: graphics engine exception",
        "warning",
        "restart_app",
    );
    assert_eq!(health(&r, "n"), "degraded");
}

#[test]
fn nvlink5_xids_follow_the_status_the_driver_printed() {
    let nonfatal = "XID 145: NVLink5 RLW error (145, RLW_RXPIPE Nonfatal XC0 i0 Link 13 (0x0409a0c2 0x00000008 0x00000001 0x00000000 0x00100000 0x00000004))";
    let r = with_xid_event(145, nonfatal, "warning", "ignore");
    assert_eq!(health(&r, "n"), "healthy", "non-fatal: not condemned");
    let fatal = "XID 145: NVLink5 RLW error (145, RLW_SRC_TRACK Fatal XC0 i0 Link 00 (0x00000007 0x00000001 0x00000000 0x00000000))";
    let r = with_xid_event(145, fatal, "fatal", "reset_gpu");
    assert_eq!(health(&r, "n"), "unhealthy");
    let t = &r.store.transitions("n", 1).unwrap()[0];
    assert_eq!(t.actor, "policy:fatal-xid");
}
