//! What one GPU's samples gather while a body is parsed, in growable vectors: the compact
//! forms ([`SmallMap`], [`LinkValues`], [`SmallSet`], [`Values`]) keep no spare slots, so
//! filling them entry by entry reallocated on every new key (some 400 times for an 8-GPU
//! body); they are built once per body from these lists instead.

use super::compact::Name;
use super::error::ObserveError;
use super::limits;

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
