//! The `exec` provider running real programs: the example script of `config/providers/`
//! through its whole contract, every error kind a program reports, and programs that
//! misbehave (non-zero exit without an answer, bad JSON, a deadline, a leaked token).

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gpuwarden_controlplane::pool::provider::{
    build, ErrorKind, ListedState, Provider, ProviderEnv, ProvisionRequest,
};
use serde_json::{json, Value};

use crate::util::TempDir;

const TOKEN: &str = "gwj_exec_token_0123456789abcdef";

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/providers/exec-example.sh")
}

fn env() -> ProviderEnv {
    ProviderEnv::new("http://127.0.0.1:8410", "/nonexistent")
}

fn req(instance: &str) -> ProvisionRequest {
    ProvisionRequest {
        instance_id: instance.into(),
        pool: "train".into(),
        node_name: format!("train-{instance}"),
        instance_type: "gpu_8x_h100".into(),
        region: "us-east-1".into(),
        zone: Some("us-east-1a".into()),
        labels: BTreeMap::from([("team".to_string(), "ml".to_string())]),
        join_token: TOKEN.into(),
        control_plane_url: "http://10.0.0.1:8410".into(),
    }
}

/// The example script for all three calls, its machines in `dir`.
fn example_provider(dir: &TempDir, extra: Value) -> Arc<dyn Provider> {
    let s = example().to_str().unwrap().to_string();
    let mut params = json!({
        "provision": s, "terminate": s, "list": s, "timeout": "10s",
        "env": {"MACHINES_DIR": dir.path().join("machines").to_str().unwrap()},
    });
    for (k, v) in extra.as_object().unwrap() {
        params[k] = v.clone();
    }
    build("exec", params.as_object().unwrap(), &env()).unwrap()
}

/// A provider whose three calls run the shell script `body`.
fn script_provider(dir: &TempDir, body: &str, timeout: &str) -> Arc<dyn Provider> {
    let f = dir.write("prog.sh", &format!("#!/bin/sh\n{body}\n"));
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o755)).unwrap();
    let s = f.to_str().unwrap();
    let params = json!({"provision": s, "terminate": s, "list": [s, "--list"], "timeout": timeout});
    build("exec", params.as_object().unwrap(), &env()).unwrap()
}

#[test]
fn the_example_script_provisions_lists_and_terminates() {
    let dir = TempDir::new("exec-example");
    let p = example_provider(&dir, json!({}));
    assert_eq!(p.kind(), "exec");
    assert!(p.list().unwrap().is_empty());
    let m = p.provision(&req("i-1")).unwrap();
    assert_eq!(m.provider_id, "m-i-1");
    // A retry of the same instance is the same machine, not a second one.
    assert_eq!(p.provision(&req("i-1")).unwrap(), m);
    p.provision(&req("i-2")).unwrap();
    let listed = p.list().unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].instance_id.as_deref(), Some("i-1"));
    assert_eq!(listed[0].state, ListedState::Running);
    // The join token reached the machine through stdin.
    let machines = dir.path().join("machines");
    let token = std::fs::read_to_string(machines.join("m-i-1.token")).unwrap();
    assert_eq!(token.trim(), TOKEN);

    p.terminate("m-i-1").unwrap();
    let listed = p.list().unwrap();
    assert_eq!(listed[0].state, ListedState::Gone);
    assert_eq!(listed[1].state, ListedState::Running);
    // The script answers not_found for an unknown machine: already gone is success.
    p.terminate("m-i-9").unwrap();
    // Its invalid_request is not.
    let e = p.terminate("vm-7").unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidRequest);
    assert!(!e.retryable());
}

#[test]
fn every_error_kind_a_program_reports_surfaces_with_its_retryability() {
    let dir = TempDir::new("exec-kinds");
    let p = example_provider(&dir, json!({}));
    let machines = dir.path().join("machines");
    std::fs::create_dir_all(&machines).unwrap();
    for kind in ErrorKind::ALL {
        std::fs::write(machines.join("fail-provision"), kind.as_str()).unwrap();
        let e = p.provision(&req("i-1")).unwrap_err();
        assert_eq!(e.kind, *kind, "{e}");
        assert_eq!(e.retryable(), kind.retryable(), "{kind}");
        assert!(e.message.starts_with("provision: injected"), "{e}");
        // Failed provisions created nothing.
        assert!(p.list().unwrap().is_empty());
    }
    std::fs::write(machines.join("fail-list"), "unavailable").unwrap();
    assert_eq!(p.list().unwrap_err().kind, ErrorKind::Unavailable);
    assert!(p.list().is_ok(), "the failure was injected once");
}

#[test]
fn retry_after_and_unknown_kinds_are_read_from_the_answer() {
    let dir = TempDir::new("exec-retry");
    let p = script_provider(
        &dir,
        r#"cat >/dev/null
case "$1" in
--list) echo '{"error":{"kind":"exploded","message":"boom"}}' ;;
*) echo '{"error":{"kind":"rate_limited","message":"slow down","retry_after_seconds":12.5}}' ;;
esac
exit 3"#,
        "5s",
    );
    let e = p.provision(&req("i-1")).unwrap_err();
    assert_eq!(e.kind, ErrorKind::RateLimited);
    assert_eq!(e.retry_after, Some(Duration::from_millis(12_500)));
    assert_eq!(e.message, "provision: slow down");
    let e = p.list().unwrap_err();
    assert_eq!(e.kind, ErrorKind::Other);
    assert_eq!(e.message, "list: boom (unknown error kind \"exploded\")");
}

#[test]
fn a_failing_program_without_an_answer_reports_its_stderr_without_the_token() {
    let dir = TempDir::new("exec-stderr");
    let p = script_provider(
        &dir,
        r#"input=$(cat)
echo "cloud said no for $input" >&2
exit 7"#,
        "5s",
    );
    let e = p.provision(&req("i-1")).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Other);
    assert!(e.message.contains("exited with status 7"), "{e}");
    assert!(e.message.contains("stderr: cloud said no for"), "{e}");
    assert!(e.message.contains("[redacted]"), "{e}");
    assert!(!e.message.contains(TOKEN), "the join token leaked: {e}");
}

#[test]
fn unreadable_answers_are_bad_answers() {
    let dir = TempDir::new("exec-bad");
    for (body, what) in [
        ("cat >/dev/null; echo 'not json'", "not JSON"),
        ("cat >/dev/null; echo '{\"provider_id\":\"\"}'", "empty id"),
        (
            "cat >/dev/null; echo '{\"provider_id\":\"x\",\"address\":\"ftp://x\"}'",
            "bad address",
        ),
    ] {
        let p = script_provider(&dir, body, "5s");
        let e = p.provision(&req("i-1")).unwrap_err();
        assert_eq!(e.kind, ErrorKind::BadAnswer, "{what}: {e}");
        assert!(!e.retryable(), "{what}");
    }
    let p = script_provider(
        &dir,
        "cat >/dev/null; echo '{\"instances\":[{\"provider_id\":\"a\",\"state\":\"melting\"}]}'",
        "5s",
    );
    assert_eq!(p.list().unwrap_err().kind, ErrorKind::BadAnswer);
    // An answer past the 1 MiB bound is not read in part.
    let p = script_provider(
        &dir,
        "cat >/dev/null; head -c 2000000 /dev/zero | tr '\\0' ' '",
        "5s",
    );
    let e = p.list().unwrap_err();
    assert_eq!(e.kind, ErrorKind::BadAnswer);
    assert!(e.message.contains("more than 1 MiB"), "{e}");
}

#[test]
fn a_program_past_its_deadline_is_killed_with_what_it_started() {
    let dir = TempDir::new("exec-timeout");
    let pidfile = dir.path().join("child.pid");
    let p = script_provider(
        &dir,
        &format!(
            "sleep 30 &\necho $! > {}\necho started >&2\nwait",
            pidfile.display()
        ),
        "300ms",
    );
    let t = Instant::now();
    let e = p.provision(&req("i-1")).unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert_eq!(e.kind, ErrorKind::Timeout);
    assert!(e.retryable());
    assert!(
        e.message
            .contains("did not finish within 300ms and was killed; stderr: started"),
        "{e}"
    );
    let child = std::fs::read_to_string(&pidfile).unwrap();
    let proc_dir = PathBuf::from(format!("/proc/{}", child.trim()));
    gpuwarden_testkit::wait_for("the script's sleep killed", 5, || {
        let stat = std::fs::read_to_string(proc_dir.join("stat")).unwrap_or_default();
        (stat.is_empty() || stat.contains(") Z ")).then_some(())
    });
}

#[test]
fn programs_get_a_clean_environment_and_the_request_on_stdin_only() {
    let dir = TempDir::new("exec-env");
    let out = dir.path().join("seen");
    let p = script_provider(
        &dir,
        &format!(
            "env > {o}.env\necho \"$@\" > {o}.args\ncat > {o}.stdin\necho '{{\"provider_id\":\"vm-1\"}}'",
            o = out.display()
        ),
        "5s",
    );
    p.provision(&req("i-1")).unwrap();
    let env = std::fs::read_to_string(out.with_extension("env")).unwrap();
    // None of the test process's variables but PATH, HOME and LANG reach the program
    // (the control plane's GPUWARDEN_ADMIN_TOKEN would be one of them).
    let ours: Vec<String> = std::env::vars()
        .map(|(k, _)| k)
        .filter(|k| !["PATH", "HOME", "LANG", "PWD", "SHLVL", "_"].contains(&k.as_str()))
        .collect();
    assert!(!ours.is_empty());
    for k in ours {
        assert!(
            !env.lines().any(|l| l.starts_with(&format!("{k}="))),
            "{k} passed: {env}"
        );
    }
    assert!(env.contains("PATH="));
    let args = std::fs::read_to_string(out.with_extension("args")).unwrap();
    assert!(!args.contains(TOKEN));
    let stdin: Value =
        serde_json::from_str(&std::fs::read_to_string(out.with_extension("stdin")).unwrap())
            .unwrap();
    assert_eq!(
        stdin,
        json!({
            "action": "provision", "instance_id": "i-1", "pool": "train",
            "node_name": "train-i-1", "instance_type": "gpu_8x_h100", "region": "us-east-1",
            "zone": "us-east-1a", "labels": {"team": "ml"}, "join_token": TOKEN,
            "control_plane_url": "http://10.0.0.1:8410",
        })
    );
}

#[test]
fn invalid_params_are_all_reported_at_once() {
    let e = build(
        "exec",
        json!({"provision": "/nonexistent/prog", "list": 3, "timeout": "forever", "env": {"A": 1}, "retries": 2})
            .as_object()
            .unwrap(),
        &env(),
    )
    .unwrap_err();
    let want = [
        "\"provision\": /nonexistent/prog is not an executable file",
        "\"terminate\": required",
        "\"list\": must be a program path",
        "\"timeout\": ",
        "\"env\": must be an object of strings",
        "\"retries\": unknown",
    ];
    assert_eq!(e.len(), want.len(), "{e:#?}");
    for (got, w) in e.iter().zip(want) {
        assert!(
            got.starts_with("provider exec: param ") && got.contains(w),
            "{got} / {w}"
        );
    }
}
