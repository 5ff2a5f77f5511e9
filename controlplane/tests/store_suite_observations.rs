//! The observation part of the store suite (`store_suite`): latest rows only, batches larger
//! than one statement, GPUs that vanish, nodes deleted before their rows are written.

use gpuwarden_controlplane::store::rows::ObservationRow;
use gpuwarden_controlplane::store::{ObservationWrite, Store};

/// Runs the observation checks against `s` for the existing node `node`.
pub(crate) fn observations(s: &Store, node: &str) {
    let node = node.to_string();
    // Observations: latest only, one row per GPU.
    let obs = |body: &str, at: i64| ObservationWrite {
        node_id: node.clone(),
        rows: vec![ObservationRow {
            node_id: node.clone(),
            gpu: 0,
            uuid: "GPU-0".into(),
            model: "H100".into(),
            body: body.into(),
            observed_at: at,
        }],
        last_seen: at,
        replace: false,
    };
    s.write_observations(&[obs(r#"{"t":1}"#, 6_000)]).unwrap();
    s.write_observations(&[obs(r#"{"t":2}"#, 7_000)]).unwrap();
    let rows = s.observations(&node).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].body.as_str(), rows[0].observed_at),
        (r#"{"t":2}"#, 7_000)
    );
    assert_eq!(s.node(&node).unwrap().last_seen, Some(7_000));
    // A node twice in one batch (taken again before the flush wrote it): its later write
    // wins, for its rows and its last-seen time.
    s.write_observations(&[obs(r#"{"t":3}"#, 7_050), obs(r#"{"t":4}"#, 7_060)])
        .unwrap();
    let rows = s.observations(&node).unwrap();
    assert_eq!(
        (rows.len(), rows[0].body.as_str(), rows[0].observed_at),
        (1, r#"{"t":4}"#, 7_060)
    );
    assert_eq!(s.node(&node).unwrap().last_seen, Some(7_060));
    // A batch larger than one upsert statement (1,200 rows: 150 nodes' worth of 8 GPUs)
    // lands whole, and written again it replaces, never duplicates.
    let many = |at: i64| ObservationWrite {
        node_id: node.clone(),
        rows: (0..1_200)
            .map(|g| ObservationRow {
                node_id: node.clone(),
                gpu: g,
                uuid: format!("GPU-{g}"),
                model: "H100".into(),
                body: format!(r#"{{"t":{at}}}"#),
                observed_at: at,
            })
            .collect(),
        last_seen: at,
        replace: false,
    };
    s.write_observations(&[many(7_100)]).unwrap();
    s.write_observations(&[many(7_200)]).unwrap();
    let rows = s.observations(&node).unwrap();
    assert_eq!(rows.len(), 1_200);
    assert!(rows
        .iter()
        .all(|r| r.observed_at == 7_200 && r.body == r#"{"t":7200}"#));
    assert_eq!(s.node(&node).unwrap().last_seen, Some(7_200));
    // GPUs that are gone leave no row once the node's GPUs changed; a node deleted since its
    // scrape is skipped and the rest of the batch is written.
    let mut fewer = many(7_300);
    fewer.rows.truncate(2);
    fewer.replace = true;
    let mut gone = many(7_300);
    gone.node_id = "node-deleted-meanwhile".into();
    for r in &mut gone.rows {
        r.node_id = gone.node_id.clone();
    }
    s.write_observations(&[gone, fewer]).unwrap();
    assert_eq!(s.observations(&node).unwrap().len(), 2);
    assert!(s.observations("node-deleted-meanwhile").unwrap().is_empty());
    assert_eq!(s.node(&node).unwrap().last_seen, Some(7_300));
}
