//! Gunzip of `/metrics` bodies with one decoder kept per scrape worker thread.
//!
//! ureq decodes gzip itself, but builds a new decoder for every response: ~43 KB of
//! inflate state allocated zeroed (`calloc`) per scrape, which in `perf` at 200 targets
//! every second showed as glibc's `malloc_consolidate`/`unlink_chunk` under
//! `BodyWithConfig::do_build` (step 7). Here the compressed body is read as sent and
//! inflated by a [`GzDecoder`] that each worker thread keeps and resets (flate2's
//! `reset` keeps the state's allocation). Several gzip members in one body are read one
//! after another, as ureq's `MultiGzDecoder` read them.

use std::cell::RefCell;
use std::io::Cursor;

use flate2::bufread::GzDecoder;

/// The decoder over a body's compressed bytes.
pub(super) type Decoder = GzDecoder<Cursor<Vec<u8>>>;

/// The compressed bytes a thread keeps between scrapes at most (an agent's gzip'd body is
/// ~10 KiB); a larger one, a gzip bomb for example, is freed after its scrape.
const KEEP_COMPRESSED: usize = 256 * 1024;

thread_local! {
    static KEPT: RefCell<Option<Decoder>> = const { RefCell::new(None) };
}

/// Reads the compressed body with `fill` into this thread's buffer, then hands the decoder
/// to `drain` once per gzip member (it reads the member's text to its end, bounded as it
/// likes; an inflate error reaches it as the `io::Error` of a read). Errors of `fill` and
/// `drain` are returned as they are.
pub(super) fn gunzip<E>(
    fill: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
    mut drain: impl FnMut(&mut Decoder) -> Result<(), E>,
) -> Result<(), E> {
    let kept = KEPT.with(|k| k.borrow_mut().take());
    let (mut buf, dec) = match kept {
        Some(mut d) => (d.reset(Cursor::new(Vec::new())).into_inner(), Some(d)),
        None => (Vec::new(), None),
    };
    buf.clear();
    let filled = fill(&mut buf);
    let cursor = Cursor::new(buf);
    let mut dec = match dec {
        Some(mut d) => {
            d.reset(cursor);
            d
        }
        None => GzDecoder::new(cursor),
    };
    let result = filled.and_then(|()| members(&mut dec, &mut drain));
    let mut buf = dec.reset(Cursor::new(Vec::new())).into_inner();
    if buf.capacity() > KEEP_COMPRESSED {
        buf = Vec::new();
    }
    dec.reset(Cursor::new(buf));
    KEPT.with(|k| *k.borrow_mut() = Some(dec));
    result
}

/// Every member of the stream in `dec`, each drained in turn.
fn members<E>(
    dec: &mut Decoder,
    drain: &mut impl FnMut(&mut Decoder) -> Result<(), E>,
) -> Result<(), E> {
    loop {
        drain(dec)?;
        let c = dec.get_ref();
        if usize::try_from(c.position()).unwrap_or(usize::MAX) >= c.get_ref().len() {
            return Ok(());
        }
        // Another member follows: a fresh header, the same input at its place.
        let rest = dec.reset(Cursor::new(Vec::new()));
        dec.reset(rest);
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

    /// Inflates `body` into a vector of at most `limit` bytes ("too large" past it).
    fn run(body: &[u8], limit: u64) -> Result<Vec<u8>, String> {
        use std::io::Read;
        let mut out = Vec::new();
        gunzip(
            |b| {
                b.extend_from_slice(body);
                Ok(())
            },
            |d| {
                let room = limit + 1 - out.len() as u64;
                d.take(room)
                    .read_to_end(&mut out)
                    .map_err(|e| format!("gzip: {e}"))?;
                if out.len() as u64 > limit {
                    return Err("too large".to_string());
                }
                Ok(())
            },
        )
        .map(|()| out)
    }

    #[test]
    fn bodies_inflate_one_after_another_on_the_kept_decoder() {
        // The same thread's decoder serves each body from a clean state.
        for i in 0..3 {
            let text = format!("gpuwarden_gpu_up{{gpu=\"{i}\"}} 1\n").repeat(100 + i);
            assert_eq!(
                run(&gz(&[text.as_bytes()]), 1 << 20).unwrap(),
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
        assert!(run(&cut, 1 << 20).is_err_and(|m| m.starts_with("gzip")));
        assert!(run(b"not gzip", 1 << 20).is_err_and(|m| m.starts_with("gzip")));
        assert_eq!(run(&gz(&[b"c 3\n"]), 1 << 20).unwrap(), b"c 3\n");
    }

    #[test]
    fn a_gzip_bomb_stops_at_the_limit_and_its_buffer_is_not_kept() {
        let zeros = vec![0u8; 8 << 20];
        let bomb = gz(&[&zeros]);
        assert_eq!(run(&bomb, 1 << 20), Err("too large".to_string()));
        // A compressed body over KEEP_COMPRESSED is not held after its scrape.
        let big: Vec<u8> = (0..400_000u32).flat_map(|i| i.to_le_bytes()).collect();
        let z = gz(&[&big]);
        assert!(z.len() > KEEP_COMPRESSED, "{}", z.len());
        assert_eq!(run(&z, 4 << 20).unwrap(), big);
        let held = KEPT.with(|k| {
            k.borrow_mut()
                .as_mut()
                .map(|d| d.get_ref().get_ref().capacity())
        });
        assert_eq!(held, Some(0));
    }
}
