//! A strict, zero-copy parser of the Prometheus text exposition format (version 0.0.4).
//!
//! Why not a crate: `prometheus-parse` 0.2.5 silently corrupts valid input (it drops names
//! with a colon, cuts a label value at a comma, loses a label whose value holds `=`, drops a
//! sample whose value holds `}`, leaves escaped quotes escaped) and skips broken lines
//! without a word; `openmetrics-parser` is correct but 4× slower still, LGPL-3.0, and
//! rejects untyped series (measurements in `../shared/bench/peer/parse_bench.out`).
//!
//! This parser borrows every name and label from the body: a [`Sample`] holds slices, and a
//! label value is unescaped only when it contains an escape ([`Labels::iter`] yields
//! `Cow::Borrowed` otherwise). Every line is checked; the first broken line is an error with
//! its line and column, never skipped. A body that does not end with a newline is reported as
//! truncated.
//!
//! Rules enforced (the text format as `docs/metrics.md` lists it, and as Prometheus and
//! `promtool check metrics` read it): lines end with `\n`; blanks are spaces and tabs;
//! metric names `[a-zA-Z_:][a-zA-Z0-9_:]*`, label names `[a-zA-Z_][a-zA-Z0-9_]*`; label
//! values are UTF-8 with the escapes `\\`, `\"` and `\n` only; a label name appears once
//! per sample; values are Go floats (`NaN`, `+Inf`, `-Inf`); timestamps are integer
//! milliseconds; `HELP` text is UTF-8 with the escapes `\\` and `\n` only; `TYPE` is
//! `counter`, `gauge`, `histogram`, `summary` or `untyped`. Across lines (`rules.rs`): a
//! family's lines form one group; at most one `HELP` and one `TYPE` per family, the `TYPE`
//! before its first sample; no series (name and label set, in any order) twice in a body;
//! histogram buckets carry a numeric `le`, summary quantiles a numeric `quantile`.
//! Not enforced: the `__` prefix reserved for label names (Prometheus's own parser accepts
//! it too), hexadecimal float values (Go accepts them, no exporter sends them).

use std::fmt;

mod labels;
mod rules;

pub use labels::{LabelIter, Labels};

/// Where and why parsing stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based line.
    pub line: usize,
    /// 1-based byte column.
    pub column: usize,
    /// What is wrong.
    pub message: &'static str,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}, column {}: {}",
            self.line, self.column, self.message
        )
    }
}

impl std::error::Error for ParseError {}

/// A family's declared type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricType {
    /// `counter`
    Counter,
    /// `gauge`
    Gauge,
    /// `histogram`
    Histogram,
    /// `summary`
    Summary,
    /// `untyped`
    Untyped,
}

/// One sample line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample<'a> {
    /// Metric name (with its `_bucket`, `_sum`, `_count` or `_total` suffix as sent).
    pub name: &'a str,
    /// Labels.
    pub labels: Labels<'a>,
    /// Value.
    pub value: f64,
    /// Timestamp in milliseconds, when the line has one.
    pub timestamp_ms: Option<i64>,
}

/// One meaningful line.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry<'a> {
    /// A sample.
    Sample(Sample<'a>),
    /// `# HELP name text` (text as sent, escapes included).
    Help {
        /// Family.
        name: &'a str,
        /// Docstring.
        text: &'a str,
    },
    /// `# TYPE name type`
    Type {
        /// Family.
        name: &'a str,
        /// Declared type.
        kind: MetricType,
    },
}

/// Parses a body line by line; see the module docs.
#[derive(Debug, Clone)]
pub struct Parser<'a> {
    body: &'a [u8],
    pos: usize,
    line: usize,
    failed: bool,
    /// The rules across lines (grouping, HELP/TYPE once, no series twice).
    rules: rules::BodyRules<'a>,
    /// The current line's label names with their columns (reused from line to line).
    names: Vec<(&'a str, usize)>,
}

impl<'a> Parser<'a> {
    /// A parser over `body` (any bytes; non-UTF-8 text is an error where it appears).
    pub fn new(body: &'a [u8]) -> Self {
        Parser {
            body,
            pos: 0,
            line: 0,
            failed: false,
            rules: rules::BodyRules::default(),
            names: Vec::new(),
        }
    }
}

fn is_name_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c == b':'
}
fn is_name_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b':'
}
fn is_label_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_'
}
fn is_label_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}
fn is_blank(c: u8) -> bool {
    c == b' ' || c == b'\t'
}

struct Line<'a> {
    b: &'a [u8],
    line: usize,
}

impl<'a> Line<'a> {
    fn err(&self, at: usize, message: &'static str) -> ParseError {
        ParseError {
            line: self.line,
            column: at + 1,
            message,
        }
    }

    fn skip_blanks(&self, mut i: usize) -> usize {
        while i < self.b.len() && is_blank(self.b[i]) {
            i += 1;
        }
        i
    }

    /// `[a-zA-Z_:][a-zA-Z0-9_:]*` at `i`; returns the end.
    fn name(&self, i: usize) -> Result<usize, ParseError> {
        if i >= self.b.len() || !is_name_start(self.b[i]) {
            return Err(self.err(i, "expected a metric name"));
        }
        let mut j = i + 1;
        while j < self.b.len() && is_name_char(self.b[j]) {
            j += 1;
        }
        Ok(j)
    }

    /// Validates `{…}` starting after the `{` at `i`; returns the index of the `}`.
    fn labels(&self, mut i: usize) -> Result<usize, ParseError> {
        let b = self.b;
        loop {
            i = self.skip_blanks(i);
            match b.get(i) {
                Some(b'}') => return Ok(i),
                Some(&c) if is_label_start(c) => {}
                Some(_) => return Err(self.err(i, "expected a label name or '}'")),
                None => return Err(self.err(i, "unterminated label set")),
            }
            while i < b.len() && is_label_char(b[i]) {
                i += 1;
            }
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
                match b.get(i) {
                    None => return Err(self.err(i, "unterminated label value")),
                    Some(b'"') => break,
                    Some(b'\\') => match b.get(i + 1) {
                        Some(b'\\' | b'"' | b'n') => i += 2,
                        _ => {
                            return Err(self
                                .err(i, "invalid escape in label value (use \\\\, \\\" or \\n)"))
                        }
                    },
                    Some(_) => i += 1,
                }
            }
            if std::str::from_utf8(&b[value_start..i]).is_err() {
                return Err(self.err(value_start, "label value is not valid UTF-8"));
            }
            i = self.skip_blanks(i + 1);
            match b.get(i) {
                Some(b',') => i += 1,
                Some(b'}') => return Ok(i),
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
    /// Prometheus refuses it). `names` is scratch space reused from line to line.
    fn unique_names(
        &self,
        labels: &Labels<'a>,
        at: usize,
        names: &mut Vec<(&'a str, usize)>,
    ) -> Result<(), ParseError> {
        names.clear();
        let base = labels.raw().as_ptr() as usize;
        names.extend(
            labels
                .raw_pairs()
                .map(|(n, _)| (n, at + (n.as_ptr() as usize - base))),
        );
        let repeated = if names.len() <= 16 {
            (1..names.len())
                .find(|&i| names[..i].iter().any(|(n, _)| *n == names[i].0))
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

    fn sample(&self, names: &mut Vec<(&'a str, usize)>) -> Result<Sample<'a>, ParseError> {
        let b = self.b;
        let start = self.skip_blanks(0);
        let name_end = self.name(start)?;
        let mut i = name_end;
        let mut labels = Labels::default();
        let open = self.skip_blanks(i);
        if b.get(open) == Some(&b'{') {
            let close = self.labels(open + 1)?;
            // Validated ASCII structure and UTF-8 values: the slice is valid UTF-8.
            labels = Labels {
                raw: std::str::from_utf8(&b[open + 1..close])
                    .map_err(|_| self.err(open, "labels are not valid UTF-8"))?,
            };
            self.unique_names(&labels, open + 1, names)?;
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
            let ts = std::str::from_utf8(&b[ts_start..ts_end])
                .ok()
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
        let name =
            std::str::from_utf8(&b[start..name_end]).map_err(|_| self.err(start, "bad name"))?;
        Ok(Sample {
            name,
            labels,
            value,
            timestamp_ms,
        })
    }

    fn comment(&self) -> Result<Option<Entry<'a>>, ParseError> {
        let b = self.b;
        let i = self.skip_blanks(1);
        let kw_end = self.token(i);
        let kw = &b[i..kw_end];
        if kw != b"HELP" && kw != b"TYPE" {
            return Ok(None); // an ordinary comment
        }
        let name_start = self.skip_blanks(kw_end);
        let name_end = self.name(name_start)?;
        if name_end < b.len() && !is_blank(b[name_end]) {
            return Err(self.err(name_end, "unexpected character in the metric name"));
        }
        let name = std::str::from_utf8(&b[name_start..name_end])
            .map_err(|_| self.err(name_start, "bad name"))?;
        let rest_start = self.skip_blanks(name_end);
        let rest = std::str::from_utf8(&b[rest_start..])
            .map_err(|_| self.err(rest_start, "text is not valid UTF-8"))?;
        if kw == b"HELP" {
            // The docstring's only escapes are `\\` and `\n`.
            let mut bytes = rest.bytes().enumerate();
            while let Some((at, c)) = bytes.next() {
                if c == b'\\' && !matches!(bytes.next(), Some((_, b'\\' | b'n'))) {
                    return Err(self.err(rest_start + at, "invalid escape in HELP (use \\\\ or \\n)"));
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
fn parse_value(t: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(t).ok()?;
    // Fast path for plain integers, the commonest values.
    if !s.is_empty() && s.len() < 16 && s.bytes().all(|c| c.is_ascii_digit()) {
        return s.parse::<u64>().ok().map(|v| v as f64);
    }
    s.parse::<f64>().ok()
}

impl<'a> Iterator for Parser<'a> {
    type Item = Result<Entry<'a>, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.failed && self.pos < self.body.len() {
            self.line += 1;
            let rest = &self.body[self.pos..];
            let (b, advance) = match memchr::memchr(b'\n', rest) {
                Some(n) => (&rest[..n], n + 1),
                None => {
                    self.failed = true;
                    let column = rest.len() + 1;
                    return Some(Err(ParseError {
                        line: self.line,
                        column,
                        message: "truncated body: the last line does not end with a newline",
                    }));
                }
            };
            self.pos += advance;
            let line = Line { b, line: self.line };
            let first = line.skip_blanks(0);
            if first == b.len() {
                continue; // empty line
            }
            let result = if b[first] == b'#' {
                match line.comment() {
                    Ok(None) => continue,
                    Ok(Some(e)) => Ok(e),
                    Err(e) => Err(e),
                }
            } else {
                line.sample(&mut self.names).map(Entry::Sample)
            };
            // The rules across lines; their errors point at the line's first character.
            let result = result.and_then(|e| {
                match &e {
                    Entry::Help { name, .. } => self.rules.help(name),
                    Entry::Type { name, kind } => self.rules.declare(name, *kind),
                    Entry::Sample(s) => self.rules.sample(s),
                }
                .map(|()| e)
                .map_err(|message| line.err(first, message))
            });
            if result.is_err() {
                self.failed = true;
            }
            return Some(result);
        }
        None
    }
}

/// Parses a whole body: every sample, or the first error.
pub fn parse(body: &[u8]) -> Result<Vec<Sample<'_>>, ParseError> {
    let mut out = Vec::with_capacity(body.len() / 120);
    for e in Parser::new(body) {
        if let Entry::Sample(s) = e? {
            out.push(s);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
