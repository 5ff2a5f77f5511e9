//! Reading bodies: values, counters, absent series, refused bodies.

use super::*;

const BODY: &str = "# HELP gpuwarden_gpu_up Up.\n# TYPE gpuwarden_gpu_up gauge\n\
gpuwarden_gpu_up{gpu=\"0\",uuid=\"GPU-a\",model=\"NVIDIA H100 80GB HBM3\",rack=\"r,1\"} 1\n\
gpuwarden_gpu_up{gpu=\"1\",uuid=\"GPU-b\",model=\"NVIDIA H100 80GB HBM3\",rack=\"r,1\"} 0\n\
# TYPE gpuwarden_gpu_temperature_celsius gauge\n\
gpuwarden_gpu_temperature_celsius{gpu=\"0\",uuid=\"GPU-a\",model=\"NVIDIA H100 80GB HBM3\",rack=\"r,1\"} 61\n\
# TYPE gpuwarden_gpu_xid_errors_total counter\n\
gpuwarden_gpu_xid_errors_total{gpu=\"0\",uuid=\"GPU-a\",model=\"NVIDIA H100 80GB HBM3\",rack=\"r,1\",xid=\"79\"} 1\n\
# TYPE gpuwarden_gpu_ecc_errors_total counter\n\
gpuwarden_gpu_ecc_errors_total{gpu=\"0\",uuid=\"GPU-a\",model=\"NVIDIA H100 80GB HBM3\",rack=\"r,1\",type=\"uncorrected\",counter=\"volatile\"} 2\n\
# TYPE gpuwarden_gpu_nvlink_up gauge\n\
gpuwarden_gpu_nvlink_up{gpu=\"0\",uuid=\"GPU-a\",model=\"NVIDIA H100 80GB HBM3\",rack=\"r,1\",link=\"3\"} 0\n\
# TYPE gpuwarden_gpu_clock_event_active gauge\n\
gpuwarden_gpu_clock_event_active{gpu=\"0\",uuid=\"GPU-a\",model=\"NVIDIA H100 80GB HBM3\",rack=\"r,1\",reason=\"hw_slowdown\"} 1\n\
gpuwarden_gpu_clock_event_active{gpu=\"0\",uuid=\"GPU-a\",model=\"NVIDIA H100 80GB HBM3\",rack=\"r,1\",reason=\"gpu_idle\"} 0\n\
# TYPE gpuwarden_node_info gauge\n\
gpuwarden_node_info{node=\"n1\",driver_version=\"550.54.15\",cuda_version=\"12.4\",agent_version=\"0.1.0\",backend=\"nvml\"} 1\n\
# TYPE gpuwarden_health_check_status gauge\n\
gpuwarden_health_check_status{check=\"xid\"} 2\n";

#[test]
fn a_body_becomes_per_gpu_values_counters_and_state() {
    let o = observe(BODY.as_bytes(), 10_000).unwrap();
    assert_eq!(o.samples, 10);
    let g0 = &o.gpus[&0];
    assert_eq!((&*g0.uuid, g0.up), ("GPU-a", Some(true)));
    assert_eq!(g0.values["temperature_celsius"], 61.0);
    assert_eq!(g0.xid_errors[&79], 1.0);
    assert_eq!(
        g0.ecc_errors[&("uncorrected".into(), "volatile".into())],
        2.0
    );
    assert!(!g0.nvlink_up[&3]);
    assert_eq!(
        g0.clock_events.iter().map(|r| &**r).collect::<Vec<_>>(),
        ["hw_slowdown"]
    );
    assert_eq!(o.gpus[&1].up, Some(false));
    assert_eq!(o.driver_version.as_deref(), Some("550.54.15"));
    assert_eq!(o.health_checks["xid"], 2.0);
}

#[test]
fn a_series_the_body_lacks_is_unknown_not_false_or_zero() {
    // The body: a temperature, no `gpuwarden_gpu_up`.
    let o = observe(
        b"gpuwarden_gpu_temperature_celsius{gpu=\"0\",uuid=\"GPU-a\"} 61\n",
        100,
    )
    .unwrap();
    let g = &o.gpus[&0];
    assert_eq!(g.up, None, "no up series: unknown");
    assert!(g.ecc_errors.is_empty() && g.nvlink_up.is_empty());
    assert_eq!(o.driver_version, None);
}

#[test]
fn broken_or_oversized_bodies_are_errors_not_partial_observations() {
    assert!(matches!(
        observe(b"gpuwarden_gpu_up{gpu=\"0\" 1\n", 100),
        Err(ObserveError::Parse(_))
    ));
    assert!(matches!(
        observe(BODY.as_bytes(), 5),
        Err(ObserveError::TooManySamples { limit: 5 })
    ));
    assert_eq!(
        observe(b"gpuwarden_gpu_up{gpu=\"x\"} 1\n", 100),
        Err(ObserveError::BadGpuLabel {
            metric: "gpuwarden_gpu_up".into()
        })
    );
}

#[test]
fn events_are_pending_when_counters_move() {
    let a = observe(BODY.as_bytes(), 10_000).unwrap();
    assert!(events_pending(None, &a), "first scrape reads the events");
    assert!(!events_pending(Some(&a), &a));
    let more = BODY.replace("xid=\"79\"} 1", "xid=\"79\"} 2");
    assert!(events_pending(
        Some(&a),
        &observe(more.as_bytes(), 10_000).unwrap()
    ));
    let new_code = BODY.replace("xid=\"79\"} 1", "xid=\"13\"} 1");
    assert!(events_pending(
        Some(&a),
        &observe(new_code.as_bytes(), 10_000).unwrap()
    ));
    let restarted = BODY.replace("counter=\"volatile\"} 2", "counter=\"volatile\"} 0");
    assert!(events_pending(
        Some(&a),
        &observe(restarted.as_bytes(), 10_000).unwrap()
    ));
    let restarted = format!("{BODY}gpuwarden_agent_start_time_seconds 1795000001\n");
    assert!(
        events_pending(Some(&a), &observe(restarted.as_bytes(), 10_000).unwrap()),
        "a restarted agent is read from the start, whatever its counters say"
    );
    let thermal =
        format!("{BODY}gpuwarden_agent_events_total{{kind=\"thermal\",severity=\"warning\"}} 1\n");
    assert!(
        events_pending(Some(&a), &observe(thermal.as_bytes(), 10_000).unwrap()),
        "any new event, not only XIDs and ECC"
    );
    let warmer = BODY.replace("} 61", "} 75");
    assert!(
        !events_pending(Some(&a), &observe(warmer.as_bytes(), 10_000).unwrap()),
        "gauges are not events"
    );
}

fn series(name: &str, gpu: u32, extra: &str, value: &str) -> String {
    format!("{name}{{gpu=\"{gpu}\",uuid=\"GPU-{gpu}\"{extra}}} {value}\n")
}

#[test]
fn per_target_cardinalities_are_bounded_and_refuse_the_body() {
    // The tester's body: 40,000 distinct GPUs, under the sample limit.
    let many: String = (0..40_000)
        .map(|g| series("gpuwarden_gpu_up", g, "", "1"))
        .collect();
    let e = observe(many.as_bytes(), 100_000).unwrap_err();
    assert_eq!(
        e,
        ObserveError::TooMany {
            what: "GPUs".into(),
            limit: limits::MAX_GPUS
        }
    );
    assert!(e.to_string().contains("more than 1024 GPUs"), "{e}");
    let most: String = (0..1024)
        .map(|g| series("gpuwarden_gpu_up", g, "", "1"))
        .collect();
    assert_eq!(observe(most.as_bytes(), 100_000).unwrap().gpus.len(), 1024);

    let links: String = (0..=limits::MAX_LINKS)
        .map(|l| series("gpuwarden_gpu_nvlink_up", 0, &format!(",link=\"{l}\""), "1"))
        .collect();
    assert!(matches!(
        observe(links.as_bytes(), 100_000),
        Err(ObserveError::TooMany { what, .. }) if what == "NVLink links on GPU 0"
    ));
    let errs: String = (0..=limits::MAX_LINKS)
        .map(|l| {
            series(
                "gpuwarden_gpu_nvlink_errors_total",
                0,
                &format!(",link=\"{l}\""),
                "1",
            )
        })
        .collect();
    assert!(observe(errs.as_bytes(), 100_000).is_err());
    let xids: String = (0..=limits::MAX_PER_GPU)
        .map(|x| {
            series(
                "gpuwarden_gpu_xid_errors_total",
                0,
                &format!(",xid=\"{x}\""),
                "1",
            )
        })
        .collect();
    assert!(observe(xids.as_bytes(), 100_000).is_err());
    let names: String = (0..=limits::MAX_PER_GPU)
        .map(|i| series(&format!("gpuwarden_gpu_x{i}"), 0, "", "1"))
        .collect();
    assert!(observe(names.as_bytes(), 100_000).is_err());
    let checks: String = (0..=limits::MAX_CHECKS)
        .map(|i| format!("gpuwarden_health_check_status{{check=\"c{i}\"}} 0\n"))
        .collect();
    assert!(matches!(
        observe(checks.as_bytes(), 100_000),
        Err(ObserveError::TooMany { what, .. }) if what == "health checks"
    ));
    let long = series(
        "gpuwarden_gpu_up",
        0,
        &format!(",model=\"{}\"", "m".repeat(300)),
        "1",
    );
    assert!(matches!(
        observe(long.as_bytes(), 100),
        Err(ObserveError::TooLong { len: 300, .. })
    ));
    let long_name = series(&format!("gpuwarden_gpu_{}", "x".repeat(300)), 0, "", "1");
    assert!(observe(long_name.as_bytes(), 100).is_err());
}

#[test]
fn nan_and_infinite_values_are_absent_like_a_missing_series() {
    let body = [
        series("gpuwarden_gpu_up", 0, "", "NaN"),
        series("gpuwarden_gpu_temperature_celsius", 0, "", "NaN"),
        series("gpuwarden_gpu_temperature_celsius", 1, "", "55"),
        series("gpuwarden_gpu_power_watts", 0, "", "+Inf"),
        series("gpuwarden_gpu_xid_errors_total", 0, ",xid=\"79\"", "-Inf"),
        series("gpuwarden_gpu_nvlink_up", 0, ",link=\"0\"", "NaN"),
        "gpuwarden_health_check_status{check=\"x\"} NaN\n".to_string(),
    ]
    .concat();
    let o = observe(body.as_bytes(), 100).unwrap();
    let g = &o.gpus[&0];
    assert_eq!(g.up, None, "NaN up is unknown, not down");
    assert!(g.values.is_empty(), "{:?}", g.values);
    assert!(g.xid_errors.is_empty() && g.nvlink_up.is_empty());
    assert!(o.health_checks.is_empty());
    assert_eq!(o.gpus[&1].values["temperature_celsius"], 55.0);
}

#[test]
fn a_body_without_gpuwarden_series_is_not_an_agent() {
    assert_eq!(observe(b"", 100), Err(ObserveError::NotAnAgent));
    assert_eq!(
        observe(b"# TYPE node_load1 gauge\nnode_load1 0.5\n", 100),
        Err(ObserveError::NotAnAgent)
    );
    // A node without GPUs still has its node info.
    assert!(observe(
        b"gpuwarden_node_info{node=\"n\",driver_version=\"550\"} 1\n",
        100
    )
    .is_ok());
}

/// `gpu="0"` and `gpu="+0"` are two series to the text format but one GPU: a second
/// spelling of a number must not overwrite (and hide) the first GPU's or link's value.
#[test]
fn a_gpu_or_link_number_has_one_spelling() {
    for gpu in ["+0", "00", "01", "-0", " 0", ""] {
        let body = format!(
            "gpuwarden_gpu_temperature_celsius{{gpu=\"0\"}} 95\n\
             gpuwarden_gpu_temperature_celsius{{gpu=\"{gpu}\"}} 30\n"
        );
        assert!(
            matches!(
                observe(body.as_bytes(), 100),
                Err(ObserveError::BadGpuLabel { .. })
            ),
            "gpu={gpu:?}"
        );
    }
    let body = "gpuwarden_gpu_nvlink_up{gpu=\"0\",link=\"1\"} 0\n\
                gpuwarden_gpu_nvlink_up{gpu=\"0\",link=\"01\"} 1\n\
                gpuwarden_gpu_xid_errors_total{gpu=\"0\",xid=\"79\"} 1\n\
                gpuwarden_gpu_xid_errors_total{gpu=\"0\",xid=\"079\"} 0\n\
                gpuwarden_gpu_up{gpu=\"10\"} 1\n";
    let o = observe(body.as_bytes(), 100).unwrap();
    let g = &o.gpus[&0];
    assert_eq!(g.nvlink_up.get(&1), Some(&false), "link 01 is not link 1");
    assert_eq!(g.xid_errors.get(&79), Some(&1.0), "xid 079 is not xid 79");
    assert!(o.gpus.contains_key(&10), "10 is a number like any other");
}

#[test]
fn gpus_of_one_model_share_its_name() {
    let o = observe(BODY.as_bytes(), 10_000).unwrap();
    let (a, b) = (&o.gpus[&0].model, &o.gpus[&1].model);
    assert_eq!(&**a, "NVIDIA H100 80GB HBM3");
    assert!(std::sync::Arc::ptr_eq(a, b), "one allocation for the model");
}
