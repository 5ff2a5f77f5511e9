use std::io::{Read, Write};
use std::net::TcpListener;

use super::*;

fn rendered(w: &Workload) -> String {
    let mut t = Text::with_capacity(256);
    w.render(&mut t);
    t.finish()
}

fn file_source(path: &std::path::Path) -> Arc<Workload> {
    Workload::new(&WorkloadConfig {
        source: path.display().to_string(),
        ..WorkloadConfig::default()
    })
    .unwrap()
}

#[test]
fn off_by_default() {
    assert!(Workload::new(&WorkloadConfig::default()).is_none());
}

#[test]
fn a_file_source_shows_its_slots_and_a_bad_one_removes_them() {
    let dir = std::env::temp_dir().join(format!("gw-workload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("hb.json");
    let w = file_source(&path);
    // Missing: absent, no crash.
    w.read_once();
    assert_eq!(rendered(&w), "");
    std::fs::write(
        &path,
        r#"{"pools":[{"pool_id":"a","ready":true,"slots_free":2,"slots_total":8}]}"#,
    )
    .unwrap();
    w.read_once();
    let body = rendered(&w);
    assert!(
        body.contains("gpuwarden_workload_slots{state=\"free\"} 2"),
        "{body}"
    );
    assert!(
        body.contains("gpuwarden_workload_slots{state=\"busy\"} 6"),
        "{body}"
    );
    assert!(body.contains("gpuwarden_workload_ready 1"), "{body}");
    // Garbage after a good answer: the old values are not kept.
    std::fs::write(&path, "{\"pools\":").unwrap();
    w.read_once();
    assert_eq!(rendered(&w), "");
    assert!(w.lock().failing);
    // Too large: refused, not read in part.
    std::fs::write(&path, vec![b' '; heartbeat::MAX_BYTES + 10]).unwrap();
    w.read_once();
    assert_eq!(w.reading(), None);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_bad_source_warns_once_a_minute_not_every_read() {
    let w = file_source(std::path::Path::new("/nonexistent/gpuwarden/hb.json"));
    w.read_once();
    let first = w.lock().last_warning.unwrap();
    w.read_once();
    w.read_once();
    assert_eq!(
        w.lock().last_warning,
        Some(first),
        "warned again within a minute"
    );
}

#[test]
fn an_http_source_on_localhost_is_read_and_its_errors_leave_the_series_absent() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let answers = [
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n{\"pools\":[{\"pool_id\":\"x\",\"ready\":false,\"slots_free\":0,\"slots_total\":4}]}",
        "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
    ];
    let server = std::thread::spawn(move || {
        for a in answers {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 2048];
            let _ = s.read(&mut buf);
            s.write_all(a.as_bytes()).unwrap();
        }
    });
    let w = Workload::new(&WorkloadConfig {
        source: format!("http://{addr}/heartbeat"),
        ..WorkloadConfig::default()
    })
    .unwrap();
    w.read_once();
    assert_eq!(
        w.reading(),
        Some(Reading {
            free: 0,
            busy: 4,
            ready: false
        })
    );
    w.read_once();
    assert_eq!(w.reading(), None);
    server.join().unwrap();
}

#[test]
fn the_thread_stops_when_asked() {
    let w = file_source(std::path::Path::new("/nonexistent/hb.json"));
    let t = w.spawn(Duration::from_secs(3600)).unwrap();
    w.stop();
    t.join().unwrap();
}
