//! A strict, zero-copy parser of the Prometheus text exposition format (version 0.0.4).
//!
//! Why not a crate: `prometheus-parse` 0.2.5 silently corrupts valid input (it drops names
//! with a colon, cuts a label value at a comma, loses a label whose value holds `=`, drops a
//! sample whose value holds `}`, leaves escaped quotes escaped) and skips broken lines
//! without a word; `openmetrics-parser` is correct but 4× slower still, LGPL-3.0, and
//! rejects untyped series (measured while planning; not re-run in this repository).
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
mod line;
mod rules;

pub use labels::{LabelIter, Labels};
use line::{parse_value, Line};

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
    /// The body as text when it is valid UTF-8 throughout (checked once).
    text: Option<&'a str>,
    pos: usize,
    line: usize,
    failed: bool,
    /// The rules across lines (grouping, HELP/TYPE once, no series twice).
    rules: rules::BodyRules<'a>,
    /// The current line's label names with their columns (reused from line to line).
    names: Vec<(&'a str, usize)>,
    /// The current line's pairs' places (reused from line to line).
    spans: Vec<labels::Span>,
    /// The previous sample's name, checked: the next line's name is compared with it first.
    known: &'a str,
}

impl<'a> Parser<'a> {
    /// A parser over `body` (any bytes; non-UTF-8 text is an error where it appears).
    pub fn new(body: &'a [u8]) -> Self {
        Parser {
            body,
            text: std::str::from_utf8(body).ok(),
            pos: 0,
            line: 0,
            failed: false,
            // An agent's largest family is its NVLink error counters: 8 GPUs × 18 links × 4 types.
            rules: rules::BodyRules::with_capacity(640),
            names: Vec::new(),
            spans: Vec::new(),
            known: "",
        }
    }
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
            let start = self.pos;
            self.pos += advance;
            let text = self.text.and_then(|t| t.get(start..start + b.len()));
            let line = Line {
                b,
                text,
                line: self.line,
            };
            let mut set_hash = (0, 0);
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
                let mut set = self.rules.set_hash();
                let sample = line.sample(self.known, &mut self.names, &mut self.spans, &mut set);
                if let Ok(s) = &sample {
                    self.known = s.name;
                }
                set_hash = set.finish();
                sample.map(Entry::Sample)
            };
            // The rules across lines; their errors point at the line's first character.
            let result = result.and_then(|e| {
                match &e {
                    Entry::Help { name, .. } => self.rules.help(name),
                    Entry::Type { name, kind } => self.rules.declare(name, *kind),
                    Entry::Sample(s) => self.rules.sample(s, set_hash),
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
