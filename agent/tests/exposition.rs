//! `/metrics` is valid Prometheus text: every family has HELP and TYPE, no family mixes
//! types, label values are escaped, gzip serves the same body, and dcgm compatibility adds
//! dcgm-exporter's names and label keys.

use std::io::Read;

use crate::util::{http_client, Agent, Metrics, Scratch};

#[test]
fn metrics_are_valid_prometheus_text_with_escaped_labels() {
    let dir = Scratch::new("expo-escape");
    let cfg = dir.write(
        "agent.toml",
        "[node]\nid = \"node-a\"\n[node.labels]\nrack = 'r\"1\\b'\nnote = \"two\\nlines\"\n[gpu]\nbackend = \"fake\"\nfake_count = 8\n[collector]\ninterval = \"1h\"\n",
    );
    let agent = Agent::start(&["--config", cfg.to_str().unwrap()], &[]);
    let (_, body) = agent.get("/metrics");

    // A real parser accepts the whole body.
    let lines = body.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("prometheus-parse accepts /metrics");
    assert!(
        scrape.samples.len() > 900,
        "only {} samples",
        scrape.samples.len()
    );

    // And so does the strict parser the control plane will scrape with.
    let strict =
        gpuwarden_wire::exposition::parse(body.as_bytes()).expect("strict parser accepts /metrics");
    assert_eq!(strict.len(), scrape.samples.len());

    let m = Metrics::parse(&body);
    assert!(
        m.untyped.is_empty(),
        "samples before their TYPE: {:?}",
        m.untyped
    );
    for (name, types) in &m.types {
        assert_eq!(
            types.len(),
            1,
            "family {name} declared {} times: {types:?}",
            types.len()
        );
        assert!(
            ["gauge", "counter"].contains(&types[0].as_str()),
            "{name}: {types:?}"
        );
        assert_eq!(
            m.help.get(name),
            Some(&1),
            "family {name} without exactly one HELP"
        );
        if types[0] == "counter" {
            assert!(
                name.ends_with("_total"),
                "counter {name} does not end in _total"
            );
        }
    }
    // Families are contiguous: a family's samples are not interleaved with another's.
    let mut seen = std::collections::HashSet::new();
    let mut last = "";
    for (name, _, _) in &m.samples {
        if name != last {
            assert!(seen.insert(name.clone()), "family {name} is split");
            last = name;
        }
    }
    // Escaping: the raw text carries escapes, the parsed value is the original.
    assert!(body.contains(r#"rack="r\"1\\b""#), "raw label not escaped");
    assert!(body.contains(r#"note="two\nlines""#), "newline not escaped");
    let temps: Vec<_> = m
        .series(
            "gpuwarden_gpu_temperature_celsius",
            &[("rack", "r\"1\\b"), ("note", "two\nlines")],
        )
        .collect();
    assert_eq!(
        temps.len(),
        8,
        "one temperature per GPU with the node labels"
    );
    // One series per GPU with the identifying labels.
    for (_, labels, _) in &temps {
        for key in ["gpu", "uuid", "model"] {
            assert!(
                labels.iter().any(|(k, _)| k == key),
                "{key} missing from {labels:?}"
            );
        }
    }
    // The info metric carries the versions.
    let info: Vec<_> = m
        .series(
            "gpuwarden_node_info",
            &[
                ("node", "node-a"),
                ("driver_version", "550.54.15"),
                ("cuda_version", "12.4"),
            ],
        )
        .collect();
    assert_eq!(info.len(), 1);
    // Per-collector self metrics, node_exporter style.
    assert_eq!(
        m.value("gpuwarden_agent_collector_success", &[("collector", "gpu")]),
        Some(1.0)
    );
    assert!(m
        .value(
            "gpuwarden_agent_collector_duration_seconds",
            &[("collector", "gpu")]
        )
        .is_some());
    assert!(m
        .value("gpuwarden_node_memory_total_bytes", &[])
        .is_some_and(|v| v > 0.0));
    // A field the GPU does not support is absent, not 0 (fake SXM boards have no fan).
    assert!(m
        .series("gpuwarden_gpu_fan_speed_ratio", &[])
        .next()
        .is_none());
    // No dcgm names unless asked for.
    assert!(!body.contains("DCGM_FI_"));
    std::fs::remove_dir_all(cfg.parent().unwrap()).unwrap();
}

#[test]
fn gzip_scrapes_get_the_same_body_compressed() {
    let agent = Agent::start(
        &["--fake-gpus", "8"],
        &[("GPUWARDEN_COLLECTOR__INTERVAL", "1h")],
    );
    let (_, plain) = agent.get("/metrics");
    // Raw HTTP: the workspace's HTTP client decompresses gzip itself (the control plane
    // enables that), which would hide what the agent sends.
    use std::io::Write;
    let mut conn = std::net::TcpStream::connect(agent.base.trim_start_matches("http://")).unwrap();
    write!(
        conn,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    conn.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    assert!(head.contains("content-encoding: gzip"), "{head}");
    assert!(
        head.contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    assert!(!head.contains("transfer-encoding: chunked"), "{head}");
    let compressed = raw[split + 4..].to_vec();
    assert!(
        compressed.len() * 5 < plain.len(),
        "gzip {} vs plain {}",
        compressed.len(),
        plain.len()
    );
    let mut unzipped = String::new();
    flate2::read::GzDecoder::new(&compressed[..])
        .read_to_string(&mut unzipped)
        .unwrap();
    assert_eq!(unzipped, plain);
}

#[test]
fn dcgm_compat_adds_dcgm_exporter_names_and_labels() {
    let agent = Agent::start(
        &["--fake-gpus", "8"],
        &[
            ("GPUWARDEN_METRICS__DCGM_COMPAT", "true"),
            ("GPUWARDEN_NODE__ID", "host-7"),
        ],
    );
    assert_eq!(
        agent
            .post("/v1/fake/inject", r#"{"gpu":2,"fault":"xid","code":48}"#)
            .0,
        200
    );
    let m = agent.metrics();
    for name in gpuwarden_agent::dcgm::names() {
        assert_eq!(m.series(name, &[]).count(), 8, "{name}: one series per GPU");
    }
    let (_, labels, temp) = m
        .series("DCGM_FI_DEV_GPU_TEMP", &[("gpu", "0")])
        .next()
        .expect("GPU 0");
    let keys: Vec<&str> = labels.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "gpu",
            "UUID",
            "pci_bus_id",
            "device",
            "modelName",
            "Hostname",
            "DCGM_FI_DRIVER_VERSION"
        ]
    );
    let native = m
        .value("gpuwarden_gpu_temperature_celsius", &[("gpu", "0")])
        .unwrap();
    assert_eq!(*temp, native, "dcgm and native temperatures agree");
    let l = |k: &str| {
        labels
            .iter()
            .find(|(lk, _)| lk == k)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(l("Hostname"), Some("host-7"));
    assert_eq!(l("device"), Some("nvidia0"));
    assert_eq!(l("DCGM_FI_DRIVER_VERSION"), Some("550.54.15"));
    // dcgm units: MiB and MHz.
    let used = m
        .value("gpuwarden_gpu_memory_used_bytes", &[("gpu", "0")])
        .unwrap();
    assert_eq!(
        m.value("DCGM_FI_DEV_FB_USED", &[("gpu", "0")]),
        Some((used / 1048576.0).floor())
    );
    assert_eq!(
        m.value("DCGM_FI_DEV_SM_CLOCK", &[("gpu", "0")]),
        Some(1980.0)
    );
    // dcgm's XID series is the last XID, as dcgm-exporter reports it.
    assert_eq!(
        m.value("DCGM_FI_DEV_XID_ERRORS", &[("gpu", "2")]),
        Some(48.0)
    );
    assert_eq!(
        m.value("DCGM_FI_DEV_XID_ERRORS", &[("gpu", "1")]),
        Some(0.0)
    );
}

#[test]
fn concurrent_scrapes_share_one_snapshot() {
    let agent = Agent::start(
        &["--fake-gpus", "8"],
        &[("GPUWARDEN_COLLECTOR__INTERVAL", "1h")],
    );
    let base = agent.base.clone();
    let bodies: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let base = base.clone();
                s.spawn(move || {
                    let mut r = http_client()
                        .get(&format!("{base}/metrics"))
                        .call()
                        .expect("GET");
                    r.body_mut().read_to_string().expect("body")
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(
        bodies.windows(2).all(|w| w[0] == w[1]),
        "scrapes between collections differ"
    );
}

/// The control plane tells a restarted agent (whose counters may be back at the same values)
/// by `gpuwarden_agent_start_time_seconds` changing: two runs started within one second must
/// not report the same value.
#[test]
fn agents_started_one_after_the_other_report_different_start_times() {
    let start = |n: &str| {
        let a = Agent::start(&["--fake-gpus", n], &[]);
        let v = a
            .metrics()
            .value("gpuwarden_agent_start_time_seconds", &[])
            .expect("start time");
        drop(a);
        v
    };
    let (first, second) = (start("1"), start("1"));
    assert!(second > first, "{first} then {second}");
    assert!(second - first < 60.0, "{first} then {second}");
}
