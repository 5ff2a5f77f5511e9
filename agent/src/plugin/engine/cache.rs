//! The on-disk compile cache: a directory only the agent's user may write, files written
//! atomically, and every entry sealed with the sha256 of its machine code.
//!
//! An entry is `GWCWASM1` (8 bytes), the sha256 of the payload (32 bytes), then the payload
//! (`Component::serialize`'s bytes). Deserializing machine code is unsafe: wasmtime checks
//! the header of the artefact but not its code, so a file damaged in place (a bad disk
//! sector, a partial copy of the same length, a stray write) would run as code and crash the
//! agent at every start. The digest is checked on the bytes in memory, the very bytes then
//! deserialized, so nothing can change between the check and the use; an entry that fails
//! it is ignored, and the caller compiles the plugin again and rewrites the entry.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::Engine;

/// The first bytes of an entry (format version 1).
const MAGIC: &[u8; 8] = b"GWCWASM1";
/// Magic plus digest.
const HEADER: usize = MAGIC.len() + 32;

pub(super) fn prepare_cache_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let meta = std::fs::metadata(dir)?;
    // Cached machine code is trusted as the agent binary is: the directory must be ours
    // and closed to others.
    // The owner is compared with that of a file we create (no libc for geteuid).
    let probe = dir.join(".owner-probe");
    std::fs::write(&probe, b"")?;
    let me = std::fs::metadata(&probe)?.uid();
    let _ = std::fs::remove_file(&probe);
    if meta.uid() != me || meta.permissions().mode() & 0o022 != 0 {
        return Err(std::io::Error::other(
            "the directory must belong to the agent's user and not be writable by others",
        ));
    }
    Ok(())
}

/// Writes `payload` (serialized machine code) under `path` with its digest, through a
/// temporary file renamed into place.
pub(super) fn write_atomically(path: &Path, payload: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut bytes = Vec::with_capacity(HEADER + payload.len());
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&Sha256::digest(payload));
    bytes.extend_from_slice(payload);
    let written = std::fs::write(&tmp, &bytes).and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        // A full disk must not leave half-written temporary files behind.
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// The payload of a cache entry, once its digest matches; an error naming what is wrong
/// otherwise (short, foreign format, digest mismatch).
fn verified_payload(bytes: &[u8]) -> Result<&[u8], String> {
    if bytes.len() < HEADER || &bytes[..MAGIC.len()] != MAGIC {
        return Err("not a sealed gpuwarden cache entry (short, or an older format)".into());
    }
    let (digest, payload) = bytes[MAGIC.len()..].split_at(32);
    if Sha256::digest(payload).as_slice() != digest {
        return Err("the machine code does not match its sha256 (the file was damaged)".into());
    }
    Ok(payload)
}

#[allow(unsafe_code)]
pub(super) fn load_cached(engine: &Engine, path: &Path) -> wasmtime::Result<Component> {
    let bytes = std::fs::read(path)?;
    let payload = verified_payload(&bytes).map_err(wasmtime::Error::msg)?;
    // SAFETY: the payload is byte for byte what `Component::serialize` of this agent wrote
    // (its sha256, checked just above on these very bytes, matches the one written beside
    // it; the name carries the engine's compatibility hash, and wasmtime re-checks version
    // and configuration before use), and it lives in a directory that `prepare_cache_dir`
    // verified belongs to the agent's user and is not writable by others.
    unsafe { Component::deserialize(engine, payload) }
}

/// How long an entry that no plugin of this agent uses is kept after its last use: the
/// directory may be shared (the default is under the temp dir), and another agent's entries
/// stay while that agent loads them.
pub(super) const KEEP_UNUSED: Duration = Duration::from_secs(7 * 24 * 3600);

/// How long a temporary file (`NAME.tmpPID`) is left alone: a write in progress elsewhere.
const KEEP_TEMPORARY: Duration = Duration::from_secs(3600);

/// Marks the entry at `path` as used now (its modification time), so that [`prune`] keeps
/// it while any agent sharing the directory loads it.
pub(super) fn touch(path: &Path) -> std::io::Result<()> {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)?
        .set_modified(SystemTime::now())
}

/// Removes from `dir` the cache entries whose file name is not in `keep` and that were not
/// used (written or loaded) for [`KEEP_UNUSED`] before `now`: versions replaced or removed,
/// and those of older agents (another engine hash in the name). Temporary files a killed
/// write left are removed after [`KEEP_TEMPORARY`]. Only names the cache writes
/// (`{sha256 hex}-….cwasm`, `….tmpPID`) are touched. Returns the number of files removed.
pub(super) fn prune(dir: &Path, keep: &BTreeSet<String>, now: SystemTime) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(age) = e
            .metadata()
            .ok()
            .and_then(|m| m.modified().ok())
            .map(|t| now.duration_since(t).unwrap_or_default())
        else {
            continue;
        };
        let ours = name.len() > 65
            && name.as_bytes()[64] == b'-'
            && name[..64].bytes().all(|b| b.is_ascii_hexdigit());
        let old_enough = if name.ends_with(".cwasm") {
            !keep.contains(&name) && age >= KEEP_UNUSED
        } else {
            let tmp = name.rsplit_once(".tmp").map(|(_, pid)| pid);
            tmp.is_some_and(|pid| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
                && age >= KEEP_TEMPORARY
        };
        if ours && old_enough && std::fs::remove_file(e.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_intact_sealed_entries_are_accepted() {
        let dir = std::env::temp_dir().join(format!("gw-cache-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("x.cwasm");
        let payload: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        write_atomically(&path, &payload).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        assert_eq!(verified_payload(&bytes).unwrap(), &payload[..]);
        // Same length, some bytes flipped in the middle.
        for b in &mut bytes[4096..4096 + 512] {
            *b = !*b;
        }
        assert!(verified_payload(&bytes).unwrap_err().contains("damaged"));
        // A raw wasmtime artefact (the format before the seal) and a truncated entry.
        assert!(verified_payload(&payload).is_err());
        assert!(verified_payload(&bytes[..20]).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn prune_removes_only_old_unused_entries_of_the_cache() {
        let dir = std::env::temp_dir().join(format!("gw-cache-prune-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let a = "a".repeat(64);
        let b = "b".repeat(64);
        let files = [
            format!("{a}-1.cwasm"),    // in use: kept however old
            format!("{b}-1.cwasm"),    // replaced, unused for 8 days: removed
            format!("{b}-2.cwasm"),    // another agent's, used 6 days ago: kept
            format!("{a}-0.cwasm"),    // an older agent's engine, 8 days: removed
            format!("{a}-1.tmp4242"),  // a killed write, 2 hours: removed
            format!("{b}-1.tmp4243"),  // a write in progress (1 minute): kept
            "notes.cwasm".to_string(), // not a name the cache writes: kept
        ];
        let day = 24 * 3600;
        let ages = [30 * day, 8 * day, 6 * day, 8 * day, 7200, 60, 30 * day];
        let now = SystemTime::now();
        for (f, age) in files.iter().zip(ages) {
            let path = dir.join(f);
            std::fs::write(&path, b"x").unwrap();
            std::fs::File::options()
                .write(true)
                .open(&path)
                .unwrap()
                .set_modified(now - Duration::from_secs(age))
                .unwrap();
        }
        let keep = BTreeSet::from([files[0].clone()]);
        assert_eq!(prune(&dir, &keep, now), 3);
        let left: BTreeSet<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        let expect: BTreeSet<String> = [0, 2, 5, 6].iter().map(|i| files[*i].clone()).collect();
        assert_eq!(left, expect);
        // Used again (loaded), an entry is young again; two days on, only the temporary
        // file of the write that never finished goes.
        touch(&dir.join(&files[2])).unwrap();
        assert_eq!(prune(&dir, &keep, now + Duration::from_secs(2 * day)), 1);
        assert!(dir.join(&files[2]).exists());
        assert!(!dir.join(&files[5]).exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
