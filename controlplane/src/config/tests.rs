//! Loading and validating the control plane's configuration.

use super::*;
use figment::providers::Env;
use std::path::Path;

#[test]
fn no_config_means_sqlite_on_localhost() {
    let c = ControlPlaneConfig::default();
    c.validate(None).unwrap();
    assert_eq!(c.server.listen, "127.0.0.1:8410");
    assert_eq!(c.database.url, "sqlite://gpuwarden.db");
    assert_eq!(c.scrape.interval, Duration::from_secs(15));
    assert_eq!(c.external_url(), "http://127.0.0.1:8410");
}

#[test]
fn every_bad_value_is_listed_with_its_key() {
    let mut c = ControlPlaneConfig::default();
    c.server.listen = "nowhere".into();
    c.database.url = "mysql://x".into();
    c.scrape.timeout = Some(Duration::from_secs(60));
    c.auth.admin_tokens = vec!["short".into()];
    c.database.listing_cache_bytes = 2 << 30;
    c.static_targets = vec![
        StaticTarget {
            name: "a".into(),
            address: "10.0.0.1:9410".into(),
            pool: "default".into(),
            labels: BTreeMap::new(),
        },
        StaticTarget {
            name: "a".into(),
            address: "http://10.0.0.2:9410".into(),
            pool: "default".into(),
            labels: BTreeMap::new(),
        },
    ];
    let e = c
        .validate(Some(Path::new("cp.toml")))
        .unwrap_err()
        .to_string();
    for key in [
        "in cp.toml",
        "server.listen",
        "database.url",
        "scrape.timeout",
        "auth.admin_tokens[0]",
        "database.listing_cache_bytes: 2147483648 is more than",
        "static_targets[0].address",
        "static_targets[1].name: \"a\" appears twice",
    ] {
        assert!(e.contains(key), "{key} missing from:\n{e}");
    }
}

#[test]
fn unknown_keys_name_the_key_and_the_file() {
    figment::Jail::expect_with(|jail| {
        jail.create_file("cp.toml", "[scrape]\nintervall = \"5s\"\n")?;
        let e = ControlPlaneConfig::load_from(
            Some(Path::new("cp.toml")),
            Env::prefixed("GPUWARDEN_TEST_NONE_"),
            &Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("intervall") && e.contains("cp.toml"), "{e}");
        Ok(())
    });
}

#[test]
fn environment_and_flags_override_the_file() {
    figment::Jail::expect_with(|jail| {
        jail.create_file("cp.toml", "[scrape]\ninterval = \"30s\"\n")?;
        jail.set_env("GPUWARDEN_SCRAPE__INTERVAL", "20s");
        let c = ControlPlaneConfig::load_from(
            Some(Path::new("cp.toml")),
            Env::prefixed("GPUWARDEN_"),
            &Overrides {
                listen: Some("127.0.0.1:9999".into()),
                database: Some("postgres://x@localhost/db".into()),
            },
        )
        .unwrap();
        assert_eq!(c.scrape.interval, Duration::from_secs(20));
        assert_eq!(c.server.listen, "127.0.0.1:9999");
        assert_eq!(c.database.url, "postgres://x@localhost/db");
        Ok(())
    });
}

/// As Prometheus's `scrape_timeout`: unset, it follows a short interval instead of refusing
/// it; set, it must fit in the interval.
#[test]
fn an_unset_scrape_timeout_fits_the_interval() {
    let mut c = ControlPlaneConfig::default();
    assert_eq!(c.scrape.timeout(), Duration::from_secs(10));
    c.scrape.interval = Duration::from_secs(5);
    c.validate(None).unwrap();
    assert_eq!(c.scrape.timeout(), Duration::from_secs(5));
    c.scrape.timeout = Some(Duration::from_secs(20));
    let e = c.validate(None).unwrap_err().to_string();
    assert!(
        e.contains("scrape.timeout: 20s must be above 0 and at most scrape.interval (5s)"),
        "{e}"
    );
}
