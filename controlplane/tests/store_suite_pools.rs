//! The pool half of the store suite (`store` runs it on SQLite and PostgreSQL): pools and
//! their read-only config twins, decisions kept to a bound, instances recorded before the
//! provider is called with their pre-created node, checked transitions, listing, retention.

use std::collections::BTreeMap;

use gpuwarden_controlplane::model::pool::{InstanceState, PoolSpec};
use gpuwarden_controlplane::store::pool_rows::{
    InstanceNode, InstanceUpdate, NewDecision, NewInstance, PoolRow, PoolRuntime, SOURCE_API,
};
use gpuwarden_controlplane::store::rows::NewAudit;
use gpuwarden_controlplane::store::{InstanceFilter, Registration, Store, StoreError};
use serde_json::json;

pub(crate) fn audit(action: &str, target: &str, t: i64) -> NewAudit {
    NewAudit::ok("admin:test", action, target, json!({}), t)
}

pub(crate) fn instance(id: &str, pool: &str, node: Option<&str>, now: i64) -> NewInstance {
    NewInstance {
        id: id.into(),
        pool: pool.into(),
        provider: "local".into(),
        node: node.map(|n| InstanceNode {
            id: format!("node-{n}"),
            name: n.into(),
            labels: BTreeMap::from([("pool".to_string(), pool.to_string())]),
            token_digest: format!("join-{n}"),
            token_expires: Some(now + 600_000),
        }),
        now,
    }
}

fn to(state: InstanceState) -> InstanceUpdate {
    InstanceUpdate {
        state: Some(state),
        ..InstanceUpdate::default()
    }
}

/// Runs every pool operation against `s` (a fresh, migrated database).
pub(crate) fn pools(s: &Store) {
    pool_crud(s);
    config_pools(s);
    decisions(s);
    instances(s);
    retention(s);
    crate::store_suite_pool_removal::removal(s);
}

fn pool_crud(s: &Store) {
    let spec = PoolSpec::new("train", "local", 2, 4);
    let row = PoolRow::new(&spec, SOURCE_API, None, 1_000).unwrap();
    s.create_pool(&row, audit("pool.create", "train", 1_000))
        .unwrap();
    let e = s
        .create_pool(&row, audit("pool.create", "train", 1_001))
        .unwrap_err();
    assert!(matches!(e, StoreError::Conflict(_)), "{e}");
    let got = s.pool("train").unwrap();
    assert_eq!(got.spec().unwrap(), spec);
    assert_eq!((got.source.as_str(), got.status.as_str()), ("api", "ok"));

    let mut wider = spec.clone();
    wider.max_nodes = 8;
    let after = s
        .update_pool_spec(&wider, 2_000, audit("pool.update", "train", 2_000))
        .unwrap();
    assert_eq!(after.spec().unwrap().max_nodes, 8);
    assert_eq!(s.pool("train").unwrap().spec().unwrap().max_nodes, 8);
    let e = s
        .update_pool_spec(
            &PoolSpec::new("nope", "local", 0, 1),
            2_000,
            audit("pool.update", "nope", 2_000),
        )
        .unwrap_err();
    assert!(matches!(e, StoreError::NotFound(_)), "{e}");

    s.set_manual_target("train", Some(3), 3_000, audit("pool.scale", "train", 3_000))
        .unwrap();
    s.set_demand("train", 17, 3_100).unwrap();
    let p = s.pool("train").unwrap();
    assert_eq!(p.manual_target, Some(3));
    assert_eq!((p.demand_pending, p.demand_at), (Some(17), Some(3_100)));
    s.set_manual_target("train", None, 3_200, audit("pool.scale", "train", 3_200))
        .unwrap();
    assert_eq!(s.pool("train").unwrap().manual_target, None);
    assert!(matches!(
        s.set_demand("nope", 1, 1).unwrap_err(),
        StoreError::NotFound(_)
    ));

    let rt = PoolRuntime {
        last_target: Some(3),
        last_scale_up: Some(3_300),
        last_scale_down: None,
        select_state: r#"{"providers":{}}"#.into(),
        status: "degraded".into(),
        last_error: Some("local: no free port".into()),
        updated_at: 3_300,
    };
    s.save_pool_runtime("train", &rt).unwrap();
    let p = s.pool("train").unwrap();
    assert_eq!(p.last_target, Some(3));
    assert_eq!(p.last_error.as_deref(), Some("local: no free port"));
    assert_eq!(p.spec().unwrap().max_nodes, 8, "the spec is untouched");

    // A pool with a node is not deleted without force; with force it is, its node stays.
    let (_, created) = s
        .create_instance(&instance("i-del", "train", Some("del-1"), 4_000))
        .unwrap();
    assert!(created);
    let e = s
        .delete_pool("train", false, audit("pool.delete", "train", 4_100))
        .unwrap_err();
    assert!(
        matches!(&e, StoreError::Conflict(m) if m.contains("force")),
        "{e}"
    );
    assert!(s.pool("train").is_ok(), "a refused delete changes nothing");
    s.delete_pool("train", true, audit("pool.delete", "train", 4_200))
        .unwrap();
    assert!(matches!(
        s.pool("train").unwrap_err(),
        StoreError::NotFound(_)
    ));
    assert_eq!(s.node("del-1").unwrap().pool, "train");
}

fn config_pools(s: &Store) {
    let api = PoolSpec::new("shared", "local", 0, 2);
    s.create_pool(
        &PoolRow::new(&api, SOURCE_API, None, 5_000).unwrap(),
        audit("pool.create", "shared", 5_000),
    )
    .unwrap();
    let a = PoolSpec::new("infer", "local", 1, 2);
    let mut shared = PoolSpec::new("shared", "fake", 1, 3);
    shared.auto_replace = true;
    let file = "/etc/gpuwarden/controlplane.toml";
    let out = s
        .apply_config_pools(&[a.clone(), shared.clone()], file, 6_000)
        .unwrap();
    assert_eq!(out.created, vec!["infer".to_string()]);
    assert_eq!(out.taken_over, vec!["shared".to_string()]);
    assert_eq!(s.pool("shared").unwrap().spec().unwrap(), shared);
    // Applying the same again changes nothing.
    let again = s
        .apply_config_pools(&[a.clone(), shared.clone()], file, 6_100)
        .unwrap();
    assert_eq!(again, Default::default());
    // Config pools are read-only for the API, naming the file.
    let e = s
        .update_pool_spec(&a, 6_200, audit("pool.update", "infer", 6_200))
        .unwrap_err();
    assert!(
        matches!(&e, StoreError::Conflict(m) if m.contains(file)),
        "{e}"
    );
    let e = s
        .delete_pool("infer", true, audit("pool.delete", "infer", 6_200))
        .unwrap_err();
    assert!(
        matches!(&e, StoreError::Conflict(m) if m.contains(file)),
        "{e}"
    );
    // A changed spec updates; a pool no longer declared is removed.
    let mut a2 = a.clone();
    a2.max_nodes = 5;
    let out = s.apply_config_pools(&[a2], file, 7_000).unwrap();
    assert_eq!(out.updated, vec!["infer".to_string()]);
    assert_eq!(out.removed, vec!["shared".to_string()]);
    assert_eq!(s.pool("infer").unwrap().spec().unwrap().max_nodes, 5);
    assert!(s.pool("shared").is_err());
}

fn decisions(s: &Store) {
    for i in 0..5 {
        let d = NewDecision {
            pool: "infer".into(),
            time: 8_000 + i,
            target: i32::try_from(i).unwrap(),
            reasons: json!([format!("round {i}")]).to_string(),
            actions: "[]".into(),
            counts: "{}".into(),
        };
        s.record_decision(&d, 3).unwrap();
    }
    let kept = s.decisions("infer", 10).unwrap();
    let targets: Vec<i32> = kept.iter().map(|d| d.target).collect();
    assert_eq!(targets, vec![4, 3, 2], "the last 3, newest first");
    assert_eq!(s.decisions("infer", 1).unwrap().len(), 1);
}

fn instances(s: &Store) {
    let (row, created) = s
        .create_instance(&instance("i-1", "infer", Some("infer-1"), 9_000))
        .unwrap();
    assert!(created);
    assert_eq!(row.state().unwrap(), InstanceState::Provisioning);
    assert_eq!(row.node_id.as_deref(), Some("node-infer-1"));
    // Recording the same instance again (a retry after a crash) changes nothing.
    let (again, created) = s
        .create_instance(&instance("i-1", "infer", Some("infer-1"), 9_500))
        .unwrap();
    assert!(!created);
    assert_eq!(again, row);
    let e = s
        .create_instance(&instance("i-1", "other", None, 9_600))
        .unwrap_err();
    assert!(matches!(e, StoreError::Conflict(_)), "{e}");
    // The pre-created node waits for its agent, which joins with the join token.
    let node = s.node("infer-1").unwrap();
    assert_eq!(
        (node.status.as_str(), node.pool.as_str()),
        ("pending", "infer")
    );
    assert_eq!(node.instance_id.as_deref(), Some("i-1"));
    assert_eq!(
        s.node_for_token("join-infer-1", 9_100).unwrap().as_deref(),
        Some("node-infer-1")
    );
    assert_eq!(
        s.node_for_token("join-infer-1", 9_000 + 600_001).unwrap(),
        None,
        "expired"
    );

    // provisioning → registering with the provider's id.
    let u = InstanceUpdate {
        state: Some(InstanceState::Registering),
        provider_id: Some("pid-1".into()),
        attempt: true,
        ..InstanceUpdate::default()
    };
    let r = s.update_instance("i-1", &u, 9_200).unwrap();
    assert_eq!(
        (r.state.as_str(), r.attempts, r.state_since),
        ("registering", 1, 9_200)
    );
    // An illegal transition is refused and changes nothing.
    let e = s
        .update_instance("i-1", &to(InstanceState::Provisioning), 9_300)
        .unwrap_err();
    assert!(
        matches!(&e, StoreError::Conflict(m) if m.contains("registering")),
        "{e}"
    );
    assert_eq!(s.instance("i-1").unwrap(), r);
    assert!(matches!(
        s.update_instance("nope", &to(InstanceState::Failed), 1)
            .unwrap_err(),
        StoreError::NotFound(_)
    ));

    // The agent registers with the join token, naming another pool: the node stays in its.
    let reg = Registration {
        new_id: "unused".into(),
        name: "infer-1".into(),
        pool: Some("elsewhere".into()),
        labels: BTreeMap::new(),
        actor: "join-token".into(),
        bootstrap: false,
        address: "http://127.0.0.1:1".into(),
        capabilities: "{}".into(),
        token_digest: "node-token-1".into(),
        token_expires: None,
        now: 9_400,
    };
    let done = s.register(&reg).unwrap();
    assert_eq!(done.node.pool, "infer");
    assert_eq!(
        done.node.to_model().unwrap().instance_id.as_deref(),
        Some("i-1")
    );
    let r = s
        .update_instance("i-1", &to(InstanceState::Running), 9_500)
        .unwrap();
    assert_eq!(r.state.as_str(), "running");
    assert_eq!(
        s.instance_of_node("node-infer-1").unwrap().unwrap().id,
        "i-1"
    );

    // An instance without a pre-created node is linked to the node that joins later.
    s.create_instance(&instance("i-2", "infer", None, 9_600))
        .unwrap();
    let r = s
        .update_instance(
            "i-2",
            &InstanceUpdate {
                node_id: Some("node-del-1".into()),
                state: Some(InstanceState::Running),
                ..InstanceUpdate::default()
            },
            9_700,
        )
        .unwrap();
    assert_eq!(r.node_id.as_deref(), Some("node-del-1"));
    let n = s.node("del-1").unwrap();
    assert_eq!(
        (n.instance_id.as_deref(), n.pool.as_str()),
        (Some("i-2"), "infer")
    );
    s.create_instance(&instance("i-3", "train", None, 9_800))
        .unwrap();

    let page = |pool: Option<&str>, states: Vec<InstanceState>, offset, limit| {
        let f = InstanceFilter {
            pool: pool.map(str::to_string),
            states,
            offset,
            limit,
        };
        let (rows, total) = s.list_instances(&f).unwrap();
        (rows.into_iter().map(|r| r.id).collect::<Vec<_>>(), total)
    };
    assert_eq!(
        page(Some("infer"), vec![], 0, 10),
        (vec!["i-1".into(), "i-2".into()], 2)
    );
    assert_eq!(
        page(None, vec![InstanceState::Provisioning], 0, 10),
        (vec!["i-del".into(), "i-3".into()], 2)
    );
    assert_eq!(
        page(None, vec![], 1, 2),
        (vec!["i-1".into(), "i-2".into()], 4)
    );
}

fn retention(s: &Store) {
    let end = |id: &str, last: InstanceState, now| {
        s.update_instance(id, &to(last), now).unwrap();
    };
    // i-1 running → terminating → terminated long ago; i-3 failed before any machine;
    // i-2 failed with a machine still to terminate; i-del terminated recently.
    end("i-1", InstanceState::Terminating, 10_000);
    end("i-1", InstanceState::Terminated, 10_000);
    end("i-3", InstanceState::Failed, 10_000);
    s.update_instance(
        "i-2",
        &InstanceUpdate {
            state: Some(InstanceState::Failed),
            provider_id: Some("pid-2".into()),
            error: Some(Some("registration timed out".into())),
            ..InstanceUpdate::default()
        },
        10_000,
    )
    .unwrap();
    end("i-del", InstanceState::Terminating, 20_000);
    end("i-del", InstanceState::Terminated, 20_000);
    let e = s
        .update_instance("i-del", &to(InstanceState::Running), 20_100)
        .unwrap_err();
    assert!(
        matches!(e, StoreError::Conflict(_)),
        "terminated is final: {e}"
    );
    assert_eq!(s.purge_instances(15_000).unwrap(), 2);
    let (left, _) = s
        .list_instances(&InstanceFilter {
            limit: 10,
            ..InstanceFilter::default()
        })
        .unwrap();
    let ids: Vec<_> = left.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, vec!["i-del", "i-2"]);
    assert_eq!(left[1].error.as_deref(), Some("registration timed out"));
}
