//! Provider calls from the loop (see `tests.rs` for the harness): outside the tick and in
//! parallel, failures shown and backed off, an unknown outcome left to the reconciler.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use serde_json::json;

use super::tests::{harness, small};
use crate::model::pool::InstanceState;
use crate::pool::provider::fake::{Call, FakeProvider};
use crate::pool::provider::{
    ErrorKind, Listed, Provider, ProviderError, ProvisionRequest, Provisioned,
};

/// A provider whose provisions block until released, to see where the calls run.
#[derive(Debug, Default)]
struct Gate {
    inner: FakeProvider,
    open: Mutex<bool>,
    waiting: Mutex<usize>,
    cv: Condvar,
}

impl Gate {
    fn release(&self) {
        *self.open.lock().unwrap() = true;
        self.cv.notify_all();
    }
    fn wait_for(&self, n: usize) -> bool {
        let g = self.waiting.lock().unwrap();
        let (g, _) = self
            .cv
            .wait_timeout_while(g, Duration::from_secs(10), |w| *w < n)
            .unwrap();
        *g >= n
    }
}

impl Provider for Gate {
    fn kind(&self) -> &'static str {
        "fake"
    }
    fn provision(&self, req: &ProvisionRequest) -> Result<Provisioned, ProviderError> {
        *self.waiting.lock().unwrap() += 1;
        self.cv.notify_all();
        let g = self.open.lock().unwrap();
        drop(self.cv.wait_while(g, |o| !*o).unwrap());
        self.inner.provision(req)
    }
    fn terminate(&self, id: &str) -> Result<(), ProviderError> {
        self.inner.terminate(id)
    }
    fn list(&self) -> Result<Vec<Listed>, ProviderError> {
        self.inner.list()
    }
}

#[test]
fn provider_calls_run_outside_the_tick_and_in_parallel() {
    // Navarch ran provider calls one at a time under the pool lock.
    let h = harness(small(json!({"min_nodes": 3})));
    let gate = Arc::new(Gate::default());
    h.mgr.ctx.providers.preset("p", "fake", gate.clone());
    let r = h.mgr.tick().unwrap();
    assert_eq!(r.actions, 3);
    assert!(gate.wait_for(3), "the three calls did not run at once");
    // The loop is free meanwhile: a second tick neither waits nor asks again.
    h.clock.advance(120_000);
    h.mgr.tick().unwrap();
    assert_eq!(h.in_state(InstanceState::Provisioning).len(), 3);
    gate.release();
    assert!(h.mgr.ctx.in_flight.wait_idle(Duration::from_secs(10)));
    assert_eq!(gate.inner.count(Call::Provision), 3);
    assert_eq!(h.in_state(InstanceState::Registering).len(), 3);
}

#[test]
fn a_failing_provider_fails_its_instances_backs_off_and_shows_in_the_status() {
    let h = harness(small(json!({})));
    h.fake.fail_always(
        Call::Provision,
        ProviderError::new(ErrorKind::Quota, "quota used up"),
    );
    h.tick();
    // The second may find the provider backing off already (the first call runs on a
    // thread of its own): then it is not asked.
    let asked = h.fake.count(Call::Provision);
    assert!((1..=2).contains(&asked), "{asked}");
    assert_eq!(h.in_state(InstanceState::Failed).len(), asked);
    h.clock.advance(1000);
    h.tick();
    let row = h.pool();
    assert_eq!(row.status, "error");
    assert!(
        row.last_error
            .as_deref()
            .unwrap_or_default()
            .contains("quota"),
        "{row:?}"
    );
    // Backing off: not asked again within 10 s, and the failed records are cleaned up.
    assert_eq!(h.fake.count(Call::Provision), asked);
    assert!(h.in_state(InstanceState::Failed).is_empty());
    // After the backoff it is asked again, and a success clears the status.
    h.fake.clear_failures();
    h.clock.advance(30_000);
    h.tick();
    h.clock.advance(1000);
    h.tick();
    assert_eq!(h.in_state(InstanceState::Registering).len(), 2);
    assert_eq!(h.pool().status, "ok");
}

#[test]
fn an_unknown_outcome_keeps_the_instance_for_the_reconciler_never_a_second_machine() {
    let h = harness(small(json!({"min_nodes": 1})));
    h.fake.fail_next(
        Call::Provision,
        ProviderError::new(ErrorKind::Timeout, "no answer"),
    );
    h.tick();
    let i = h.in_state(InstanceState::Provisioning);
    assert_eq!(i.len(), 1, "{:?}", h.instances());
    h.clock.advance(120_000);
    h.tick();
    assert_eq!(
        h.instances().len(),
        1,
        "a timed-out instance is booting, not replaced"
    );
}
