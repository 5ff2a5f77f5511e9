//! Each fault injected through `POST /v1/fake/inject` changes the right series and raises the
//! right event, once; clearing restores healthy values.

use crate::util::{Agent, Metrics};

fn gpu(i: u32) -> String {
    i.to_string()
}

/// Events after `cursor` and the new cursor.
fn new_events(agent: &Agent, cursor: u64) -> (Vec<serde_json::Value>, u64) {
    let page = agent.events_after(cursor);
    let events = page["events"].as_array().cloned().unwrap_or_default();
    (events, page["next"].as_u64().expect("next"))
}

fn last_collection(m: &Metrics) -> f64 {
    m.value("gpuwarden_agent_last_collection_timestamp_seconds", &[])
        .expect("timestamp")
}

struct Case {
    body: &'static str,
    gpu: u32,
    kind: &'static str,
    severity: &'static str,
    check: fn(&Metrics, &str) -> bool,
}

#[test]
fn each_injected_fault_changes_its_series_and_raises_its_event_once() {
    let agent = Agent::start(
        &["--fake-gpus", "8"],
        &[("GPUWARDEN_COLLECTOR__INTERVAL", "200ms")],
    );
    let cases = [
        Case {
            body: r#"{"gpu":0,"fault":"xid","code":79}"#,
            gpu: 0,
            kind: "xid",
            severity: "fatal",
            check: |m, g| {
                m.value(
                    "gpuwarden_gpu_xid_errors_total",
                    &[("gpu", g), ("xid", "79")],
                ) == Some(1.0)
            },
        },
        Case {
            body: r#"{"gpu":1,"fault":"temperature","value":97}"#,
            gpu: 1,
            kind: "thermal",
            severity: "fatal",
            check: |m, g| m.value("gpuwarden_gpu_temperature_celsius", &[("gpu", g)]) == Some(97.0),
        },
        Case {
            body: r#"{"gpu":2,"fault":"ecc","type":"double_bit"}"#,
            gpu: 2,
            kind: "ecc",
            severity: "fatal",
            check: |m, g| {
                m.value(
                    "gpuwarden_gpu_ecc_errors_total",
                    &[("gpu", g), ("type", "uncorrected"), ("counter", "volatile")],
                ) == Some(1.0)
            },
        },
        Case {
            body: r#"{"gpu":3,"fault":"fell_off_bus"}"#,
            gpu: 3,
            kind: "gpu_lost",
            severity: "fatal",
            check: |m, g| {
                m.value("gpuwarden_gpu_up", &[("gpu", g)]) == Some(0.0)
                    && m.value("gpuwarden_gpu_temperature_celsius", &[("gpu", g)])
                        .is_none()
                    && m.series("gpuwarden_gpu_nvlink_up", &[("gpu", g)]).count() == 0
            },
        },
        Case {
            body: r#"{"gpu":4,"fault":"nvlink_down","link":0}"#,
            gpu: 4,
            kind: "nvlink",
            severity: "fatal",
            check: |m, g| {
                m.value("gpuwarden_gpu_nvlink_up", &[("gpu", g), ("link", "0")]) == Some(0.0)
                    && m.value("gpuwarden_gpu_nvlink_up", &[("gpu", g), ("link", "1")]) == Some(1.0)
            },
        },
        Case {
            body: r#"{"gpu":5,"fault":"pcie_degraded"}"#,
            gpu: 5,
            kind: "pcie",
            severity: "warning",
            check: |m, g| m.value("gpuwarden_gpu_pcie_link_width", &[("gpu", g)]) == Some(8.0),
        },
        Case {
            body: r#"{"gpu":6,"fault":"power","value":900}"#,
            gpu: 6,
            kind: "power",
            severity: "warning",
            check: |m, g| m.value("gpuwarden_gpu_power_watts", &[("gpu", g)]) == Some(900.0),
        },
        Case {
            body: r#"{"gpu":7,"fault":"throttle","reason":"hw_slowdown"}"#,
            gpu: 7,
            kind: "throttle",
            severity: "warning",
            check: |m, g| {
                m.value(
                    "gpuwarden_gpu_clock_event_active",
                    &[("gpu", g), ("reason", "hw_slowdown")],
                ) == Some(1.0)
            },
        },
    ];
    let mut cursor = 0;
    for c in &cases {
        let g = gpu(c.gpu);
        let before = agent.metrics();
        assert!(
            !(c.check)(&before, &g),
            "{} already visible before injection",
            c.body
        );
        let (status, body) = agent.post("/v1/fake/inject", c.body);
        assert_eq!(status, 200, "{body}");
        // The inject call returns after a fresh snapshot is published.
        let after = agent.metrics();
        assert!((c.check)(&after, &g), "{} not visible in /metrics", c.body);
        let (events, next) = new_events(&agent, cursor);
        assert_eq!(
            events.len(),
            1,
            "{}: expected one event, got {events:#?}",
            c.body
        );
        let e = &events[0];
        assert_eq!(e["kind"], c.kind, "{e}");
        assert_eq!(e["gpu"], c.gpu, "{e}");
        assert_eq!(e["severity"], c.severity, "{e}");
        assert!(
            e["uuid"].as_str().is_some_and(|u| u.starts_with("GPU-")),
            "{e}"
        );
        assert!(
            e["action"].is_string() || c.kind == "power" || c.kind == "throttle",
            "{e}"
        );
        cursor = next;
        // Two more collections: the fault persists, and raises nothing new.
        let t = last_collection(&after);
        agent.wait_metrics("two more collections", |m| last_collection(m) > t + 0.3);
        let (events, _) = new_events(&agent, cursor);
        assert!(events.is_empty(), "{} raised again: {events:#?}", c.body);
        assert!(
            (c.check)(&agent.metrics(), &g),
            "{} vanished before clear",
            c.body
        );
    }

    let (status, body) = agent.post("/v1/fake/clear", "");
    assert_eq!(status, 200, "{body}");
    let m = agent.metrics();
    // Faults clear; counters (XID, ECC) keep their values: counters never go backwards.
    for c in cases.iter().filter(|c| c.kind != "xid" && c.kind != "ecc") {
        assert!(
            !(c.check)(&m, &gpu(c.gpu)),
            "{} still visible after clear",
            c.body
        );
    }
    assert!((cases[2].check)(&m, "2"), "ECC counter went backwards");
    for i in 0..8 {
        let g = gpu(i);
        assert_eq!(m.value("gpuwarden_gpu_up", &[("gpu", &g)]), Some(1.0));
        let t = m
            .value("gpuwarden_gpu_temperature_celsius", &[("gpu", &g)])
            .expect("temperature");
        assert!(t < 85.0, "gpu {i} at {t}°C after clear");
        let p = m
            .value("gpuwarden_gpu_power_watts", &[("gpu", &g)])
            .expect("power");
        assert!(p < 700.0, "gpu {i} at {p} W after clear");
    }
    assert_eq!(
        m.value(
            "gpuwarden_gpu_xid_errors_total",
            &[("gpu", "0"), ("xid", "79")]
        ),
        Some(1.0)
    );
    let (events, _) = new_events(&agent, cursor);
    assert!(events.is_empty(), "clearing raised events: {events:#?}");
}

#[test]
fn clearing_one_gpu_leaves_the_others_faulty() {
    let agent = Agent::start(&["--fake-gpus", "2"], &[]);
    for gpu in 0..2 {
        let body = format!(r#"{{"gpu":{gpu},"fault":"temperature","value":90}}"#);
        assert_eq!(agent.post("/v1/fake/inject", &body).0, 200);
    }
    assert_eq!(agent.post("/v1/fake/clear", r#"{"gpu":1}"#).0, 200);
    let m = agent.metrics();
    assert_eq!(
        m.value("gpuwarden_gpu_temperature_celsius", &[("gpu", "0")]),
        Some(90.0)
    );
    assert!(
        m.value("gpuwarden_gpu_temperature_celsius", &[("gpu", "1")])
            .unwrap()
            < 85.0
    );
}

#[test]
fn bad_injections_are_refused_with_a_reason_and_change_nothing() {
    let agent = Agent::start(&["--fake-gpus", "2"], &[]);
    let before = agent.events_after(0);
    for (body, status, code) in [
        (r#"{"gpu":9,"fault":"xid","code":79}"#, 422, "invalid_fault"),
        (r#"{"gpu":0,"fault":"xid"}"#, 422, "invalid_fault"),
        (r#"{"gpu":0,"fault":"volcano"}"#, 422, "invalid_fault"),
        (
            r#"{"gpu":0,"fault":"nvlink_down","link":99}"#,
            422,
            "invalid_fault",
        ),
        (
            r#"{"gpu":0,"fault":"temperature","value":"hot"}"#,
            400,
            "bad_request",
        ),
        (r#"not json"#, 400, "bad_request"),
    ] {
        let (s, b) = agent.post("/v1/fake/inject", body);
        assert_eq!(s, status, "{body} -> {b}");
        let v: serde_json::Value = serde_json::from_str(&b).expect("JSON error");
        assert_eq!(v["error"]["code"], code, "{b}");
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{b}"
        );
    }
    assert_eq!(agent.post("/v1/fake/clear", r#"{"gpu":"x"}"#).0, 400);
    assert_eq!(agent.events_after(0)["events"], before["events"]);
    // The agent still serves.
    assert_eq!(agent.get("/healthz").0, 200);
}
