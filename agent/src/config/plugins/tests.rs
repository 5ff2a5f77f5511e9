//! The `[plugin]` defaults and `[[plugins]]` entries as the agent's config loader reads them.

use super::super::plugins::MAX_CONCURRENT_RUNS;
use crate::config::load::ConfigError;
use crate::config::model::AgentConfig;

#[test]
fn max_concurrent_runs_is_between_1_and_16() {
    for (n, ok) in [
        (0, false),
        (1, true),
        (2, true),
        (MAX_CONCURRENT_RUNS, true),
        (17, false),
    ] {
        let mut c = AgentConfig::default();
        c.plugin.max_concurrent_runs = n;
        match c.validate(None) {
            Ok(()) => assert!(ok, "{n} accepted"),
            Err(ConfigError::Invalid { problems, .. }) => {
                assert!(!ok, "{n} refused: {problems:?}");
                assert_eq!(
                    problems,
                    vec![format!(
                        "plugin.max_concurrent_runs: {n} is not between 1 and 16"
                    )]
                );
            }
        }
    }
    assert_eq!(AgentConfig::default().plugin.max_concurrent_runs, 2);
}
