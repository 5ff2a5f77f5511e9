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
//!
//! Both process-wide tables are bounded ([`MAX_INTERNED`], [`MAX_SCHEMAS`]): past the bound
//! a string or schema is still stored, in the observation that holds it, not shared. Memory
//! then grows with the fleet's observations (bounded per target by [`super::limits`]), never
//! with the variety of names the agents send.

use std::borrow::Borrow;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, OnceLock};

use serde::de::{Deserialize, Deserializer};
use serde::ser::{Serialize, SerializeMap, Serializer};

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

/// A map kept as a vector of pairs sorted by key: lookups by binary search, iteration in key
/// order like a `BTreeMap`, and no spare slots once [`SmallMap::shrink`] ran.
#[derive(Clone, PartialEq)]
pub struct SmallMap<K, V>(Vec<(K, V)>);

impl<K, V> Default for SmallMap<K, V> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<K: Ord, V> SmallMap<K, V> {
    fn find<Q: Ord + ?Sized>(&self, k: &Q) -> Result<usize, usize>
    where
        K: Borrow<Q>,
    {
        self.0.binary_search_by(|(x, _)| x.borrow().cmp(k))
    }

    /// The value of `k`.
    pub fn get<Q: Ord + ?Sized>(&self, k: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
    {
        self.find(k).ok().map(|i| &self.0[i].1)
    }

    /// Whether `k` is present.
    pub fn contains_key<Q: Ord + ?Sized>(&self, k: &Q) -> bool
    where
        K: Borrow<Q>,
    {
        self.find(k).is_ok()
    }

    /// Sets `k` to `v`; returns the value it replaced.
    pub fn insert(&mut self, k: K, v: V) -> Option<V> {
        match self.find(&k) {
            Ok(i) => Some(std::mem::replace(&mut self.0[i].1, v)),
            Err(i) => {
                self.0.insert(i, (k, v));
                None
            }
        }
    }

    /// Removes `k`; returns its value.
    pub fn remove<Q: Ord + ?Sized>(&mut self, k: &Q) -> Option<V>
    where
        K: Borrow<Q>,
    {
        self.find(k).ok().map(|i| self.0.remove(i).1)
    }

    /// The value of `k`, mutable.
    pub fn get_mut<Q: Ord + ?Sized>(&mut self, k: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
    {
        self.find(k).ok().map(|i| &mut self.0[i].1)
    }
}

impl<K, V> SmallMap<K, V> {
    /// Entries.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// No entries.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Pairs in key order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&K, &V)> + ExactSizeIterator {
        self.0.iter().map(|(k, v)| (k, v))
    }

    /// Keys in order.
    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &K> + ExactSizeIterator {
        self.0.iter().map(|(k, _)| k)
    }

    /// Values in key order.
    pub fn values(&self) -> impl DoubleEndedIterator<Item = &V> + ExactSizeIterator {
        self.0.iter().map(|(_, v)| v)
    }

    /// Values in key order, mutable.
    pub fn values_mut(&mut self) -> impl DoubleEndedIterator<Item = &mut V> + ExactSizeIterator {
        self.0.iter_mut().map(|(_, v)| v)
    }

    /// Removes every entry.
    pub fn clear(&mut self) {
        self.0.clear();
    }

    /// Drops the spare capacity left by building the map.
    pub fn shrink(&mut self) {
        self.0.shrink_to_fit();
    }
}

/// `map[&k]`, like a `BTreeMap`: panics when `k` is absent (for tests and known keys).
impl<K: Ord + Borrow<Q>, V, Q: Ord + ?Sized> std::ops::Index<&Q> for SmallMap<K, V> {
    type Output = V;

    fn index(&self, k: &Q) -> &V {
        #[allow(clippy::expect_used)]
        self.get(k).expect("no entry for this key in the SmallMap")
    }
}

impl<K: fmt::Debug, V: fmt::Debug> fmt::Debug for SmallMap<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<K: Ord, V> FromIterator<(K, V)> for SmallMap<K, V> {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut m = Self::default();
        for (k, v) in iter {
            m.insert(k, v);
        }
        m.shrink();
        m
    }
}

impl<'m, K, V> IntoIterator for &'m SmallMap<K, V> {
    type Item = (&'m K, &'m V);
    type IntoIter = std::iter::Map<std::slice::Iter<'m, (K, V)>, fn(&'m (K, V)) -> (&'m K, &'m V)>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(k, v)| (k, v))
    }
}

impl<K: Serialize, V: Serialize> Serialize for SmallMap<K, V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.len()))?;
        for (k, v) in self.iter() {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

impl<'de, K: Ord + Deserialize<'de>, V: Deserialize<'de>> Deserialize<'de> for SmallMap<K, V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let m = std::collections::BTreeMap::<K, V>::deserialize(d)?;
        Ok(m.into_iter().collect())
    }
}

/// A set kept as a sorted vector; serialized as a list, like a `BTreeSet`.
#[derive(Clone, PartialEq)]
pub struct SmallSet<K>(Vec<K>);

impl<K> Default for SmallSet<K> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<K: Ord> SmallSet<K> {
    /// Whether `k` is in the set.
    pub fn contains<Q: Ord + ?Sized>(&self, k: &Q) -> bool
    where
        K: Borrow<Q>,
    {
        self.0.binary_search_by(|x| x.borrow().cmp(k)).is_ok()
    }

    /// Adds `k`; false when it was there.
    pub fn insert(&mut self, k: K) -> bool {
        match self.0.binary_search(&k) {
            Ok(_) => false,
            Err(i) => {
                self.0.insert(i, k);
                true
            }
        }
    }
}

impl<K> SmallSet<K> {
    /// Members.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// No members.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Members in order.
    pub fn iter(&self) -> std::slice::Iter<'_, K> {
        self.0.iter()
    }

    /// Drops the spare capacity left by building the set.
    pub fn shrink(&mut self) {
        self.0.shrink_to_fit();
    }
}

impl<K> SmallSet<K> {
    /// Removes every member.
    pub fn clear(&mut self) {
        self.0.clear();
    }
}

impl<'s, K> IntoIterator for &'s SmallSet<K> {
    type Item = &'s K;
    type IntoIter = std::slice::Iter<'s, K>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl<K: Ord> FromIterator<K> for SmallSet<K> {
    fn from_iter<I: IntoIterator<Item = K>>(iter: I) -> Self {
        let mut v: Vec<K> = iter.into_iter().collect();
        v.sort();
        v.dedup();
        v.shrink_to_fit();
        Self(v)
    }
}

impl<K: fmt::Debug> fmt::Debug for SmallSet<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl<K: Serialize> Serialize for SmallSet<K> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de, K: Ord + Deserialize<'de>> Deserialize<'de> for SmallSet<K> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Vec::<K>::deserialize(d)?.into_iter().collect())
    }
}

/// A sorted list of distinct value names, shared by the GPUs that report the same families.
type Schema = Arc<[Name]>;

/// Schemas each thread remembers before it asks the shared table.
const LOCAL_SCHEMAS: usize = 8;

/// The process-wide schema equal to `names` (sorted, distinct), or a new one.
fn schema(names: &[&str]) -> Schema {
    thread_local! {
        static LOCAL: std::cell::RefCell<Vec<Schema>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let same = |s: &Schema| s.len() == names.len() && s.iter().zip(names).all(|(a, b)| &**a == *b);
    LOCAL.with_borrow_mut(|local| {
        if let Some(s) = local.iter().find(|s| same(s)) {
            return s.clone();
        }
        let s = shared_schema(names);
        if local.len() >= LOCAL_SCHEMAS {
            local.remove(0);
        }
        local.push(s.clone());
        s
    })
}

/// [`schema`] from the process-wide table.
fn shared_schema(names: &[&str]) -> Schema {
    type Table = HashMap<u64, Vec<Schema>, foldhash::fast::FixedState>;
    static TABLE: OnceLock<Mutex<(Table, usize)>> = OnceLock::new();
    let table = TABLE.get_or_init(Default::default);
    let h = foldhash::fast::FixedState::default().hash_one(names);
    let mut guard = table.lock().unwrap_or_else(|p| p.into_inner());
    let (t, count) = &mut *guard;
    let same = |s: &Schema| s.len() == names.len() && s.iter().zip(names).all(|(a, b)| &**a == *b);
    if let Some(s) = t.get(&h).and_then(|v| v.iter().find(|s| same(s))) {
        return s.clone();
    }
    let s: Schema = names.iter().map(|n| intern(n)).collect();
    if *count < MAX_SCHEMAS {
        t.entry(h).or_default().push(s.clone());
        *count += 1;
    }
    s
}

/// A GPU's single-series values by name (`temperature_celsius` → 71.0): a shared schema of
/// names and this GPU's numbers in the same order.
#[derive(Clone, Default)]
pub struct Values {
    names: Option<Schema>,
    values: Box<[f64]>,
}

impl Values {
    /// From pairs in any order; a name given twice keeps its last value.
    pub fn from_pairs(mut pairs: Vec<(&str, f64)>) -> Self {
        if pairs.is_empty() {
            return Self::default();
        }
        // Stable: the last of equal names is last after sorting.
        pairs.sort_by(|a, b| a.0.cmp(b.0));
        let mut names: Vec<&str> = Vec::with_capacity(pairs.len());
        let mut values: Vec<f64> = Vec::with_capacity(pairs.len());
        for (n, v) in pairs {
            if names.last() == Some(&n) {
                if let Some(last) = values.last_mut() {
                    *last = v;
                }
            } else {
                names.push(n);
                values.push(v);
            }
        }
        Self {
            names: Some(schema(&names)),
            values: values.into_boxed_slice(),
        }
    }

    fn names(&self) -> &[Name] {
        self.names.as_deref().unwrap_or(&[])
    }

    /// The value of `name`.
    pub fn get(&self, name: &str) -> Option<&f64> {
        self.names()
            .binary_search_by(|n| (**n).cmp(name))
            .ok()
            .map(|i| &self.values[i])
    }

    /// Whether `name` has a value.
    pub fn contains_key(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Sets one value (rebuilds the list: for tests and tools, not the scrape path).
    pub fn insert(&mut self, name: impl AsRef<str>, value: f64) {
        let mut pairs: Vec<(&str, f64)> = self.iter().collect();
        pairs.push((name.as_ref(), value));
        *self = Self::from_pairs(pairs);
    }

    /// Removes one value (rebuilds the list: for tests and tools); returns it.
    pub fn remove(&mut self, name: &str) -> Option<f64> {
        let old = self.get(name).copied()?;
        *self = Self::from_pairs(self.iter().filter(|(n, _)| *n != name).collect());
        Some(old)
    }

    /// Values held.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// None held.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Pairs in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, f64)> + '_ {
        self.names()
            .iter()
            .map(|n| &**n)
            .zip(self.values.iter().copied())
    }

    /// Names in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> + '_ {
        self.names().iter().map(|n| &**n)
    }
}

/// `values["name"]`: panics when the name has no value (for tests and known names).
impl std::ops::Index<&str> for Values {
    type Output = f64;

    fn index(&self, name: &str) -> &f64 {
        #[allow(clippy::expect_used)]
        self.get(name).expect("no value of this name")
    }
}

impl PartialEq for Values {
    fn eq(&self, other: &Self) -> bool {
        self.names() == other.names() && self.values == other.values
    }
}

impl fmt::Debug for Values {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl Serialize for Values {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.len()))?;
        for (k, v) in self.iter() {
            m.serialize_entry(k, &v)?;
        }
        m.end()
    }
}

impl<'de> Deserialize<'de> for Values {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let m = std::collections::BTreeMap::<String, f64>::deserialize(d)?;
        Ok(Self::from_pairs(
            m.iter().map(|(k, v)| (k.as_str(), *v)).collect(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_map_reads_like_a_sorted_map() {
        let mut m: SmallMap<u32, f64> = [(3, 1.0), (1, 2.0)].into_iter().collect();
        assert_eq!(m.insert(2, 5.0), None);
        assert_eq!(m.insert(3, 7.0), Some(1.0));
        assert_eq!(m.keys().copied().collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(m.get(&3), Some(&7.0));
        assert_eq!(m.get(&4), None);
        assert_eq!(
            serde_json::to_string(&m).unwrap(),
            r#"{"1":2.0,"2":5.0,"3":7.0}"#
        );
        let back: SmallMap<u32, f64> = serde_json::from_str(r#"{"3":7.0,"1":2.0}"#).unwrap();
        assert_eq!(back.keys().copied().collect::<Vec<_>>(), [1, 3]);
    }

    #[test]
    fn gpus_reporting_the_same_families_share_one_schema() {
        let a = Values::from_pairs(vec![("temperature_celsius", 70.0), ("power_watts", 300.0)]);
        let b = Values::from_pairs(vec![("power_watts", 310.0), ("temperature_celsius", 71.0)]);
        let (Some(x), Some(y)) = (&a.names, &b.names) else {
            panic!("schemas")
        };
        assert!(Arc::ptr_eq(x, y), "one schema for both GPUs");
        assert_eq!(a.get("power_watts"), Some(&300.0));
        assert_eq!(b.get("temperature_celsius"), Some(&71.0));
        assert_eq!(a.get("missing"), None);
        assert_ne!(a, b);
        assert_eq!(
            a.iter().collect::<Vec<_>>(),
            [("power_watts", 300.0), ("temperature_celsius", 70.0)]
        );
    }

    #[test]
    fn a_name_given_twice_keeps_its_last_value() {
        let v = Values::from_pairs(vec![("x", 1.0), ("y", 2.0), ("x", 3.0)]);
        assert_eq!(v.len(), 2);
        assert_eq!(v.get("x"), Some(&3.0));
        let mut w = v.clone();
        w.insert("y", 9.0);
        w.insert("z", 1.0);
        assert_eq!(
            serde_json::to_string(&w).unwrap(),
            r#"{"x":3.0,"y":9.0,"z":1.0}"#
        );
        let back: Values = serde_json::from_str(r#"{"z":1.0,"x":3.0,"y":9.0}"#).unwrap();
        assert_eq!(back, w);
    }

    #[test]
    fn interning_shares_text_and_stays_bounded() {
        let t = Interner::new(2);
        let a = t.intern("double_bit");
        let b = t.intern(&String::from("double_bit"));
        assert!(Arc::ptr_eq(&a, &b));
        t.intern("single_bit");
        // Past the bound: the text comes back right, unshared, and the table does not grow.
        let c = t.intern("volatile");
        let d = t.intern("volatile");
        assert_eq!((&*c, &*d), ("volatile", "volatile"));
        assert!(!Arc::ptr_eq(&c, &d));
        assert_eq!(t.table.lock().unwrap().len(), 2);
    }
}
