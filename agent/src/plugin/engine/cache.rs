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

use std::io::Read;

use super::super::files::{open_regular, touch_regular};
use wasmtime::Engine;

/// The first bytes of an entry (format version 1).
const MAGIC: &[u8; 8] = b"GWCWASM1";
/// Magic plus digest.
const HEADER: usize = MAGIC.len() + 32;

/// Creates the cache directory (mode 0700) when absent, and checks that it is the agent's
/// own: cached machine code is trusted as the agent binary is. Nothing is written into it
/// before that check: a folder someone else made first (the default is under a shared temp
/// dir) could hold a planted symlink or FIFO.
///
/// # Errors
/// The directory is a symlink (name the folder itself), not a directory, not owned by the
/// agent's effective user, or writable by its group or others; or the I/O error.
pub(super) fn prepare_cache_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    // `link/` would be the link's target: the folder is named without trailing slashes.
    let dir: std::path::PathBuf = dir.components().collect();
    let dir = dir.as_path();
    if std::fs::symlink_metadata(dir).is_err() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    let meta = std::fs::symlink_metadata(dir)?;
    if meta.file_type().is_symlink() {
        return Err(std::io::Error::other(
            "a symlink: name the directory itself (a link could be swapped for another)",
        ));
    }
    if !meta.is_dir() {
        return Err(std::io::Error::other("not a directory"));
    }
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me || meta.permissions().mode() & 0o022 != 0 {
        return Err(std::io::Error::other(
            "the directory must belong to the agent's user and not be writable by its group or others",
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
    // A regular file of bounded size: a FIFO or a link to a device must not stall the
    // plugin thread (every plugin loads there). The header is checked before the rest is
    // read: a large file that is not an entry costs 40 bytes.
    let (file, len) = open_regular(path, MAX_ENTRY_BYTES)?;
    let mut bytes = Vec::new();
    (&file).take(HEADER as u64).read_to_end(&mut bytes)?;
    if bytes.len() < HEADER || &bytes[..MAGIC.len()] != MAGIC {
        return Err(wasmtime::Error::msg(
            "not a sealed gpuwarden cache entry (short, or an older format)",
        ));
    }
    bytes.reserve(usize::try_from(len).unwrap_or(0).saturating_sub(HEADER));
    (&file)
        .take(MAX_ENTRY_BYTES - HEADER as u64)
        .read_to_end(&mut bytes)?;
    let payload = verified_payload(&bytes).map_err(wasmtime::Error::msg)?;
    // SAFETY: the payload is byte for byte what `Component::serialize` of this agent wrote
    // (its sha256, checked just above on these very bytes, matches the one written beside
    // it; the name carries the engine's compatibility hash, and wasmtime re-checks version
    // and configuration before use), and it lives in a directory that `prepare_cache_dir`
    // verified belongs to the agent's user and is not writable by its group or others.
    unsafe { Component::deserialize(engine, payload) }
}

/// How long an entry that no plugin of this agent uses is kept after its last use: the
/// directory may be shared (the default is under the temp dir), and another agent's entries
/// stay while that agent uses them (it marks them every [`UPKEEP_EVERY`]).
pub(super) const KEEP_UNUSED: Duration = Duration::from_secs(7 * 24 * 3600);

/// How often an agent marks the entries its plugins use, and prunes (a day): well within the
/// week an unused entry is kept, so a long-running agent's entries are never taken for unused.
pub const UPKEEP_EVERY: Duration = Duration::from_secs(24 * 3600);

/// How long a temporary file (`NAME.tmpPID`) is left alone: a write in progress elsewhere.
const KEEP_TEMPORARY: Duration = Duration::from_secs(3600);

/// The largest entry read, bytes (512 MiB): machine code of a component of at most 64 MiB
/// (entries run to 1–4 times the component). A larger file is refused unread; the plugin is
/// compiled instead.
const MAX_ENTRY_BYTES: u64 = 512 << 20;

/// The name of the entry for component `sha256` (hex) and engine `engine_key` (16 hex).
pub(super) fn entry_name(sha256: &str, engine_key: &str) -> String {
    format!("{}-{engine_key}.cwasm", sha256.to_ascii_lowercase())
}

/// What a file name in the cache folder is: an entry, a temporary file of a write, or
/// neither (then never touched). Entries are exactly `{64 lowercase hex}-{16 lowercase
/// hex}.cwasm`; temporary files that name with `.tmp{pid}` for `.cwasm`.
#[derive(Debug, PartialEq, Eq)]
enum Name {
    Entry,
    Temporary,
    Foreign,
}

fn classify(name: &str) -> Name {
    use gpuwarden_wire::plugin_sync::{lower_hex, valid_sha256_hex};
    let stem_ok = |stem: &str| {
        stem.len() == 64 + 1 + 16
            && stem.as_bytes()[64] == b'-'
            && valid_sha256_hex(&stem[..64])
            && lower_hex(&stem[65..])
    };
    if let Some(stem) = name.strip_suffix(".cwasm") {
        if stem_ok(stem) {
            return Name::Entry;
        }
    } else if let Some((stem, pid)) = name.rsplit_once(".tmp") {
        if stem_ok(stem) && !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()) {
            return Name::Temporary;
        }
    }
    Name::Foreign
}

/// Marks the entry at `path` as used now (its modification time), so that [`upkeep`] keeps
/// it while any agent sharing the directory uses it. Only a regular file (a symlink is not
/// followed, a FIFO not waited on); setting the time needs ownership, not write permission.
pub(super) fn touch(path: &Path) -> std::io::Result<()> {
    touch_regular(path)
}

/// What the upkeep of the compile cache removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Entries no plugin of this agent needs, unused for a week.
    pub entries: usize,
    /// Temporary files of writes that never finished (older than an hour).
    pub temporaries: usize,
}

/// Keeps the cache of one agent: marks the entries in `keep` (file names) as used, then
/// removes from `dir` the entries not in `keep` that nobody used for [`KEEP_UNUSED`] before
/// `now` (versions replaced or removed, those of older agents: another engine hash in the
/// name), and temporary files a killed write left, after [`KEEP_TEMPORARY`]. Only names the
/// cache writes are touched (see [`classify`]); errors (a file gone meanwhile, a folder made
/// read-only) leave the file in place.
pub(super) fn upkeep(dir: &Path, keep: &BTreeSet<String>, now: SystemTime) -> Pruned {
    let mut pruned = Pruned::default();
    let Ok(files) = std::fs::read_dir(dir) else {
        return pruned;
    };
    for e in files.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let kind = classify(&name);
        if kind == Name::Entry && keep.contains(&name) {
            if e.file_type().is_ok_and(|t| t.is_file()) {
                let _ = touch(&e.path());
            }
            continue;
        }
        // The link itself, not what it names: a link's target is never removed.
        let Some(age) = e
            .metadata()
            .ok()
            .and_then(|m| m.modified().ok())
            .map(|t| now.duration_since(t).unwrap_or_default())
        else {
            continue;
        };
        let (limit, count) = match kind {
            Name::Entry => (KEEP_UNUSED, &mut pruned.entries),
            Name::Temporary => (KEEP_TEMPORARY, &mut pruned.temporaries),
            Name::Foreign => continue,
        };
        if age >= limit && std::fs::remove_file(e.path()).is_ok() {
            *count += 1;
        }
    }
    pruned
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
    fn only_the_names_the_cache_writes_are_entries() {
        let sha = "0123456789abcdef".repeat(4);
        assert_eq!(
            classify(&entry_name(&sha.to_uppercase(), "9251c85941f77eeb")),
            Name::Entry
        );
        assert_eq!(
            classify(&format!("{sha}-9251c85941f77eeb.tmp4242")),
            Name::Temporary
        );
        for foreign in [
            format!("{sha}-backup.cwasm"),
            format!("{}-9251c85941f77eeb.cwasm", sha.to_uppercase()),
            format!("{sha}-9251C85941F77EEB.cwasm"),
            format!("{sha}-\u{fffd}.cwasm"),
            format!("{sha}-notes.tmp2024"),
            format!("{sha}-9251c85941f77eeb.tmp"),
            format!("{sha}-9251c85941f77eeb.tmpabc"),
            format!("{sha}-9251c85941f77eeb.cwasm.bak"),
            "notes.cwasm".to_string(),
        ] {
            assert_eq!(classify(&foreign), Name::Foreign, "{foreign}");
        }
    }

    #[test]
    fn upkeep_marks_what_is_used_and_removes_only_old_unused_entries() {
        let dir = std::env::temp_dir().join(format!("gw-cache-prune-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (a, b) = ("a".repeat(64), "b".repeat(64));
        let (key, older) = ("1111111111111111", "0000000000000000");
        let files = [
            entry_name(&a, key),                // in use: kept however old, and marked used
            entry_name(&b, key),                // replaced, unused for 8 days: removed
            entry_name(&b, "2222222222222222"), // another agent's, used 6 days ago: kept
            entry_name(&a, older),              // an older agent's engine, 8 days: removed
            format!("{a}-{key}.tmp4242"),       // a killed write, 2 hours: removed
            format!("{b}-{key}.tmp4243"),       // a write in progress (1 minute): kept
            "notes.cwasm".to_string(),          // not a name the cache writes: kept
        ];
        let day = 24 * 3600;
        let ages = [30 * day, 8 * day, 6 * day, 8 * day, 7200, 60, 30 * day];
        let now = SystemTime::now();
        for (f, age) in files.iter().zip(ages) {
            let path = dir.join(f);
            std::fs::write(&path, b"x").unwrap();
            std::fs::File::open(&path)
                .unwrap()
                .set_modified(now - Duration::from_secs(age))
                .unwrap();
        }
        let keep = BTreeSet::from([files[0].clone()]);
        let pruned = upkeep(&dir, &keep, now);
        assert_eq!(
            pruned,
            Pruned {
                entries: 2,
                temporaries: 1
            }
        );
        let left: BTreeSet<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        let expect: BTreeSet<String> = [0, 2, 5, 6].iter().map(|i| files[*i].clone()).collect();
        assert_eq!(left, expect);
        let used = std::fs::metadata(dir.join(&files[0]))
            .unwrap()
            .modified()
            .unwrap();
        assert!(used.elapsed().unwrap_or_default() < Duration::from_secs(600));
        // Used again (loaded), an entry is young again; two days on, only the temporary
        // file of the write that never finished goes.
        touch(&dir.join(&files[2])).unwrap();
        let later = upkeep(&dir, &keep, now + Duration::from_secs(2 * day));
        assert_eq!(
            later,
            Pruned {
                entries: 0,
                temporaries: 1
            }
        );
        assert!(dir.join(&files[2]).exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn only_a_directory_of_the_agents_own_closed_to_others_is_used() {
        use std::os::unix::fs::PermissionsExt;
        let base = std::env::temp_dir().join(format!("gw-cache-dir-{}", std::process::id()));
        let own = base.join("own/nested");
        prepare_cache_dir(&own).unwrap();
        let mode = std::fs::metadata(&own).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        // Nothing was written into it.
        assert_eq!(std::fs::read_dir(&own).unwrap().count(), 0);
        let link = base.join("link");
        std::os::unix::fs::symlink(&own, &link).unwrap();
        let e = prepare_cache_dir(&link).unwrap_err();
        assert!(e.to_string().contains("symlink"), "{e}");
        let slashed = std::path::PathBuf::from(format!("{}/", link.display()));
        let e = prepare_cache_dir(&slashed).unwrap_err();
        assert!(
            e.to_string().contains("symlink"),
            "a trailing slash too: {e}"
        );
        let open = base.join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = prepare_cache_dir(&open).unwrap_err();
        assert!(
            e.to_string()
                .contains("not be writable by its group or others"),
            "{e}"
        );
        if rustix::process::geteuid().is_root() {
            // A folder another user made first, with a FIFO planted in it: refused without
            // a look inside (a probe write there would hang).
            let theirs = base.join("theirs");
            std::fs::create_dir(&theirs).unwrap();
            let _ = std::process::Command::new("mkfifo")
                .arg(theirs.join(".owner-probe"))
                .status();
            std::os::unix::fs::chown(&theirs, Some(65534), None).unwrap();
            let e = prepare_cache_dir(&theirs).unwrap_err();
            assert!(e.to_string().contains("belong to the agent's user"), "{e}");
        }
        let file = base.join("file");
        std::fs::write(&file, b"").unwrap();
        let e = prepare_cache_dir(&file).unwrap_err();
        assert_eq!(e.to_string(), "not a directory");
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn a_fifo_named_like_an_entry_is_refused_not_waited_on() {
        let dir = std::env::temp_dir().join(format!("gw-cache-fifo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(entry_name(&"d".repeat(64), "1111111111111111"));
        let made = std::process::Command::new("mkfifo").arg(&path).status();
        if made.is_ok_and(|s| s.success()) {
            let engine = Engine::default();
            let e = load_cached(&engine, &path).err().unwrap();
            assert!(e.to_string().contains("FIFO"), "{e}");
            // Nor does the upkeep wait on it when a plugin in use has that name.
            let keep = BTreeSet::from([path.file_name().unwrap().to_string_lossy().into_owned()]);
            let (tx, rx) = std::sync::mpsc::channel();
            let d = dir.clone();
            std::thread::spawn(move || tx.send(upkeep(&d, &keep, SystemTime::now())));
            let done = rx.recv_timeout(Duration::from_secs(10));
            assert_eq!(done.ok(), Some(Pruned::default()), "the upkeep returned");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
