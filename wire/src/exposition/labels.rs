//! A sample's label set, borrowed from the body: validated once when the line is parsed,
//! read in place afterwards (values unescaped only when they hold an escape).

use std::borrow::Cow;

/// Pairs whose places the parser records (an agent sends at most 5 labels a sample).
pub(super) const INDEXED: usize = 6;

/// Where one pair lies in the raw text: name start and end, value start and end (the
/// value as sent, between its quotes).
pub(super) type Span = [u16; 4];

/// The label set of a sample: the raw text between `{` and `}`, already validated.
///
/// The parser also records where each pair lies when the set has at most 6
/// pairs and is under 64 KiB, so [`Labels::get`] compares names without reading the text again:
/// reading a label late in the set was ~1,000 instructions per sample before.
#[derive(Debug, Clone, Copy, Default)]
pub struct Labels<'a> {
    pub(super) raw: &'a str,
    /// The pairs' places; used only when `indexed` is at most [`INDEXED`] (the count of pairs).
    pub(super) spans: [Span; INDEXED],
    /// How many pairs `spans` holds, or `u8::MAX` when the set was not indexed (more pairs,
    /// or longer than `u16` offsets reach): reads then scan the text.
    pub(super) indexed: u8,
}

impl PartialEq for Labels<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw
    }
}

impl Eq for Labels<'_> {}

impl<'a> Labels<'a> {
    /// A set read from `raw` with its pairs' places (`None`: not indexed).
    pub(super) fn new(raw: &'a str, spans: Option<&[Span]>) -> Self {
        let mut l = Labels {
            raw,
            spans: [[0; 4]; INDEXED],
            indexed: u8::MAX,
        };
        if let Some(sp) = spans.filter(|sp| sp.len() <= INDEXED) {
            l.spans[..sp.len()].copy_from_slice(sp);
            l.indexed = sp.len() as u8;
        }
        l
    }

    /// The text between the braces, as sent (escapes included).
    pub fn raw(&self) -> &'a str {
        self.raw
    }

    /// True when the sample has no labels.
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }

    /// The labels in order, values unescaped.
    pub fn iter(&self) -> LabelIter<'a> {
        LabelIter {
            raw: self.raw_pairs(),
        }
    }

    /// The value of label `name`.
    pub fn get(&self, name: &str) -> Option<Cow<'a, str>> {
        // Only the value asked for is unescaped (the others are skipped as sent).
        if usize::from(self.indexed) <= INDEXED {
            // Through the parser's index: a name of another length is passed over without
            // reading it, and a label name (a few bytes) is compared in line, not by a call
            // to memcmp (at 10,000 agents these reads were ~8 % of the control plane's CPU).
            let raw = self.raw.as_bytes();
            for &[a, b, c, d] in &self.spans[..usize::from(self.indexed)] {
                let (a, b) = (usize::from(a), usize::from(b));
                if b.wrapping_sub(a) == name.len()
                    && raw
                        .get(a..b)
                        .is_some_and(|n| same_bytes(n, name.as_bytes()))
                {
                    return self.raw.get(usize::from(c)..usize::from(d)).map(unescape);
                }
            }
            return None;
        }
        self.raw_pairs()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| unescape(v))
    }

    /// The labels in order with their values as sent (escapes included). An escaped value
    /// has one spelling only (`\\`, `\"`, `\n` are the only escapes and each is required),
    /// so raw values compare as the values do.
    pub(super) fn raw_pairs(&self) -> RawPairs<'a> {
        RawPairs {
            rest: self.raw.as_bytes(),
            raw: self.raw,
            pos: 0,
            spans: self.spans,
            indexed: self.indexed,
        }
    }

    /// Same names with the same values, in any order (names are unique within a set).
    pub(super) fn same_set(&self, other: &Labels<'_>) -> bool {
        self.raw_pairs().count() == other.raw_pairs().count()
            && self
                .raw_pairs()
                .all(|(n, v)| other.raw_pairs().any(|(m, w)| m == n && w == v))
    }
}

/// Iterator over validated labels, values unescaped.
#[derive(Debug, Clone)]
pub struct LabelIter<'a> {
    raw: RawPairs<'a>,
}

impl<'a> Iterator for LabelIter<'a> {
    type Item = (&'a str, Cow<'a, str>);

    fn next(&mut self) -> Option<Self::Item> {
        self.raw.next().map(|(n, v)| (n, unescape(v)))
    }
}

/// Iterator over validated labels, values as sent.
#[derive(Debug, Clone)]
pub(super) struct RawPairs<'a> {
    rest: &'a [u8],
    raw: &'a str,
    /// The next byte to scan, or (indexed) the next pair.
    pos: usize,
    /// The parser's index of the set, read instead of the text when `indexed` ≤ [`INDEXED`].
    spans: [Span; INDEXED],
    indexed: u8,
}

impl<'a> Iterator for RawPairs<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        if usize::from(self.indexed) <= INDEXED {
            let [a, b, c, d] = *self.spans[..usize::from(self.indexed)].get(self.pos)?;
            self.pos += 1;
            let at = |x: u16, y: u16| self.raw.get(usize::from(x)..usize::from(y));
            return Some((at(a, b)?, at(c, d)?));
        }
        // The set was validated when the line was parsed: names, `="…"`, commas, blanks.
        let b = self.rest;
        let mut i = self.pos;
        while i < b.len() && matches!(b[i], b' ' | b'\t' | b',') {
            i += 1;
        }
        if i >= b.len() {
            self.pos = i;
            return None;
        }
        let name_start = i;
        while i < b.len() && super::line::is_label_char(b[i]) {
            i += 1;
        }
        let name = &self.raw[name_start..i];
        while i < b.len() && b[i] != b'"' {
            i += 1;
        }
        i += 1;
        let value_start = i.min(b.len());
        // Short values byte by byte (a call to memchr2 costs more than a few bytes), then
        // straight to the closing quote (an escaped quote is skipped with its backslash).
        let short = (i + 16).min(b.len());
        while i < short && b[i] != b'"' {
            i += if b[i] == b'\\' { 2 } else { 1 };
        }
        while i < b.len() && b[i] != b'"' {
            match b.get(i..).and_then(|r| memchr::memchr2(b'"', b'\\', r)) {
                Some(n) if b[i + n] == b'"' => {
                    i += n;
                    break;
                }
                Some(n) => i += n + 2,
                None => {
                    i = b.len();
                    break;
                }
            }
        }
        let value = &self.raw[value_start..i.min(b.len())];
        self.pos = i + 1;
        Some((name, value))
    }
}

/// Equal byte strings of the same length; short ones (label names) compared in line.
#[inline]
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() <= 16 {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
    } else {
        a == b
    }
}

pub(super) fn unescape(v: &str) -> Cow<'_, str> {
    // Short values (a GPU index, a link, a type) are looked through in line.
    let escaped = if v.len() <= 16 {
        v.bytes().any(|b| b == b'\\')
    } else {
        v.contains('\\')
    };
    if !escaped {
        return Cow::Borrowed(v);
    }
    let mut out = String::with_capacity(v.len());
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some(other) => out.push(other),
                None => {}
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}
