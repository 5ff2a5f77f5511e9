//! [`SmallMap`] and [`SmallSet`]: sorted vectors in place of `BTreeMap`/`BTreeSet`.

use std::borrow::Borrow;
use std::fmt;

use serde::de::{Deserialize, Deserializer};
use serde::ser::{Serialize, SerializeMap, Serializer};

/// Runs `f` on the items of `b` as a vector and puts them back, exactly sized: a boxed slice
/// is 16 bytes where a `Vec` is 24, and keeps no spare slots. Each insert or removal
/// reallocates, which costs nothing measurable at the sizes an observation holds (an 8-GPU
/// body: some 40 inserts of this kind among 1,161 samples).
fn edit<T, R>(b: &mut Box<[T]>, f: impl FnOnce(&mut Vec<T>) -> R) -> R {
    let mut v = std::mem::take(b).into_vec();
    let r = f(&mut v);
    *b = v.into_boxed_slice();
    r
}

/// A map kept as a boxed slice of pairs sorted by key: lookups by binary search, iteration
/// in key order like a `BTreeMap`, and no spare slots.
#[derive(Clone, PartialEq)]
pub struct SmallMap<K, V>(Box<[(K, V)]>);

impl<K, V> Default for SmallMap<K, V> {
    fn default() -> Self {
        Self(Box::default())
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
                edit(&mut self.0, |e| e.insert(i, (k, v)));
                None
            }
        }
    }

    /// Removes `k`; returns its value.
    pub fn remove<Q: Ord + ?Sized>(&mut self, k: &Q) -> Option<V>
    where
        K: Borrow<Q>,
    {
        let i = self.find(k).ok()?;
        Some(edit(&mut self.0, |e| e.remove(i).1))
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
    /// The map of `pairs`, which must be sorted by key with each key once (as a parser's
    /// scratch list is): one allocation at most, no sorting.
    pub fn from_sorted(pairs: Vec<(K, V)>) -> Self {
        Self(pairs.into_boxed_slice())
    }

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
        self.0 = Box::default();
    }

    /// Drops spare capacity (there is none: kept for callers that shrink after building).
    pub fn shrink(&mut self) {}
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
        let mut pairs: Vec<(K, V)> = iter.into_iter().collect();
        // Stable: of pairs with one key, the last given stays last, and is kept.
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        let mut kept: Vec<(K, V)> = Vec::with_capacity(pairs.len());
        for (k, v) in pairs {
            if kept.last().is_some_and(|(l, _)| *l == k) {
                kept.pop();
            }
            kept.push((k, v));
        }
        Self(kept.into_boxed_slice())
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

/// A set kept as a sorted boxed slice; serialized as a list, like a `BTreeSet`.
#[derive(Clone, PartialEq)]
pub struct SmallSet<K>(Box<[K]>);

impl<K> Default for SmallSet<K> {
    fn default() -> Self {
        Self(Box::default())
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
                edit(&mut self.0, |e| e.insert(i, k));
                true
            }
        }
    }
}

impl<K> SmallSet<K> {
    /// The set of `members`, which must be sorted with each once: one allocation at most.
    pub fn from_sorted(members: Vec<K>) -> Self {
        Self(members.into_boxed_slice())
    }

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

    /// Drops spare capacity (there is none: kept for callers that shrink after building).
    pub fn shrink(&mut self) {}
}

impl<K> SmallSet<K> {
    /// Removes every member.
    pub fn clear(&mut self) {
        self.0 = Box::default();
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
        Self(v.into_boxed_slice())
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
