//! An invalid policy document as the CLI shows it: one line per problem,
//! `FILE:LINE:COLUMN: rule "NAME": message`, with the file's absolute path.

use serde::Deserialize;

/// One problem of a policy document, as `POST /v1/policies/validate` answers it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PolicyProblem {
    /// The rule, when the problem is in one.
    #[serde(default)]
    pub rule: Option<String>,
    /// 1-based line.
    #[serde(default)]
    pub line: u64,
    /// 1-based column.
    #[serde(default)]
    pub column: u64,
    /// What is wrong.
    #[serde(default)]
    pub message: String,
}

/// `FILE:LINE:COLUMN: rule "NAME": message`, one line per problem (the form editors jump to).
pub(super) fn invalid_policy(file: Option<&std::path::Path>, problems: &[PolicyProblem]) -> String {
    let name = file.map_or_else(|| "the policy".to_string(), |f| f.display().to_string());
    let mut out = format!(
        "{name} is invalid: {} problem{}",
        problems.len(),
        if problems.len() == 1 { "" } else { "s" }
    );
    for p in problems {
        let rule = p
            .rule
            .as_ref()
            .map(|r| format!("rule {r:?}: "))
            .unwrap_or_default();
        match file {
            Some(f) => out.push_str(&format!(
                "\n  {}:{}:{}: {rule}{}",
                f.display(),
                p.line,
                p.column,
                p.message
            )),
            None => out.push_str(&format!(
                "\n  line {}, column {}: {rule}{}",
                p.line, p.column, p.message
            )),
        }
    }
    out
}
