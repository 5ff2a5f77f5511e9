//! Per node, the page limit of its next `/v1/events` read and its failures in a row (see
//! `events`: a read that failed for its answer halves the limit, a success doubles it back).

use std::collections::HashMap;
use std::sync::Mutex;

use super::fetch;

/// Per node: the page limit to ask for and the failures in a row.
#[derive(Debug, Default)]
pub struct EventReads {
    nodes: Mutex<HashMap<String, (usize, u32)>>,
}

impl EventReads {
    /// The page limit to ask node `id` for now.
    pub fn limit(&self, id: &str) -> usize {
        self.lock().get(id).map_or(fetch::EVENTS_PAGE, |(l, _)| *l)
    }

    /// A successful read: the limit grows back, the streak ends.
    pub(super) fn succeeded(&self, id: &str) {
        let mut m = self.lock();
        if let Some((l, f)) = m.get_mut(id) {
            *l = (*l * 2).min(fetch::EVENTS_PAGE);
            *f = 0;
            if *l == fetch::EVENTS_PAGE {
                m.remove(id);
            }
        }
    }

    /// A failed read with `limit`: with `shrink`, the next asks for half; returns the
    /// failures in a row.
    pub(super) fn failed(&self, id: &str, limit: usize, shrink: bool) -> u32 {
        let mut m = self.lock();
        let e = m.entry(id.to_string()).or_insert((limit, 0));
        if shrink {
            e.0 = (limit / 2).max(1);
        }
        e.1 += 1;
        e.1
    }

    pub(super) fn forget_streak(&self, id: &str) {
        if let Some(e) = self.lock().get_mut(id) {
            e.1 = 0;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (usize, u32)>> {
        self.nodes.lock().unwrap_or_else(|p| p.into_inner())
    }
}
