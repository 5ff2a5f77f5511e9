//! The budget by hand and the utilization history in the store (`store` runs it on SQLite
//! and PostgreSQL): budgets set over the configured ones and cleared, releases of held nodes,
//! each audited in its transaction; samples added, replaced at the same time, pruned.

use gpuwarden_controlplane::model::pool::{BudgetSpec, PoolSpec};
use gpuwarden_controlplane::store::pool_rows::{InstanceNode, NewInstance, PoolRow, SOURCE_API};
use gpuwarden_controlplane::store::rows::NewAudit;
use gpuwarden_controlplane::store::{BudgetScope, ReleaseRow, Store, StoreError};
use serde_json::json;

fn audit(action: &str, target: &str, t: i64) -> NewAudit {
    NewAudit::ok("alice", action, target, json!({}), t)
}

fn count(s: &Store, action: &str) -> usize {
    s.audit_log(1000)
        .unwrap()
        .iter()
        .filter(|a| a.action == action && a.actor == "alice")
        .count()
}

pub(crate) fn remedy(s: &Store) {
    api_tokens(s);
    let spec = PoolSpec::new("hand", "fake", 1, 4);
    let row = PoolRow::new(&spec, SOURCE_API, None, 1_000).unwrap();
    s.create_pool(&row, audit("pool.create", "hand", 1_000))
        .unwrap();
    budgets(s);
    releases(s);
    utilization(s);
}

fn budgets(s: &Store) {
    let b = |n| BudgetSpec {
        max_percent: 50.0,
        max_nodes: n,
    };
    let pool = BudgetScope::Pool("hand".into());
    s.set_budget(
        &BudgetScope::Fleet,
        b(5),
        "alice",
        2_000,
        audit("budget.set", "fleet", 2_000),
    )
    .unwrap();
    s.set_budget(
        &pool,
        b(1),
        "alice",
        2_001,
        audit("budget.set", "pool:hand", 2_001),
    )
    .unwrap();
    // Set again: replaced, not added.
    let r = s
        .set_budget(
            &pool,
            b(3),
            "alice",
            2_002,
            audit("budget.set", "pool:hand", 2_002),
        )
        .unwrap();
    assert_eq!((r.spec(), r.set_at), (b(3), 2_002));
    let all = s.budgets().unwrap();
    let got: Vec<(BudgetScope, u32)> = all
        .iter()
        .map(|r| (BudgetScope::parse(&r.scope).unwrap(), r.spec().max_nodes))
        .collect();
    assert_eq!(got, [(BudgetScope::Fleet, 5), (pool.clone(), 3)]);
    // An unknown pool: refused, nothing written, nothing audited.
    let e = s
        .set_budget(
            &BudgetScope::Pool("nope".into()),
            b(1),
            "alice",
            2_003,
            audit("budget.set", "pool:nope", 2_003),
        )
        .unwrap_err();
    assert!(matches!(e, StoreError::NotFound(_)), "{e}");
    assert_eq!(count(s, "budget.set"), 3);
    assert!(s
        .clear_budget(&pool, audit("budget.clear", "pool:hand", 2_004))
        .unwrap());
    assert!(!s
        .clear_budget(&pool, audit("budget.clear", "pool:hand", 2_005))
        .unwrap());
    assert_eq!(
        count(s, "budget.clear"),
        1,
        "clearing nothing audits nothing"
    );
    assert_eq!(s.budgets().unwrap().len(), 1);
}

fn releases(s: &Store) {
    s.create_instance(&NewInstance {
        id: "hand-1".into(),
        pool: "hand".into(),
        provider: "fake".into(),
        node: Some(InstanceNode {
            id: "node-hand-1".into(),
            name: "hand-1".into(),
            labels: Default::default(),
            token_digest: "join-hand-1".into(),
            token_expires: None,
        }),
        now: 3_000,
    })
    .unwrap();
    let r = |node: &str, at| ReleaseRow {
        node_id: node.into(),
        pool: "hand".into(),
        released_by: "alice".into(),
        released_at: at,
    };
    s.release_node(
        &r("node-hand-1", 3_001),
        audit("node.release", "node-hand-1", 3_001),
    )
    .unwrap();
    // Released again before it is carried out: the first release stays.
    s.release_node(
        &r("node-hand-1", 3_002),
        audit("node.release", "node-hand-1", 3_002),
    )
    .unwrap();
    assert_eq!(s.releases().unwrap(), [r("node-hand-1", 3_001)]);
    let e = s
        .release_node(
            &r("node-none", 3_003),
            audit("node.release", "node-none", 3_003),
        )
        .unwrap_err();
    assert!(matches!(e, StoreError::NotFound(_)), "{e}");
    s.clear_release("node-hand-1").unwrap();
    assert!(s.releases().unwrap().is_empty());
    // A deleted node takes its release with it.
    s.release_node(
        &r("node-hand-1", 3_004),
        audit("node.release", "node-hand-1", 3_004),
    )
    .unwrap();
    s.delete_node("node-hand-1", audit("node.delete", "node-hand-1", 3_005))
        .unwrap();
    assert!(s.releases().unwrap().is_empty());
}

fn utilization(s: &Store) {
    for (t, u) in [(10_000, 0.1), (20_000, 0.2), (30_000, 0.3)] {
        s.add_utilization("hand", t, u, 0).unwrap();
    }
    // The same time again replaces the sample.
    s.add_utilization("hand", 30_000, 0.35, 0).unwrap();
    assert_eq!(
        s.utilization("hand", 0, 100).unwrap(),
        [(10_000, 0.1), (20_000, 0.2), (30_000, 0.35)]
    );
    assert_eq!(
        s.utilization("hand", 0, 2).unwrap(),
        [(20_000, 0.2), (30_000, 0.35)],
        "the newest, oldest first"
    );
    assert_eq!(s.utilization("hand", 15_000, 100).unwrap().len(), 2);
    // Pruned as a sample comes.
    s.add_utilization("hand", 40_000, 0.4, 25_000).unwrap();
    assert_eq!(
        s.utilization("hand", 0, 100).unwrap(),
        [(30_000, 0.35), (40_000, 0.4)]
    );
    // A deleted pool takes its samples with it.
    s.delete_pool("hand", true, audit("pool.delete", "hand", 50_000))
        .unwrap();
    assert!(s.utilization("hand", 0, 100).unwrap().is_empty());
}

/// API tokens on both backends: stored and listed, names unique, the cap counted in the
/// inserting transaction (a table lock on PostgreSQL), revoked once.
fn api_tokens(s: &Store) {
    use gpuwarden_controlplane::store::{ApiTokenRow, StoreError};
    let row = |id: &str, name: &str| ApiTokenRow {
        id: id.into(),
        name: name.into(),
        role: "viewer".into(),
        digest: format!("{:0>64}", id.len()),
        created_by: "admin:test".into(),
        created_at: 1_000,
    };
    s.create_api_token(&row("tok_1", "a"), audit("token.create", "a", 1_000), 2)
        .unwrap();
    let mut dup = row("tok_2", "a");
    dup.digest = "f".repeat(64);
    assert!(matches!(
        s.create_api_token(&dup, audit("token.create", "a", 1_000), 2),
        Err(StoreError::Conflict(_))
    ));
    let mut b = row("tok_3", "b");
    b.digest = "e".repeat(64);
    s.create_api_token(&b, audit("token.create", "b", 1_000), 2)
        .unwrap();
    let mut c = row("tok_4", "c");
    c.digest = "d".repeat(64);
    assert!(matches!(
        s.create_api_token(&c, audit("token.create", "c", 1_000), 2),
        Err(StoreError::Conflict(m)) if m.contains("2 tokens")
    ));
    assert_eq!(s.api_tokens().unwrap().len(), 2);
    assert!(s
        .revoke_api_token("tok_1", audit("token.revoke", "a", 1_000))
        .unwrap());
    assert!(!s
        .revoke_api_token("tok_1", audit("token.revoke", "a", 1_000))
        .unwrap());
    assert_eq!(s.api_tokens().unwrap().len(), 1);
}
