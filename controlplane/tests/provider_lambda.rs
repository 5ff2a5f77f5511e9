//! The `lambda` provider against a stand-in of the Lambda Cloud API (`lambda_stub`): the
//! documented requests, every error kind with its retryability, a 404 on terminate taken as
//! gone, pacing to one request a second and one launch per 12 s on a fake clock (no real
//! sleeps), prices read from the right level, and the API key kept out of every message.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use gpuwarden_controlplane::clock::FakeClock;
use gpuwarden_controlplane::pool::provider::{
    build, EnvVars, ErrorKind, ListedState, Provider, ProviderEnv, ProvisionRequest,
};
use serde_json::{json, Value};

use crate::lambda_stub::{error, LambdaStub};

pub const KEY: &str = "secret_lambda_key_0123456789abcdef";

pub struct Rig {
    pub stub: LambdaStub,
    pub clock: FakeClock,
    pub provider: Arc<dyn Provider>,
}

pub fn rig_with(key_in_env: &str, extra: Value) -> Rig {
    let clock = FakeClock::at(1_800_000_000_000);
    let stub = LambdaStub::start(KEY, clock.clone());
    let mut env = ProviderEnv::new("http://127.0.0.1:8410", "/nonexistent");
    env.clock = Arc::new(clock.clone());
    let c = clock.clone();
    // Waiting moves the fake clock: no real sleeps.
    env.sleep = Arc::new(move |d: Duration| c.advance(i64::try_from(d.as_millis()).unwrap()));
    env.vars = EnvVars::from_map(BTreeMap::from([(
        "LAMBDA_API_KEY".into(),
        key_in_env.into(),
    )]));
    let mut params = json!({
        "api_key_env": "LAMBDA_API_KEY",
        "ssh_key_names": ["ci-key"],
        "base_url": stub.base_url(),
        "timeout": "2s",
    });
    for (k, v) in extra.as_object().unwrap() {
        params[k] = v.clone();
    }
    let provider = build("lambda", params.as_object().unwrap(), &env).unwrap();
    Rig {
        stub,
        clock,
        provider,
    }
}

pub fn rig() -> Rig {
    rig_with(KEY, json!({}))
}

pub fn req(instance: &str) -> ProvisionRequest {
    ProvisionRequest {
        instance_id: instance.into(),
        pool: "train".into(),
        node_name: format!("train-{instance}"),
        instance_type: "gpu_1x_a100".into(),
        region: "us-east-1".into(),
        zone: None,
        labels: BTreeMap::new(),
        join_token: "gwj_join_token_for_lambda_0123".into(),
        control_plane_url: "https://cp.example:8410".into(),
    }
}

impl Rig {
    /// Moves the clock past the launch limit.
    pub fn later(&self) {
        self.clock.advance(12_000);
    }
}

/// Also a fault of Navarch's cloud client (issue 13): a 404 on terminate is "already
/// gone", not a failure.
#[test]
fn launch_list_and_terminate_follow_the_documented_api() {
    let r = rig();
    let m = r.provider.provision(&req("i-1")).unwrap();
    assert_eq!(m.address, None);
    let launch = &r.stub.seen("/instance-operations/launch")[0];
    assert_eq!(
        (launch.method.as_str(), launch.auth.clone()),
        ("POST", format!("Bearer {KEY}"))
    );
    let b = &launch.body;
    assert_eq!(b["region_name"], "us-east-1");
    assert_eq!(b["instance_type_name"], "gpu_1x_a100");
    assert_eq!(b["ssh_key_names"], json!(["ci-key"]));
    assert_eq!(b["name"], "train-i-1");
    assert_eq!(
        b["tags"],
        json!([{"key": "gpuwarden-instance-id", "value": "i-1"}, {"key": "gpuwarden-pool", "value": "train"}])
    );
    let user_data = b["user_data"].as_str().unwrap();
    assert!(user_data.contains("token = \"gwj_join_token_for_lambda_0123\""));
    assert!(user_data.contains("url = \"https://cp.example:8410\""));

    // A machine of the account that gpuwarden did not start is not listed.
    r.stub.lock().instances.push(
        json!({"id": "other", "status": "active", "ssh_key_names": [], "file_system_names": []}),
    );
    let l = r.provider.list().unwrap();
    assert_eq!(l.len(), 1);
    assert_eq!(l[0].provider_id, m.provider_id);
    assert_eq!(l[0].instance_id.as_deref(), Some("i-1"));
    assert_eq!(l[0].state, ListedState::Pending, "booting");
    for (status, state) in [
        ("active", ListedState::Running),
        ("unhealthy", ListedState::Running),
        ("terminating", ListedState::Terminating),
        ("preempted", ListedState::Gone),
        ("terminated", ListedState::Gone),
        ("active", ListedState::Running),
    ] {
        r.stub.set_status(&m.provider_id, status);
        assert_eq!(r.provider.list().unwrap()[0].state, state, "{status}");
    }
    r.provider.terminate(&m.provider_id).unwrap();
    assert_eq!(
        r.provider.list().unwrap()[0].state,
        ListedState::Terminating
    );
    r.stub.set_status(&m.provider_id, "terminated");
    // A 404 on terminate (terminated already, or never there) is success.
    r.provider.terminate(&m.provider_id).unwrap();
    r.provider.terminate("does-not-exist").unwrap();
    assert_eq!(r.stub.seen("/instance-operations/terminate").len(), 3);
}

/// An answer of the API (status, headers, body) and the kind it stands for.
type Case = (u16, Vec<(&'static str, &'static str)>, String, ErrorKind);

#[test]
fn every_error_surfaces_with_its_kind_and_retryability() {
    let r = rig();
    let cases: Vec<Case> = vec![
        (
            400,
            vec![],
            error(
                "instance-operations/launch/insufficient-capacity",
                "Not enough capacity.",
            ),
            ErrorKind::Capacity,
        ),
        (
            400,
            vec![],
            error("global/quota-exceeded", "Quota exceeded."),
            ErrorKind::Quota,
        ),
        (
            401,
            vec![],
            error("global/invalid-api-key", "API key was invalid."),
            ErrorKind::Auth,
        ),
        (
            403,
            vec![],
            error("global/account-inactive", "Your account is inactive."),
            ErrorKind::Auth,
        ),
        (
            400,
            vec![],
            error("global/invalid-parameters", "Invalid region."),
            ErrorKind::InvalidRequest,
        ),
        (
            429,
            vec![("Retry-After", "30")],
            error("global/too-many-requests", "Slow down."),
            ErrorKind::RateLimited,
        ),
        (
            500,
            vec![],
            error("global/unknown", "Something unexpected occurred."),
            ErrorKind::Unavailable,
        ),
        (
            503,
            vec![],
            "<html>maintenance</html>".into(),
            ErrorKind::Unavailable,
        ),
        (
            200,
            vec![],
            "{\"data\": {\"instance_ids\": []}}".into(),
            ErrorKind::BadAnswer,
        ),
        (200, vec![], "not json".into(), ErrorKind::BadAnswer),
    ];
    for (status, headers, body, kind) in cases {
        r.later();
        r.stub.fail_next(status, &headers, &body);
        let e = r.provider.provision(&req("i-1")).unwrap_err();
        assert_eq!(e.kind, kind, "{status} {body}: {e}");
        assert_eq!(e.retryable(), kind.retryable(), "{e}");
        if kind == ErrorKind::RateLimited {
            assert_eq!(e.retry_after, Some(Duration::from_secs(30)));
            // A 429 holds every request back for its Retry-After.
            let e = r.provider.list().unwrap_err();
            assert_eq!(e.kind, ErrorKind::RateLimited);
            r.clock.advance(30_000);
        }
    }
    assert!(
        r.stub.lock().instances.is_empty(),
        "no failed launch made a machine"
    );

    // Errors from the stub's own rules: no capacity in the region, an unknown type, the quota.
    r.later();
    let mut no_room = req("i-2");
    no_room.instance_type = "gpu_8x_h100_sxm5".into();
    assert_eq!(
        r.provider.provision(&no_room).unwrap_err().kind,
        ErrorKind::Capacity
    );
    r.later();
    no_room.instance_type = "gpu_0x_nothing".into();
    assert_eq!(
        r.provider.provision(&no_room).unwrap_err().kind,
        ErrorKind::InvalidRequest
    );
    r.stub.lock().quota = 0;
    r.later();
    let e = r.provider.provision(&req("i-3")).unwrap_err();
    assert_eq!((e.kind, e.retryable()), (ErrorKind::Quota, false));
    assert_eq!(
        e.message,
        "/instance-operations/launch: HTTP 400: global/quota-exceeded: Quota exceeded."
    );
}

#[test]
fn a_retry_after_a_retryable_failure_launches_once() {
    let r = rig();
    r.stub.fail_next(500, &[], &error("global/unknown", "oops"));
    let mut attempts = 0;
    let m = loop {
        attempts += 1;
        match r.provider.provision(&req("i-1")) {
            Ok(m) => break m,
            Err(e) if e.retryable() => r.clock.advance(
                i64::try_from(e.retry_after.unwrap_or(Duration::from_secs(12)).as_millis())
                    .unwrap(),
            ),
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(attempts, 2);
    let l = r.provider.list().unwrap();
    assert_eq!(l.len(), 1, "one machine for the instance");
    assert_eq!(l[0].provider_id, m.provider_id);
}

/// A fault of Navarch's cloud client (issue 13): it read the price beside `instance_type`
/// instead of inside it, where the API puts it.
#[test]
fn offerings_read_prices_from_the_instance_type_and_regions_with_capacity() {
    let r = rig();
    let o = r.provider.offerings().unwrap();
    assert_eq!(o.len(), 2);
    assert_eq!(o[0].instance_type, "gpu_1x_a100");
    assert_eq!(o[0].price_cents_per_hour, Some(129));
    assert_eq!(o[0].regions_with_capacity, vec!["us-east-1"]);
    assert_eq!(o[1].price_cents_per_hour, Some(2392));
    assert!(o[1].regions_with_capacity.is_empty());
    // Some of the API's examples give the price as a string.
    r.clock.advance(1_000);
    r.stub.fail_next(
        200,
        &[],
        r#"{"data": {"gpu_1x_a10": {"instance_type": {"name": "gpu_1x_a10", "description": "", "price_cents_per_hour": "75", "specs": {}}, "regions_with_capacity_available": []}}}"#,
    );
    assert_eq!(
        r.provider.offerings().unwrap()[0].price_cents_per_hour,
        Some(75)
    );
}

#[test]
fn the_api_key_stays_out_of_errors_and_debug_output() {
    // A wrong key: auth, not retryable; the key we sent is not in the message.
    let r = rig_with("wrong_key_0123456789", json!({}));
    let e = r.provider.list().unwrap_err();
    assert_eq!((e.kind, e.retryable()), (ErrorKind::Auth, false));
    assert!(!e.message.contains("wrong_key"), "{e}");
    let r = rig();
    r.stub.fail_next(
        500,
        &[],
        &error("global/unknown", &format!("backend failed for key {KEY}")),
    );
    let e = r.provider.list().unwrap_err();
    assert!(!e.message.contains(KEY), "{e}");
    assert!(e.message.contains("[redacted]"), "{e}");
    assert!(!format!("{:?}", r.provider).contains(KEY));
}

#[test]
fn invalid_params_and_a_missing_key_are_all_reported_at_once() {
    let mut env = ProviderEnv::new("http://127.0.0.1:8410", "/nonexistent");
    env.vars = EnvVars::from_map(BTreeMap::new());
    let e = build(
        "lambda",
        json!({"api_key_env": "NOT_SET_ANYWHERE", "base_url": "ftp://x", "launch_interval": "soon", "region": "us"})
            .as_object()
            .unwrap(),
        &env,
    )
    .unwrap_err();
    let want = [
        "\"api_key_env\": the environment variable NOT_SET_ANYWHERE is not set",
        "\"ssh_key_names\": required",
        "\"base_url\": ",
        "\"launch_interval\": ",
        "\"region\": unknown",
    ];
    assert_eq!(e.len(), want.len(), "{e:#?}");
    for (got, w) in e.iter().zip(want) {
        assert!(
            got.starts_with("provider lambda: param ") && got.contains(w),
            "{got} / {w}"
        );
    }
}

/// A launch that timed out may still have made the machine: the retry finds it by its
/// instance tag instead of launching a second one.
#[test]
fn a_retry_after_a_timed_out_launch_finds_the_machine_instead_of_launching_again() {
    let r = rig_with(KEY, json!({"timeout": "1s"}));
    r.stub.lock().delay = Some(Duration::from_millis(1_500));
    let e = r.provider.provision(&req("i-1")).unwrap_err();
    assert_eq!((e.kind, e.retryable()), (ErrorKind::Timeout, true), "{e}");
    assert_eq!(r.stub.lock().instances.len(), 1, "the API made it anyway");
    r.later();
    let m = r.provider.provision(&req("i-1")).unwrap();
    assert_eq!(
        m.provider_id,
        r.stub.lock().instances[0]["id"].as_str().unwrap()
    );
    assert_eq!(
        r.stub.seen("/instance-operations/launch").len(),
        1,
        "no second launch"
    );
    // Once known, the next provision of another instance launches as usual.
    r.later();
    r.provider.provision(&req("i-2")).unwrap();
    assert_eq!(r.stub.lock().instances.len(), 2);
}
