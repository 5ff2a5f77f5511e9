//! Tests of the kernel-log parser and reader.
use super::*;

fn xid(line: &str) -> KmsgXid {
    match parse_line(line) {
        Line::Xid(x) => x,
        other => panic!("{line:?} parsed as {other:?}"),
    }
}

const BUS_3B: PciAddr = PciAddr {
    domain: 0,
    bus: 0x3b,
    device: 0,
};

#[test]
fn raw_kmsg_record_with_pid_and_name() {
    let x = xid("3,1893,1234567890,-;NVRM: Xid (PCI:0000:3b:00): 79, pid=1896, name=python3, GPU has fallen off the bus.");
    assert_eq!(x.pci, BUS_3B);
    assert_eq!(x.code, 79);
    assert_eq!(
        x.message,
        "pid=1896, name=python3, GPU has fallen off the bus."
    );
}

#[test]
fn dmesg_and_journal_forms() {
    let x = xid("[ 1234.567890] NVRM: Xid (PCI:0000:ca:00): 74, pid='<unknown>', name=<unknown>, NVLink: fatal error detected on link 3(0x0, 0x0, 0x10000, 0x0, 0x0, 0x0, 0x0)");
    assert_eq!((x.pci.bus, x.code), (0xca, 74));
    let x = xid("Oct 01 13:00:00 node17 kernel: NVRM: Xid (PCI:0000:18:00): 119, pid=2440, name=nvidia-smi, Timeout after 6s of waiting for RPC response from GPU0 GSP! Expected function 76 (GSP_RM_CONTROL) (0x20800a4c 0x4).");
    assert_eq!((x.pci.bus, x.code), (0x18, 119));
    // Older drivers print the address without "PCI:".
    let x = xid("NVRM: Xid (0000:5d:00): 13, Graphics SM Warp Exception on (GPC 0, TPC 1, SM 0): Out Of Range Address");
    assert_eq!((x.pci.bus, x.code), (0x5d, 13));
    // Non-zero domain and a function number.
    let x = xid("NVRM: Xid (PCI:0002:01:00.0): 120, pid=1, GSP task timeout");
    assert_eq!(
        x.pci,
        PciAddr {
            domain: 2,
            bus: 1,
            device: 0
        }
    );
}

#[test]
fn multi_line_records_keep_the_xid_and_skip_continuations() {
    let record = "4,2001,99,-;NVRM: Xid (PCI:0000:3b:00): 48, pid=77, name=train, An uncorrectable double bit error (DBE) has been detected on GPU in the framebuffer at partition 6, subpartition 0.\\x0aNVRM: GPU at PCI:0000:3b:00: GPU-aaaa\n SUBSYSTEM=pci\n DEVICE=+pci:0000:3b:00.0\n";
    let mut found = vec![];
    for line in record.lines() {
        if let Line::Xid(x) = parse_line(line) {
            found.push(x);
        } else {
            assert_eq!(parse_line(line), Line::Other, "{line}");
        }
    }
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].code, 48);
    assert!(!found[0].message.contains("\\x0a"), "{}", found[0].message);
}

#[test]
fn other_lines_are_not_xids() {
    for l in [
        "NVRM: loading NVIDIA UNIX x86_64 Kernel Module  550.54.15",
        "nvidia-nvlink: Nvlink Core is being initialized",
        "",
        " SUBSYSTEM=pci",
    ] {
        assert_eq!(parse_line(l), Line::Other, "{l}");
    }
}

#[test]
fn malformed_xid_lines_are_reported_not_guessed() {
    for l in [
        "NVRM: Xid (PCI:0000:3b:00) 79, missing colon",
        "NVRM: Xid (PCI:zzzz:3b:00): 79, bad hex",
        "NVRM: Xid (PCI:0000:3b:00): , no number",
        "NVRM: Xid PCI:0000:3b:00: 79",
        "NVRM: Xid (PCI:0000:3b:00): 99999999999, too big",
        "NVRM: Xid (PCI:0000:3b:00): 79abc",
        "NVRM: Xid (PCI:0000:3b:00",
    ] {
        assert!(
            matches!(parse_line(l), Line::Malformed(_)),
            "{l} -> {:?}",
            parse_line(l)
        );
    }
}

#[test]
fn nvml_bus_ids_and_kernel_addresses_meet() {
    assert_eq!(PciAddr::parse("00000000:3B:00.0"), Some(BUS_3B));
    assert_eq!(PciAddr::parse("PCI:0000:3b:00"), Some(BUS_3B));
    assert_eq!(PciAddr::parse("3b:00"), None);
}

#[test]
fn reader_follows_a_file_and_sends_xids_and_malformed_lines() {
    let dir = std::env::temp_dir().join(format!("gw-kmsg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("kmsg");
    std::fs::write(&path, "6,1,1,-;unrelated\n3,2,2,-;NVRM: Xid (PCI:0000:3b:00): 79, gone\n3,3,3,-;NVRM: Xid (junk\n").unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<KmsgReport>();
    spawn_reader(
        KmsgSource {
            path: path.clone(),
            read_existing: true,
            position_file: None,
            boot_id: "b".into(),
        },
        tx,
    )
    .unwrap();
    let first = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert!(
        matches!(first, KmsgReport::Xid(ref x) if x.code == 79),
        "{first:?}"
    );
    let second = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert!(matches!(second, KmsgReport::Malformed(_)), "{second:?}");
    drop(rx);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Regression (hardening follow-up): a 200 MB kernel-log line became one event with a
/// ~50 MB message. Lines are cut at [`MAX_LINE_BYTES`]: an XID in the kept part is still
/// reported, a cut XID line that does not parse is malformed, and the lines after a
/// huge one are read as usual.
#[test]
fn huge_lines_are_cut_and_do_not_hide_the_next_ones() {
    let dir = std::env::temp_dir().join(format!("gw-kmsg-huge-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("kmsg");
    let huge = "y".repeat(4 << 20);
    let body = format!(
        "6,1,1,-;{huge}\n3,2,2,-;NVRM: Xid (PCI:0000:3b:00): 79, {huge}\n3,3,3,-;NVRM: Xid (PCI:0000:3b:00{huge}\n3,4,4,-;NVRM: Xid (PCI:0000:3b:00): 48, next\n"
    );
    std::fs::write(&path, body).unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<KmsgReport>();
    let source = KmsgSource {
        path: path.clone(),
        read_existing: true,
        position_file: None,
        boot_id: "b".into(),
    };
    spawn_reader(source, tx).unwrap();
    let next = || rx.recv_timeout(Duration::from_secs(10)).unwrap();
    match next() {
        KmsgReport::Xid(x) => {
            assert_eq!(x.code, 79);
            assert!(x.message.len() < MAX_LINE_BYTES, "{}", x.message.len());
        }
        other => panic!("{other:?}"),
    }
    match next() {
        KmsgReport::Malformed(why) => assert!(why.contains("longer than"), "{why}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(next(), KmsgReport::Xid(x) if x.code == 48 && x.message == "next"));
    drop(rx);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A reader whose reads fail stops and says so (Down), instead of going quiet.
/// `/proc/self/mem` opens as a regular file, but reading it at offset 0 fails (EIO).
#[test]
fn a_reader_that_cannot_read_reports_down() {
    let (tx, rx) = std::sync::mpsc::channel::<KmsgReport>();
    spawn_reader(
        KmsgSource {
            path: "/proc/self/mem".into(),
            read_existing: true,
            position_file: None,
            boot_id: String::new(),
        },
        tx,
    )
    .unwrap();
    let r = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert!(
        matches!(r, KmsgReport::Down(ref why) if why.contains("/proc/self/mem")),
        "{r:?}"
    );
    // A folder is refused before any thread starts.
    let (tx, _rx) = std::sync::mpsc::channel::<KmsgReport>();
    let e = spawn_reader(
        KmsgSource {
            path: std::env::temp_dir(),
            read_existing: true,
            position_file: None,
            boot_id: String::new(),
        },
        tx,
    )
    .unwrap_err();
    assert!(e.to_string().contains("folder"), "{e}");
}
