//! Reading the files plugins come from (configured components, fetched components, compile
//! cache entries): regular files only, within a size limit.
//!
//! These reads run on the plugin thread, so one bad file must not stall every plugin: a FIFO
//! opened with no writer blocks for ever, and a device such as `/dev/zero` (or a symlink to
//! one) reads without end.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

use rustix::fs::OFlags;

/// The largest plugin component the agent reads or fetches, bytes (64 MiB; the control
/// plane's `plugin_store.max_component_bytes` defaults to the same).
pub const MAX_COMPONENT_BYTES: u64 = 64 * 1024 * 1024;

/// Reads `path` whole when it is a regular file (a symlink to one counts) of at most `max`
/// bytes. The kind and size are checked before the file is opened and again on the open
/// file, and the read stops after `max` + 1 bytes, so a file swapped or growing meanwhile
/// cannot make it block or run unbounded.
///
/// # Errors
/// `InvalidInput` naming the kind of file (`a FIFO`, `a character device`, `a directory`,
/// …) or `"N bytes, over the MAX-byte limit"`; the I/O error of `metadata`, `open` or
/// `read` otherwise (`NotFound`, `PermissionDenied`, …).
pub fn read_regular(path: &Path, max: u64) -> std::io::Result<Vec<u8>> {
    let (file, len) = open_regular(path, max)?;
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    file.take(max.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(refused(format!(
            "over the {max}-byte limit (it grew while read)"
        )));
    }
    Ok(bytes)
}

/// Opens `path` for reading when it is a regular file (a symlink to one counts) of at most
/// `max` bytes, and returns it with its length. The open does not block: a file swapped for
/// a FIFO after the first check is refused by the second, on the open file.
///
/// # Errors
/// As [`read_regular`].
pub fn open_regular(path: &Path, max: u64) -> std::io::Result<(File, u64)> {
    check(&std::fs::metadata(path)?, max)?;
    let file = nonblocking(false).open(path)?;
    let meta = file.metadata()?;
    check(&meta, max)?;
    Ok((file, meta.len()))
}

/// Sets the modification time of the regular file at `path` (not a symlink: it is not
/// followed) to now. Needs ownership of the file, not write permission.
///
/// # Errors
/// `InvalidInput` for anything but a regular file (a symlink: `ELOOP` from the open); the
/// I/O error otherwise.
pub fn touch_regular(path: &Path) -> std::io::Result<()> {
    let file = nonblocking(true).open(path)?;
    let meta = file.metadata()?;
    check(&meta, u64::MAX)?;
    file.set_modified(std::time::SystemTime::now())
}

/// Read-only, `O_NONBLOCK` (opening a FIFO returns at once), and `O_NOFOLLOW` when asked.
fn nonblocking(no_follow: bool) -> std::fs::OpenOptions {
    let mut flags = OFlags::NONBLOCK;
    if no_follow {
        flags |= OFlags::NOFOLLOW;
    }
    let mut o = std::fs::OpenOptions::new();
    // The flags' bits are small positive constants: the cast loses nothing.
    o.read(true).custom_flags(flags.bits() as i32);
    o
}

fn check(meta: &std::fs::Metadata, max: u64) -> std::io::Result<()> {
    let t = meta.file_type();
    let kind = if t.is_file() {
        None
    } else if t.is_dir() {
        Some("a directory")
    } else if t.is_fifo() {
        Some("a FIFO")
    } else if t.is_char_device() {
        Some("a character device")
    } else if t.is_block_device() {
        Some("a block device")
    } else if t.is_socket() {
        Some("a socket")
    } else {
        Some("not a regular file")
    };
    if let Some(kind) = kind {
        return Err(refused(format!("{kind}, not a regular file")));
    }
    if meta.len() > max {
        return Err(refused(format!(
            "{} bytes, over the {max}-byte limit",
            meta.len()
        )));
    }
    Ok(())
}

fn refused(msg: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidInput, msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_regular_files_within_the_limit_are_read() {
        let dir = std::env::temp_dir().join(format!("gw-read-regular-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.wasm");
        std::fs::write(&file, b"0123456789").unwrap();
        assert_eq!(read_regular(&file, 10).unwrap(), b"0123456789");
        let e = read_regular(&file, 9).unwrap_err();
        assert_eq!(e.to_string(), "10 bytes, over the 9-byte limit");
        // A FIFO with no writer: refused at once, not a read that never returns.
        let fifo = dir.join("fifo.wasm");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if made.is_ok_and(|s| s.success()) {
            let e = read_regular(&fifo, 10).unwrap_err();
            assert!(e.to_string().contains("a FIFO"), "{e}");
        }
        // A symlink to a device that reads without end.
        let zero = dir.join("zero.wasm");
        std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
        let e = read_regular(&zero, 10).unwrap_err();
        assert!(e.to_string().contains("a character device"), "{e}");
        assert!(read_regular(&dir, 10)
            .unwrap_err()
            .to_string()
            .contains("a directory"));
        assert_eq!(
            read_regular(&dir.join("absent"), 10).unwrap_err().kind(),
            std::io::ErrorKind::NotFound
        );
        // touch_regular: a regular file's time is set; a link is not followed, a FIFO not
        // waited on.
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(86_400);
        File::open(&file).unwrap().set_modified(old).unwrap();
        touch_regular(&file).unwrap();
        let t = std::fs::metadata(&file).unwrap().modified().unwrap();
        assert!(t > old + std::time::Duration::from_secs(3600));
        let link = dir.join("link.wasm");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        File::open(&file).unwrap().set_modified(old).unwrap();
        assert!(touch_regular(&link).is_err());
        assert_eq!(std::fs::metadata(&file).unwrap().modified().unwrap(), old);
        if fifo.exists() {
            assert!(touch_regular(&fifo).is_err());
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
