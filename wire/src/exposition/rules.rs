//! The rules of the text format that span lines: one group per metric family, at most one
//! `HELP` and one `TYPE` per family and the `TYPE` before its samples, no series twice,
//! histogram buckets with a numeric `le` and summary quantiles with a numeric `quantile`.
//!
//! Memory grows with the families and series of one body (a few words each), which the
//! caller bounds with its sample limit; nothing is copied from the body.

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};

use super::{parse_value, Labels, MetricType, Sample};

/// A series seen earlier in the body.
#[derive(Debug, Clone, Copy)]
struct Seen<'a> {
    name: &'a str,
    labels: Labels<'a>,
}

/// What the body has declared and sent so far.
#[derive(Debug, Clone, Default)]
pub(super) struct BodyRules<'a> {
    types: HashMap<&'a str, MetricType>,
    helped: HashSet<&'a str>,
    /// The family whose lines are being read, and whether it has had samples.
    current: Option<(&'a str, bool)>,
    /// Families whose group ended: they may not appear again.
    closed: HashSet<&'a str>,
    series: HashMap<u64, Seen<'a>>,
    /// Different series whose hashes met (kept apart so both are still checked).
    collided: Vec<(u64, Seen<'a>)>,
}

impl<'a> BodyRules<'a> {
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
                }
                self.current = Some((family, false));
                Ok(())
            }
        }
    }

    /// A `# HELP` line.
    pub(super) fn help(&mut self, name: &'a str) -> Result<(), &'static str> {
        self.enter(name)?;
        if !self.helped.insert(name) {
            return Err("a second HELP line for this metric");
        }
        Ok(())
    }

    /// A `# TYPE` line.
    pub(super) fn declare(&mut self, name: &'a str, kind: MetricType) -> Result<(), &'static str> {
        self.enter(name)?;
        if self.current.is_some_and(|(_, sampled)| sampled) {
            return Err("TYPE line after the metric's first sample");
        }
        if self.types.insert(name, kind).is_some() {
            return Err("a second TYPE line for this metric");
        }
        Ok(())
    }

    /// A sample line.
    pub(super) fn sample(&mut self, s: &Sample<'a>) -> Result<(), &'static str> {
        let (family, kind) = self.family_of(s.name);
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
        self.series(s)
    }

    fn series(&mut self, s: &Sample<'a>) -> Result<(), &'static str> {
        let h = series_hash(s.name, &s.labels);
        let new = Seen {
            name: s.name,
            labels: s.labels,
        };
        let same = |o: &Seen<'_>| o.name == s.name && o.labels.same_set(&s.labels);
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

/// A hash of the name and the label set that does not depend on the labels' order.
fn series_hash(name: &str, labels: &Labels<'_>) -> u64 {
    let mut set: u64 = 0;
    let mut n: u64 = 0;
    for (k, v) in labels.raw_pairs() {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (k, v).hash(&mut h);
        set = set.wrapping_add(h.finish());
        n += 1;
    }
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (name, set, n).hash(&mut h);
    h.finish()
}
