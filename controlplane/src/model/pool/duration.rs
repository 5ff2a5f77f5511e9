//! Durations as written, parsed when validated.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A duration as written (`"5m"`, `"90s"`, `"1h 30m"`), parsed by [`DurationText::parse`];
/// kept as text so validation reports a bad one among all other problems.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(transparent)]
#[schema(value_type = String, example = "5m")]
pub struct DurationText(pub String);

impl DurationText {
    /// The duration, or why the text is not one.
    pub fn parse(&self) -> Result<Duration, String> {
        humantime::parse_duration(&self.0)
            .map_err(|e| format!("{:?} is not a duration like 5m or 90s: {e}", self.0))
    }
}

impl From<&str> for DurationText {
    fn from(s: &str) -> Self {
        DurationText(s.to_string())
    }
}

impl fmt::Display for DurationText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
