//! [`Values`]: a GPU's single-series values over a shared, sorted schema of names.

use std::collections::HashMap;
use std::fmt;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, OnceLock};

use serde::de::{Deserialize, Deserializer};
use serde::ser::{Serialize, SerializeMap, Serializer};

use super::{intern, Name, MAX_SCHEMAS};

/// A sorted list of distinct value names, shared by the GPUs that report the same families.
pub(super) type Schema = Arc<[Name]>;

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
    pub(super) names: Option<Schema>,
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
