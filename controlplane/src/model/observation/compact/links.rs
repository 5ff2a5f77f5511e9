//! Per-link NVLink state without a pair per link: [`LinkStates`] (up/down) as two bit sets,
//! [`LinkValues`] (error totals) as a bit set of links and their numbers in link order.
//!
//! An H100 has 18 links: as `SmallMap<u32, bool>` and `SmallMap<u32, f64>` a GPU kept 18
//! pairs of each (8 + 16 bytes a link, 432 bytes, two allocations); here it keeps 16 bytes
//! for the states and 8 bytes a link for the totals. Links numbered 64 and above (no real
//! GPU has them, but a body may say so) are kept in an ordinary [`SmallMap`] beside, so
//! every body reads back exactly as before: same links, same values, same order.

use std::fmt;

use serde::ser::{Serialize, SerializeMap, Serializer};

use super::SmallMap;

/// Links numbered below this are kept as bits.
const BITS: u32 = 64;

/// The bit of link `l`, when it is below [`BITS`].
fn bit(l: u32) -> Option<u64> {
    (l < BITS).then(|| 1u64 << l)
}

/// Links in `mask`, lowest first.
fn ones(mut mask: u64) -> impl Iterator<Item = u32> {
    std::iter::from_fn(move || {
        (mask != 0).then(|| {
            let l = mask.trailing_zeros();
            mask &= mask - 1;
            l
        })
    })
}

/// NVLink up (`true`) or down by link, read like a `SmallMap<u32, bool>`.
#[derive(Clone, Default, PartialEq)]
pub struct LinkStates {
    /// Links reported (below 64).
    known: u64,
    /// Of those, the ones up.
    up: u64,
    /// Links numbered 64 and above.
    more: Option<Box<SmallMap<u32, bool>>>,
}

impl LinkStates {
    /// Sets link `l`; returns its state before.
    pub fn insert(&mut self, l: u32, up: bool) -> Option<bool> {
        let Some(b) = bit(l) else {
            return self.more.get_or_insert_default().insert(l, up);
        };
        let old = self.get(&l).copied();
        self.known |= b;
        if up {
            self.up |= b;
        } else {
            self.up &= !b;
        }
        old
    }

    /// The state of link `l`.
    pub fn get(&self, l: &u32) -> Option<&bool> {
        match bit(*l) {
            Some(b) if self.known & b == 0 => None,
            Some(b) => Some(if self.up & b != 0 { &true } else { &false }),
            None => self.more.as_ref()?.get(l),
        }
    }

    /// Whether link `l` is reported.
    pub fn contains_key(&self, l: &u32) -> bool {
        self.get(l).is_some()
    }

    /// Links reported.
    pub fn len(&self) -> usize {
        self.known.count_ones() as usize + self.more.as_ref().map_or(0, |m| m.len())
    }

    /// No link reported.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets every link.
    pub fn clear(&mut self) {
        *self = Self::default();
    }

    /// (link, up) in link order.
    pub fn iter(&self) -> impl Iterator<Item = (u32, bool)> + '_ {
        ones(self.known)
            .map(|l| (l, self.up & (1 << l) != 0))
            .chain(
                self.more
                    .iter()
                    .flat_map(|m| m.iter().map(|(l, u)| (*l, *u))),
            )
    }

    /// States in link order.
    pub fn values(&self) -> impl Iterator<Item = bool> + '_ {
        self.iter().map(|(_, u)| u)
    }

    /// Drops spare capacity.
    pub fn shrink(&mut self) {
        if let Some(m) = &mut self.more {
            m.shrink();
        }
    }
}

impl std::ops::Index<&u32> for LinkStates {
    type Output = bool;

    fn index(&self, l: &u32) -> &bool {
        #[allow(clippy::expect_used)]
        self.get(l).expect("no such link")
    }
}

/// Totals by link, read like a `SmallMap<u32, f64>`.
#[derive(Clone, Default, PartialEq)]
pub struct LinkValues {
    /// Links reported (below 64).
    known: u64,
    /// Their values, in link order.
    values: Box<[f64]>,
    /// Links numbered 64 and above.
    more: Option<Box<SmallMap<u32, f64>>>,
}

impl LinkValues {
    /// The totals of `pairs`, sorted by link with each link once: built in one pass, with
    /// one allocation for the links below 64 (inserting link by link reallocates each time).
    pub fn from_sorted(pairs: Vec<(u32, f64)>) -> Self {
        let low = pairs.partition_point(|(l, _)| *l < BITS);
        let mut known = 0;
        let mut values = Vec::with_capacity(low);
        let mut more = Vec::new();
        for (l, v) in pairs {
            match bit(l) {
                Some(b) => {
                    known |= b;
                    values.push(v);
                }
                None => more.push((l, v)),
            }
        }
        Self {
            known,
            values: values.into_boxed_slice(),
            more: (!more.is_empty()).then(|| Box::new(SmallMap::from_sorted(more))),
        }
    }

    /// Where link `l`'s value is (or goes) in `values`.
    fn slot(&self, b: u64) -> usize {
        (self.known & (b - 1)).count_ones() as usize
    }

    /// Sets link `l` to `v`; returns its value before.
    pub fn insert(&mut self, l: u32, v: f64) -> Option<f64> {
        let Some(b) = bit(l) else {
            return self.more.get_or_insert_default().insert(l, v);
        };
        let i = self.slot(b);
        if self.known & b != 0 {
            return Some(std::mem::replace(&mut self.values[i], v));
        }
        let mut vals = std::mem::take(&mut self.values).into_vec();
        vals.insert(i, v);
        self.values = vals.into_boxed_slice();
        self.known |= b;
        None
    }

    /// The value of link `l`.
    pub fn get(&self, l: &u32) -> Option<&f64> {
        match bit(*l) {
            Some(b) if self.known & b == 0 => None,
            Some(b) => self.values.get(self.slot(b)),
            None => self.more.as_ref()?.get(l),
        }
    }

    /// Links reported.
    pub fn len(&self) -> usize {
        self.values.len() + self.more.as_ref().map_or(0, |m| m.len())
    }

    /// No link reported.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets every link.
    pub fn clear(&mut self) {
        *self = Self::default();
    }

    /// (link, value) in link order.
    pub fn iter(&self) -> impl Iterator<Item = (u32, f64)> + '_ {
        ones(self.known).zip(self.values.iter().copied()).chain(
            self.more
                .iter()
                .flat_map(|m| m.iter().map(|(l, v)| (*l, *v))),
        )
    }

    /// Values in link order.
    pub fn values(&self) -> impl Iterator<Item = f64> + '_ {
        self.iter().map(|(_, v)| v)
    }

    /// Drops spare capacity.
    pub fn shrink(&mut self) {
        if let Some(m) = &mut self.more {
            m.shrink();
        }
    }
}

impl std::ops::Index<&u32> for LinkValues {
    type Output = f64;

    fn index(&self, l: &u32) -> &f64 {
        #[allow(clippy::expect_used)]
        self.get(l).expect("no such link")
    }
}

impl FromIterator<(u32, bool)> for LinkStates {
    fn from_iter<I: IntoIterator<Item = (u32, bool)>>(iter: I) -> Self {
        let mut m = Self::default();
        for (l, v) in iter {
            m.insert(l, v);
        }
        m.shrink();
        m
    }
}

impl FromIterator<(u32, f64)> for LinkValues {
    fn from_iter<I: IntoIterator<Item = (u32, f64)>>(iter: I) -> Self {
        // Sorted, the last of one link kept, then built once.
        let sorted: SmallMap<u32, f64> = iter.into_iter().collect();
        Self::from_sorted(sorted.iter().map(|(l, v)| (*l, *v)).collect())
    }
}

macro_rules! map_like {
    ($t:ty, $v:ty) => {
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_map().entries(self.iter()).finish()
            }
        }

        /// A map of link → value, as `SmallMap` (and `BTreeMap`) serialize it.
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut m = s.serialize_map(Some(self.len()))?;
                for (k, v) in self.iter() {
                    m.serialize_entry(&k, &v)?;
                }
                m.end()
            }
        }
    };
}
map_like!(LinkStates, bool);
map_like!(LinkValues, f64);

#[cfg(test)]
mod tests;
