//! `fake`: machines in memory, for unit tests and the simulator. Deterministic ids
//! (`{prefix}-0001`, …), a capacity, failures injected per call (once or until cleared),
//! and a record of every call so tests can count provisions.
//!
//! Params: `capacity` (machines at once, default unlimited), `prefix` (of ids, default
//! `fake`), `fail` (an object from call to error kind, e.g. `{"provision": "capacity"}`:
//! that call always fails so, for simulations of a broken provider), `offerings` (a list
//! of `{"instance_type", "price_cents_per_hour", "regions_with_capacity"}`), and for
//! simulations `fleet` (the base URL of a `gpuwarden-agent fleet --control` API: each
//! machine becomes a simulated agent there that joins with its join token, see `fake/fleet.rs`)
//! with `gpus` (1 to 64, default 8), `model`, `racks` and `zones` (default 1: the nodes'
//! `rack` and `zone` labels, round robin by machine number).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};

use serde_json::{Map, Value};

use super::params::Params;
use fleet::FleetLink;

mod fleet;
use super::{
    ErrorKind, Listed, ListedState, Offering, Provider, ProviderError, ProvisionRequest,
    Provisioned,
};

/// Most terminated machines kept (listed as [`ListedState::Gone`]); older ones are forgotten.
pub const MAX_GONE: usize = 1024;

/// Most calls kept in order for [`FakeProvider::calls`] (the counts are kept for all).
pub const MAX_CALLS: usize = 4096;

/// A call of the [`Provider`] trait.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Call {
    /// [`Provider::provision`]
    Provision,
    /// [`Provider::terminate`]
    Terminate,
    /// [`Provider::list`]
    List,
    /// [`Provider::offerings`]
    Offerings,
}

impl Call {
    fn parse(s: &str) -> Option<Call> {
        Some(match s {
            "provision" => Call::Provision,
            "terminate" => Call::Terminate,
            "list" => Call::List,
            "offerings" => Call::Offerings,
            _ => return None,
        })
    }
}

/// A machine of the fake provider.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeMachine {
    /// What it was provisioned with.
    pub request: ProvisionRequest,
    /// Its state in [`Provider::list`].
    pub state: ListedState,
}

#[derive(Debug, Default)]
struct State {
    capacity: Option<usize>,
    next: u64,
    machines: BTreeMap<String, FakeMachine>,
    gone: VecDeque<String>,
    once: HashMap<Call, VecDeque<ProviderError>>,
    always: HashMap<Call, ProviderError>,
    calls: VecDeque<Call>,
    counts: HashMap<Call, usize>,
    offerings: Vec<Offering>,
}

/// The in-process provider.
#[derive(Debug)]
pub struct FakeProvider {
    prefix: String,
    state: Mutex<State>,
    fleet: Option<FleetLink>,
}

impl Default for FakeProvider {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeProvider {
    /// Unlimited capacity, ids `fake-0001`, ….
    pub fn new() -> Self {
        Self::with_prefix("fake")
    }

    /// Ids `{prefix}-0001`, ….
    pub fn with_prefix(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_string(),
            state: Mutex::default(),
            fleet: None,
        }
    }

    /// From a pool spec's params (see the module docs).
    pub fn from_params(map: &Map<String, Value>) -> Result<Self, Vec<String>> {
        let mut p = Params::new("fake", map);
        let capacity = p.uint("capacity", u64::MAX, 0, u64::MAX);
        let prefix = p.string("prefix").unwrap_or_else(|| "fake".into());
        if crate::validate::name(&prefix).is_err() || prefix.len() > 40 {
            p.problem("prefix", "must be 1-40 letters, digits, '.', '_' or '-'");
        }
        let mut always = HashMap::new();
        for (call, kind) in p.string_map("fail") {
            match (Call::parse(&call), ErrorKind::parse(&kind)) {
                (Some(c), Some(k)) => {
                    always.insert(c, ProviderError::new(k, format!("injected {k} failure")));
                }
                _ => p.problem(
                    "fail",
                    format!("{call:?}: {kind:?} must map provision|terminate|list|offerings to an error kind"),
                ),
            }
        }
        let offerings: Vec<Offering> = p.json("offerings").unwrap_or_default();
        let fleet = p.string("fleet");
        if let Some(u) = fleet.as_deref().filter(|u| !fleet::loopback_base(u)) {
            p.problem(
                "fleet",
                format!(
                    "{u:?} must be http://IP:PORT on loopback (127.0.0.0/8, localhost or [::1]), \
                     with no path, query or credentials: join tokens are sent there"
                ),
            );
        }
        let gpus = p.uint("gpus", 8, 1, 64);
        let model = p
            .string("model")
            .unwrap_or_else(|| "NVIDIA H100 80GB HBM3".into());
        let racks = p.uint("racks", 1, 1, 100_000);
        let zones = p.uint("zones", 1, 1, 100_000);
        if zones > racks {
            p.problem("zones", "no more zones than racks");
        }
        p.finish()?;
        let mut f = Self::with_prefix(&prefix);
        f.fleet =
            fleet.map(|u| FleetLink::new(u, u32::try_from(gpus).unwrap_or(8), model, racks, zones));
        {
            let mut s = f.lock();
            s.capacity = usize::try_from(capacity).ok();
            s.always = always;
            s.offerings = offerings;
        }
        Ok(f)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Allows at most `n` machines at once (not counting gone ones).
    pub fn set_capacity(&self, n: Option<usize>) {
        self.lock().capacity = n;
    }

    /// The next call of `call` fails with `error` (queued: several calls fail in turn).
    pub fn fail_next(&self, call: Call, error: ProviderError) {
        self.lock().once.entry(call).or_default().push_back(error);
    }

    /// Every call of `call` fails with `error` until [`FakeProvider::clear_failures`].
    pub fn fail_always(&self, call: Call, error: ProviderError) {
        self.lock().always.insert(call, error);
    }

    /// Clears the failures injected.
    pub fn clear_failures(&self) {
        let mut s = self.lock();
        s.once.clear();
        s.always.clear();
    }

    /// Sets a machine's state (booting, crashed, …); false when there is no such machine.
    pub fn set_state(&self, provider_id: &str, state: ListedState) -> bool {
        let mut s = self.lock();
        let Some(m) = s.machines.get_mut(provider_id) else {
            return false;
        };
        m.state = state;
        if state == ListedState::Gone {
            s.gone.push_back(provider_id.to_string());
            forget_old(&mut s);
        }
        true
    }

    /// Sets what [`Provider::offerings`] answers.
    pub fn set_offerings(&self, offerings: Vec<Offering>) {
        self.lock().offerings = offerings;
    }

    /// Every machine, gone ones included (up to [`MAX_GONE`] of those).
    pub fn machines(&self) -> BTreeMap<String, FakeMachine> {
        self.lock().machines.clone()
    }

    /// The last [`MAX_CALLS`] calls, in order (failed ones included).
    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.iter().copied().collect()
    }

    /// How many calls of `call` so far.
    pub fn count(&self, call: Call) -> usize {
        self.lock().counts.get(&call).copied().unwrap_or(0)
    }

    /// Records the call; the failure injected for it, if any.
    fn enter(s: &mut State, call: Call) -> Result<(), ProviderError> {
        s.calls.push_back(call);
        if s.calls.len() > MAX_CALLS {
            s.calls.pop_front();
        }
        *s.counts.entry(call).or_default() += 1;
        if let Some(e) = s.once.get_mut(&call).and_then(VecDeque::pop_front) {
            return Err(e);
        }
        match s.always.get(&call) {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }
}

fn forget_old(s: &mut State) {
    while s.gone.len() > MAX_GONE {
        if let Some(id) = s.gone.pop_front() {
            s.machines.remove(&id);
        }
    }
}

impl Provider for FakeProvider {
    fn kind(&self) -> &'static str {
        "fake"
    }

    fn provision(&self, req: &ProvisionRequest) -> Result<Provisioned, ProviderError> {
        let mut s = self.lock();
        Self::enter(&mut s, Call::Provision)?;
        // The same instance again (an answer lost): the same machine.
        if let Some((id, _)) = s
            .machines
            .iter()
            .find(|(_, m)| m.request.instance_id == req.instance_id && m.state != ListedState::Gone)
        {
            return Ok(Provisioned {
                provider_id: id.clone(),
                address: None,
            });
        }
        let used = s
            .machines
            .values()
            .filter(|m| m.state != ListedState::Gone)
            .count();
        if let Some(cap) = s.capacity.filter(|cap| used >= *cap) {
            return Err(ProviderError::new(
                ErrorKind::Capacity,
                format!("no capacity: {used} of {cap} machines in use"),
            ));
        }
        s.next += 1;
        let id = format!("{}-{:04}", self.prefix, s.next);
        let address = match &self.fleet {
            // The fleet is asked outside the lock; the number is taken.
            Some(fleet) => {
                let n = s.next;
                drop(s);
                let address = fleet.add(req, n)?;
                s = self.lock();
                Some(address).filter(|a| !a.is_empty())
            }
            None => None,
        };
        s.machines.insert(
            id.clone(),
            FakeMachine {
                request: req.clone(),
                state: ListedState::Running,
            },
        );
        Ok(Provisioned {
            provider_id: id,
            address,
        })
    }

    fn terminate(&self, provider_id: &str) -> Result<(), ProviderError> {
        let mut s = self.lock();
        Self::enter(&mut s, Call::Terminate)?;
        if let Some(fleet) = &self.fleet {
            let node = s
                .machines
                .get(provider_id)
                .filter(|m| m.state != ListedState::Gone)
                .map(|m| m.request.node_name.clone());
            if let Some(node) = node {
                drop(s);
                fleet.remove(&node)?;
                s = self.lock();
            }
        }
        let newly_gone = match s.machines.get_mut(provider_id) {
            Some(m) if m.state != ListedState::Gone => {
                m.state = ListedState::Gone;
                true
            }
            _ => false, // already gone, or never there: nothing to do
        };
        if newly_gone {
            s.gone.push_back(provider_id.to_string());
            forget_old(&mut s);
        }
        Ok(())
    }

    fn list(&self) -> Result<Vec<Listed>, ProviderError> {
        // With a fleet, a machine whose node the fleet no longer has is gone (asked before
        // the lock: the machines provisioned meanwhile are in the fleet already).
        let present = match &self.fleet {
            Some(f) => Some(f.names()?),
            None => None,
        };
        let mut s = self.lock();
        Self::enter(&mut s, Call::List)?;
        if let Some(present) = present {
            let lost: Vec<String> = s
                .machines
                .iter()
                .filter(|(_, m)| {
                    m.state != ListedState::Gone && !present.contains(&m.request.node_name)
                })
                .map(|(id, _)| id.clone())
                .collect();
            for id in lost {
                if let Some(m) = s.machines.get_mut(&id) {
                    m.state = ListedState::Gone;
                }
                s.gone.push_back(id);
            }
            forget_old(&mut s);
        }
        Ok(s.machines
            .iter()
            .map(|(id, m)| Listed {
                provider_id: id.clone(),
                instance_id: Some(m.request.instance_id.clone()),
                state: m.state,
            })
            .collect())
    }

    fn offerings(&self) -> Result<Vec<Offering>, ProviderError> {
        let mut s = self.lock();
        Self::enter(&mut s, Call::Offerings)?;
        Ok(s.offerings.clone())
    }
}

#[cfg(test)]
mod tests;
