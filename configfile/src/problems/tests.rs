//! Tests of [`super::extract_all`] on files and environments with many problems.

use super::*;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
struct Cfg {
    server: Server,
    items: Vec<Item>,
    entries: Vec<Entry>,
}

/// A list entry with required keys (no `default`), like `[[plugins]]`.
#[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct Entry {
    name: String,
    sha256: String,
    weight: u32,
    on: bool,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
struct Server {
    listen: String,
    workers: u32,
    mode: Mode,
}

impl Default for Server {
    fn default() -> Self {
        Server {
            listen: "127.0.0.1:1".into(),
            workers: 2,
            mode: Mode::Fast,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
enum Mode {
    Fast,
    Slow,
}

#[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
struct Item {
    name: String,
}

fn load(file: &Path) -> Extracted<Cfg> {
    extract_all(|p| {
        Figment::from(Serialized::defaults(Cfg::default()))
            .merge(p.wrap(Toml::file_exact(file)))
            .merge(p.wrap(Env::prefixed("GW_CFGFILE_TEST_").split("__")))
    })
}

#[test]
fn every_problem_is_listed_with_its_key_and_the_absolute_file() {
    let dir = std::env::temp_dir().join(format!("gw-cfgfile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("c.toml");
    std::fs::write(
        &file,
        "[server]\nlistn = \"x\"\nworkers = \"two\"\nmode = \"medium\"\n\n[[items]]\nname = \"a\"\ncolour = 1\n\n[extra]\nx = 1\n",
    )
    .unwrap();
    let out = load(&file);
    let lines: Vec<String> = out.problems.iter().map(|p| p.to_string()).collect();
    let abs = file.display().to_string();
    for (key, what) in [
        ("server.listn", "unknown key"),
        ("server.workers", "expected u32"),
        ("server.mode", "unknown value \"medium\""),
        ("items.0.colour", "unknown key"),
        ("extra", "unknown key"),
    ] {
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(&format!("{abs}: {key}: ")) && l.contains(what)),
            "{key} ({what}) missing from {lines:#?}"
        );
    }
    assert_eq!(lines.len(), 5, "{lines:#?}");
    assert!(lines
        .iter()
        .all(|l| !l.contains("``") && !l.contains("default.")));
    // The rest of the file still reads: the good value is there, bad ones are defaults.
    let v = out.value.unwrap();
    assert_eq!(v.items[0].name, "a");
    assert_eq!(v.server.workers, 2);
    let _ = Duration::ZERO;
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Hardening follow-up: a list entry without a required key stopped the listing there;
/// the other entries' missing keys and the other sections' problems were hidden.
#[test]
fn missing_required_keys_in_many_entries_hide_nothing() {
    let dir = std::env::temp_dir().join(format!("gw-cfgfile-miss-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("c.toml");
    let mut text = String::from("[server]\nworkers = \"x\"\n");
    for i in 0..15 {
        text.push_str(&format!("[[entries]]\nname = \"e{i}\"\n"));
    }
    text.push_str("[[entries]]\nname = \"ok\"\nsha256 = \"zz\"\nweight = 1\non = true\n");
    std::fs::write(&file, text).unwrap();
    let out = load(&file);
    let keys: Vec<&str> = out.problems.iter().map(|p| p.key.as_str()).collect();
    assert!(keys.contains(&"server.workers"), "{keys:?}");
    for i in 0..15 {
        for k in ["sha256", "weight", "on"] {
            let key = format!("entries.{i}.{k}");
            assert!(keys.contains(&key.as_str()), "{key} missing from {keys:?}");
        }
    }
    assert_eq!(keys.len(), 1 + 15 * 3, "{keys:?}");
    // The entries stay in place, so value checks see the good one at its own index.
    let v = out.value.unwrap();
    assert_eq!(v.entries.len(), 16);
    assert_eq!(v.entries[15].sha256, "zz");
    assert_eq!(v.entries[3].name, "e3");
    assert_eq!(out.filled.len(), 45);
    assert!(out.filled.contains(&"entries.0.weight".to_string()));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Hardening follow-up: a misspelt section in the environment named only the prefix
/// and the section (`GPUWARDEN_COLECTOR`), not the variable an operator set.
#[test]
fn a_misspelt_section_in_the_environment_names_the_whole_variable() {
    figment::Jail::expect_with(|jail| {
        jail.set_env("GPUWARDEN_COLECTOR__INTERVAL", "5s");
        let out = extract_all::<Cfg>(|p| {
            let env = Env::prefixed(crate::env::PREFIX).filter(|k| k.as_str().contains("__"));
            Figment::from(Serialized::defaults(Cfg::default())).merge(p.wrap(env.split("__")))
        });
        let lines: Vec<String> = out.problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(
            lines[0].starts_with("environment variable GPUWARDEN_COLECTOR__INTERVAL: "),
            "{lines:?}"
        );
        Ok(())
    });
}

#[test]
fn a_syntax_error_is_one_problem_and_no_value() {
    let dir = std::env::temp_dir().join(format!("gw-cfgfile-syn-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("c.toml");
    std::fs::write(&file, "[server\nlisten = 1\n").unwrap();
    let out = load(&file);
    assert!(out.value.is_none());
    assert_eq!(out.problems.len(), 1, "{:?}", out.problems);
    assert!(out.problems[0].source.starts_with('/'));
    std::fs::remove_dir_all(&dir).unwrap();
}
