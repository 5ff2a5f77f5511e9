//! A sample's label set, borrowed from the body: validated once when the line is parsed,
//! read in place afterwards (values unescaped only when they hold an escape).

use std::borrow::Cow;

/// The label set of a sample: the raw text between `{` and `}`, already validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Labels<'a> {
    pub(super) raw: &'a str,
}

impl<'a> Labels<'a> {
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
            raw: RawPairs {
                rest: self.raw.as_bytes(),
                raw: self.raw,
                pos: 0,
            },
        }
    }

    /// The value of label `name`.
    pub fn get(&self, name: &str) -> Option<Cow<'a, str>> {
        // Only the value asked for is unescaped (the others are skipped as sent).
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
    pos: usize,
}

impl<'a> Iterator for RawPairs<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
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
        // Straight to the closing quote (an escaped quote is skipped with its backslash).
        loop {
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

pub(super) fn unescape(v: &str) -> Cow<'_, str> {
    if !v.contains('\\') {
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
