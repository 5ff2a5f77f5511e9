//! Why the control plane could not start.

use thiserror::Error;

use crate::store::StoreError;
use crate::token;

/// Why the control plane could not start.
#[derive(Debug, Error)]
pub enum ServeError {
    /// The database.
    #[error("database {url}: {source}")]
    Store {
        /// The URL, password hidden.
        url: String,
        /// The cause.
        #[source]
        source: StoreError,
    },
    /// Files or sockets.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The configuration is invalid (every problem, one a line).
    #[error("invalid configuration:\n  {}", .0.join("\n  "))]
    Config(Vec<String>),
    /// The health policy does not load.
    #[error("{0}")]
    Policy(String),
    /// No randomness for tokens.
    #[error(transparent)]
    Random(#[from] token::RandomError),
    /// A token given through the environment is unusable (too short, …).
    #[error("{}", .0.join("\n"))]
    Tokens(Vec<String>),
}

/// Hides the password of a database URL for logs and errors.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_hidden_in_database_urls() {
        assert_eq!(
            redact("postgres://gw:s3cret@db:5432/gw"),
            "postgres://gw:***@db:5432/gw"
        );
        assert_eq!(redact("postgres://gw@db/gw"), "postgres://gw@db/gw");
        assert_eq!(redact("sqlite://gpuwarden.db"), "sqlite://gpuwarden.db");
    }
}
