//! One line of a body: metric and label names, label sets, values, timestamps, `HELP` and
//! `TYPE` comments, each checked byte by byte with the column of the first fault.

use super::labels::Span;
use super::rules::SetHash;
use super::{Entry, Labels, MetricType, ParseError, Sample};

/// Byte classes, one table lookup per byte in the name loops (the four comparisons each
/// byte took were a fifth of the parser's own time in `perf annotate`).
const NAME_START: u8 = 1;
const NAME_CHAR: u8 = 2;
const LABEL_START: u8 = 4;
const LABEL_CHAR: u8 = 8;
static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        let alpha = b.is_ascii_alphabetic() || b == b'_';
        let digit = b.is_ascii_digit();
        let colon = b == b':';
        t[c] = (if alpha || colon { NAME_START } else { 0 })
            | (if alpha || digit || colon {
                NAME_CHAR
            } else {
                0
            })
            | (if alpha { LABEL_START } else { 0 })
            | (if alpha || digit { LABEL_CHAR } else { 0 });
        c += 1;
    }
    t
};

fn is_name_start(c: u8) -> bool {
    CLASS[c as usize] & NAME_START != 0
}
fn is_name_char(c: u8) -> bool {
    CLASS[c as usize] & NAME_CHAR != 0
}
fn is_label_start(c: u8) -> bool {
    CLASS[c as usize] & LABEL_START != 0
}
pub(super) fn is_label_char(c: u8) -> bool {
    CLASS[c as usize] & LABEL_CHAR != 0
}
fn is_blank(c: u8) -> bool {
    c == b' ' || c == b'\t'
}

pub(super) struct Line<'a> {
    pub(super) b: &'a [u8],
    /// The same line as text when the whole body is valid UTF-8 (checked once, up front):
    /// slices are then taken without checking each one again.
    pub(super) text: Option<&'a str>,
    pub(super) line: usize,
}

impl<'a> Line<'a> {
    /// Bytes `a..b` of the line as text, or `None` when they are not valid UTF-8.
    fn text(&self, a: usize, b: usize) -> Option<&'a str> {
        match self.text {
            Some(t) => t.get(a..b),
            None => std::str::from_utf8(&self.b[a..b]).ok(),
        }
    }

    pub(super) fn err(&self, at: usize, message: &'static str) -> ParseError {
        ParseError {
            line: self.line,
            column: at + 1,
            message,
        }
    }

    pub(super) fn skip_blanks(&self, mut i: usize) -> usize {
        while i < self.b.len() && is_blank(self.b[i]) {
            i += 1;
        }
        i
    }

    /// `[a-zA-Z_:][a-zA-Z0-9_:]*` at `i`; returns the end. `known` is a name already checked
    /// (the previous sample's): when the line repeats it, as a family's lines do, its bytes
    /// are compared at once instead of classed one by one.
    fn name(&self, i: usize, known: &str) -> Result<usize, ParseError> {
        if let Some(end) = self.repeats(i, known, is_name_char) {
            return Ok(end);
        }
        if i >= self.b.len() || !is_name_start(self.b[i]) {
            return Err(self.err(i, "expected a metric name"));
        }
        let mut j = i + 1;
        while j < self.b.len() && is_name_char(self.b[j]) {
            j += 1;
        }
        Ok(j)
    }

    /// The end of `known` when the line holds it at `i` and no name character follows (a
    /// longer name is read byte by byte); `known` is empty or already valid as a name.
    #[inline]
    fn repeats(&self, i: usize, known: &str, more: fn(u8) -> bool) -> Option<usize> {
        let end = i + known.len();
        let got = self.b.get(i..end)?;
        // Label names are a few bytes: compared in line, not through a call to memcmp.
        let same = if known.len() <= 16 {
            got.iter().zip(known.as_bytes()).all(|(a, b)| a == b)
        } else {
            got == known.as_bytes()
        };
        (!known.is_empty() && same && !self.b.get(end).is_some_and(|&c| more(c))).then_some(end)
    }

    /// Validates `{…}` starting after the `{` at `i`; returns the index of the `}`.
    ///
    /// The same pass records each label name with its offset in `names` (for
    /// [`Line::unique_names`]) and adds each `(name, raw value)` pair's hash to `set`, so the
    /// label set is read once per line (the series rules need its order-independent hash).
    fn labels(
        &self,
        mut i: usize,
        names: &mut Vec<(&'a str, usize)>,
        set: &mut SetHash<'_>,
        spans: &mut Vec<Span>,
    ) -> Result<usize, ParseError> {
        let b = self.b;
        let open = i;
        // On entry `names` holds the previous sample's label names, checked: a pair whose
        // name repeats the one at its place there is compared at once (a family's samples
        // mostly share their label names and order).
        let mut k = 0;
        spans.clear();
        loop {
            i = self.skip_blanks(i);
            match b.get(i) {
                Some(b'}') => {
                    names.truncate(k);
                    return Ok(i);
                }
                Some(&c) if is_label_start(c) => {}
                Some(_) => return Err(self.err(i, "expected a label name or '}'")),
                None => return Err(self.err(i, "unterminated label set")),
            }
            let name_start = i;
            let known = names.get(k).map_or("", |n| n.0);
            if let Some(end) = self.repeats(i, known, is_label_char) {
                i = end;
            } else {
                while i < b.len() && is_label_char(b[i]) {
                    i += 1;
                }
            }
            let name_end = i;
            i = self.skip_blanks(i);
            if b.get(i) != Some(&b'=') {
                return Err(self.err(i, "expected '=' after the label name"));
            }
            i = self.skip_blanks(i + 1);
            if b.get(i) != Some(&b'"') {
                return Err(self.err(i, "expected '\"' to open the label value"));
            }
            i += 1;
            let value_start = i;
            loop {
                // Straight to the next quote or backslash.
                i += memchr::memchr2(b'"', b'\\', &b[i..])
                    .ok_or_else(|| self.err(b.len(), "unterminated label value"))?;
                if b[i] == b'"' {
                    break;
                }
                match b.get(i + 1) {
                    Some(b'\\' | b'"' | b'n') => i += 2,
                    _ => {
                        return Err(
                            self.err(i, "invalid escape in label value (use \\\\, \\\" or \\n)")
                        )
                    }
                }
            }
            // Between two quotes (ASCII): within a body checked as UTF-8 up front, the
            // value is valid text without looking again.
            if self.text.is_none() && self.text(value_start, i).is_none() {
                return Err(self.err(value_start, "label value is not valid UTF-8"));
            }
            let Some(name) = self.text(name_start, name_end) else {
                return Err(self.err(name_start, "bad label name"));
            };
            if k < names.len() {
                names[k] = (name, name_start);
            } else {
                names.push((name, name_start));
            }
            k += 1;
            // The pair as `name="value`: its bytes as sent when nothing stands between the
            // name and the quote, as agents send it.
            if value_start == name_end + 2 {
                set.add(&b[name_start..i]);
            } else {
                set.add_parts(name.as_bytes(), &b[value_start..i]);
            }
            // Places within the set's text (which starts at `open`), while u16 reaches.
            let at = |x: usize| u16::try_from(x - open).ok();
            if let (Some(a), Some(n), Some(v), Some(e)) =
                (at(name_start), at(name_end), at(value_start), at(i))
            {
                spans.push([a, n, v, e]);
            }
            i = self.skip_blanks(i + 1);
            match b.get(i) {
                Some(b',') => i += 1,
                Some(b'}') => {
                    names.truncate(k);
                    return Ok(i);
                }
                Some(_) => return Err(self.err(i, "expected ',' or '}' after the label value")),
                None => return Err(self.err(i, "unterminated label set")),
            }
        }
    }

    fn token(&self, i: usize) -> usize {
        let mut j = i;
        while j < self.b.len() && !is_blank(self.b[j]) {
            j += 1;
        }
        j
    }

    /// A label name may appear once per sample (`m{gpu="0",gpu="1"}` is refused, as
    /// Prometheus refuses it). `names` holds the set's names with their offsets in the line,
    /// as [`Line::labels`] recorded them.
    fn unique_names(&self, names: &mut [(&'a str, usize)]) -> Result<(), ParseError> {
        // A bit per name from its length and end bytes: names that set distinct bits are
        // distinct, and most sets need no comparison at all.
        let mut bits = 0u64;
        let clash = names.iter().any(|(n, _)| {
            let b = n.as_bytes();
            let (first, last) = (b.first().copied(), b.last().copied());
            let k = (b.len() * 7
                + usize::from(first.unwrap_or(0)) * 3
                + usize::from(last.unwrap_or(0)))
                & 63;
            let seen = bits & (1 << k) != 0;
            bits |= 1 << k;
            seen
        });
        if !clash {
            return Ok(());
        }
        let repeated = if names.len() <= 16 {
            // Length and first byte first: most names differ there, without a memcmp.
            let same = |a: &str, b: &str| {
                a.len() == b.len() && a.as_bytes().first() == b.as_bytes().first() && a == b
            };
            (1..names.len())
                .find(|&i| names[..i].iter().any(|(n, _)| same(n, names[i].0)))
                .map(|i| names[i].1)
        } else {
            names.sort_unstable();
            names
                .windows(2)
                .filter(|w| w[0].0 == w[1].0)
                .map(|w| w[1].1)
                .min()
        };
        match repeated {
            Some(col) => Err(self.err(col, "label name repeated in one sample")),
            None => Ok(()),
        }
    }

    /// A sample line; `names` and `spans` are scratch space reused from line to line, `set`
    /// receives the hash of the label set.
    pub(super) fn sample(
        &self,
        known: &str,
        names: &mut Vec<(&'a str, usize)>,
        spans: &mut Vec<Span>,
        set: &mut SetHash<'_>,
    ) -> Result<Sample<'a>, ParseError> {
        let b = self.b;
        let start = self.skip_blanks(0);
        let name_end = self.name(start, known)?;
        let mut i = name_end;
        let mut labels = Labels::default();
        let open = self.skip_blanks(i);
        if b.get(open) == Some(&b'{') {
            let close = self.labels(open + 1, names, set, spans)?;
            // Validated ASCII structure and UTF-8 values: the slice is valid UTF-8.
            let raw = self
                .text(open + 1, close)
                .ok_or_else(|| self.err(open, "labels are not valid UTF-8"))?;
            // Indexed only when every pair's place was recorded.
            labels = Labels::new(raw, (spans.len() == names.len()).then_some(&spans[..]));
            self.unique_names(names)?;
            i = close + 1;
        }
        let value_start = self.skip_blanks(i);
        if value_start == i && value_start < b.len() {
            return Err(self.err(i, "expected a blank before the value"));
        }
        let value_end = self.token(value_start);
        if value_start == value_end {
            return Err(self.err(value_start, "missing value"));
        }
        let value = parse_value(&b[value_start..value_end])
            .ok_or_else(|| self.err(value_start, "value is not a number"))?;
        let ts_start = self.skip_blanks(value_end);
        let mut timestamp_ms = None;
        if ts_start < b.len() {
            let ts_end = self.token(ts_start);
            let ts = self
                .text(ts_start, ts_end)
                .and_then(|t| t.parse::<i64>().ok())
                .ok_or_else(|| self.err(ts_start, "timestamp is not an integer (milliseconds)"))?;
            timestamp_ms = Some(ts);
            if self.skip_blanks(ts_end) < b.len() {
                return Err(self.err(
                    self.skip_blanks(ts_end),
                    "unexpected text after the timestamp",
                ));
            }
        }
        // Names are ASCII by construction.
        let name = self
            .text(start, name_end)
            .ok_or_else(|| self.err(start, "bad name"))?;
        Ok(Sample {
            name,
            labels,
            value,
            timestamp_ms,
        })
    }

    pub(super) fn comment(&self) -> Result<Option<Entry<'a>>, ParseError> {
        let b = self.b;
        let i = self.skip_blanks(1);
        let kw_end = self.token(i);
        let kw = &b[i..kw_end];
        if kw != b"HELP" && kw != b"TYPE" {
            return Ok(None); // an ordinary comment
        }
        let name_start = self.skip_blanks(kw_end);
        let name_end = self.name(name_start, "")?;
        if name_end < b.len() && !is_blank(b[name_end]) {
            return Err(self.err(name_end, "unexpected character in the metric name"));
        }
        let name = self
            .text(name_start, name_end)
            .ok_or_else(|| self.err(name_start, "bad name"))?;
        let rest_start = self.skip_blanks(name_end);
        let rest = self
            .text(rest_start, b.len())
            .ok_or_else(|| self.err(rest_start, "text is not valid UTF-8"))?;
        if kw == b"HELP" {
            // The docstring's only escapes are `\\` and `\n`.
            let mut bytes = rest.bytes().enumerate();
            while let Some((at, c)) = bytes.next() {
                if c == b'\\' && !matches!(bytes.next(), Some((_, b'\\' | b'n'))) {
                    return Err(
                        self.err(rest_start + at, "invalid escape in HELP (use \\\\ or \\n)")
                    );
                }
            }
            return Ok(Some(Entry::Help { name, text: rest }));
        }
        let kind = match rest.trim_end_matches([' ', '\t']) {
            "counter" => MetricType::Counter,
            "gauge" => MetricType::Gauge,
            "histogram" => MetricType::Histogram,
            "summary" => MetricType::Summary,
            "untyped" => MetricType::Untyped,
            _ => {
                return Err(self.err(
                    rest_start,
                    "unknown metric type (counter, gauge, histogram, summary, untyped)",
                ))
            }
        };
        Ok(Some(Entry::Type { name, kind }))
    }
}

/// Go's `strconv.ParseFloat` as Prometheus uses it: decimals, exponents, `NaN`, `±Inf`.
pub(super) fn parse_value(t: &[u8]) -> Option<f64> {
    // Fast path for plain integers, the commonest values: up to 15 digits are exact in an
    // f64 and cannot overflow a u64.
    if !t.is_empty() && t.len() < 16 && t.iter().all(u8::is_ascii_digit) {
        let v = t.iter().fold(0u64, |v, d| v * 10 + u64::from(d - b'0'));
        return Some(v as f64);
    }
    std::str::from_utf8(t).ok()?.parse::<f64>().ok()
}

#[cfg(test)]
mod tests;
