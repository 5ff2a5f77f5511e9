//! Problems of a policy document, each at its rule, line and column.

use std::ops::Range;

use serde::Serialize;

/// One problem of a policy document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{}line {line}, column {column}: {message}", .rule.as_ref().map(|r| format!("rule {r:?}, ")).unwrap_or_default())]
pub struct PolicyError {
    /// The rule, when the problem is in one.
    pub rule: Option<String>,
    /// 1-based line in the document.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

impl PolicyError {
    /// A problem of the parser itself, not of a rule (line 1, column 1).
    pub(crate) fn internal(message: &str) -> Self {
        Self {
            rule: None,
            line: 1,
            column: 1,
            message: message.to_string(),
        }
    }
}

pub(super) fn position(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map_or(before.chars().count(), |i| before[i + 1..].chars().count())
        + 1;
    (line, column)
}

pub(super) struct Errors<'t> {
    pub(super) text: &'t str,
    pub(super) list: Vec<PolicyError>,
}

impl Errors<'_> {
    pub(super) fn at(&mut self, rule: Option<&str>, span: Range<usize>, message: String) {
        let (line, column) = position(self.text, span.start);
        self.list.push(PolicyError {
            rule: rule.map(str::to_string),
            line,
            column,
            message,
        });
    }
}
