//! Plugin distribution's store operations on either backend: components by digest (bytes
//! of every value kept as they are), a name's newest, assignments set and replaced, a pool
//! spec's plugins applied only when they change, what agents report, and deleting.

use gpuwarden_controlplane::model::plugin::PluginAssign;
use gpuwarden_controlplane::store::plugins::{effective, AssignmentRow, NodePluginRow, ALL_NODES};
use gpuwarden_controlplane::store::rows::NewAudit;
use gpuwarden_controlplane::store::{Store, StoreError};

fn audit(action: &str) -> NewAudit {
    NewAudit::ok("admin:test", action, "plugin:x", serde_json::json!({}), 1)
}

fn row(pool: &str, name: &str, digest: &str) -> AssignmentRow {
    AssignmentRow {
        pool: pool.into(),
        name: name.into(),
        digest: digest.into(),
        config: "{\"window_seconds\":\"600\"}".into(),
        interval_ms: Some(30_000),
        timeout_ms: None,
        memory_limit_mib: Some(64),
        assigned_by: "admin:test".into(),
        assigned_at: 2,
    }
}

pub(crate) fn plugins(s: &Store) {
    let (d1, d2) = (
        format!("sha256:{}", "1".repeat(64)),
        format!("sha256:{}", "2".repeat(64)),
    );
    let every: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    assert!(s
        .put_plugin_blob(&d1, "xid", &every, "admin:test", 10, audit("plugin.push"))
        .unwrap());
    assert!(s
        .put_plugin_blob(&d2, "xid", b"v2", "admin:test", 20, audit("plugin.push"))
        .unwrap());
    assert_eq!(
        s.plugin_blob(&d1).unwrap().unwrap(),
        every,
        "bytes kept as they are"
    );
    assert_eq!(
        s.plugin_blob(&format!("sha256:{}", "9".repeat(64)))
            .unwrap(),
        None
    );
    // Again under its own name: the newest of the name; under another: refused.
    assert!(!s
        .put_plugin_blob(&d1, "xid", &every, "admin:test", 30, audit("plugin.push"))
        .unwrap());
    assert_eq!(s.plugin_blobs().unwrap()[0].digest, d1);
    assert!(matches!(
        s.put_plugin_blob(&d1, "other", &every, "admin:test", 40, audit("plugin.push")),
        Err(StoreError::Conflict(_))
    ));

    // Assignments: a pool's and every node's; a pool's own wins by name.
    s.set_plugin_assignments(
        "train",
        &[row("train", "xid", &d2)],
        audit("plugins.assign"),
    )
    .unwrap();
    s.put_plugin_assignment(&row(ALL_NODES, "xid", &d1), audit("plugins.assign"))
        .unwrap();
    s.put_plugin_assignment(&row(ALL_NODES, "ecc", &d1), audit("plugins.assign"))
        .unwrap();
    let train = effective("train", s.plugin_assignments(None).unwrap());
    assert_eq!(
        train
            .iter()
            .map(|r| (r.name.as_str(), r.digest.as_str()))
            .collect::<Vec<_>>(),
        [("ecc", d1.as_str()), ("xid", d2.as_str())]
    );
    assert_eq!(train[1].interval_ms, Some(30_000));
    assert!(matches!(
        s.set_plugin_assignments(
            "train",
            &[row("train", "x", &format!("sha256:{}", "3".repeat(64)))],
            audit("plugins.assign")
        ),
        Err(StoreError::NotFound(_))
    ));
    // An assigned component cannot be deleted.
    assert!(matches!(
        s.delete_plugin_blob(&d1, audit("plugin.delete")),
        Err(StoreError::Conflict(_))
    ));

    // A spec's plugins: applied when they differ, not again when they are the same.
    let spec = vec![PluginAssign {
        name: "thermal".into(),
        digest: Some(d2.clone()),
        config: Default::default(),
        interval: Some("10s".into()),
        timeout: None,
        memory_limit_mib: None,
    }];
    assert!(s.apply_spec_plugins("infer", &spec, "config", 50).unwrap());
    assert!(!s.apply_spec_plugins("infer", &spec, "config", 60).unwrap());
    assert_eq!(
        s.plugin_assignments(Some("infer")).unwrap()[0].interval_ms,
        Some(10_000)
    );
    assert!(s.apply_spec_plugins("infer", &[], "config", 70).unwrap());
    assert!(s.plugin_assignments(Some("infer")).unwrap().is_empty());

    // What an agent reports replaces what it reported before.
    let node = s.nodes_of(None).unwrap()[0].0.clone();
    let report = |name: &str| NodePluginRow {
        node_id: node.clone(),
        name: name.into(),
        source: "assigned".into(),
        running: Some(d2.clone()),
        status: Some("healthy".into()),
        message: "ok".into(),
        error: None,
        reported_at: 80,
    };
    s.record_node_plugins(&node, &[report("xid"), report("ecc")])
        .unwrap();
    s.record_node_plugins(&node, &[report("xid")]).unwrap();
    let got = s.node_plugins(None).unwrap();
    assert_eq!(got.iter().filter(|(_, _, r)| r.node_id == node).count(), 1);

    // Unassigned, then deleted.
    assert!(s
        .delete_plugin_assignment(ALL_NODES, "xid", audit("plugins.unassign"))
        .unwrap());
    assert!(s
        .delete_plugin_assignment(ALL_NODES, "ecc", audit("plugins.unassign"))
        .unwrap());
    assert!(!s
        .delete_plugin_assignment(ALL_NODES, "ecc", audit("plugins.unassign"))
        .unwrap());
    assert!(s.delete_plugin_blob(&d1, audit("plugin.delete")).unwrap());
    assert!(!s.delete_plugin_blob(&d1, audit("plugin.delete")).unwrap());
}
