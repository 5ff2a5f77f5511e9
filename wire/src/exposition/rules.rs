//! The rules of the text format that span lines: one group per metric family, at most one
//! `HELP` and one `TYPE` per family and the `TYPE` before its samples, no series twice,
//! histogram buckets with a numeric `le` and summary quantiles with a numeric `quantile`.
//!
//! Memory grows with the families and series of one body (a few words each), which the
//! caller bounds with its sample limit; nothing is copied from the body.

use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;

use foldhash::quality::RandomState;

use super::{parse_value, Labels, MetricType, Sample};

/// A series seen earlier in the body.
#[derive(Debug, Clone, Copy)]
struct Seen<'a> {
    name: &'a str,
    /// The label set's text (compared pair by pair only when two hashes meet).
    labels: &'a str,
}

/// What the body has declared and sent so far.
#[derive(Debug, Clone, Default)]
pub(super) struct BodyRules<'a> {
    types: HashMap<&'a str, MetricType, RandomState>,
    helped: HashSet<&'a str, RandomState>,
    /// The family whose lines are being read, and whether it has had samples.
    current: Option<(&'a str, bool)>,
    /// Families whose group ended: they may not appear again.
    closed: HashSet<&'a str, RandomState>,
    /// The current family's series by the hash of name and label set (foldhash with a seed
    /// of this body's own: a body cannot aim collisions at a known hasher). A series belongs
    /// to one family and a family's lines are one group, so a repeated series can only be
    /// in the group being read: the set is emptied when the next family starts, and holds
    /// the largest family's series at most instead of the whole body's.
    series: HashMap<u64, Seen<'a>, RandomState>,
    /// Series of ended families named `…_bucket`, `…_sum` or `…_count`: a later `TYPE`
    /// line can make such a name part of a histogram or summary family, so its series may
    /// come back in another group (`x_sum 1`, `# TYPE x summary`, `x_sum 2`).
    kept: HashMap<u64, Seen<'a>, RandomState>,
    /// Different series whose hashes met (kept apart so both are still checked), for the
    /// whole body.
    collided: Vec<(u64, Seen<'a>)>,
    /// The last sample name with its family and type ([`BodyRules::family_of`]): a
    /// family's samples come one after another, so most lines need no lookup. Forgotten at
    /// every `HELP` and `TYPE` line, which may change what a name belongs to.
    last: Option<(&'a str, &'a str, Option<MetricType>, u64)>,
}

impl<'a> BodyRules<'a> {
    /// Rules for a body whose largest family has about `series` series (the map of one
    /// family's series is sized for them at once instead of growing by doubling).
    pub(super) fn with_capacity(series: usize) -> Self {
        // Families: an agent's body has ~70; sized once instead of rehashed as they come.
        const FAMILIES: usize = 128;
        Self {
            series: HashMap::with_capacity_and_hasher(series, RandomState::default()),
            types: HashMap::with_capacity_and_hasher(FAMILIES, RandomState::default()),
            helped: HashSet::with_capacity_and_hasher(FAMILIES, RandomState::default()),
            closed: HashSet::with_capacity_and_hasher(FAMILIES, RandomState::default()),
            ..Self::default()
        }
    }

    /// The family a sample name belongs to: `x_bucket`, `x_sum` and `x_count` belong to a
    /// histogram `x`; `x_sum` and `x_count` to a summary `x`; any other name to itself.
    fn family_of(&self, name: &'a str) -> (&'a str, Option<MetricType>) {
        for (suffix, kinds) in [
            ("_bucket", &[MetricType::Histogram][..]),
            ("_sum", &[MetricType::Histogram, MetricType::Summary][..]),
            ("_count", &[MetricType::Histogram, MetricType::Summary][..]),
        ] {
            if let Some(base) = name.strip_suffix(suffix) {
                if let Some(k) = self.types.get(base).filter(|k| kinds.contains(k)) {
                    return (base, Some(*k));
                }
            }
        }
        (name, self.types.get(name).copied())
    }

    fn enter(&mut self, family: &'a str) -> Result<(), &'static str> {
        match self.current {
            Some((f, _)) if f == family => Ok(()),
            _ if self.closed.contains(family) => {
                Err("the family's lines are not grouped together: it appeared earlier in the body")
            }
            prev => {
                if let Some((f, _)) = prev {
                    self.closed.insert(f);
                    if ["_bucket", "_sum", "_count"].iter().any(|x| f.ends_with(x)) {
                        self.kept.extend(self.series.drain());
                    }
                }
                self.series.clear();
                self.current = Some((family, false));
                Ok(())
            }
        }
    }

    /// A `# HELP` line.
    pub(super) fn help(&mut self, name: &'a str) -> Result<(), &'static str> {
        self.last = None;
        self.enter(name)?;
        if !self.helped.insert(name) {
            return Err("a second HELP line for this metric");
        }
        Ok(())
    }

    /// A `# TYPE` line.
    pub(super) fn declare(&mut self, name: &'a str, kind: MetricType) -> Result<(), &'static str> {
        self.last = None;
        self.enter(name)?;
        if self.current.is_some_and(|(_, sampled)| sampled) {
            return Err("TYPE line after the metric's first sample");
        }
        if self.types.insert(name, kind).is_some() {
            return Err("a second TYPE line for this metric");
        }
        Ok(())
    }

    /// The hasher of this body's label sets (for [`SetHash`]).
    pub(super) fn set_hash(&self) -> SetHash<'_> {
        SetHash {
            state: self.series.hasher(),
            sum: 0,
            n: 0,
        }
    }

    /// A sample line; `set` is its label set's hash from [`BodyRules::set_hash`].
    pub(super) fn sample(&mut self, s: &Sample<'a>, set: (u64, u64)) -> Result<(), &'static str> {
        // The name's hash too: the series' key hashes it, once per run of one name.
        let (family, kind, name_hash) = match self.last {
            Some((name, family, kind, h)) if name == s.name => (family, kind, h),
            _ => {
                let (family, kind) = self.family_of(s.name);
                let h = self.series.hasher().hash_one(s.name);
                self.last = Some((s.name, family, kind, h));
                (family, kind, h)
            }
        };
        self.enter(family)?;
        if let Some((_, sampled)) = &mut self.current {
            *sampled = true;
        }
        let numeric = |label: &str| {
            s.labels
                .get(label)
                .is_some_and(|v| parse_value(v.as_bytes()).is_some())
        };
        match kind {
            Some(MetricType::Histogram) if s.name.ends_with("_bucket") && !numeric("le") => {
                return Err("histogram bucket without a numeric le label");
            }
            Some(MetricType::Summary) if s.name == family && !numeric("quantile") => {
                return Err("summary quantile without a numeric quantile label");
            }
            _ => {}
        }
        self.series(s, name_hash, set)
    }

    fn series(
        &mut self,
        s: &Sample<'a>,
        name_hash: u64,
        (set, n): (u64, u64),
    ) -> Result<(), &'static str> {
        let h = self.series.hasher().hash_one((name_hash, set, n));
        let new = Seen {
            name: s.name,
            labels: s.labels.raw(),
        };
        let same =
            |o: &Seen<'_>| o.name == s.name && Labels::new(o.labels, None).same_set(&s.labels);
        if self.kept.get(&h).is_some_and(same) {
            return Err("series repeated: same name and labels as an earlier line");
        }
        match self.series.get(&h) {
            None => {
                self.series.insert(h, new);
                Ok(())
            }
            Some(o) if same(o) => Err("series repeated: same name and labels as an earlier line"),
            Some(_) => {
                if self.collided.iter().any(|(k, o)| *k == h && same(o)) {
                    return Err("series repeated: same name and labels as an earlier line");
                }
                self.collided.push((h, new));
                Ok(())
            }
        }
    }
}

/// The hash of one label set that does not depend on the labels' order: the wrapping sum of
/// each `(name, raw value)` pair's hash, and the count of pairs. A raw value has one spelling
/// (each escape is required), so equal sets have equal sums.
#[derive(Debug, Clone)]
pub(super) struct SetHash<'s> {
    state: &'s RandomState,
    sum: u64,
    n: u64,
}

impl SetHash<'_> {
    /// Adds a pair given as its bytes `name="value` (the value as sent, without its closing
    /// quote): one hash over one slice of the body. A name holds no `=` or `"`, so the
    /// bytes name one pair only.
    pub(super) fn add(&mut self, pair: &[u8]) {
        self.sum = self.sum.wrapping_add(self.state.hash_one(pair));
        self.n += 1;
    }

    /// Adds a pair sent with blanks around its `=`: hashed as [`SetHash::add`] hashes the
    /// same pair sent without them.
    pub(super) fn add_parts(&mut self, name: &[u8], raw_value: &[u8]) {
        let mut pair = Vec::with_capacity(name.len() + 2 + raw_value.len());
        pair.extend_from_slice(name);
        pair.extend_from_slice(b"=\"");
        pair.extend_from_slice(raw_value);
        self.add(&pair);
    }

    /// The sum and the count.
    pub(super) fn finish(&self) -> (u64, u64) {
        (self.sum, self.n)
    }
}
