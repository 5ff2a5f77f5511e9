//! How far the kernel log has been read, kept across agent restarts.
//!
//! Every `/dev/kmsg` record carries a sequence number (`PRIO,SEQ,USEC,FLAGS;MESSAGE`) that
//! grows by one per record within a boot and starts again at the next boot. The reader keeps
//! the boot id (`/proc/sys/kernel/random/boot_id`) and the sequence number of the last XID
//! record it reported in a small JSON file in the agent's state folder
//! (`kmsg-position.json`), written after the event is handed on (an agent killed between
//! the two reports that one event again rather than losing it). A restarted agent of the
//! same boot skips the records up to that number; after a reboot everything in the log is
//! new. Lines without a sequence number (`dmesg` or journal text replayed from a file)
//! cannot be placed and are always reported.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// What the position file holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Saved {
    boot_id: String,
    seq: u64,
}

/// The reader's position: loaded at start, saved after each record reported.
#[derive(Debug)]
pub struct Position {
    file: Option<PathBuf>,
    boot_id: String,
    /// Records up to this one were read by an earlier run (same boot).
    seen_before: Option<u64>,
    last: Option<u64>,
}

/// The sequence number of a raw `/dev/kmsg` record (`6,1234,5678,-;…` → 1234); `None` for
/// other text.
pub fn record_seq(line: &str) -> Option<u64> {
    let (prefix, _) = line.split_once(';')?;
    let mut fields = prefix.split(',');
    let prio = fields.next()?;
    if prio.is_empty() || !prio.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    fields.next()?.parse().ok()
}

impl Position {
    /// The position kept in `file` for boot `boot_id`; nothing seen before when the file is
    /// missing, unreadable or of another boot.
    pub fn load(file: Option<PathBuf>, boot_id: String) -> Position {
        let saved = file.as_ref().and_then(|f| match std::fs::read(f) {
            Ok(b) => match serde_json::from_slice::<Saved>(&b) {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::warn!(file = %f.display(), error = %e, "the kernel-log position file is unreadable; old records may be reported again");
                    None
                }
            },
            Err(_) => None,
        });
        let seen_before = saved
            .filter(|s| !boot_id.is_empty() && s.boot_id == boot_id)
            .map(|s| s.seq);
        if let Some(seq) = seen_before {
            tracing::info!(seq, "kernel-log records up to this one were read before the restart; they are not events again");
        }
        Position {
            file,
            boot_id,
            seen_before,
            last: seen_before,
        }
    }

    /// Whether the record numbered `seq` was not read by an earlier run.
    pub fn is_new(&self, seq: Option<u64>) -> bool {
        match (seq, self.seen_before) {
            (Some(s), Some(before)) => s > before,
            _ => true,
        }
    }

    /// Records that record `seq` was reported, and keeps that in the file.
    pub fn read(&mut self, seq: Option<u64>) {
        let Some(seq) = seq else { return };
        if self.last.is_some_and(|l| l >= seq) {
            return;
        }
        self.last = Some(seq);
        let Some(f) = &self.file else { return };
        let saved = Saved {
            boot_id: self.boot_id.clone(),
            seq,
        };
        let write = || -> std::io::Result<()> {
            let tmp = f.with_extension("json.tmp");
            std::fs::write(
                &tmp,
                serde_json::to_vec(&saved).map_err(std::io::Error::other)?,
            )?;
            std::fs::rename(&tmp, f)
        };
        if let Err(e) = write() {
            tracing::warn!(file = %f.display(), error = %e, "cannot keep the kernel-log position; after a restart, old records may be reported again");
        }
    }
}

/// This boot's id, or empty when the kernel does not say.
pub fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_records_have_a_sequence_number_and_text_does_not() {
        assert_eq!(
            record_seq("3,1893,1234567890,-;NVRM: Xid (PCI:0000:3b:00): 79"),
            Some(1893)
        );
        assert_eq!(
            record_seq("[ 12.5] NVRM: Xid (PCI:0000:3b:00): 79, a;b"),
            None
        );
        assert_eq!(
            record_seq("Oct 01 kernel: NVRM: Xid (PCI:0000:18:00): 119;"),
            None
        );
    }

    #[test]
    fn a_restart_of_the_same_boot_skips_what_was_read_and_a_reboot_does_not() {
        let dir = std::env::temp_dir().join(format!(
            "gw-kpos-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("kmsg-position.json");
        let mut p = Position::load(Some(f.clone()), "boot-a".into());
        assert!(p.is_new(Some(5)));
        p.read(Some(5));
        p.read(Some(9));
        let again = Position::load(Some(f.clone()), "boot-a".into());
        assert!(!again.is_new(Some(9)) && !again.is_new(Some(3)));
        assert!(again.is_new(Some(10)));
        assert!(again.is_new(None), "text lines cannot be placed");
        let rebooted = Position::load(Some(f.clone()), "boot-b".into());
        assert!(rebooted.is_new(Some(1)));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
