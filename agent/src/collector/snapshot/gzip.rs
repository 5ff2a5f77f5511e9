//! gzip of the `/metrics` body with one deflate compressor kept for the process, reset for
//! each body.
//!
//! A new compressor (`GzEncoder::new`, as before) allocated and zeroed miniz_oxide's ~300 KB
//! of hash tables and buffers each time (flate2 now deflates through zlib-rs): measured with `perf` on an agent with 8 fake GPUs
//! scraped every 15 s, that was 73 % of the gzip's CPU (the memset and the page faults of a
//! fresh mapping), more than the compression. The kept one costs that memory for the
//! process's life once a client has asked for gzip.

use std::sync::Mutex;

use flate2::{Compress, Compression, Crc, FlushCompress, Status};

/// The compressor, made by the first gzip scrape.
static DEFLATE: Mutex<Option<Compress>> = Mutex::new(None);

/// The gzip member header (RFC 1952): deflate, no name, no time, fastest level (XFL 4),
/// operating system unknown.
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 4, 0xff];

/// `body` gzip-compressed at level 1.
pub(super) fn gzip(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() / 8 + 64);
    out.extend_from_slice(&HEADER);
    let mut slot = DEFLATE.lock().unwrap_or_else(|p| p.into_inner());
    let deflate = slot.get_or_insert_with(|| Compress::new(Compression::fast(), false));
    deflate.reset();
    let start = deflate.total_in();
    loop {
        let done = (deflate.total_in() - start) as usize;
        if out.capacity() - out.len() < 1024 {
            out.reserve(out.capacity() / 2 + 1024);
        }
        // Into a Vec with room to spare: the only error is a broken stream, not possible here.
        match deflate.compress_vec(&body[done..], &mut out, FlushCompress::Finish) {
            Ok(Status::StreamEnd) => break,
            Ok(_) => {}
            Err(_) => {
                // Leave no half-written stream for the next caller.
                *slot = None;
                return Vec::new();
            }
        }
    }
    drop(slot);
    let mut crc = Crc::new();
    crc.update(body);
    out.extend_from_slice(&crc.sum().to_le_bytes());
    out.extend_from_slice(&crc.amount().to_le_bytes());
    out
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::gzip;

    fn gunzip(gz: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(gz)
            .read_to_end(&mut out)
            .expect("valid gzip");
        out
    }

    #[test]
    fn the_kept_compressor_makes_a_whole_gzip_member_for_each_body() {
        // A large body (several output buffers), then a small one and an empty one: the
        // compressor starts afresh each time (nothing of the previous body leaks in).
        let big: Vec<u8> = (0..400_000u32)
            .flat_map(|i| format!("gpu_metric{{gpu=\"{}\"}} {}\n", i % 8, i).into_bytes())
            .collect();
        for body in [&big[..], b"up 1\n", b"", &big[..1000]] {
            let gz = gzip(body);
            assert_eq!(gunzip(&gz), body, "{} bytes", body.len());
            // zlib-rs's level 1 (zlib-ng's quick strategy, static Huffman codes) packs a
            // kilobyte of text to about half; the agent's 168 KB body to 7 %.
            assert!(
                gz.len() < body.len() / 2 + 32,
                "not compressed: {} bytes",
                gz.len()
            );
        }
    }
}
