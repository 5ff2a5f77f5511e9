use super::*;
use crate::events::{EventLog, NewEvent};
use gpuwarden_wire::{EventKind, Severity};

#[test]
fn backoff_doubles_to_the_cap_and_jitter_stays_in_the_upper_half() {
    let p = RetryPolicy::default();
    assert_eq!(p.backoff(0, 1.0), Duration::from_millis(200));
    assert_eq!(p.backoff(0, 0.0), Duration::from_millis(100));
    assert_eq!(p.backoff(2, 1.0), Duration::from_millis(800));
    assert_eq!(p.backoff(10, 1.0), Duration::from_secs(2));
    assert_eq!(p.backoff(40, 0.0), Duration::from_secs(1));
    // Six retries' waits fit in the 10 s budget at the longest jitter.
    let total: Duration = (0..6).map(|n| p.backoff(n, 1.0)).sum();
    assert!(total <= p.budget, "{total:?}");
}

#[test]
fn a_burst_is_one_pending_notice_with_the_newest_seq_and_nothing_waits_before_joining() {
    let n = Notifier::new("run".into(), RetryPolicy::default());
    n.urgent(1);
    assert_eq!(n.lock().pending, None, "not joined: nothing kept");
    n.joined("http://cp/", "node-1", "tok");
    for seq in [5, 3, 9, 7] {
        n.urgent(seq);
    }
    assert_eq!(n.lock().pending, Some(9));
    let counts: std::collections::HashMap<_, _> = n.counts().into_iter().collect();
    assert_eq!(counts["dropped"], 1);
    assert_eq!(counts["coalesced"], 3);
    assert!(
        !format!("{n:?}").contains("tok"),
        "the token is never printed"
    );
}

#[test]
fn fatal_events_from_every_source_wake_the_sender_and_others_do_not() {
    let n = Notifier::new("run".into(), RetryPolicy::default());
    n.joined("http://cp", "node-1", "tok");
    let mut log = EventLog::new(10, "run".into());
    log.notify_urgent(Arc::clone(&n));
    let ev = |kind, severity, source: &str| NewEvent {
        gpu: Some(0),
        uuid: None,
        kind,
        code: None,
        message: String::new(),
        severity,
        action: None,
        source: source.into(),
    };
    let at = std::time::SystemTime::UNIX_EPOCH;
    log.push(ev(EventKind::Plugin, Severity::Warning, "plugin:p"), at);
    log.push(ev(EventKind::Thermal, Severity::Info, "nvml"), at);
    assert_eq!(n.lock().pending, None, "warnings and infos are pulled only");
    // An unhealthy plugin verdict is recorded as a fatal plugin event.
    let seq = log.push(ev(EventKind::Plugin, Severity::Fatal, "plugin:p"), at);
    assert_eq!(n.lock().pending, Some(seq));
    let seq = log.push(ev(EventKind::Xid, Severity::Fatal, "kmsg"), at);
    assert_eq!(n.lock().pending, Some(seq), "the newest");
}

#[test]
fn an_unreachable_control_plane_is_retried_within_the_budget_then_given_up() {
    let n = Notifier::new(
        "run".into(),
        RetryPolicy {
            first: Duration::from_millis(20),
            max: Duration::from_millis(80),
            budget: Duration::from_millis(400),
        },
    );
    // Nothing listens on a port just freed: every attempt is a connect error.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    n.joined(&format!("http://127.0.0.1:{port}"), "node-1", "tok");
    let sender = n.spawn().unwrap();
    let started = Instant::now();
    n.urgent(1);
    let count = |r: &str| n.counts().into_iter().find(|(k, _)| *k == r).unwrap().1;
    while count("failed") == 0 && started.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let took = started.elapsed();
    assert_eq!(count("failed"), 1, "given up");
    assert!(count("retried") >= 3, "{}", count("retried"));
    assert_eq!(count("sent"), 0);
    assert!(
        took >= Duration::from_millis(200) && took < Duration::from_secs(3),
        "{took:?}"
    );
    n.stop();
    sender.join().unwrap();
}

#[test]
fn a_notice_waits_for_the_metrics_body_that_counts_its_event_but_not_for_ever() {
    let n = Notifier::new("run".into(), RetryPolicy::default());
    let mut log = EventLog::new(10, "run".into());
    log.notify_urgent(Arc::clone(&n));
    // The collector publishes the body counting event 5 a little later.
    let publisher = {
        let n = Arc::clone(&n);
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(150));
            n.published(5);
        })
    };
    let t = Instant::now();
    n.wait_published(5);
    let waited = t.elapsed();
    assert!(
        waited >= Duration::from_millis(100) && waited < PUBLISH_WAIT,
        "{waited:?}"
    );
    publisher.join().unwrap();
    // Already published: no wait.
    let t = Instant::now();
    n.wait_published(4);
    assert!(t.elapsed() < Duration::from_millis(50));
    // The event log passes the collector's word on.
    log.published(9);
    assert_eq!(n.lock().published, 9);
    // A body that never comes delays the notice by at most PUBLISH_WAIT.
    let t = Instant::now();
    n.wait_published(10);
    assert!(t.elapsed() >= PUBLISH_WAIT && t.elapsed() < PUBLISH_WAIT * 2);
}

#[test]
fn after_a_refusal_notices_wait_for_the_next_join() {
    let n = Notifier::new("run".into(), RetryPolicy::default());
    n.joined("http://cp", "node-1", "tok");
    n.lock().refused = true;
    n.urgent(3);
    assert_eq!(
        n.lock().pending,
        None,
        "refused: nothing is sent until the next join"
    );
    n.joined("http://cp", "node-1", "tok2");
    n.urgent(4);
    assert_eq!(n.lock().pending, Some(4));
}
