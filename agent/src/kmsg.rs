//! XIDs from the kernel log.
//!
//! NVML's event set does not report every XID (79, 119 and 120 among them), so the agent also
//! reads `/dev/kmsg`, where the driver logs each one as
//! `NVRM: Xid (PCI:0000:3b:00): 79, pid=…, GPU has fallen off the bus.`, and maps it to a GPU
//! by PCI address. The parser takes raw `/dev/kmsg` records (`6,1234,5678,-;NVRM: …`, with
//! continuation lines that start with a space) and `dmesg`/journal lines alike.
//!
//! What was read is remembered across restarts ([`position`]): with `read_existing`, a
//! restarted agent reports only the records logged after the last one it read, so old XIDs
//! do not come back as new events.

pub mod position;

use std::fs::File;
use std::io::{BufRead, BufReader, ErrorKind, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::mpsc::Sender;
use std::time::Duration;

/// A PCI address: domain, bus, device (the function is ignored; a GPU is function 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PciAddr {
    /// PCI domain.
    pub domain: u32,
    /// Bus.
    pub bus: u32,
    /// Device.
    pub device: u32,
}

impl PciAddr {
    /// Parses `0000:3b:00`, `00000000:3B:00.0` or `PCI:0000:3b:00`.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim().strip_prefix("PCI:").unwrap_or(s.trim());
        let s = s.split_once('.').map_or(s, |(a, _)| a);
        let mut parts = s.split(':');
        let (d, b, v) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || d.is_empty() || b.is_empty() || v.is_empty() {
            return None;
        }
        let hex = |x: &str| u32::from_str_radix(x, 16).ok();
        Some(PciAddr {
            domain: hex(d)?,
            bus: hex(b)?,
            device: hex(v)?,
        })
    }
}

/// One XID read from the kernel log.
#[derive(Debug, Clone, PartialEq)]
pub struct KmsgXid {
    /// Which GPU, by PCI address.
    pub pci: PciAddr,
    /// The XID.
    pub code: u32,
    /// The driver's text after the code (pid, process name, description).
    pub message: String,
}

/// What a kernel-log line turned out to be.
#[derive(Debug, Clone, PartialEq)]
pub enum Line {
    /// Not an XID line (most lines).
    Other,
    /// An XID.
    Xid(KmsgXid),
    /// It says `NVRM: Xid` but cannot be read; the reason.
    Malformed(String),
}

const MARKER: &str = "NVRM: Xid";

/// Parses one line of the kernel log.
pub fn parse_line(line: &str) -> Line {
    // Continuation lines of a /dev/kmsg record (" SUBSYSTEM=pci") carry no message.
    if line.starts_with(' ') {
        return Line::Other;
    }
    let Some(at) = line.find(MARKER) else {
        return Line::Other;
    };
    let rest = line[at + MARKER.len()..].trim_start();
    match parse_after_marker(rest) {
        Ok(x) => Line::Xid(x),
        Err(why) => Line::Malformed(why),
    }
}

fn parse_after_marker(rest: &str) -> Result<KmsgXid, String> {
    let inner = rest.strip_prefix('(').ok_or("no '(' after \"NVRM: Xid\"")?;
    let (addr, after) = inner
        .split_once(')')
        .ok_or("no ')' closing the PCI address")?;
    let pci = PciAddr::parse(addr).ok_or_else(|| format!("bad PCI address \"{addr}\""))?;
    let after = after
        .trim_start()
        .strip_prefix(':')
        .ok_or("no ':' after the PCI address")?;
    let after = after.trim_start();
    let digits = after.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Err("no XID number".into());
    }
    let code: u32 = after[..digits]
        .parse()
        .map_err(|_| "XID number out of range".to_string())?;
    let tail = &after[digits..];
    if !(tail.is_empty() || tail.starts_with(',') || tail.starts_with(' ')) {
        return Err(format!("unexpected text after the XID number: \"{tail}\""));
    }
    let message = tail.trim_start_matches(',').trim().replace("\\x0a", " ");
    Ok(KmsgXid { pci, code, message })
}

/// What the reader thread sends.
#[derive(Debug, Clone, PartialEq)]
pub enum KmsgReport {
    /// An XID line.
    Xid(KmsgXid),
    /// A line that claims to be an XID but cannot be read.
    Malformed(String),
    /// The reader stopped for good (a read error); the reason. Nothing follows.
    Down(String),
}

/// Where and how to read the kernel log.
#[derive(Debug, Clone)]
pub struct KmsgSource {
    /// Usually `/dev/kmsg`.
    pub path: PathBuf,
    /// Read what is already in the log (true) or only what comes after start (false).
    pub read_existing: bool,
    /// Where the position read so far is kept across restarts, so that records read before
    /// are not events again (see [`position`]); `None` keeps nothing.
    pub position_file: Option<PathBuf>,
    /// This boot's id (`/proc/sys/kernel/random/boot_id`): record numbers count per boot.
    pub boot_id: String,
}

/// Starts a thread that reads the kernel log and sends XID reports; it stops when the
/// receiver is gone, and sends [`KmsgReport::Down`] before it stops on a read error. Fails
/// (without a thread) when the log cannot be opened, e.g. without the permission to read
/// `/dev/kmsg`, or when the path is a folder.
pub fn spawn_reader<T: From<KmsgReport> + Send + 'static>(
    source: KmsgSource,
    tx: Sender<T>,
) -> std::io::Result<()> {
    let mut file = File::open(&source.path)?;
    if file.metadata()?.is_dir() {
        return Err(std::io::Error::other("it is a folder, not the kernel log"));
    }
    if !source.read_existing {
        file.seek(SeekFrom::End(0))?;
    }
    let path = source.path.clone();
    let mut pos = position::Position::load(source.position_file, source.boot_id);
    std::thread::Builder::new().name("kmsg".into()).spawn(move || {
        // /dev/kmsg returns one record per read; records are at most a few KiB.
        let mut reader = BufReader::with_capacity(64 * 1024, file);
        let mut buf = Vec::with_capacity(1024);
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                // A regular file at its end (tests, replay): wait for more, like `tail -f`.
                Ok(0) => std::thread::sleep(Duration::from_millis(100)),
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buf);
                    let line = line.trim_end_matches('\n');
                    let report = match parse_line(line) {
                        Line::Other => continue,
                        Line::Xid(x) => KmsgReport::Xid(x),
                        Line::Malformed(why) => KmsgReport::Malformed(why),
                    };
                    // Read by an earlier run of the agent: not an event again.
                    let seq = position::record_seq(line);
                    if !pos.is_new(seq) {
                        continue;
                    }
                    if tx.send(report.into()).is_err() {
                        return;
                    }
                    pos.read(seq);
                }
                // The kernel overwrote records we had not read yet; carry on from here.
                Err(e) if e.kind() == ErrorKind::BrokenPipe => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    tracing::error!(path = %path.display(), error = %e, "kernel log read failed; XIDs now come from NVML only");
                    let _ = tx.send(KmsgReport::Down(format!("{}: {e}", path.display())).into());
                    return;
                }
            }
        }
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
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
}
