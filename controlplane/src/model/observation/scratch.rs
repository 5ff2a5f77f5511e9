//! What one GPU's samples gather while a body is parsed, in growable vectors: the compact
//! forms ([`SmallMap`], [`LinkValues`], [`SmallSet`], [`Values`]) keep no spare slots, so
//! filling them entry by entry reallocated on every new key (some 400 times for an 8-GPU
//! body); they are built once per body from these lists instead.

use super::compact::{LinkValues, Name, SmallMap, SmallSet, Values};
use super::limits;
use super::{GpuObservation, ObserveError};

/// One GPU's lists, each sorted by key with distinct keys (values: as sent).
#[derive(Default)]
pub(super) struct Scratch<'b> {
    /// Single-series values, borrowed from the body.
    pub values: Vec<(&'b str, f64)>,
    /// XID counters by code.
    pub xid: Vec<(u32, f64)>,
    /// ECC counters by (`type`, `counter`).
    pub ecc: Vec<((Name, Name), f64)>,
    /// NVLink error totals by link.
    pub links: Vec<(u32, f64)>,
    /// Active clock-event reasons.
    pub clocks: Vec<Name>,
}

/// The value slot of `k` in the sorted `list`, a new one (`V::default()`) when absent;
/// refused when that would make more than `limit` keys.
pub(super) fn slot<K: Ord, V: Default>(
    list: &mut Vec<(K, V)>,
    k: K,
    limit: usize,
    what: impl FnOnce() -> String,
) -> Result<&mut V, ObserveError> {
    let i = match list.binary_search_by(|(x, _)| x.cmp(&k)) {
        Ok(i) => i,
        Err(i) => {
            limits::room(list.len(), limit, what)?;
            list.insert(i, (k, V::default()));
            i
        }
    };
    Ok(&mut list[i].1)
}

impl Scratch<'_> {
    /// Moves the lists into `g`, each built once and exactly sized.
    pub fn finish(self, g: &mut GpuObservation) {
        if !self.values.is_empty() {
            g.values = Values::from_pairs(self.values);
        }
        g.xid_errors = SmallMap::from_sorted(self.xid);
        g.ecc_errors = SmallMap::from_sorted(self.ecc);
        g.nvlink_errors = LinkValues::from_sorted(self.links);
        g.clock_events = SmallSet::from_sorted(self.clocks);
    }
}
