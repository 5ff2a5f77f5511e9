//! How a configuration that cannot be used is reported, the same way by both programs.

use std::path::PathBuf;

/// Why a configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Keys that cannot be read and values that make no sense; every problem is listed.
    #[error("invalid configuration{}: {} problem{}\n  {}",
        .file.as_ref().map(|f| format!(" in {}", f.display())).unwrap_or_default(),
        .problems.len(),
        if .problems.len() == 1 { "" } else { "s" },
        .problems.join("\n  "))]
    Invalid {
        /// The file (absolute when the program's `load` read it), when one was given.
        file: Option<PathBuf>,
        /// One line per problem: `SOURCE: KEY: what is wrong`, where SOURCE is the file's
        /// absolute path, `environment variable NAME`, `command line` or `default value`.
        problems: Vec<String>,
    },
}

/// The key a validation message is about: `plugins[0] (name).sha256: …` →
/// `plugins.0.sha256` (indexes become path segments, names in parentheses are dropped).
pub fn key_of(problem: &str) -> String {
    let head = problem.split(": ").next().unwrap_or("");
    let mut key = String::new();
    let mut skip = false;
    for c in head.chars() {
        match c {
            '(' => skip = true,
            ')' => skip = false,
            _ if skip => {}
            '[' => key.push('.'),
            ']' | ' ' => {}
            c => key.push(c),
        }
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_problem_names_its_key_as_a_path() {
        assert_eq!(
            key_of("plugins[0] (xid).sha256: missing"),
            "plugins.0.sha256"
        );
        assert_eq!(
            key_of("static_targets[1].name: bad"),
            "static_targets.1.name"
        );
        assert_eq!(key_of("scrape.timeout: too long"), "scrape.timeout");
    }
}
