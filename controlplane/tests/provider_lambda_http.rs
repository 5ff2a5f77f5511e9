//! The `lambda` provider's HTTP side against the stand-in API: pacing to one request a
//! second and one launch per 12 s on a fake clock (no real sleeps), the API's own 429,
//! timeouts, an unreachable API, and TLS for `https://` URLs.

use std::time::Duration;

use gpuwarden_controlplane::clock::Clock;
use gpuwarden_controlplane::pool::provider::ErrorKind;
use serde_json::json;

use crate::provider_lambda::{req, rig, rig_with, KEY};

#[test]
fn requests_are_paced_to_the_documented_limits_without_real_sleeps() {
    let r = rig();
    let t0 = r.clock.now_ms();
    let started = std::time::Instant::now();
    r.provider.provision(&req("i-1")).unwrap();
    // A second launch within 12 s is not sent: retry after the rest of the 12 s.
    let e = r.provider.provision(&req("i-2")).unwrap_err();
    assert_eq!(e.kind, ErrorKind::RateLimited);
    assert_eq!(e.retry_after, Some(Duration::from_secs(12)));
    assert_eq!(r.stub.seen("/instance-operations/launch").len(), 1);
    // Other requests go on, one a second (the clock moves by the provider's waits).
    for _ in 0..3 {
        r.provider.list().unwrap();
    }
    r.clock.advance(10_000);
    r.provider.provision(&req("i-2")).unwrap();
    let seen = r.stub.lock().seen.clone();
    let times: Vec<i64> = seen.iter().map(|s| s.at_ms - t0).collect();
    assert_eq!(times, vec![0, 1_000, 2_000, 3_000, 13_000]);
    assert!(seen.windows(2).all(|w| w[1].at_ms - w[0].at_ms >= 1_000));
    assert!(started.elapsed() < Duration::from_secs(5), "no real sleeps");

    // Without our pacing (launch_interval 0s), the API's own 429 surfaces as rate-limited.
    let fast = rig_with(
        KEY,
        json!({"launch_interval": "0s", "request_interval": "0s"}),
    );
    fast.provider.provision(&req("i-1")).unwrap();
    let e = fast.provider.provision(&req("i-2")).unwrap_err();
    assert_eq!(
        (e.kind, e.retry_after),
        (ErrorKind::RateLimited, Some(Duration::from_secs(12)))
    );
}

#[test]
fn a_slow_api_is_a_timeout() {
    let r = rig_with(KEY, json!({"timeout": "1s"}));
    r.stub.lock().delay = Some(Duration::from_millis(1_500));
    let e = r.provider.list().unwrap_err();
    assert_eq!((e.kind, e.retryable()), (ErrorKind::Timeout, true), "{e}");
    // Nobody listens: unavailable.
    let base = r.stub.base_url();
    drop(r);
    let gone = rig_with(KEY, json!({"base_url": base}));
    drop(gone.stub);
    let e = gone.provider.list().unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unavailable, "{e}");
}

#[test]
fn https_base_urls_speak_tls() {
    // A listener that records the first byte a client sends: a TLS handshake record (0x16)
    // shows the HTTPS client is built in (the real API is HTTPS only).
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let first = std::thread::spawn(move || {
        use std::io::Read;
        let (mut s, _) = l.accept().unwrap();
        let mut b = [0u8; 1];
        s.read_exact(&mut b).unwrap();
        b[0]
    });
    let r = rig_with(
        KEY,
        json!({"base_url": format!("https://127.0.0.1:{port}/api/v1"), "timeout": "1s"}),
    );
    let e = r.provider.list().unwrap_err();
    assert!(
        matches!(e.kind, ErrorKind::Unavailable | ErrorKind::Timeout),
        "{e}"
    );
    assert_eq!(first.join().unwrap(), 0x16, "a TLS ClientHello");
}
