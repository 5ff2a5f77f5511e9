//! Reading kernel-log lines with a bound on the memory one line may take.

use std::io::{BufRead, ErrorKind};

/// Longest kernel-log line the reader keeps, in bytes. `/dev/kmsg` records are at most a
/// few KiB and a driver's XID line well under one; a longer line (a replayed file, a
/// corrupted journal) is cut here and the rest of it skipped, so one line never costs more
/// memory than this.
pub const MAX_LINE_BYTES: usize = 8 * 1024;

/// Reads one line (through `\n`) into `buf`, keeping at most `max` bytes of it and skipping
/// the rest. Returns the bytes consumed (0 at the end of the input) and whether the line was
/// cut.
pub fn read_line_bounded<R: BufRead>(
    r: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<(usize, bool)> {
    let (mut consumed, mut cut) = (0, false);
    loop {
        let chunk = match r.fill_buf() {
            Ok(c) => c,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if chunk.is_empty() {
            return Ok((consumed, cut));
        }
        let (take, done) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (chunk.len(), false),
        };
        let room = max.saturating_sub(buf.len());
        if take > room {
            cut = true;
        }
        buf.extend_from_slice(&chunk[..take.min(room)]);
        r.consume(take);
        consumed += take;
        if done {
            return Ok((consumed, cut));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_line_is_cut_and_the_next_line_is_read_whole() {
        let mut input = vec![b'x'; 100_000];
        input.extend_from_slice(b"\nshort\nlast-without-newline");
        // A small buffer, so lines span many fills.
        let mut r = std::io::BufReader::with_capacity(1000, &input[..]);
        let mut buf = Vec::new();
        assert_eq!(
            read_line_bounded(&mut r, &mut buf, 64).unwrap(),
            (100_001, true)
        );
        assert_eq!(buf, vec![b'x'; 64]);
        buf.clear();
        assert_eq!(read_line_bounded(&mut r, &mut buf, 64).unwrap(), (6, false));
        assert_eq!(buf, b"short\n");
        buf.clear();
        assert_eq!(
            read_line_bounded(&mut r, &mut buf, 64).unwrap(),
            (20, false)
        );
        assert_eq!(buf, b"last-without-newline");
        buf.clear();
        assert_eq!(read_line_bounded(&mut r, &mut buf, 64).unwrap(), (0, false));
    }
}
