//! `gpuwarden-agent --check-config`: every problem of a file listed by key path with the
//! file's absolute path, against golden files in `tests/golden`.

use std::path::Path;

/// Runs `gpuwarden-agent ARGS` in `dir` with no `GPUWARDEN_*` variable of the test's own.
fn run_bin(dir: &Path, args: &[&str]) -> std::process::Output {
    let mut cmd = std::process::Command::new(crate::util::BIN);
    cmd.args(args).current_dir(dir);
    for (k, _) in std::env::vars() {
        if k.starts_with("GPUWARDEN_") {
            cmd.env_remove(k);
        }
    }
    cmd.output().expect("run gpuwarden-agent")
}

/// Compares `actual` with the golden file `name` (`GOLDEN_BLESS=1` rewrites it).
fn golden(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("GOLDEN_BLESS").is_some() {
        std::fs::write(&path, actual).unwrap();
    }
    let want = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(actual, want, "golden {name} differs");
}

/// Issue: `--check-config` stopped at the first unknown key or type error, with figment's
/// `default.` prefix, doubled backticks and the path as given. Golden: a file with four
/// problems reports all four, each with its key path and the file's absolute path; exit 2.
#[test]
fn check_config_reports_every_problem_by_key_and_absolute_file() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let out = run_bin(&dir, &["--check-config", "four-problems.toml"]);
    assert_eq!(out.status.code(), Some(2));
    let abs = std::fs::canonicalize(&dir).unwrap();
    let err = String::from_utf8_lossy(&out.stderr).replace(&abs.display().to_string(), "{DIR}");
    golden("four-problems.stderr", &err);
    let problems: Vec<&str> = err.lines().filter(|l| l.starts_with("  ")).collect();
    assert_eq!(problems.len(), 4, "{err}");
    for (p, key) in problems.iter().zip([
        "collector.intervall",
        "gpu.backend",
        "server.workers",
        "server.listen",
    ]) {
        assert!(
            p.starts_with(&format!("  {{DIR}}/four-problems.toml: {key}: ")),
            "{p}"
        );
    }
    assert!(!err.contains("default.") && !err.contains("``"), "{err}");
}

/// Hardening follow-up: a `[[plugins]]` entry without `sha256` stopped the listing there:
/// only `plugins.0.sha256: missing` came out, while 14 more entries lacked it, one digest
/// was `zz`, a name appeared twice and `server.workers` was no number. Golden: all of them.
#[test]
fn check_config_lists_every_missing_key_and_the_problems_after_it() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let out = run_bin(&dir, &["--check-config", "missing-keys.toml"]);
    assert_eq!(out.status.code(), Some(2));
    let abs = std::fs::canonicalize(&dir).unwrap();
    let err = String::from_utf8_lossy(&out.stderr).replace(&abs.display().to_string(), "{DIR}");
    golden("missing-keys.stderr", &err);
    let problems: Vec<&str> = err.lines().filter(|l| l.starts_with("  ")).collect();
    for i in 0..15 {
        let key = format!("plugins.{i}.sha256: missing");
        assert!(problems.iter().any(|p| p.contains(&key)), "{key}: {err}");
    }
    assert!(
        problems.iter().any(|p| p.contains("server.workers: ")),
        "{err}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("\"zz\"") || p.contains("(bad-digest).sha256")),
        "{err}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("bad-digest") && p.contains("twice")),
        "{err}"
    );
    // The placeholder of a missing digest is not reported a second time as a bad digest.
    assert_eq!(
        problems.iter().filter(|p| p.contains("plugins.0.")).count(),
        1,
        "{err}"
    );
}
