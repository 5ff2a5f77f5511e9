//! Tests of the fake backend: inject requests as DESIGN.md writes them, faults and drift.

use std::sync::Arc;

use super::*;
use crate::backend::{clock_event, GpuBackend};

fn req(json: &str) -> Result<Fault, String> {
    serde_json::from_str::<InjectRequest>(json)
        .map_err(|e| e.to_string())?
        .to_fault()
}

#[test]
fn inject_requests_of_design_md_parse() {
    assert_eq!(
        req(r#"{"gpu":0,"fault":"xid","code":79}"#),
        Ok(Fault::Xid(79))
    );
    assert_eq!(
        req(r#"{"gpu":1,"fault":"temperature","value":97}"#),
        Ok(Fault::Temperature(97.0))
    );
    assert_eq!(
        req(r#"{"gpu":2,"fault":"ecc","type":"double_bit"}"#),
        Ok(Fault::EccDoubleBit(1))
    );
    assert_eq!(
        req(r#"{"gpu":2,"fault":"ecc","type":"single_bit","count":5}"#),
        Ok(Fault::EccSingleBit(5))
    );
    assert_eq!(
        req(r#"{"gpu":3,"fault":"fell_off_bus"}"#),
        Ok(Fault::FellOffBus)
    );
    assert_eq!(
        req(r#"{"gpu":4,"fault":"nvlink_down","link":0}"#),
        Ok(Fault::NvlinkDown(0))
    );
    assert_eq!(
        req(r#"{"gpu":5,"fault":"pcie_degraded"}"#),
        Ok(Fault::PcieDegraded)
    );
    assert_eq!(
        req(r#"{"gpu":6,"fault":"power","value":900}"#),
        Ok(Fault::Power(900.0))
    );
    assert_eq!(
        req(r#"{"gpu":7,"fault":"throttle","reason":"hw_slowdown"}"#),
        Ok(Fault::Throttle(clock_event::HW_SLOWDOWN))
    );
}

#[test]
fn bad_inject_requests_say_what_is_wrong() {
    assert!(req(r#"{"gpu":0,"fault":"xid"}"#)
        .unwrap_err()
        .contains("\"code\""));
    assert!(req(r#"{"gpu":0,"fault":"melt"}"#)
        .unwrap_err()
        .contains("unknown fault"));
    assert!(req(r#"{"gpu":0,"fault":"ecc","type":"triple"}"#)
        .unwrap_err()
        .contains("triple"));
    assert!(req(r#"{"gpu":0,"fault":"throttle","reason":"x"}"#)
        .unwrap_err()
        .contains("known"));
    assert!(req(r#"{"gpu":0,"fault":"xid","code":1,"bogus":1}"#)
        .unwrap_err()
        .contains("bogus"));
}

#[test]
fn fell_off_bus_makes_reads_fail_until_cleared() {
    let fake = Arc::new(FakeBackend::new(2, DEFAULT_MODEL, 1));
    fake.inject(1, Fault::FellOffBus).unwrap();
    assert!(matches!(fake.sample(1), Err(BackendError::GpuLost(1))));
    assert!(fake.sample(0).is_ok());
    fake.clear(Some(1)).unwrap();
    assert!(fake.sample(1).is_ok());
}

#[test]
fn readings_drift_but_stay_plausible() {
    let fake = Arc::new(FakeBackend::new(1, DEFAULT_MODEL, 7));
    let temps: Vec<f64> = (0..50)
        .map(|_| fake.sample(0).unwrap().temperature_celsius.unwrap())
        .collect();
    assert!(temps.iter().all(|t| (30.0..80.0).contains(t)), "{temps:?}");
    assert!(
        temps.windows(2).any(|w| w[0] != w[1]),
        "readings never changed"
    );
}

#[test]
fn injecting_on_a_missing_gpu_is_an_error() {
    let fake = FakeBackend::new(2, DEFAULT_MODEL, 1);
    assert!(matches!(
        fake.inject(9, Fault::Xid(79)),
        Err(BackendError::NoSuchGpu(9))
    ));
}
