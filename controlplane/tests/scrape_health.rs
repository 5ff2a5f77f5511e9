//! What the default policy makes of scraped bodies and agent events, end to end through the
//! scraper: absent data is unknown (never down), XIDs the table says to ignore do not degrade,
//! NVLink5 XIDs follow the status the driver printed; the health is stored with its reason,
//! a degrading XID clears after its time, and a health change the database refused is
//! written once it can be.

use std::time::Duration;

use gpuwarden_controlplane::clock::Clock;

use crate::scrape::{rig, Rig, T0};
use crate::util::{agent_body, Reply, Stub};

fn health(r: &Rig, id: &str) -> String {
    r.store.node(id).unwrap().health
}

#[test]
fn a_gpu_without_an_up_series_is_unknown_not_lost() {
    let r = rig(Duration::from_secs(2), 1 << 20, 10_000);
    // The issue's body: a temperature sample, no `gpuwarden_gpu_up` at all.
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

fn counted(r: &Rig, result: &str) -> bool {
    r.scraper.metrics.render().contains(&format!(
        "gpuwarden_cp_scrapes_total{{result=\"{result}\"}} 1"
    ))
}

#[test]
fn a_node_never_scraped_successfully_is_unknown_whatever_its_target_answers() {
    let r = rig(Duration::from_secs(2), 4 << 20, 100_000);
    // Nothing listens; a body refused for its cardinality; an empty 200 body.
    let many: String = (0..40_000)
        .map(|g| format!("gpuwarden_gpu_up{{gpu=\"{g}\",uuid=\"GPU-{g}\"}} 1\n"))
        .collect();
    let refused = Stub::start(Reply::text(&many));
    let empty = Stub::start(Reply::text(""));
    r.add("gone", "http://127.0.0.1:9");
    r.add("many", &refused.url());
    r.add("empty", &empty.url());
    for _ in 0..5 {
        for id in ["gone", "many", "empty"] {
            r.scrape(id);
        }
        r.clock.advance(15_000);
        r.scraper.judge_idle(r.clock.now_ms());
    }
    for id in ["gone", "many", "empty"] {
        assert_eq!(
            health(&r, id),
            "unknown",
            "{id}: absence of data is unknown"
        );
        assert_eq!(
            r.fleet.get(id).unwrap().connectivity.as_str(),
            "offline",
            "{id}"
        );
    }
    let error = |id| {
        r.fleet
            .get(id)
            .unwrap()
            .scrape
            .last_error
            .unwrap_or_default()
    };
    assert!(
        error("many").contains("more than 1024 GPUs"),
        "{}",
        error("many")
    );
    assert!(
        error("empty").contains("not a gpuwarden agent"),
        "{}",
        error("empty")
    );
    assert!(
        r.scraper
            .metrics
            .render()
            .contains("gpuwarden_cp_scrapes_total{result=\"cardinality\"} 5"),
        "counted as failures"
    );
    assert!(!counted(&r, "success"));
    // The first successful observation decides.
    *refused.reply.lock().unwrap() = Reply::text(&agent_body(2, 0));
    r.scrape("many");
    assert_eq!(health(&r, "many"), "healthy");
}

#[test]
fn nan_and_infinite_values_are_absent_for_the_rules_not_rule_failures() {
    let r = rig(Duration::from_secs(2), 1 << 20, 10_000);
    let body = agent_body(2, 0)
        .replace("} 40\n", "} NaN\n")
        .replace("} 41\n", "} +Inf\n");
    assert!(body.contains("NaN") && body.contains("+Inf"));
    let agent = Stub::start(Reply::text(&body));
    r.add("n", &agent.url());
    r.scrape("n");
    assert!(counted(&r, "success"));
    assert_eq!(health(&r, "n"), "healthy");
    assert!(
        !r.scraper
            .metrics
            .render()
            .contains("gpuwarden_cp_rule_failures_total{"),
        "no rule compares NaN"
    );
    // A real temperature again is judged.
    *agent.reply.lock().unwrap() = Reply::text(&agent_body(2, 0).replace("} 40\n", "} 97\n"));
    r.clock.advance(15_000);
    r.scrape("n");
    assert_ne!(health(&r, "n"), "healthy");
}

#[test]
fn the_policy_judges_observations_and_events_and_the_health_is_stored_with_its_reason() {
    let r = rig(Duration::from_secs(2), 1 << 20, 10_000);
    let agent = Stub::start(Reply::text(&agent_body(8, 0)));
    r.add("n", &agent.url());
    r.scrape("n");
    assert_eq!(r.store.node("n").unwrap().health, "healthy");

    // GPU 1 falls off the bus: unhealthy, with the rule and the GPU in the history.
    let lost = agent_body(8, 0).replace(
        "gpuwarden_gpu_up{gpu=\"1\",uuid=\"GPU-1\",model=\"NVIDIA H100 80GB HBM3\"} 1",
        "gpuwarden_gpu_up{gpu=\"1\",uuid=\"GPU-1\",model=\"NVIDIA H100 80GB HBM3\"} 0",
    );
    *agent.reply.lock().unwrap() = Reply::text(&lost);
    r.clock.advance(15_000);
    r.scrape("n");
    assert_eq!(r.store.node("n").unwrap().health, "unhealthy");
    let t = &r.store.transitions("n", 1).unwrap()[0];
    assert_eq!(
        (t.field.as_str(), t.actor.as_str()),
        ("health", "policy:gpu-lost")
    );
    assert!(
        t.reason.contains("GPU 1") && t.reason.contains("up = false"),
        "{}",
        t.reason
    );
    // It comes back: still unhealthy (sticky) until an operator clears it.
    *agent.reply.lock().unwrap() = Reply::text(&agent_body(8, 0));
    r.clock.advance(15_000);
    r.scrape("n");
    r.scraper
        .judge_idle(gpuwarden_controlplane::clock::Clock::now_ms(&r.clock) + 3_600_000);
    assert_eq!(r.store.node("n").unwrap().health, "unhealthy");
    assert!(r
        .scraper
        .metrics
        .render()
        .contains("gpuwarden_cp_health_changes_total{to=\"unhealthy\"} 1"));
}

#[test]
fn a_degrading_xid_event_degrades_the_node_until_the_clear_time_passes() {
    let r = rig(Duration::from_secs(2), 1 << 20, 10_000);
    let agent = Stub::start(Reply::text(&agent_body(8, 0)));
    r.add("n", &agent.url());
    r.scrape("n");
    *agent.reply.lock().unwrap() =
        Reply::text(&agent_body(8, 0).replace("xid=\"79\"} 0", "xid=\"13\"} 1"));
    let event_ms = T0 + 10_000;
    let stamp = gpuwarden_controlplane::clock::rfc3339(event_ms);
    *agent.events.lock().unwrap() = r#"{"events":[{"seq":1,"time":"STAMP","gpu":2,"uuid":"GPU-2","kind":"xid","code":13,"message":"XID 13: graphics engine exception","severity":"warning","action":"restart_app","source":"nvml"}],"next":1,"instance":"A","truncated":false}"#.replace("STAMP", &stamp);
    r.clock.advance(15_000);
    r.scrape("n");
    let node = r.store.node("n").unwrap();
    assert_eq!(node.health, "degraded");
    let t = &r.store.transitions("n", 1).unwrap()[0];
    assert_eq!(t.actor, "policy:xid");
    assert!(
        t.reason.contains("13") && t.reason.contains("GPU 2"),
        "{}",
        t.reason
    );
    // Five minutes after the event (default degraded_clear_after), healthy again.
    r.scraper.judge_idle(event_ms + 299_000);
    assert_eq!(r.store.node("n").unwrap().health, "degraded");
    r.scraper.judge_idle(event_ms + 300_000);
    assert_eq!(r.store.node("n").unwrap().health, "healthy");
}

#[test]
fn a_health_change_the_database_refused_is_written_once_it_can_be() {
    use diesel::connection::SimpleConnection;
    use diesel::Connection;
    let r = rig(Duration::from_secs(2), 1 << 20, 10_000);
    let agent = Stub::start(Reply::text(&agent_body(8, 0)));
    r.add("n", &agent.url());
    r.scrape("n");
    // Another process holds SQLite's write lock while the node turns unhealthy (GPU lost).
    let mut other =
        diesel::sqlite::SqliteConnection::establish(r._dir.path().join("gw.db").to_str().unwrap())
            .unwrap();
    other.batch_execute("BEGIN IMMEDIATE").unwrap();
    *agent.reply.lock().unwrap() = Reply::text(&agent_body(8, 0).replace(
        "gpu=\"1\",uuid=\"GPU-1\",model=\"NVIDIA H100 80GB HBM3\"} 1",
        "gpu=\"1\",uuid=\"GPU-1\",model=\"NVIDIA H100 80GB HBM3\"} 0",
    ));
    r.clock.advance(15_000);
    r.scrape("n");
    assert_ne!(
        r.store.node("n").unwrap().health,
        "unhealthy",
        "the write was refused"
    );
    assert!(r
        .scraper
        .metrics
        .render()
        .contains("gpuwarden_cp_store_errors_total{op=\"transition\"}"));
    // Still locked: kept for later, not lost.
    r.scraper.retry_unsaved();
    other.batch_execute("COMMIT").unwrap();
    r.scraper.retry_unsaved();
    assert_eq!(r.store.node("n").unwrap().health, "unhealthy");
    let t = &r.store.transitions("n", 1).unwrap()[0];
    assert_eq!(t.actor, "policy:gpu-lost");
    r.scraper.retry_unsaved();
    assert_eq!(
        r.store
            .transitions("n", 10)
            .unwrap()
            .iter()
            .filter(|t| t.to_state == "unhealthy")
            .count(),
        1,
        "written once"
    );
}
