use std::time::Duration;

use super::*;

fn parse(json: &str) -> PoolSpec {
    serde_json::from_str(json).unwrap_or_else(|e| panic!("{json}: {e}"))
}

fn fields(p: &PoolSpec) -> Vec<String> {
    p.validate().into_iter().map(|e| e.field).collect()
}

/// The interface contract of issue #13: scripts post exactly this.
#[test]
fn the_contract_body_parses_with_defaults_and_is_valid() {
    let p =
        parse(r#"{"name":"p","provider":"local","min_nodes":2,"max_nodes":4,"auto_replace":true}"#);
    assert_eq!(p.validate(), vec![]);
    assert_eq!(p.provider_list(), vec![ProviderSpec::of_kind("local")]);
    assert_eq!(p.strategy, Strategy::Priority);
    assert_eq!(p.registration_timeout.parse(), Ok(Duration::from_secs(600)));
    assert_eq!(p.remediation.action, None, "inherited unless set");
    // The contract's pool replaces (`auto_replace`): it drains and terminates; without
    // `auto_replace` the plan is inherited, and a pool's own plan wins over both.
    assert_eq!(p.plan(Plan::Cordon), Plan::CordonDrainTerminate);
    let mut plain = p.clone();
    plain.auto_replace = false;
    assert_eq!(plain.plan(Plan::Cordon), Plan::Cordon);
    assert_eq!(plain.plan(Plan::Nothing), Plan::Nothing);
    plain.remediation.action = Some(Plan::CordonDrain);
    assert_eq!(plain.plan(Plan::Nothing), Plan::CordonDrain, "its own wins");
    assert!(p.auto_replace && p.autoscaler.is_none());
    // What the API shows parses back to the same spec.
    let back: PoolSpec = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
    assert_eq!(back, p);
}

#[test]
fn a_full_pool_reads_from_toml_with_params_beside_or_in_a_table() {
    let p: PoolSpec = toml::from_str(
        r#"
name = "training"
strategy = "cost"
min_nodes = 1
max_nodes = 8
scale_up_cooldown = "30s"
labels = { team = "ml" }
[[providers]]
name = "lambda"
priority = 1
cost_per_hour = 23.92
api_key_env = "LAMBDA_API_KEY"
[[providers]]
name = "onprem"
kind = "exec"
params = { provision = "/opt/provision" }
[autoscaler]
type = "composite"
mode = "max"
[[autoscaler.autoscalers]]
type = "reactive"
step = 2
[[autoscaler.autoscalers]]
type = "scheduled"
timezone = "Europe/Berlin"
windows = [{ days = ["mon", "fri"], start = "08:00", end = "18:00", min_nodes = 2, max_nodes = 8 }]
[budget]
max_nodes = 1
"#,
    )
    .expect("parses");
    assert_eq!(p.validate(), vec![]);
    let ps = p.provider_list();
    assert_eq!(ps[0].kind, "lambda");
    assert_eq!(ps[0].params["api_key_env"], "LAMBDA_API_KEY");
    assert_eq!(ps[1].params["provision"], "/opt/provision");
    assert_eq!(p.budget.max_percent, 10.0);
    let Some(AutoscalerSpec::Composite(c)) = &p.autoscaler else {
        panic!("{:?}", p.autoscaler)
    };
    assert_eq!(c.autoscalers[0].kind(), "reactive");
}

#[test]
fn shape_errors_name_the_key() {
    for (json, want) in [
        (
            r#"{"name":"p","provider":"local","min_nodes":1}"#,
            "max_nodes",
        ),
        (
            r#"{"name":"p","provider":"local","min_nodes":1,"max_nodes":2,"mxa":1}"#,
            "mxa",
        ),
        (
            r#"{"name":"p","provider":"local","min_nodes":-1,"max_nodes":2}"#,
            "-1",
        ),
        (
            r#"{"name":"p","provider":"local","min_nodes":1,"max_nodes":2,"autoscaler":{"type":"magic"}}"#,
            "magic",
        ),
        (
            r#"{"name":"p","provider":"local","min_nodes":1,"max_nodes":2,"autoscaler":{"type":"queue","jobs":3}}"#,
            "jobs",
        ),
        (
            r#"{"name":"p","providers":[{"name":"x","kind":"exec","a":1,"params":{"a":2}}],"min_nodes":1,"max_nodes":2}"#,
            "given both",
        ),
    ] {
        let e = serde_json::from_str::<PoolSpec>(json)
            .unwrap_err()
            .to_string();
        assert!(e.contains(want), "{json}: {e}");
    }
}

/// Issue #13: "an invalid pool is refused with every error at once".
#[test]
fn validation_reports_every_problem_with_its_field_path() {
    let p = parse(
        r#"{"name":"-bad","providers":[
            {"name":"a","kind":"cloud9","weight":0},
            {"name":"a","kind":"local","cost_per_hour":-1}],
          "min_nodes":5,"max_nodes":3,
          "scale_up_cooldown":"soon","registration_timeout":"0s",
          "labels":{"__x":"y"}, "zones":["a","a"],
          "budget":{"max_percent":0},
          "remediation":{"action":"cordon","drain_timeout":"forever"},
          "autoscaler":{"type":"composite","autoscalers":[
             {"type":"reactive","scale_up_threshold":0.2,"scale_down_threshold":1.5,"step":0},
             {"type":"queue","jobs_per_node":0},
             {"type":"predictive","window":"0s","target_utilization":0,"max_step":0,"min_samples":1},
             {"type":"composite","autoscalers":[]},
             {"type":"scheduled","timezone":"Mars/Olympus","windows":[
                {"days":["mon","someday"],"start":"25:00","end":"8am","min_nodes":4,"max_nodes":2},
                {"start":"10:00","end":"10:00","min_nodes":0,"max_nodes":9}]}]}}"#,
    );
    let got = fields(&p);
    let a = "autoscaler.autoscalers";
    let want = [
        "name".to_string(),
        "providers[0].kind".into(),
        "providers[0].weight".into(),
        "providers[1].cost_per_hour".into(),
        "providers[1].name".into(),
        "min_nodes".into(),
        "zones[1]".into(),
        "labels.__x".into(),
        "scale_up_cooldown".into(),
        "registration_timeout".into(),
        "remediation.drain_timeout".into(),
        "budget.max_percent".into(),
        format!("{a}[0].scale_down_threshold"),
        format!("{a}[0].scale_up_threshold"),
        format!("{a}[0].step"),
        format!("{a}[1].jobs_per_node"),
        format!("{a}[2].window"),
        format!("{a}[2].target_utilization"),
        format!("{a}[2].max_step"),
        format!("{a}[2].min_samples"),
        format!("{a}[3].autoscalers"),
        format!("{a}[4].timezone"),
        format!("{a}[4].windows[0].days"),
        format!("{a}[4].windows[0].start"),
        format!("{a}[4].windows[0].end"),
        format!("{a}[4].windows[0].min_nodes"),
        format!("{a}[4].windows[0].max_nodes"),
        format!("{a}[4].windows[1].end"),
        format!("{a}[4].windows[1].max_nodes"),
    ];
    for w in &want {
        assert!(got.contains(w), "missing {w} in {got:#?}");
    }
    assert_eq!(got.len(), want.len(), "{got:#?}");
    let msg = p
        .validate()
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        msg.contains("unknown provider kind \"cloud9\": use one of fake, local, exec, lambda"),
        "{msg}"
    );
    assert!(
        msg.contains("min_nodes: 5 is more than max_nodes (3)"),
        "{msg}"
    );
}

#[test]
fn provider_and_providers_are_exclusive_and_one_is_needed() {
    let mut p = PoolSpec::new("p", "local", 0, 1);
    p.providers = vec![ProviderSpec::of_kind("fake")];
    assert_eq!(fields(&p), vec!["provider"]);
    p.provider = None;
    p.providers.clear();
    assert_eq!(fields(&p), vec!["providers"]);
    p.provider = Some("lambda-cloud".into());
    assert_eq!(fields(&p), vec!["provider"]);
}

#[test]
fn budget_is_the_smaller_of_percent_and_count_and_at_least_one() {
    let b = BudgetSpec::default();
    // (pool size, limit) with 10 % and 2.
    for (size, want) in [(0, 1), (3, 1), (10, 1), (19, 1), (20, 2), (1000, 2)] {
        assert_eq!(b.limit(size), want, "size {size}");
    }
    let b = BudgetSpec {
        max_percent: 50.0,
        max_nodes: 100,
    };
    assert_eq!(b.limit(10), 5);
    assert_eq!(b.limit(3), 1, "1.5 rounds down");
    let paused = BudgetSpec {
        max_percent: 100.0,
        max_nodes: 0,
    };
    assert_eq!(paused.limit(10), 0);
}

#[test]
fn instance_states_parse_and_only_allowed_transitions_pass() {
    use InstanceState::*;
    for s in InstanceState::ALL {
        assert_eq!(s.as_str().parse::<InstanceState>(), Ok(*s));
        assert_eq!(serde_json::to_string(s).unwrap(), format!("\"{s}\""));
    }
    assert!("booting"
        .parse::<InstanceState>()
        .unwrap_err()
        .contains("provisioning, registering"));
    let mut s = Provisioning;
    for to in [Registering, Running, Terminating, Terminated] {
        s = s.transition(to).expect("the normal life");
    }
    for (from, to) in [
        (Terminated, Running),
        (Terminated, Failed),
        (Running, Registering),
        (Failed, Running),
    ] {
        assert_eq!(
            from.transition(to),
            Err(InstanceTransitionError { from, to })
        );
    }
    for from in [Provisioning, Registering, Running] {
        assert!(from.can_become(Failed) && from.can_become(Terminating));
    }
    assert!(
        Failed.can_become(Terminated),
        "the provider says it is gone"
    );
    assert!(Running.can_become(Running), "idempotent");
}

#[test]
fn the_plan_keeps_its_config_names() {
    assert_eq!(Plan::CordonDrain.as_str(), "cordon_drain");
    let p: Plan = serde_json::from_str("\"cordon_drain_terminate\"").unwrap();
    assert!(p > Plan::CordonDrain);
}

/// The API's OpenAPI document can describe a pool: the required fields are the contract's.
#[test]
fn the_openapi_schema_requires_only_name_min_and_max() {
    use utoipa::PartialSchema;
    let j = serde_json::to_value(PoolSpec::schema()).expect("schema serializes");
    let mut required: Vec<&str> = j["required"]
        .as_array()
        .expect("required list")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    required.sort();
    assert_eq!(required, vec!["max_nodes", "min_nodes", "name"], "{j:#}");
    let a = serde_json::to_string(&AutoscalerSpec::schema()).expect("schema serializes");
    for kind in ["reactive", "queue", "scheduled", "predictive", "composite"] {
        assert!(a.contains(kind), "{kind} in {a}");
    }
}
