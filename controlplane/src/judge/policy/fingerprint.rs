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

/// A remembered rule result in one word: the fingerprint's upper 62 bits, bit 1 set when a
/// result is held, bit 0 the result. 0 means nothing remembered. (Two bits fewer of digest
/// make a false "unchanged" 4× likelier: still one in 2^62 per comparison.)
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Remembered(u64);

impl Remembered {
    const HELD: u64 = 2;

    /// `matched` for the values digested in `fp`; nothing for `None`.
    pub(crate) fn new(r: Option<(Fingerprint, bool)>) -> Self {
        match r {
            Some((fp, m)) => Remembered((fp.0 & !3) | Self::HELD | u64::from(m)),
            None => Remembered(0),
        }
    }

    /// The remembered result when it was for the same values as `fp`.
    pub(crate) fn result_for(self, fp: Fingerprint) -> Option<bool> {
        (self.0 & Self::HELD != 0 && self.0 & !3 == fp.0 & !3).then_some(self.0 & 1 == 1)
    }
}
