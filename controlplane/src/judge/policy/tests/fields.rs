//! Every documented field of the gpu, node and event inputs reads the same through `.`,
//! `[...]` and `has()`.

use super::super::*;
use super::{event, fired, node, obs_with};

#[test]
fn every_documented_field_reads_the_same_through_dot_index_and_has() {
    let p = Policy::parse(
        r#"
[[rule]]
name = "gpu-fields"
scope = "gpu"
when = '''
gpu.index == 1 && gpu.uuid == "GPU-1" && gpu.model.startsWith("NVIDIA") && gpu.up &&
gpu["temperature_celsius"] == 60.0 && has(gpu.power_watts) && !has(gpu.no_such_value) &&
gpu.xid_errors["13"] == 2.0 && size(gpu.xid_errors) == 1 && gpu.ecc_corrected == 0.0 &&
gpu.nvlink_down == 0 && gpu.clock_events.size() == 1 && "hw_slowdown" in gpu.clock_events &&
gpu.ecc_corrected_per_hour == 0.0 && gpu.pcie_replays_delta == 0.0
'''
verdict = "degraded"

[[rule]]
name = "node-fields"
scope = "node"
when = '''
node.name == "gpu-01" && node.pool == "train" && node.labels.rack == "r7" &&
!has(node.labels.zone) && node.gpu_count == 2 && node.expected_gpus == 2 &&
node.health_checks["dcgm"] == 1.0 && node.driver_version == "550.54" &&
node.connectivity == "online"
'''
verdict = "degraded"

[[rule]]
name = "event-fields"
scope = "event"
when = '''
event.kind == "xid" && event.code == 13 && event.gpu == 0 && event.uuid == "GPU-0" &&
event.severity == "warning" && event.action == "ignore" && event.source == "nvml" &&
event.seq == 7 && event.message.contains("13")
'''
verdict = "degraded"
"#,
    )
    .unwrap_or_else(|e| panic!("{e:?}"));
    let mut o = obs_with(|g| {
        if g.index == 1 {
            g.xid_errors.insert(13, 2.0);
            g.clock_events.insert("hw_slowdown".into());
        }
    });
    o.driver_version = Some("550.54".into());
    o.health_checks.insert("dcgm".into(), 1.0);
    let mut n = node();
    n.labels.insert("rack".into(), "r7".into());
    // The growth fields need a previous observation (without one they are absent).
    let e = p.eval_observation(&o, Some((&o, 60.0)), &n);
    assert!(e.failures.is_empty(), "{:?}", e.failures);
    assert_eq!(fired(&e), ["gpu-fields", "node-fields"]);
    assert_eq!(e.matches[0].gpu, Some(1), "only GPU 1 matches");
    let mut ev = event("xid", Some(13));
    ev.seq = 7;
    ev.severity = "warning".into();
    ev.action = Some("ignore".into());
    ev.source = "nvml".into();
    ev.message = "XID 13 on GPU 0".into();
    ev.gpu = Some(0);
    ev.uuid = Some("GPU-0".into());
    let e = p.eval_event(&ev, &n);
    assert!(e.failures.is_empty(), "{:?}", e.failures);
    assert_eq!(fired(&e), ["event-fields"]);
}

/// A body that sends a series named like a field the control plane derives
/// (`gpuwarden_gpu_nvlink_down 0`, `…_ecc_uncorrected 0`) cannot hide what it derives.
#[test]
fn a_series_named_like_a_derived_field_does_not_replace_it() {
    let p = Policy::parse(
        r#"
[[rule]]
name = "nvlink-down"
scope = "gpu"
when = 'has(gpu.nvlink_down) && gpu.nvlink_down > 0'
verdict = "unhealthy"

[[rule]]
name = "ecc"
scope = "gpu"
when = 'has(gpu.ecc_uncorrected) && gpu.ecc_uncorrected > 0.0'
verdict = "unhealthy"

[[rule]]
name = "index"
scope = "gpu"
when = 'gpu.index == 1'
verdict = "degraded"
"#,
    )
    .unwrap_or_else(|e| panic!("{e:?}"));
    let o = obs_with(|g| {
        if g.index == 1 {
            g.nvlink_up.insert(3, false);
            g.ecc_errors
                .insert(("uncorrected".into(), "volatile".into()), 4.0);
            for (k, v) in [
                ("nvlink_down", 0.0),
                ("ecc_uncorrected", 0.0),
                ("index", 7.0),
            ] {
                g.values.insert(k, v);
            }
        }
    });
    let e = p.eval_observation(&o, None, &node());
    assert!(e.failures.is_empty(), "{:?}", e.failures);
    assert_eq!(fired(&e), ["nvlink-down", "ecc", "index"]);
}
