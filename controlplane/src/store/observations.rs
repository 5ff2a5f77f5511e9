//! A node's latest observation as rows of the `observations` table: one per GPU and one
//! (`gpu = -1`) for the node; bodies are JSON text (`docs/controlplane.md`).

use serde_json::json;

use crate::model::observation::NodeObservation;
use crate::store::rows::ObservationRow;

/// One node's observation as rows: one per GPU, and `gpu = -1` for the node.
pub fn observation_rows(node_id: &str, o: &NodeObservation, at: i64) -> Vec<ObservationRow> {
    let mut rows = Vec::with_capacity(o.gpus.len() + 1);
    rows.push(ObservationRow {
        node_id: node_id.to_string(),
        gpu: -1,
        uuid: String::new(),
        model: String::new(),
        body: json!({
            "driver_version": o.driver_version,
            "cuda_version": o.cuda_version,
            "agent_version": o.agent_version,
            "health_checks": o.health_checks,
            "gpus": o.gpus.len(),
            "samples": o.samples,
        })
        .to_string(),
        observed_at: at,
    });
    for g in o.gpus.values() {
        let ecc: serde_json::Map<String, serde_json::Value> = g
            .ecc_errors
            .iter()
            .map(|((ty, counter), v)| (format!("{ty}/{counter}"), json!(v)))
            .collect();
        rows.push(ObservationRow {
            node_id: node_id.to_string(),
            gpu: i32::try_from(g.index).unwrap_or(i32::MAX),
            uuid: g.uuid.clone(),
            model: g.model.clone(),
            body: json!({
                "up": g.up,
                "values": g.values,
                "xid_errors": g.xid_errors,
                "ecc_errors": ecc,
                "nvlink_up": g.nvlink_up,
                "nvlink_errors": g.nvlink_errors,
                "clock_events": g.clock_events,
            })
            .to_string(),
            observed_at: at,
        });
    }
    rows
}
