//! What a scrape, an event read or the passing of time does to a target: the outcomes the
//! scraper records in the [`Fleet`], and what it must store because of them.

use std::sync::Arc;
use std::time::Duration;

use super::{AfterScrape, ConnectivityChange, Fleet};
use crate::model::observation::NodeObservation;
use crate::model::{Connectivity, ScrapeInfo};
use crate::store::observations::observation_rows;
use crate::store::ObservationWrite;

impl Fleet {
    /// Records a successful scrape.
    pub fn succeeded(
        &self,
        id: &str,
        obs: NodeObservation,
        took: Duration,
        now: i64,
    ) -> Option<AfterScrape> {
        let mut map = self.lock();
        let t = map.get_mut(id)?;
        t.in_flight = false;
        let pending = crate::model::observation::events_pending(t.observation.as_deref(), &obs);
        t.scrape = ScrapeInfo {
            up: true,
            last_scrape: Some(crate::clock::rfc3339(now)),
            duration_seconds: took.as_secs_f64(),
            samples: obs.samples,
            last_error: None,
            consecutive_failures: 0,
        };
        if let (Some(o), Some(at)) = (t.observation.take(), t.last_success) {
            t.previous = Some((Arc::new(o.counters_only()), at));
        }
        t.last_success = Some(now);
        self.recent.record(id, &obs, now);
        t.observation = Some(Arc::new(obs));
        t.dirty = true;
        t.rows_stale = true;
        let change = (t.connectivity != Connectivity::Online).then(|| {
            t.connectivity = Connectivity::Online;
            ConnectivityChange {
                node_id: id.to_string(),
                to: Connectivity::Online,
                reason: "scrape succeeded".into(),
            }
        });
        Some(AfterScrape {
            change,
            read_events: (pending || t.events_unread)
                .then(|| (t.agent_instance.clone(), t.event_cursor)),
        })
    }

    /// Records a failed scrape; the node goes offline only in [`Fleet::sweep`].
    pub fn failed(&self, id: &str, error: String, took: Duration, now: i64) {
        if let Some(t) = self.lock().get_mut(id) {
            t.in_flight = false;
            t.scrape.up = false;
            t.scrape.last_scrape = Some(crate::clock::rfc3339(now));
            t.scrape.duration_seconds = took.as_secs_f64();
            t.scrape.last_error = Some(error);
            t.scrape.consecutive_failures += 1;
        }
    }

    /// Records that events up to `cursor` of agent run `instance` are stored.
    pub fn events_read(&self, id: &str, instance: &str, cursor: i64) {
        if let Some(t) = self.lock().get_mut(id) {
            t.agent_instance = Some(instance.to_string());
            t.event_cursor = cursor;
            t.events_unread = false;
        }
    }

    /// Records that reading the agent's events failed; the cursor stays where the store has
    /// it, and the next scrape reads again.
    pub fn events_failed(&self, id: &str) {
        if let Some(t) = self.lock().get_mut(id) {
            t.events_unread = true;
        }
    }

    /// Nodes with no successful scrape for the grace period go offline.
    pub fn sweep(&self, now: i64) -> Vec<ConnectivityChange> {
        let grace = i64::try_from(
            self.settings.interval.as_millis() * u128::from(self.settings.offline_after),
        )
        .unwrap_or(i64::MAX);
        let mut changes = Vec::new();
        for t in self.lock().values_mut() {
            // Judged from the later of the last success and the moment the target was added, so a
            // restarted control plane gives every node a full grace period.
            let since = t.last_success.unwrap_or(t.since).max(t.since);
            if t.connectivity == Connectivity::Online && now - since > grace {
                t.connectivity = Connectivity::Offline;
                let why = t.scrape.last_error.as_deref().unwrap_or("no answer");
                changes.push(ConnectivityChange {
                    node_id: t.node_id.clone(),
                    to: Connectivity::Offline,
                    reason: format!(
                        "no successful scrape for {} ({} missed intervals): {why}",
                        humantime::format_duration(Duration::from_millis(
                            u64::try_from(now - since).unwrap_or(0)
                        )),
                        self.settings.offline_after
                    ),
                });
            }
        }
        changes
    }

    /// Up to `limit` nodes' writes (and the observations of removed targets, which are few):
    /// each node whose observation changed since it was last taken, for its `last_seen`,
    /// and each whose rows are stale and due, with its rows. `rows_due` is `(now, every)`
    /// (Unix ms, ms): a node's stale rows are due when they were last taken `every` or more
    /// before `now`, or never, or its GPUs changed since; `None` takes every stale row (a
    /// stop), so a node scraped since its last row write is written even when nothing new
    /// came since the last flush. The rows are built after the fleet lock is released, so
    /// scrapes do not wait on JSON; a flush takes batch after batch, so its memory is one
    /// batch's, not the whole fleet's. A batch the store refused goes back with
    /// [`Fleet::write_failed`].
    pub fn take_dirty(&self, limit: usize, rows_due: Option<(i64, i64)>) -> Vec<ObservationWrite> {
        let mut out = std::mem::take(&mut *self.removed.lock().unwrap_or_else(|p| p.into_inner()));
        let mut taken = Vec::new();
        for t in self.lock().values_mut() {
            if taken.len() >= limit {
                break;
            }
            let on_time = match (rows_due, t.body_written_at) {
                (None, _) | (_, None) => true,
                (Some((now, every)), Some(at)) => now.saturating_sub(at) >= every,
            };
            // A node not scraped since it was last taken has the GPU set it had then: only
            // its time can make its stale rows due. Passed over under the lock without
            // reading its observation (a flush takes many batches over the whole fleet).
            if !(t.dirty || t.rows_stale && on_time) {
                continue;
            }
            let (Some(o), Some(seen)) = (&t.observation, t.last_success) else {
                t.dirty = false;
                continue;
            };
            let gpus = o.gpus.keys().fold(o.gpus.len() as u64, |h, i| {
                h.rotate_left(7) ^ u64::from(*i).wrapping_mul(0x9e37_79b9_7f4a_7c15)
            });
            let replace = t.gpus_written != Some(gpus);
            let due = t.rows_stale && (replace || on_time);
            t.dirty = false;
            let rows = due.then(|| {
                t.rows_stale = false;
                t.gpus_written = Some(gpus);
                t.body_written_at = Some(rows_due.map_or(seen, |(now, _)| now));
                Arc::clone(o)
            });
            taken.push((t.node_id.clone(), rows, seen, replace && due));
        }
        out.extend(
            taken
                .into_iter()
                .map(|(node_id, o, seen, replace)| ObservationWrite {
                    rows: o.map_or_else(Vec::new, |o| observation_rows(&node_id, &o, seen)),
                    node_id,
                    last_seen: seen,
                    replace,
                }),
        );
        out
    }

    /// A batch of [`Fleet::take_dirty`] the store refused: its nodes are written again at
    /// the next flush, rows and all (a GPU set that changed is replaced then); those removed
    /// since are kept for it.
    pub fn write_failed(&self, batch: Vec<ObservationWrite>) {
        let mut gone = Vec::new();
        {
            let mut map = self.lock();
            for w in batch {
                match map.get_mut(&w.node_id) {
                    Some(t) => {
                        t.dirty = true;
                        if !w.rows.is_empty() || w.replace {
                            t.rows_stale = true;
                            t.body_written_at = None;
                        }
                        if w.replace {
                            t.gpus_written = None;
                        }
                    }
                    None => gone.push(w),
                }
            }
        }
        self.removed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(gone);
    }
}
