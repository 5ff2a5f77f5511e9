//! Gunzip of `/metrics` bodies, inflated straight into the scrape worker's body buffer.
//!
//! ureq decodes gzip itself, but builds a new decoder for every response: ~43 KB of
//! inflate state allocated zeroed per scrape (`malloc_consolidate` in `perf`, step 7). A
//! streaming decoder (flate2's `GzDecoder`) inflates into its own 32 KiB window and copies
//! every byte out again (a fifth of the scrape path's `memmove`). The whole compressed body
//! is in memory before it is inflated, so here it is inflated in one pass, by miniz_oxide
//! (the inflater flate2 uses) in its non-wrapping mode, into the buffer the parser reads:
//! one decompressor per worker thread, reset per member, and no copy.
//!
//! The gzip framing (RFC 1952) around each deflate stream is read here: the 10-byte header
//! and its optional fields (`FEXTRA`, `FNAME`, `FCOMMENT`, `FHCRC`), then the trailer's
//! CRC-32 and `ISIZE`, both checked. Several members are read one after another, as
//! `gzip -d` and ureq's `MultiGzDecoder` read them; anything after a member that is not
//! another member is an error.

use std::cell::RefCell;

use miniz_oxide::inflate::core::inflate_flags::TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF;
use miniz_oxide::inflate::core::{decompress, DecompressorOxide};
use miniz_oxide::inflate::TINFLStatus;

/// The compressed bytes a thread keeps between scrapes at most (an agent's gzip'd body is
/// ~10 KiB); a larger one, a gzip bomb for example, is freed after its scrape.
const KEEP_COMPRESSED: usize = 256 * 1024;

/// What a thread keeps: the inflate state and the buffer of compressed bytes.
type Kept = (Box<DecompressorOxide>, Vec<u8>);

thread_local! {
    static KEPT: RefCell<Option<Kept>> = const { RefCell::new(None) };
}

/// Why a gzip body could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum GunzipError {
    /// The inflated body would pass the limit.
    TooLarge,
    /// Not gzip, truncated, or corrupt: what was wrong.
    Invalid(String),
}

/// Reads the compressed body with `fill` into this thread's buffer, then inflates every
/// gzip member of it into `out[*filled..]`, which grows (doubling, zeroed only where new)
/// up to `limit` bytes in all: `out`'s length on entry is room already initialized by
/// earlier bodies, and `*filled` ends at the inflated body's length (the caller truncates).
/// Errors of `fill` are returned as they are; gzip's own are mapped with `invalid`.
pub(super) fn gunzip<E>(
    fill: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
    out: &mut Vec<u8>,
    filled: &mut usize,
    limit: usize,
    invalid: impl Fn(GunzipError) -> E,
) -> Result<(), E> {
    let (mut state, mut input) = KEPT
        .with(|k| k.borrow_mut().take())
        .unwrap_or_else(|| (Box::default(), Vec::new()));
    input.clear();
    let result = fill(&mut input)
        .and_then(|()| members(&mut state, &input, out, filled, limit).map_err(&invalid));
    if input.capacity() > KEEP_COMPRESSED {
        input = Vec::new();
    }
    KEPT.with(|k| *k.borrow_mut() = Some((state, input)));
    result
}

fn bad(message: &str) -> GunzipError {
    GunzipError::Invalid(message.to_string())
}

/// Every member of `input`, inflated one after another.
fn members(
    state: &mut DecompressorOxide,
    input: &[u8],
    out: &mut Vec<u8>,
    filled: &mut usize,
    limit: usize,
) -> Result<(), GunzipError> {
    let mut at = 0;
    loop {
        at = header(input, at)?;
        let start = *filled;
        at = inflate(state, input, at, out, filled, limit)?;
        let trailer = input
            .get(at..at + 8)
            .ok_or_else(|| bad("truncated: the member's trailer is missing"))?;
        let word = |i: usize| {
            u32::from_le_bytes([trailer[i], trailer[i + 1], trailer[i + 2], trailer[i + 3]])
        };
        if crc32fast::hash(&out[start..*filled]) != word(0) {
            return Err(bad("corrupt: the CRC-32 does not match the inflated bytes"));
        }
        // ISIZE is the member's length modulo 2^32 (RFC 1952, 2.3.1).
        if (*filled - start) as u32 != word(4) {
            return Err(bad("corrupt: ISIZE does not match the inflated length"));
        }
        at += 8;
        if at == input.len() {
            return Ok(());
        }
    }
}

/// Reads a member's header at `at`; returns where its deflate stream starts.
fn header(input: &[u8], at: usize) -> Result<usize, GunzipError> {
    const FHCRC: u8 = 2;
    const FEXTRA: u8 = 4;
    const FNAME: u8 = 8;
    const FCOMMENT: u8 = 16;
    let h = input
        .get(at..at + 10)
        .ok_or_else(|| bad("invalid gzip header: too short"))?;
    if h[0] != 0x1f || h[1] != 0x8b {
        return Err(bad("invalid gzip header: not gzip (bad magic bytes)"));
    }
    if h[2] != 8 {
        return Err(bad(
            "invalid gzip header: compression method is not deflate",
        ));
    }
    let flags = h[3];
    if flags & 0xe0 != 0 {
        return Err(bad("invalid gzip header: reserved flag bits set"));
    }
    let mut i = at + 10;
    if flags & FEXTRA != 0 {
        let n = input
            .get(i..i + 2)
            .ok_or_else(|| bad("invalid gzip header: truncated extra field"))?;
        i += 2 + usize::from(u16::from_le_bytes([n[0], n[1]]));
    }
    for flag in [FNAME, FCOMMENT] {
        if flags & flag != 0 {
            let end = input
                .get(i..)
                .and_then(|rest| memchr::memchr(0, rest))
                .ok_or_else(|| bad("invalid gzip header: unterminated name or comment"))?;
            i += end + 1;
        }
    }
    if flags & FHCRC != 0 {
        let crc = input
            .get(i..i + 2)
            .ok_or_else(|| bad("invalid gzip header: truncated header CRC"))?;
        // The low 16 bits of the CRC-32 of the header's bytes before it.
        if crc32fast::hash(&input[at..i]) as u16 != u16::from_le_bytes([crc[0], crc[1]]) {
            return Err(bad("corrupt: the header CRC does not match"));
        }
        i += 2;
    }
    if i > input.len() {
        return Err(bad("invalid gzip header: truncated"));
    }
    Ok(i)
}

/// Inflates the deflate stream at `input[at..]` into `out[*filled..]`, growing `out` up to
/// `limit`; returns where the stream ended in `input`.
fn inflate(
    state: &mut DecompressorOxide,
    input: &[u8],
    mut at: usize,
    out: &mut Vec<u8>,
    filled: &mut usize,
    limit: usize,
) -> Result<usize, GunzipError> {
    state.init();
    // The stream's back-references read the bytes it wrote before, in place: `out` is the
    // window (non-wrapping mode), so nothing is copied out. One byte past the limit tells a
    // body of exactly `limit` bytes from a longer one.
    let flags = TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF;
    let cap = limit.saturating_add(1);
    loop {
        if *filled == out.len() {
            if out.len() >= cap {
                return Err(GunzipError::TooLarge);
            }
            let want = (out.len() * 2).max(64 * 1024).min(cap);
            out.reserve_exact(want - out.len());
            out.resize(want, 0);
        }
        let (status, read, wrote) = decompress(state, &input[at..], out, *filled, flags);
        at += read;
        *filled += wrote;
        match status {
            TINFLStatus::Done if *filled > limit => return Err(GunzipError::TooLarge),
            TINFLStatus::Done => return Ok(at),
            // The output is full: the next turn grows it, or stops at the limit.
            TINFLStatus::HasMoreOutput if *filled == out.len() || read + wrote > 0 => {}
            TINFLStatus::HasMoreOutput => return Err(bad("corrupt deflate stream: no progress")),
            TINFLStatus::FailedCannotMakeProgress | TINFLStatus::NeedsMoreInput => {
                return Err(bad("truncated: the deflate stream ends early"));
            }
            other => {
                return Err(GunzipError::Invalid(format!(
                    "corrupt deflate stream ({other:?})"
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gz(parts: &[&[u8]]) -> Vec<u8> {
        let mut all = Vec::new();
        for p in parts {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(p).unwrap();
            all.extend(e.finish().unwrap());
        }
        all
    }

    /// Inflates `body` into a buffer left as `room` (bytes of an earlier body), at most
    /// `limit` bytes.
    fn run_over(body: &[u8], room: &[u8], limit: usize) -> Result<Vec<u8>, String> {
        let (mut out, mut filled) = (room.to_vec(), 0);
        gunzip(
            |b| {
                b.extend_from_slice(body);
                Ok(())
            },
            &mut out,
            &mut filled,
            limit,
            |e| match e {
                GunzipError::TooLarge => "too large".to_string(),
                GunzipError::Invalid(m) => format!("gzip: {m}"),
            },
        )
        .map(|()| {
            out.truncate(filled);
            out
        })
    }

    fn run(body: &[u8], limit: usize) -> Result<Vec<u8>, String> {
        run_over(body, &[], limit)
    }

    #[test]
    fn bodies_inflate_one_after_another_on_the_kept_state() {
        // The same thread's state serves each body from a clean start, over room left by a
        // longer body, and nothing of that body is left in the answer.
        let long = vec![b'#'; 300_000];
        for i in 0..3 {
            let text = format!("gpuwarden_gpu_up{{gpu=\"{i}\"}} 1\n").repeat(100 + i);
            assert_eq!(
                run_over(&gz(&[text.as_bytes()]), &long, 1 << 20).unwrap(),
                text.as_bytes()
            );
        }
        // Two members read as one body; a broken stream is an error, and the next good
        // body after it still inflates.
        assert_eq!(
            run(&gz(&[b"a 1\n", b"b 2\n"]), 1 << 20).unwrap(),
            b"a 1\nb 2\n"
        );
        let mut cut = gz(&[b"a 1\nb 2\n"]);
        cut.truncate(cut.len() - 6);
        assert!(run(&cut, 1 << 20).is_err_and(|m| m.contains("truncated")));
        assert!(run(b"not gzip", 1 << 20).is_err_and(|m| m.contains("gzip header")));
        assert!(run(b"not gzip at all", 1 << 20).is_err_and(|m| m.contains("not gzip")));
        assert_eq!(run(&gz(&[b"c 3\n"]), 1 << 20).unwrap(), b"c 3\n");
        // Bigger than the room and than one doubling: grows as it goes.
        let big: Vec<u8> = (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect();
        assert_eq!(run_over(&gz(&[&big]), b"xyz", 4 << 20).unwrap(), big);
    }

    #[test]
    fn header_fields_are_skipped_and_checked_and_the_trailer_is_verified() {
        let text = b"gpuwarden_gpu_up{gpu=\"0\"} 1\n";
        // FEXTRA, FNAME, FCOMMENT and FHCRC, as `gzip -N` and others write them.
        let mut e = flate2::GzBuilder::new()
            .extra(vec![1, 2, 3])
            .filename("metrics.prom")
            .comment("an agent")
            .write(Vec::new(), flate2::Compression::default());
        e.write_all(text).unwrap();
        let with_fields = e.finish().unwrap();
        assert_eq!(run(&with_fields, 1 << 20).unwrap(), text);
        let mut hcrc = gz(&[text]);
        // Set FHCRC and insert the header's CRC-16 after the 10-byte header.
        hcrc[3] |= 2;
        let crc = (crc32fast::hash(&hcrc[..10]) as u16).to_le_bytes();
        hcrc.splice(10..10, crc);
        assert_eq!(run(&hcrc, 1 << 20).unwrap(), text);
        hcrc[10] ^= 1;
        assert!(run(&hcrc, 1 << 20).is_err_and(|m| m.contains("header CRC")));
        // A flipped CRC-32 or ISIZE in the trailer, a reserved flag, another method.
        let good = gz(&[text]);
        let n = good.len();
        for (at, bit, what) in [
            (n - 8, 1, "CRC-32"),
            (n - 4, 1, "ISIZE"),
            (3, 0x20, "reserved"),
            (2, 1, "deflate"),
        ] {
            let mut b = good.clone();
            b[at] ^= bit;
            let e = run(&b, 1 << 20).unwrap_err();
            assert!(e.contains(what), "{what}: {e}");
        }
        // Bytes after a member that are not another member.
        let mut trailing = good.clone();
        trailing.extend_from_slice(b"junk");
        assert!(run(&trailing, 1 << 20).is_err_and(|m| m.contains("gzip header")));
        // A corrupt deflate stream.
        let mut corrupt = good.clone();
        corrupt[10] = 0xff;
        assert!(run(&corrupt, 1 << 20).is_err());
    }

    #[test]
    fn a_gzip_bomb_stops_at_the_limit_and_its_buffer_is_not_kept() {
        let zeros = vec![0u8; 8 << 20];
        let bomb = gz(&[&zeros]);
        assert_eq!(run(&bomb, 1 << 20), Err("too large".to_string()));
        // The output never grows past the limit (and the one byte that tells a body at the
        // limit from a longer one), not even by the last doubling.
        let (mut out, mut filled) = (Vec::new(), 0);
        let _ = gunzip(
            |b| {
                b.extend_from_slice(&bomb);
                Ok::<(), ()>(())
            },
            &mut out,
            &mut filled,
            3 << 20 | 17,
            |_| (),
        );
        assert!(out.capacity() <= (3 << 20 | 17) + 1, "{}", out.capacity());
        // A body exactly at the limit is read whole.
        let exact = vec![7u8; 100_000];
        assert_eq!(run(&gz(&[&exact]), 100_000).unwrap(), exact);
        assert_eq!(run(&gz(&[&exact]), 99_999), Err("too large".to_string()));
        // A compressed body over KEEP_COMPRESSED is not held after its scrape.
        let big: Vec<u8> = (0..400_000u32)
            .map(|i| i.wrapping_mul(2_654_435_761))
            .flat_map(|i| i.to_le_bytes())
            .collect();
        let z = gz(&[&big]);
        assert!(z.len() > KEEP_COMPRESSED, "{}", z.len());
        assert_eq!(run(&z, 4 << 20).unwrap(), big);
        let held = KEPT.with(|k| k.borrow().as_ref().map(|(_, input)| input.capacity()));
        assert_eq!(held, Some(0));
    }
}
