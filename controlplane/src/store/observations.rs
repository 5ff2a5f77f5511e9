//! A node's latest observation as rows of the `observations` table: one per GPU and one
//! (`gpu = -1`) for the node; bodies are JSON text (`docs/controlplane.md`).

use serde::ser::{Serialize, Serializer};
use serde_json::json;

use crate::model::observation::{
    LinkStates, LinkValues, Name, NodeObservation, SmallMap, SmallSet, Values,
};
use crate::store::rows::ObservationRow;

/// A GPU row's body, serialized straight to text (no intermediate JSON tree: at 10,000
/// nodes a flush writes 90,000 of these).
#[derive(serde::Serialize)]
struct GpuBody<'o> {
    up: Option<bool>,
    values: &'o Values,
    xid_errors: &'o SmallMap<u32, f64>,
    ecc_errors: Ecc<'o>,
    nvlink_up: &'o LinkStates,
    nvlink_errors: &'o LinkValues,
    clock_events: &'o SmallSet<Name>,
}

/// ECC counters keyed `type/counter`, e.g. `uncorrected/volatile`.
struct Ecc<'o>(&'o SmallMap<(Name, Name), f64>);

impl Serialize for Ecc<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for ((ty, counter), v) in self.0.iter() {
            m.serialize_entry(&format_args!("{ty}/{counter}"), v)?;
        }
        m.end()
    }
}

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
        let body = GpuBody {
            up: g.up,
            values: &g.values,
            xid_errors: &g.xid_errors,
            ecc_errors: Ecc(&g.ecc_errors),
            nvlink_up: &g.nvlink_up,
            nvlink_errors: &g.nvlink_errors,
            clock_events: &g.clock_events,
        };
        rows.push(ObservationRow {
            node_id: node_id.to_string(),
            gpu: i32::try_from(g.index).unwrap_or(i32::MAX),
            uuid: g.uuid.to_string(),
            model: g.model.to_string(),
            // Serializing borrowed maps of numbers and strings cannot fail.
            body: serde_json::to_string(&body).unwrap_or_default(),
            observed_at: at,
        });
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::observation::GpuObservation;

    /// The stored GPU body keeps the shape `docs/controlplane.md` gives (and the observation
    /// endpoint and policy simulation read back).
    #[test]
    fn a_gpu_row_body_has_the_documented_shape() {
        let mut g = GpuObservation {
            index: 3,
            uuid: "GPU-3".into(),
            model: "H100".into(),
            up: Some(true),
            ..Default::default()
        };
        g.values.insert("temperature_celsius", 71.5);
        g.xid_errors.insert(79, 1.0);
        g.ecc_errors
            .insert(("uncorrected".into(), "volatile".into()), 2.0);
        g.nvlink_up.insert(0, false);
        g.nvlink_errors.insert(0, 5.0);
        g.clock_events.insert("hw_slowdown".into());
        let mut o = NodeObservation::default();
        o.gpus.insert(3, g);
        let rows = observation_rows("n1", &o, 7);
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[1].gpu, rows[1].uuid.as_str()), (3, "GPU-3"));
        let body: serde_json::Value = serde_json::from_str(&rows[1].body).unwrap();
        assert_eq!(
            body,
            json!({
                "up": true,
                "values": {"temperature_celsius": 71.5},
                "xid_errors": {"79": 1.0},
                "ecc_errors": {"uncorrected/volatile": 2.0},
                "nvlink_up": {"0": false},
                "nvlink_errors": {"0": 5.0},
                "clock_events": ["hw_slowdown"],
            })
        );
    }

    /// NVLink links (kept as bit sets), the model (shared) and the UUID read from a body come
    /// back in the row exactly as sent: every link, in link order as text keys, the error
    /// types of a link summed, and a link past 63 as well.
    #[test]
    fn links_model_and_uuid_of_a_body_reach_the_row_unchanged() {
        let line = |name: &str, labels: &str, v: &str| {
            format!(
                "gpuwarden_gpu_{name}{{gpu=\"0\",uuid=\"GPU-5a3bb63d-4b7f-28db-76c0-6a42272ad0f7\",\
                 model=\"NVIDIA H100 80GB HBM3\"{labels}}} {v}\n"
            )
        };
        let links = [(17, "1"), (2, "0"), (100, "0"), (0, "1")];
        let mut body = String::new();
        for (link, up) in links {
            body += &line("nvlink_up", &format!(",link=\"{link}\""), up);
        }
        for (link, _) in links {
            for (ty, v) in [("crc_flit", "1.5"), ("replay", "2")] {
                let labels = format!(",link=\"{link}\",type=\"{ty}\"");
                body += &line("nvlink_errors_total", &labels, v);
            }
        }
        let o = crate::model::observation::observe(body.as_bytes(), 1000).unwrap();
        let rows = observation_rows("n1", &o, 7);
        assert_eq!(
            (rows[1].uuid.as_str(), rows[1].model.as_str()),
            (
                "GPU-5a3bb63d-4b7f-28db-76c0-6a42272ad0f7",
                "NVIDIA H100 80GB HBM3"
            )
        );
        assert!(
            rows[1].body.contains(
                r#""nvlink_up":{"0":true,"2":false,"17":true,"100":false},"nvlink_errors":{"0":3.5,"2":3.5,"17":3.5,"100":3.5}"#
            ),
            "{}",
            rows[1].body
        );
    }
}
