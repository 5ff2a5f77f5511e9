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

mod bounded;
pub mod position;

pub use bounded::{read_line_bounded, MAX_LINE_BYTES};

use std::fs::File;
use std::io::{BufReader, ErrorKind, Seek, SeekFrom};
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

/// What a line read with [`read_line_bounded`] reports: an XID found in the kept part is
/// reported (its message is cut, as every event message is, in the event log); a cut line
/// that says `NVRM: Xid` but does not parse is malformed, with the reason that it was cut.
fn classify(line: &str, cut: bool) -> Line {
    match parse_line(line) {
        Line::Malformed(why) if cut => Line::Malformed(format!(
            "a line longer than {MAX_LINE_BYTES} bytes, cut there ({why})"
        )),
        other => other,
    }
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
        let mut buf = Vec::with_capacity(MAX_LINE_BYTES);
        loop {
            buf.clear();
            match read_line_bounded(&mut reader, &mut buf, MAX_LINE_BYTES) {
                // A regular file at its end (tests, replay): wait for more, like `tail -f`.
                Ok((0, _)) => std::thread::sleep(Duration::from_millis(100)),
                Ok((_, cut)) => {
                    let line = String::from_utf8_lossy(&buf);
                    let line = line.trim_end_matches('\n');
                    let report = match classify(line, cut) {
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
mod tests;
