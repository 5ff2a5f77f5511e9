//! Installing an agent the way an operator does: the script `gpuwarden nodes token --script`
//! prints, run into a temporary root, and the shipped systemd units (`config/systemd/`)
//! checked by `systemd-analyze` (Debian package `systemd`; `.ci/run` installs it, outside CI
//! those checks are skipped without it).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use gpuwarden_e2e::{bins, cli, repo, Scratch};

use crate::cp::{self, ADMIN};

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// Runs `sh script` with `env`; (exit code, stdout, stderr).
fn sh(script: &Path, env: &[(&str, &Path)]) -> (i32, String, String) {
    let mut c = Command::new("sh");
    c.arg(script)
        .env_remove("ROOT")
        .env_remove("GPUWARDEN_AGENT_BIN");
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().expect("run sh");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn have_systemd_analyze() -> bool {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok()
    {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI installs systemd-analyze (.ci/run: apt-get install -y systemd)"
    );
    eprintln!("skipping: systemd-analyze is not installed (apt-get install -y systemd)");
    false
}

/// `systemd-analyze verify` of `unit` with its ExecStart binary replaced by an executable
/// in `dir` (verify insists that the binary exists): no warning at all.
fn verify(unit_text: &str, file_name: &str, dir: &Scratch) {
    let fake = dir.write("fake-bin", "#!/bin/sh\nexit 0\n");
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let text = unit_text
        .lines()
        .map(|l| match l.strip_prefix("ExecStart=") {
            Some(cmd) => {
                let args = cmd.split_once(' ').map_or("", |(_, a)| a);
                format!("ExecStart={} {args}", fake.display())
            }
            None => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    let unit = dir.write(file_name, &text);
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && err.trim().is_empty(),
        "systemd-analyze verify {file_name}: {err}"
    );
}

#[test]
fn the_printed_install_script_installs_the_agent_into_a_root() {
    let dir = Scratch::new("install");
    let (_cp, api) = cp::start(&dir, "");
    let (code, _, err) = cli(
        &["nodes", "create", "gpu-31", "--pool", "train"],
        &api.base,
        ADMIN,
    );
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = cli(&["nodes", "token", "gpu-31", "--script"], &api.base, ADMIN);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("#!/bin/sh\n"), "{out}");
    let script = dir.write("install.sh", &out);
    let root = dir.path().join("root");

    // No agent binary: a clear error, and nothing written.
    let (code, _, err) = sh(&script, &[("ROOT", &root)]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("no agent at") && err.contains("GPUWARDEN_AGENT_BIN"),
        "{err}"
    );
    assert!(
        !root.join("etc").exists(),
        "nothing is written before the binary is there"
    );

    // With the binary: config, unit and binary in place, with their modes; twice is the same.
    let agent = bins().join("gpuwarden-agent");
    for _ in 0..2 {
        let (code, out, err) = sh(&script, &[("ROOT", &root), ("GPUWARDEN_AGENT_BIN", &agent)]);
        assert_eq!(code, 0, "{out}{err}");
        assert!(out.contains("installed under"), "{out}");
    }
    let cfg = root.join("etc/gpuwarden/agent.toml");
    let unit = root.join("etc/systemd/system/gpuwarden-agent.service");
    let bin = root.join("usr/local/bin/gpuwarden-agent");
    assert_eq!(mode(&cfg), 0o600, "the config holds the join token");
    assert_eq!(mode(&unit), 0o644);
    assert_eq!(mode(&bin), 0o755);
    let cfg_text = std::fs::read_to_string(&cfg).unwrap();
    assert!(cfg_text.contains("id = \"gpu-31\"") && cfg_text.contains("pool = \"train\""));
    assert!(cfg_text.contains("token = \"gwn_"), "{cfg_text}");
    let shipped =
        std::fs::read_to_string(repo().join("config/systemd/gpuwarden-agent.service")).unwrap();
    assert_eq!(std::fs::read_to_string(&unit).unwrap(), shipped);
    assert!(
        std::fs::read_dir(root.join("etc/gpuwarden"))
            .unwrap()
            .all(|e| !e.unwrap().file_name().to_string_lossy().ends_with(".new")),
        "no half-written file is left"
    );
    // The binary already in place, named again: nothing to copy, not an error.
    let (code, out, err) = sh(&script, &[("ROOT", &root), ("GPUWARDEN_AGENT_BIN", &bin)]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        mode(&root.join("etc")),
        0o755,
        "folders keep the usual mode"
    );
    // The installed config is one the agent accepts.
    let check = Command::new(&bin)
        .arg("--check-config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    if have_systemd_analyze() {
        verify(
            &std::fs::read_to_string(&unit).unwrap(),
            "installed.service",
            &dir,
        );
    }
}

#[test]
fn the_shipped_units_pass_systemd_analyze_and_stay_hardened() {
    if !have_systemd_analyze() {
        return;
    }
    let dir = Scratch::new("units");
    for (name, most) in [("gpuwarden.service", 2.0), ("gpuwarden-agent.service", 7.0)] {
        let text = std::fs::read_to_string(repo().join("config/systemd").join(name)).unwrap();
        verify(&text, name, &dir);
        // systemd's own exposure score (0 best, 10 worst): the control plane needs only the
        // network and its state folder; the agent keeps devices, the kernel log and root.
        let unit = dir.path().join(name);
        let out = Command::new("systemd-analyze")
            .args(["security", "--offline=yes", "--no-pager"])
            .arg(&unit)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let score: f64 = text
            .lines()
            .find_map(|l| {
                l.split_once("Overall exposure level for ")?
                    .1
                    .split_once(": ")?
                    .1
                    .split_whitespace()
                    .next()?
                    .parse()
                    .ok()
            })
            .unwrap_or_else(|| panic!("no exposure level in:\n{text}"));
        assert!(score <= most, "{name}: exposure {score} > {most}\n{text}");
    }
}
