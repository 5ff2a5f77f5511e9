//! A 64-bit digest of the values a rule reads, to tell whether they changed since the rule's
//! last evaluation on a GPU (`memo`).

/// A 64-bit digest of the values a rule reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fingerprint(u64);

impl Default for Fingerprint {
    fn default() -> Self {
        Fingerprint(0x9e37_79b9_7f4a_7c15)
    }
}

impl Fingerprint {
    /// Mixes one word in (a multiply–xorshift round, as in splitmix64).
    pub(crate) fn add(&mut self, v: u64) {
        let mut z = (self.0 ^ v).wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        self.0 = z ^ (z >> 31);
    }

    /// Mixes a string in, with its length.
    pub(crate) fn add_str(&mut self, s: &str) {
        self.add(s.len() as u64);
        for c in s.as_bytes().chunks(8) {
            let mut w = [0u8; 8];
            w[..c.len()].copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
    }
}
