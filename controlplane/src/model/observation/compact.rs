//! Compact containers for observations: the control plane keeps one observation per node
//! (and the counters of the one before), so at 10,000 nodes every byte per value counts.
//!
//! - [`SmallMap`]: a sorted vector of pairs. A `BTreeMap` allocates a node of 11 slots even
//!   for the 4 ECC counters of a GPU; here a map costs its entries and one vector header.
//! - [`Name`] / [`intern`]: strings that repeat across GPUs and nodes (metric names, ECC
//!   types, clock-event reasons) are stored once per process and shared by reference count.
//! - [`Values`]: a GPU's single-series values. The sorted list of names (the *schema*) is
//!   shared by every GPU that reports the same families, usually the whole fleet, so a GPU
//!   keeps one pointer and its `f64`s.
//! - [`LinkStates`] / [`LinkValues`]: NVLink state and error totals by link, as bit sets.
//!
//! Both process-wide tables are bounded ([`MAX_INTERNED`], [`MAX_SCHEMAS`]): past the bound
//! a string or schema is still stored, in the observation that holds it, not shared. Memory
//! then grows with the fleet's observations (bounded per target by [`super::limits`]), never
//! with the variety of names the agents send.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock};

mod links;
mod small;
mod values;
pub use links::{LinkStates, LinkValues};
pub use small::{SmallMap, SmallSet};
pub use values::Values;

/// A shared string (metric name, ECC type, clock-event reason).
pub type Name = Arc<str>;

/// Strings shared process-wide at most.
pub const MAX_INTERNED: usize = 4096;
/// Schemas shared process-wide at most.
pub const MAX_SCHEMAS: usize = 1024;

/// A bounded table of shared strings.
#[derive(Debug)]
pub struct Interner {
    table: Mutex<HashSet<Name, foldhash::fast::RandomState>>,
    capacity: usize,
}

impl Interner {
    /// A table that shares at most `capacity` strings.
    pub fn new(capacity: usize) -> Self {
        Self {
            table: Mutex::default(),
            capacity,
        }
    }

    /// The shared [`Name`] for `s`: the same allocation for the same text while the table
    /// has room, a fresh one after.
    pub fn intern(&self, s: &str) -> Name {
        let mut t = self.table.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = t.get(s) {
            return n.clone();
        }
        let n: Name = Arc::from(s);
        if t.len() < self.capacity {
            t.insert(n.clone());
        }
        n
    }
}

/// Names each thread remembers before it asks the shared table (no lock for the common
/// ones: 64 scrape workers would otherwise meet on one mutex for every ECC counter).
const LOCAL_NAMES: usize = 64;

/// The process-wide [`Name`] for `s` (an [`Interner`] of [`MAX_INTERNED`] strings).
pub fn intern(s: &str) -> Name {
    static TABLE: OnceLock<Interner> = OnceLock::new();
    thread_local! {
        static LOCAL: std::cell::RefCell<Vec<Name>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    LOCAL.with_borrow_mut(|local| {
        if let Some(n) = local.iter().find(|n| &***n == s) {
            return n.clone();
        }
        let n = TABLE.get_or_init(|| Interner::new(MAX_INTERNED)).intern(s);
        if local.len() >= LOCAL_NAMES {
            local.remove(0);
        }
        local.push(n.clone());
        n
    })
}

#[cfg(test)]
mod tests;
