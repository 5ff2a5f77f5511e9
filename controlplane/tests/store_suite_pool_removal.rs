//! What goes when a pool goes: an operator's budget for it (a pool created again under the
//! name must not inherit a budget of 0), and a config pool dropped from the file while it
//! still has machines is handed back to the API instead of deleted (a breaker's finds).

use gpuwarden_controlplane::model::pool::{BudgetSpec, PoolSpec};
use gpuwarden_controlplane::store::{BudgetScope, Store};

use crate::store_suite_pools::{audit, instance};

pub(crate) fn removal(s: &Store) {
    let file = "/etc/gpuwarden/pools-removal.toml";
    let gone = PoolSpec::new("gone", "fake", 0, 2);
    let kept = PoolSpec::new("kept", "fake", 0, 2);
    s.apply_config_pools(&[gone.clone(), kept.clone()], file, 50_000)
        .unwrap();
    let scope = BudgetScope::Pool("gone".into());
    let zero = BudgetSpec {
        max_percent: 100.0,
        max_nodes: 0,
    };
    s.set_budget(
        &scope,
        zero,
        "admin:test",
        50_100,
        audit("budget.set", "gone", 50_100),
    )
    .unwrap();
    s.create_instance(&instance("i-kept", "kept", Some("kept-1"), 50_200))
        .unwrap();
    let out = s.apply_config_pools(&[], file, 50_300).unwrap();
    assert_eq!(out.removed, vec!["gone".to_string()]);
    assert!(s.pool("gone").is_err());
    assert!(
        s.budgets().unwrap().iter().all(|b| b.scope != "pool:gone"),
        "the budget went with its pool"
    );
    assert_eq!(out.handed_back, vec!["kept".to_string()]);
    let row = s.pool("kept").unwrap();
    assert!(
        !row.from_config(),
        "now managed through the API: {}",
        row.source
    );
    // Deleted through the API (forced), its budget goes too.
    let scope = BudgetScope::Pool("kept".into());
    s.set_budget(
        &scope,
        zero,
        "admin:test",
        50_400,
        audit("budget.set", "kept", 50_400),
    )
    .unwrap();
    s.delete_pool("kept", true, audit("pool.delete", "kept", 50_500))
        .unwrap();
    assert!(s.budgets().unwrap().iter().all(|b| b.scope != "pool:kept"));
}
