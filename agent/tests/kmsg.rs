//! XIDs from the kernel log reach the right GPU, malformed lines are skipped and counted, and
//! an XID reported by both the kernel log and NVML counts once.

use crate::util::Agent;

#[test]
fn kernel_log_xids_map_to_gpus_and_duplicates_with_nvml_count_once() {
    let scratch = crate::util::Scratch::new("kmsg-e2e");
    let dir = scratch.path();
    let log = dir.join("kmsg");
    // Fake GPU 0 sits at bus 0x18, GPU 1 at 0x2a (HGX layout).
    std::fs::write(
        &log,
        "6,100,1000,-;nvidia-nvlink: Nvlink Core is being initialized\n\
         3,101,2000,-;NVRM: Xid (PCI:0000:18:00): 79, pid=1896, name=python3, GPU has fallen off the bus.\n\
         \x20SUBSYSTEM=pci\n\
         \x20DEVICE=+pci:0000:18:00.0\n\
         3,102,3000,-;NVRM: Xid (PCI:0000:2a:00): 119, pid=2440, name=nvidia-smi, Timeout after 6s of waiting for RPC response from GPU1 GSP!\n\
         3,103,4000,-;NVRM: Xid (PCI:0000:2a:00: 13, broken\n\
         3,104,5000,-;NVRM: Xid (PCI:0000:77:00): 31, pid=1, MMU Fault on a GPU of another node\n",
    )
    .unwrap();
    let cfg = dir.join("agent.toml");
    std::fs::write(
        &cfg,
        format!(
            "[gpu]\nbackend = \"fake\"\nfake_count = 2\n[kmsg]\nenabled = true\nread_existing = true\npath = \"{}\"\n",
            log.display()
        ),
    )
    .unwrap();
    let agent = Agent::start(&["--config", cfg.to_str().unwrap()], &[]);
    let m = agent.wait_metrics("kernel-log lines", |m| {
        m.value("gpuwarden_agent_kmsg_xid_lines_total", &[]) == Some(3.0)
            && m.value("gpuwarden_agent_kmsg_malformed_lines_total", &[]) == Some(1.0)
    });
    assert_eq!(m.value("gpuwarden_agent_kmsg_up", &[]), Some(1.0));
    assert_eq!(
        m.value("gpuwarden_agent_kmsg_unmatched_lines_total", &[]),
        Some(1.0)
    );
    assert_eq!(
        m.value(
            "gpuwarden_gpu_xid_errors_total",
            &[("gpu", "0"), ("xid", "79")]
        ),
        Some(1.0)
    );
    assert_eq!(
        m.value(
            "gpuwarden_gpu_xid_errors_total",
            &[("gpu", "1"), ("xid", "119")]
        ),
        Some(1.0)
    );

    let events = agent.events_after(0);
    let xids: Vec<(Option<u64>, u64, String)> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["gpu"].as_u64(),
                e["code"].as_u64().unwrap(),
                e["source"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        xids,
        vec![
            (Some(0), 79, "kmsg".into()),
            (Some(1), 119, "kmsg".into()),
            (None, 31, "kmsg".into())
        ]
    );
    assert!(events["events"][0]["message"]
        .as_str()
        .unwrap()
        .contains("name=python3"));

    // NVML (the fake standing in for it) now reports the same XID 79: it counts once.
    assert_eq!(
        agent
            .post("/v1/fake/inject", r#"{"gpu":0,"fault":"xid","code":79}"#)
            .0,
        200
    );
    let m = agent.metrics();
    assert_eq!(
        m.value(
            "gpuwarden_gpu_xid_errors_total",
            &[("gpu", "0"), ("xid", "79")]
        ),
        Some(1.0)
    );
    assert_eq!(agent.events_after(0)["events"].as_array().unwrap().len(), 3);
    // A second, separate XID 79 is counted.
    assert_eq!(
        agent
            .post("/v1/fake/inject", r#"{"gpu":0,"fault":"xid","code":79}"#)
            .0,
        200
    );
    let m = agent.metrics();
    assert_eq!(
        m.value(
            "gpuwarden_gpu_xid_errors_total",
            &[("gpu", "0"), ("xid", "79")]
        ),
        Some(2.0)
    );

    // Lines appended while the agent runs are picked up.
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    writeln!(f, "3,105,6000,-;NVRM: Xid (PCI:0000:2a:00): 48, pid=9, DBE").unwrap();
    agent.wait_metrics("appended XID 48", |m| {
        m.value(
            "gpuwarden_gpu_xid_errors_total",
            &[("gpu", "1"), ("xid", "48")],
        ) == Some(1.0)
    });
    drop(agent);
}

/// Issue: with `read_existing = true`, a restarted agent replayed old kernel-log XIDs as new
/// events (and re-condemned a node an operator had cleared). The position read is kept in
/// the state folder; after a restart only newer records are events.
#[test]
fn a_restarted_agent_reports_only_kernel_log_records_it_has_not_read() {
    let dir = crate::util::Scratch::new("kmsg-restart");
    let log = dir.write(
        "kmsg",
        "3,201,1000,-;NVRM: Xid (PCI:0000:18:00): 79, pid=1, GPU has fallen off the bus.\n\
         6,202,1100,-;unrelated\n",
    );
    let state = dir.0.join("state");
    let cfg = dir.write(
        "agent.toml",
        &format!(
            "[node]\nstate_dir = \"{}\"\n[gpu]\nbackend = \"fake\"\nfake_count = 2\n[collector]\ninterval = \"200ms\"\n[kmsg]\nenabled = true\nread_existing = true\npath = \"{}\"\n",
            state.display(),
            log.display()
        ),
    );
    let xids = |agent: &Agent| -> Vec<u64> {
        agent.events_after(0)["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "xid")
            .map(|e| e["code"].as_u64().unwrap())
            .collect()
    };
    let agent = Agent::start(&["--config", cfg.to_str().unwrap()], &[]);
    agent.wait_metrics("the XID 79 read", |m| {
        m.value("gpuwarden_agent_kmsg_xid_lines_total", &[]) == Some(1.0)
    });
    assert_eq!(xids(&agent), [79]);
    drop(agent); // SIGKILL: the position was kept as the record was read

    let agent = Agent::start(&["--config", cfg.to_str().unwrap()], &[]);
    agent.wait_metrics("the kernel log read again", |m| {
        m.value("gpuwarden_agent_kmsg_up", &[]) == Some(1.0)
    });
    std::thread::sleep(std::time::Duration::from_millis(800));
    assert_eq!(
        xids(&agent),
        Vec::<u64>::new(),
        "the old XID 79 came back as new"
    );
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    writeln!(f, "3,203,2000,-;NVRM: Xid (PCI:0000:2a:00): 48, pid=9, DBE").unwrap();
    agent.wait_metrics("the new XID 48", |m| {
        m.value("gpuwarden_agent_kmsg_xid_lines_total", &[]) == Some(1.0)
    });
    assert_eq!(xids(&agent), [48]);
}

/// Issue: a kernel-log reader that had died (its path was a folder) still reported
/// `gpuwarden_agent_kmsg_up 1`. A reader that cannot read reports 0; the agent serves on.
#[test]
fn a_kernel_log_that_cannot_be_read_reports_down() {
    let dir = crate::util::Scratch::new("kmsg-dir");
    let folder = dir.0.join("not-a-log");
    std::fs::create_dir_all(&folder).unwrap();
    let cfg = dir.write(
        "agent.toml",
        &format!(
            "[gpu]\nbackend = \"fake\"\nfake_count = 1\n[kmsg]\nenabled = true\npath = \"{}\"\n",
            folder.display()
        ),
    );
    let agent = Agent::start(&["--config", cfg.to_str().unwrap()], &[]);
    let m = agent.metrics();
    assert_eq!(m.value("gpuwarden_agent_kmsg_up", &[]), Some(0.0));
    assert_eq!(agent.get("/healthz").0, 200);
}
