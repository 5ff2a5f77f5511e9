//! The suite of store operations the control plane needs, in order (nodes, registration and
//! tokens, lifecycle steps, events, observations, connectivity, listing, deregistration,
//! retention, deletion), with its row builders; `store` runs it on every backend.

use std::collections::BTreeMap;

use gpuwarden_controlplane::model::lifecycle::Step;
use gpuwarden_controlplane::store::rows::{CommandRow, NewAudit, NewEvent, NodeRow, NodeTokenRow};
use gpuwarden_controlplane::store::{NodeFilter, Registration, Store, StoreError};
use serde_json::json;

use crate::store_suite_observations::observations;

fn pending(id: &str, name: &str, pool: &str) -> NodeRow {
    NodeRow {
        id: id.into(),
        name: name.into(),
        pool: pool.into(),
        labels: r#"{"rack":"r1"}"#.into(),
        address: None,
        status: "pending".into(),
        health: "unknown".into(),
        connectivity: "offline".into(),
        capabilities: "{}".into(),
        source: "created".into(),
        agent_instance: None,
        event_cursor: 0,
        deregistered: false,
        created_at: 1_000,
        updated_at: 1_000,
        last_seen: None,
        instance_id: None,
    }
}

fn audit(action: &str, target: &str, t: i64) -> NewAudit {
    NewAudit::ok("admin:test", action, target, json!({}), t)
}

fn reg(name: &str, digest: &str, now: i64) -> Registration {
    Registration {
        new_id: format!("node-{name}"),
        name: name.into(),
        pool: None,
        labels: BTreeMap::from([("zone".to_string(), "a".to_string())]),
        address: format!("http://{name}:9410"),
        capabilities: r#"{"gpus":[{"index":0,"uuid":"GPU-0","model":"H100","memory_bytes":1}]}"#
            .into(),
        token_digest: digest.into(),
        token_expires: None,
        actor: "bootstrap".into(),
        bootstrap: false,
        now,
    }
}

fn event(node: &str, instance: &str, seq: i64) -> NewEvent {
    NewEvent {
        node_id: node.into(),
        gpu: Some(0),
        uuid: Some("GPU-0".into()),
        kind: "xid".into(),
        code: Some(79),
        message: "XID 79".into(),
        severity: "fatal".into(),
        action: "reboot_node".into(),
        time: 5_000 + seq,
        agent_instance: instance.into(),
        agent_seq: seq,
        source: "kmsg".into(),
    }
}

fn command(id: &str, node: &str) -> CommandRow {
    CommandRow {
        id: id.into(),
        node_id: node.into(),
        kind: "cordon".into(),
        params: "{}".into(),
        state: "pending".into(),
        attempts: 0,
        result: None,
        requested_by: "admin:test".into(),
        created_at: 2_000,
        updated_at: 2_000,
        next_attempt_at: 2_000,
        completed_at: None,
    }
}

pub(crate) fn suite(s: &Store) {
    // Nodes: create, unique names.
    s.create_node(
        &pending("n1", "gpu-01", "train"),
        audit("node.create", "n1", 1_000),
    )
    .unwrap();
    assert!(matches!(
        s.create_node(
            &pending("n1b", "gpu-01", "train"),
            audit("node.create", "n1b", 1_000)
        ),
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        s.node("gpu-01").unwrap().id,
        "n1",
        "nodes are found by name too"
    );

    // Registration of a pre-created node: pending → active, labels merged, token stored.
    let r = s.register(&reg("gpu-01", "d1", 2_000)).unwrap();
    assert!(!r.created);
    assert_eq!(
        (r.node.id.as_str(), r.node.status.as_str()),
        ("n1", "active")
    );
    assert_eq!(
        r.node.pool, "train",
        "no pool in the request keeps the node's"
    );
    let labels = r.node.labels().unwrap();
    assert_eq!(
        (labels["rack"].as_str(), labels["zone"].as_str()),
        ("r1", "a")
    );
    assert_eq!(
        s.node_for_token("d1", 2_000).unwrap().as_deref(),
        Some("n1")
    );

    // Self-registration of a new name, then the same name again: the same node, a new token.
    let a = s.register(&reg("gpu-02", "d2", 2_000)).unwrap();
    let b = s.register(&reg("gpu-02", "d3", 3_000)).unwrap();
    assert!(a.created && !b.created);
    assert_eq!(a.node.id, b.node.id);
    assert_eq!(
        s.node_for_token("d2", 3_000).unwrap(),
        None,
        "older tokens are rotated out"
    );
    assert_eq!(
        s.node_for_token("d3", 3_000).unwrap().as_deref(),
        Some(a.node.id.as_str())
    );
    let statuses: Vec<String> = s
        .transitions(&a.node.id, 10)
        .unwrap()
        .into_iter()
        .map(|t| format!("{}>{}", t.from_state, t.to_state))
        .collect();
    assert_eq!(
        statuses,
        ["pending>active"],
        "re-registering changes no status"
    );

    // Token expiry.
    s.add_node_token(
        &NodeTokenRow {
            digest: "join".into(),
            node_id: "n1".into(),
            created_at: 0,
            expires_at: Some(10_000),
        },
        audit("node.token", "n1", 3_000),
    )
    .unwrap();
    assert_eq!(
        s.node_for_token("join", 9_999).unwrap().as_deref(),
        Some("n1")
    );
    assert_eq!(s.node_for_token("join", 10_000).unwrap(), None);
    assert!(matches!(
        s.add_node_token(
            &NodeTokenRow {
                digest: "x".into(),
                node_id: "nope".into(),
                created_at: 0,
                expires_at: None
            },
            audit("node.token", "nope", 0)
        ),
        Err(StoreError::NotFound(_))
    ));

    // Lifecycle steps: transition, command and audit together; a refused step writes only
    // its audit entry.
    let audit_before = s.count("audit").unwrap();
    let (row, cmd) = s
        .apply_step(
            "n1",
            Step::Cordon,
            "maintenance",
            "admin:test",
            Some(command("c1", "n1")),
            audit("node.cordon", "n1", 4_000),
        )
        .unwrap();
    assert_eq!(row.status, "cordoned");
    assert_eq!(cmd.unwrap().id, "c1");
    assert_eq!(s.commands("n1", 10).unwrap().len(), 1);
    let t = &s.transitions("n1", 10).unwrap()[0];
    assert_eq!(
        (
            t.from_state.as_str(),
            t.to_state.as_str(),
            t.reason.as_str(),
            t.actor.as_str()
        ),
        ("active", "cordoned", "maintenance", "admin:test")
    );
    s.apply_step(
        "n1",
        Step::Terminate,
        "gone",
        "admin:test",
        None,
        audit("node.terminate", "n1", 4_100),
    )
    .unwrap();
    s.apply_step(
        "n1",
        Step::Terminated,
        "done",
        "agent",
        None,
        audit("node.terminated", "n1", 4_200),
    )
    .unwrap();
    let err = s
        .apply_step(
            "n1",
            Step::Uncordon,
            "oops",
            "admin:test",
            Some(command("c2", "n1")),
            audit("node.uncordon", "n1", 4_300),
        )
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("cannot uncordon a node that is terminated"),
        "{err}"
    );
    assert_eq!(
        s.commands("n1", 10).unwrap().len(),
        1,
        "a refused step queues no command"
    );
    assert_eq!(s.node("n1").unwrap().status, "terminated");
    let log = s.audit_log(1).unwrap();
    assert_eq!(log[0].action, "node.uncordon");
    assert!(
        log[0].result.contains("cannot uncordon"),
        "the refusal is audited: {}",
        log[0].result
    );
    assert_eq!(s.count("audit").unwrap(), audit_before + 4);

    // Events: the same page twice stores each event once, and moves the cursor.
    let node = a.node.id.clone();
    let page: Vec<NewEvent> = (1..=3).map(|i| event(&node, "inst-a", i)).collect();
    assert_eq!(s.ingest_events(&node, "inst-a", 3, &page).unwrap(), 3);
    assert_eq!(s.ingest_events(&node, "inst-a", 3, &page).unwrap(), 0);
    // A restarted agent numbers from 1 again under a new instance: new events.
    assert_eq!(
        s.ingest_events(&node, "inst-b", 1, &[event(&node, "inst-b", 1)])
            .unwrap(),
        1
    );
    let row = s.node(&node).unwrap();
    assert_eq!(
        (row.agent_instance.as_deref(), row.event_cursor),
        (Some("inst-b"), 1)
    );
    assert_eq!(s.events(&node, 0, 100).unwrap().len(), 4);
    assert_eq!(
        s.events(&node, 5_003, 100).unwrap().len(),
        1,
        "since filters by time"
    );
    assert_eq!(s.events_between(0, i64::MAX, 100).unwrap().len(), 4);

    observations(s, &node);

    // Connectivity: stored once per change, with its reason.
    s.set_connectivity(
        &node,
        gpuwarden_controlplane::model::Connectivity::Online,
        "scrape succeeded",
        8_000,
    )
    .unwrap();
    s.set_connectivity(
        &node,
        gpuwarden_controlplane::model::Connectivity::Online,
        "again",
        8_100,
    )
    .unwrap();
    let ts = s.transitions(&node, 10).unwrap();
    assert_eq!(ts.iter().filter(|t| t.field == "connectivity").count(), 1);

    // Listing: filters, pages, totals.
    for i in 0..5 {
        s.create_node(
            &pending(&format!("p{i}"), &format!("pool-node-{i}"), "infer"),
            audit("node.create", "p", 9_000),
        )
        .unwrap();
    }
    let f = NodeFilter {
        pool: Some("infer".into()),
        limit: 2,
        offset: 2,
        ..NodeFilter::default()
    };
    let (page, total) = s.list_nodes(&f).unwrap();
    assert_eq!(total, 5);
    assert_eq!(
        page.iter().map(|n| n.name.as_str()).collect::<Vec<_>>(),
        ["pool-node-2", "pool-node-3"]
    );
    let f = NodeFilter {
        status: Some("terminated".into()),
        limit: 10,
        ..NodeFilter::default()
    };
    assert_eq!(s.list_nodes(&f).unwrap().1, 1);
    let counts = s.node_counts().unwrap();
    assert_eq!(counts.iter().map(|c| c.3).sum::<i64>(), 7);

    // Deregistration takes the node off the scrape list; its token stays, so the agent can
    // come back after a restart.
    s.deregister(&node, 10_000).unwrap();
    let row = s.node(&node).unwrap();
    assert!(row.deregistered);
    assert_eq!(row.connectivity, "offline");
    assert_eq!(
        s.node_for_token("d3", 10_000).unwrap().as_deref(),
        Some(node.as_str())
    );

    // Retention.
    let (e, _) = s.prune(5_003, 0).unwrap();
    assert_eq!(e, 3, "events before the cutoff are pruned");

    // Deleting a node deletes its records; the audit log keeps the deletion.
    s.delete_node(&node, audit("node.delete", &node, 11_000))
        .unwrap();
    assert!(matches!(s.node(&node), Err(StoreError::NotFound(_))));
    assert_eq!(s.events(&node, 0, 10).unwrap().len(), 0);
    assert_eq!(s.audit_log(1).unwrap()[0].action, "node.delete");
    assert!(matches!(
        s.delete_node(&node, audit("node.delete", &node, 11_000)),
        Err(StoreError::NotFound(_))
    ));
    s.ping().unwrap();
}
