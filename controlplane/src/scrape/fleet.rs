//! The fleet as the scraper sees it, in memory: one [`Target`] per scrapable node with its
//! scrape state, latest observation and event cursor.
//!
//! Observations change every scrape and are kept here; [`Fleet::take_dirty`] hands the
//! changed ones to a periodic batch write (every node's `last_seen`, and the rows of those
//! whose rows are due). Connectivity transitions are returned to the caller
//! to store at once. Every method takes `now` (Unix ms) from the caller's clock, so tests
//! drive time by hand.

mod health;
mod outcomes;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::judge::health::{HealthChange, HealthSettings, NodeHealth};
use crate::model::observation::NodeObservation;
use crate::model::{Connectivity, Health, ScrapeInfo, Status};
use crate::scrape::recent::{Recent, RecentSettings};
use crate::scrape::schedule;
use crate::store::observations::observation_rows;
use crate::store::rows::NodeRow;
use crate::store::ObservationWrite;

/// Scheduling settings.
#[derive(Debug, Clone)]
pub struct FleetSettings {
    /// Scrape interval.
    pub interval: Duration,
    /// Missed intervals before `offline`.
    pub offline_after: u32,
    /// This replica's name (shifts phases).
    pub replica: String,
    /// The health state machine's settings.
    pub health: HealthSettings,
}

/// One scrapable node.
#[derive(Debug, Clone)]
pub struct Target {
    /// Node id.
    pub node_id: String,
    /// Node name.
    pub name: String,
    /// Pool.
    pub pool: String,
    /// Labels.
    pub labels: std::collections::BTreeMap<String, String>,
    /// Agent base URL.
    pub address: String,
    /// Current connectivity.
    pub connectivity: Connectivity,
    /// Last scrape's outcome.
    pub scrape: ScrapeInfo,
    /// Last successful scrape (Unix ms).
    pub last_success: Option<i64>,
    /// Since when the node has been a target (Unix ms): `offline` is judged from here when it
    /// never answered.
    pub since: i64,
    /// Latest observation.
    pub observation: Option<Arc<NodeObservation>>,
    /// The agent run whose events were read last.
    pub agent_instance: Option<String>,
    /// The last agent event sequence stored.
    pub event_cursor: i64,
    /// The last read of the agent's events failed: read them at the next scrape whatever
    /// the counters say.
    pub events_unread: bool,
    /// GPUs the node registered with (0: unknown).
    pub expected_gpus: usize,
    /// The counters of the observation before the latest, with its time (for growth).
    pub previous: Option<(Arc<NodeObservation>, i64)>,
    /// Its health.
    pub health: NodeHealth,
    /// The policy's rule results for it, reused while what a rule reads is unchanged.
    pub memo: Arc<Mutex<crate::judge::policy::RuleMemo>>,
    /// Phase within the interval.
    offset: Duration,
    /// Next scrape (Unix ms).
    next_at: i64,
    /// A scrape is running.
    in_flight: bool,
    /// The observation changed since the last batch write (of its `last_seen`, at least).
    dirty: bool,
    /// The observation changed since its rows were last handed to a write.
    rows_stale: bool,
    /// The GPU indices of the observation last handed to a write, as a digest (`None`:
    /// none since the control plane started).
    gpus_written: Option<u64>,
    /// When its observation's rows were last handed to a write (Unix ms; `None`: never
    /// since the control plane started).
    body_written_at: Option<i64>,
}

/// A scrape to run.
#[derive(Debug, Clone)]
pub struct Job {
    /// Node id.
    pub node_id: String,
    /// Agent base URL.
    pub address: String,
    /// When it was due (Unix ms); `None` for a scrape outside the schedule (a notice).
    pub due_at: Option<i64>,
}

/// A connectivity change to store.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectivityChange {
    /// Node id.
    pub node_id: String,
    /// New connectivity.
    pub to: Connectivity,
    /// Why.
    pub reason: String,
}

/// What a successful scrape asks for next.
#[derive(Debug, Clone, PartialEq)]
pub struct AfterScrape {
    /// The node came online.
    pub change: Option<ConnectivityChange>,
    /// Read the agent's events after this cursor (the stored agent instance with it).
    pub read_events: Option<(Option<String>, i64)>,
}

/// The scraper's in-memory fleet.
#[derive(Debug)]
pub struct Fleet {
    settings: FleetSettings,
    /// Boxed: a `Target` is some 500 bytes, and a hash table keeps up to twice as many
    /// slots as entries (at 10,000 nodes, 16,384), so an inline one left ~400 bytes a node
    /// empty; a box leaves 8.
    targets: Mutex<HashMap<String, Box<Target>>>,
    /// Scrapes by due time (Unix ms), earliest first, so a tick reads only what is due
    /// instead of every target. An entry whose time is no longer its target's `next_at`
    /// (rescheduled, removed) is dropped when it comes up. Locked after `targets`.
    queue: Mutex<BinaryHeap<Reverse<(i64, String)>>>,
    /// Unwritten observations of targets removed since the last batch.
    removed: Mutex<Vec<ObservationWrite>>,
    /// Health changes the store refused (busy, down), to write again: node → (change, when).
    unsaved_health: Mutex<HashMap<String, (HealthChange, i64)>>,
    /// Recent GPU values per node, for the console's charts.
    recent: Recent,
}

/// Whether the node is scraped: it has an address, is not terminated, and its agent has not
/// said goodbye. A `pending` node created with an address is scraped too: the operator
/// named where its agent runs, so its metrics and health are known before it registers.
fn scrapable(row: &NodeRow) -> bool {
    let live = !matches!(row.status(), Ok(Status::Terminated) | Err(_));
    live && !row.deregistered && row.address.is_some()
}

impl Fleet {
    /// An empty fleet.
    pub fn new(settings: FleetSettings) -> Self {
        Self {
            settings,
            targets: Mutex::new(HashMap::new()),
            queue: Mutex::new(BinaryHeap::new()),
            removed: Mutex::new(Vec::new()),
            unsaved_health: Mutex::new(HashMap::new()),
            recent: Recent::default(),
        }
    }

    /// The same fleet keeping recent values as `recent` says (default: 1 h, a point per
    /// 30 s, 64 MiB).
    pub fn with_recent(mut self, recent: RecentSettings) -> Self {
        self.recent = Recent::new(recent);
        self
    }

    /// Recent GPU values per node (the console's charts).
    pub fn recent(&self) -> &Recent {
        &self.recent
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Box<Target>>> {
        self.targets.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn queue(&self) -> MutexGuard<'_, BinaryHeap<Reverse<(i64, String)>>> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The interval.
    pub fn settings(&self) -> &FleetSettings {
        &self.settings
    }

    /// Sets the GPUs node `id` is expected to have (from the store: the most it registered
    /// with, or an operator's count). A node not scraped now is left alone.
    pub fn set_expected_gpus(&self, id: &str, gpus: usize) {
        if let Some(t) = self.lock().get_mut(id) {
            t.expected_gpus = gpus;
        }
    }

    /// GPUs node `id` is expected to have, when it is scraped now.
    pub fn expected_gpus(&self, id: &str) -> Option<usize> {
        self.lock().get(id).map(|t| t.expected_gpus)
    }

    /// Adds, updates or removes the node's target after a change of its row.
    pub fn sync(&self, row: &NodeRow, now: i64) {
        let mut t = self.lock();
        if !scrapable(row) {
            if let Some(gone) = t.remove(&row.id) {
                self.keep_unwritten(*gone);
            }
            self.recent.remove(&row.id);
            return;
        }
        let address = row.address.clone().unwrap_or_default();
        let labels = row.labels().unwrap_or_default();
        // A new target starts from its registration; the stored count (which never drops
        // with a registration) is applied by `set_expected_gpus`, never overwritten here.
        let expected_gpus = row.registered_gpus();
        let connectivity = row.connectivity().unwrap_or(Connectivity::Offline);
        match t.get_mut(&row.id) {
            Some(e) => {
                if e.address != address {
                    e.address = address;
                    e.next_at = now;
                    self.queue().push(Reverse((now, row.id.clone())));
                }
                e.name = row.name.clone();
                e.pool = row.pool.clone();
                e.labels = labels;
            }
            None => {
                let offset =
                    schedule::offset(&address, &self.settings.replica, self.settings.interval);
                let next = schedule::next_at(
                    Duration::from_millis(u64::try_from(now).unwrap_or(0)),
                    offset,
                    self.settings.interval,
                );
                t.insert(
                    row.id.clone(),
                    Box::new(Target {
                        node_id: row.id.clone(),
                        name: row.name.clone(),
                        pool: row.pool.clone(),
                        labels,
                        address,
                        connectivity,
                        scrape: ScrapeInfo::default(),
                        last_success: row.last_seen,
                        since: now,
                        observation: None,
                        agent_instance: row.agent_instance.clone(),
                        event_cursor: row.event_cursor,
                        events_unread: false,
                        expected_gpus,
                        previous: None,
                        health: NodeHealth::restore(
                            self.settings.health.clone(),
                            row.health.parse().unwrap_or(Health::Unknown),
                            now,
                        ),
                        memo: Arc::default(),
                        offset,
                        next_at: i64::try_from(next.as_millis()).unwrap_or(i64::MAX),
                        in_flight: false,
                        dirty: false,
                        rows_stale: false,
                        gpus_written: None,
                        body_written_at: None,
                    }),
                );
                let at = i64::try_from(next.as_millis()).unwrap_or(i64::MAX);
                self.queue().push(Reverse((at, row.id.clone())));
            }
        }
    }

    /// Forgets a node (deleted: its observation is not written).
    pub fn remove(&self, id: &str) {
        self.lock().remove(id);
        self.recent.remove(id);
    }

    fn keep_unwritten(&self, t: Target) {
        if let (true, Some(o), Some(seen)) = (t.dirty, &t.observation, t.last_success) {
            self.removed
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(ObservationWrite {
                    replace: true,
                    node_id: t.node_id.clone(),
                    rows: observation_rows(&t.node_id, o, seen),
                    last_seen: seen,
                });
        }
    }

    /// A copy of one target.
    pub fn get(&self, id: &str) -> Option<Target> {
        self.lock().get(id).map(|t| Target::clone(t))
    }

    /// Node `id`'s latest observation in memory with its time (Unix ms), without copying
    /// the rest of the target.
    pub fn latest(&self, id: &str) -> Option<(Arc<NodeObservation>, i64)> {
        let map = self.lock();
        let t = map.get(id)?;
        Some((Arc::clone(t.observation.as_ref()?), t.last_success?))
    }

    /// Whether node `id` is a target (scraped), without copying it.
    pub fn contains(&self, id: &str) -> bool {
        self.lock().contains_key(id)
    }

    /// The scrape state of one target, without copying the rest of it (API responses).
    pub fn scrape_view(&self, id: &str) -> Option<(ScrapeInfo, Connectivity, Option<i64>)> {
        self.lock()
            .get(id)
            .map(|t| (t.scrape.clone(), t.connectivity, t.last_success))
    }

    /// Targets whose last scrape succeeded, and the others.
    pub fn up_counts(&self) -> (i64, i64) {
        let map = self.lock();
        let up = map.values().filter(|t| t.scrape.up).count();
        (up as i64, (map.len() - up) as i64)
    }

    /// Copies of every target.
    pub fn all(&self) -> Vec<Target> {
        let mut v: Vec<Target> = self.lock().values().map(|t| Target::clone(t)).collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// How many targets there are.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Node `id` as a scrape to run now, outside its phase (an urgent-event notice), unless
    /// it is unknown or a scrape of it is in flight; its phase stays. The scrape's outcome
    /// (`succeeded`/`failed`) ends it as any scrape's does.
    pub fn claim(&self, id: &str) -> Option<Job> {
        let mut targets = self.lock();
        let t = targets.get_mut(id).filter(|t| !t.in_flight)?;
        t.in_flight = true;
        Some(Job {
            node_id: t.node_id.clone(),
            address: t.address.clone(),
            due_at: None,
        })
    }

    /// The scrapes due at `now`, marked in flight; each is scheduled for its next phase. A
    /// target still in flight when it is due again is scraped as soon as it is free.
    pub fn due(&self, now: i64) -> Vec<Job> {
        let interval = self.settings.interval;
        let mut jobs = Vec::new();
        let mut targets = self.lock();
        let mut queue = self.queue();
        let mut busy = Vec::new();
        while queue.peek().is_some_and(|Reverse((at, _))| *at <= now) {
            let Some(Reverse((at, id))) = queue.pop() else {
                break;
            };
            let Some(t) = targets.get_mut(&id).filter(|t| t.next_at == at) else {
                continue; // removed or rescheduled: a newer entry stands for it
            };
            if t.in_flight {
                busy.push(Reverse((at, id)));
                continue;
            }
            t.in_flight = true;
            let after = Duration::from_millis(u64::try_from(now).unwrap_or(0) + 1);
            let next = schedule::next_at(after, t.offset, interval);
            t.next_at = i64::try_from(next.as_millis()).unwrap_or(i64::MAX);
            jobs.push(Job {
                node_id: t.node_id.clone(),
                address: t.address.clone(),
                due_at: Some(at),
            });
            queue.push(Reverse((t.next_at, id)));
        }
        queue.extend(busy);
        jobs
    }

    /// Milliseconds until the next scrape is due (at most `cap`; 0 while a due target is
    /// still in flight).
    pub fn idle_for(&self, now: i64, cap: i64) -> i64 {
        self.queue()
            .peek()
            .map_or(cap, |Reverse((at, _))| at - now)
            .clamp(0, cap)
    }
}

#[cfg(test)]
mod tests;
