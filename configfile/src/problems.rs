//! Every problem of a configuration at once.
//!
//! figment (like serde) stops at the first key it cannot read. [`extract_all`] records that
//! problem, has the [`Pruner`] drop the offending key from the providers' data (the default
//! takes its place), and extracts again, until the configuration reads or nothing more can
//! be dropped (a TOML syntax error). A required key that is missing cannot be dropped: the
//! [`Pruner`] fills it with a placeholder instead (an empty string, then `0`, `false`, an
//! empty table or list, whichever the type takes), so the entry stays where it is and the
//! keys after it are still read. The pruned configuration is returned with the problems,
//! so the caller's value checks can run on the rest of it in the same pass; the keys that
//! hold placeholders are listed ([`Extracted::filled`]) so that those checks do not report
//! the placeholder a second time.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use figment::error::Kind;
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider, Source};
use serde::de::DeserializeOwned;

/// Most problems listed (and extraction passes made) for one configuration.
const MAX_PROBLEMS: usize = 100;

/// One problem: where the value came from, its key path, what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file's absolute path, `environment variable NAME`, or `command line`.
    pub source: String,
    /// The key path, e.g. `scrape.interval` or `plugins.0.sha256`; empty for the whole file.
    pub key: String,
    /// What is wrong, for people.
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.key.is_empty() {
            true => write!(f, "{}: {}", self.source, self.message),
            false => write!(f, "{}: {}: {}", self.source, self.key, self.message),
        }
    }
}

/// The result of [`extract_all`].
#[derive(Debug)]
pub struct Extracted<T> {
    /// The configuration with every unreadable key left at its default; `None` when the
    /// providers themselves failed (a TOML syntax error, a missing file).
    pub value: Option<T>,
    /// Every problem found, in the order found.
    pub problems: Vec<Problem>,
    /// Dotted key paths of missing required keys that hold a placeholder in `value`
    /// (each is also a `missing` problem); value checks on these keys are noise.
    pub filled: Vec<String>,
}

/// What a missing required key is filled with, tried in this order until its type takes one.
fn placeholder(n: usize) -> Option<Value> {
    Some(match n {
        0 => Value::from(String::new()),
        1 => Value::from(0u64),
        2 => Value::from(false),
        3 => Value::from(Dict::new()),
        4 => Value::from(Vec::<Value>::new()),
        _ => return None,
    })
}

/// Key paths that the providers it wraps leave out of their data. Clones share the list.
#[derive(Debug, Clone, Default)]
pub struct Pruner {
    paths: Arc<Mutex<Vec<Vec<String>>>>,
    fills: Fills,
}

/// Missing required keys and the placeholder (see [`placeholder`]) each holds now.
type Fills = Arc<Mutex<Vec<(Vec<String>, usize)>>>;

impl Pruner {
    /// `provider` without the keys pruned so far.
    pub fn wrap<P: Provider>(&self, provider: P) -> Pruned<P> {
        Pruned {
            inner: provider,
            paths: self.paths.clone(),
            fills: self.fills.clone(),
        }
    }

    /// Fills the missing key `path` with its first placeholder; false when already filled.
    fn fill(&self, path: Vec<String>) -> bool {
        let mut f = self.fills.lock().unwrap_or_else(|e| e.into_inner());
        if path.is_empty() || f.iter().any(|(p, _)| *p == path) {
            return false;
        }
        f.push((path, 0));
        true
    }

    /// `Some(progress)` when `path` holds a placeholder whose type was wrong: the next one
    /// is tried (progress), or, when none is left, it stays a plain missing key.
    fn refill(&self, path: &[String]) -> Option<bool> {
        let mut f = self.fills.lock().unwrap_or_else(|e| e.into_inner());
        let i = f.iter().position(|(p, _)| p == path)?;
        f[i].1 += 1;
        Some(placeholder(f[i].1).is_some())
    }

    /// The dotted paths holding a placeholder that their type took.
    fn filled(&self) -> Vec<String> {
        let f = self.fills.lock().unwrap_or_else(|e| e.into_inner());
        f.iter()
            .filter(|(_, n)| placeholder(*n).is_some())
            .map(|(p, _)| p.join("."))
            .collect()
    }

    /// Adds `path`; false when it is empty or already there (no progress).
    fn add(&self, path: Vec<String>) -> bool {
        let mut p = self.paths.lock().unwrap_or_else(|e| e.into_inner());
        if path.is_empty() || p.contains(&path) {
            return false;
        }
        p.push(path);
        true
    }
}

/// A provider with some keys removed; see [`Pruner::wrap`].
#[derive(Debug)]
pub struct Pruned<P> {
    inner: P,
    paths: Arc<Mutex<Vec<Vec<String>>>>,
    fills: Fills,
}

impl<P: Provider> Provider for Pruned<P> {
    fn metadata(&self) -> Metadata {
        self.inner.metadata()
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let mut data = self.inner.data()?;
        let paths = self.paths.lock().unwrap_or_else(|e| e.into_inner());
        let fills = self.fills.lock().unwrap_or_else(|e| e.into_inner());
        for dict in data.values_mut() {
            for path in paths.iter() {
                remove(dict, path);
            }
            for (path, n) in fills.iter() {
                if let Some(v) = placeholder(*n) {
                    insert(dict, path, v);
                }
            }
        }
        Ok(data)
    }

    fn profile(&self) -> Option<Profile> {
        self.inner.profile()
    }
}

fn remove(dict: &mut Dict, path: &[String]) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    if rest.is_empty() {
        dict.remove(first);
        return;
    }
    let mut at = dict.get_mut(first);
    for (i, key) in rest.iter().enumerate() {
        let last = i + 1 == rest.len();
        match at {
            Some(Value::Dict(_, d)) if last => {
                d.remove(key);
                return;
            }
            Some(Value::Array(_, a)) if last => {
                if let Ok(n) = key.parse::<usize>() {
                    if n < a.len() {
                        // Keep the other elements where they are: a default-like empty table.
                        a[n] = Value::from(Dict::new());
                    }
                }
                return;
            }
            Some(Value::Dict(_, d)) => at = d.get_mut(key),
            Some(Value::Array(_, a)) => at = key.parse::<usize>().ok().and_then(|n| a.get_mut(n)),
            _ => return,
        }
    }
}

/// Sets `path` to `v` when its parent table is in `dict` (in this provider's data only:
/// a placeholder must not create a list in a provider that never had it).
fn insert(dict: &mut Dict, path: &[String], v: Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let Some((first, rest)) = parents.split_first() else {
        dict.entry(last.clone()).or_insert(v);
        return;
    };
    let mut at = dict.get_mut(first);
    for key in rest {
        at = match at {
            Some(Value::Dict(_, d)) => d.get_mut(key),
            Some(Value::Array(_, a)) => key.parse::<usize>().ok().and_then(|n| a.get_mut(n)),
            _ => return,
        };
    }
    if let Some(Value::Dict(_, d)) = at {
        d.entry(last.clone()).or_insert(v);
    }
}

/// Where the value of `key` (a dotted path) in `fig` came from, as [`Problem::source`] says.
pub fn locate(fig: &Figment, key: &str) -> Option<String> {
    let md = fig.find_metadata(key)?;
    let path: Vec<&str> = key.split('.').collect();
    Some(describe(md, fig.profile(), &path))
}

fn describe(md: &Metadata, profile: &Profile, path: &[&str]) -> String {
    match &md.source {
        Some(Source::File(f)) => absolute(f).display().to_string(),
        Some(Source::Code(_)) => "command line".into(),
        Some(Source::Custom(c)) => c.clone(),
        Some(other) => other.to_string(),
        // The environment, split at `__`: the variable is the prefix and the path.
        None if md.name.contains("environment") && !path.is_empty() => format!(
            "environment variable {}{}",
            crate::env::PREFIX,
            path.join("__").to_ascii_uppercase()
        ),
        None if !path.is_empty() => format!("{} {}", md.name, md.interpolate(profile, path)),
        None => md.name.to_string(),
    }
}

fn is_env(md: &Metadata) -> bool {
    md.source.is_none() && md.name.contains("environment")
}

/// The whole names of the environment variables under `path` when it is a table (a
/// misspelt section: `GPUWARDEN_COLECTOR__INTERVAL`, not `GPUWARDEN_COLECTOR`); `None`
/// when `path` is a single value.
fn env_variables(fig: &Figment, path: &[String]) -> Option<String> {
    let value = fig.find_value(&path.join(".")).ok()?;
    let Value::Dict(..) = value else {
        return None;
    };
    let mut names = Vec::new();
    leaves(fig, &value, &mut path.to_vec(), &mut names);
    match names.len() {
        0 => None,
        1 => Some(format!("environment variable {}", names[0])),
        _ => Some(format!("environment variables {}", names.join(", "))),
    }
}

fn leaves(fig: &Figment, v: &Value, path: &mut Vec<String>, out: &mut Vec<String>) {
    match v {
        Value::Dict(_, d) => {
            for (k, v) in d {
                path.push(k.clone());
                leaves(fig, v, path, out);
                path.pop();
            }
        }
        leaf if fig.get_metadata(leaf.tag()).is_some_and(is_env) => out.push(format!(
            "{}{}",
            crate::env::PREFIX,
            path.join("__").to_ascii_uppercase()
        )),
        _ => {}
    }
}

fn absolute(f: &Path) -> PathBuf {
    std::path::absolute(f).unwrap_or_else(|_| f.to_path_buf())
}

fn list(names: &[&str]) -> String {
    names.join(", ")
}

/// The problem `e` describes, and its key path (to drop, or for a missing key to fill).
fn problem(e: &figment::Error, fig: &Figment) -> (Problem, Vec<String>) {
    let mut path = e.path.clone();
    let message = match &e.kind {
        Kind::UnknownField(field, expected) => {
            if path.last() != Some(field) {
                path.push(field.clone());
            }
            if expected.is_empty() {
                "unknown key".to_string()
            } else {
                format!("unknown key; the keys here are {}", list(expected))
            }
        }
        Kind::MissingField(field) => {
            path.push(field.to_string());
            "missing".to_string()
        }
        // serde quotes some values in backticks (`signed int \`-1\``); plain text reads better.
        Kind::InvalidType(actual, expected) => {
            format!(
                "expected {expected}, found {}",
                actual.to_string().replace('`', "")
            )
        }
        Kind::InvalidValue(actual, expected) => format!(
            "invalid value {}; expected {expected}",
            actual.to_string().replace('`', "")
        ),
        Kind::UnknownVariant(v, expected) => {
            format!("unknown value {v:?}; use one of {}", list(expected))
        }
        Kind::InvalidLength(n, expected) => format!("{n} elements; expected {expected}"),
        Kind::Message(m) => m.clone(),
        other => other.to_string(),
    };
    let refs: Vec<&str> = path.iter().map(String::as_str).collect();
    let source = match &e.metadata {
        Some(md) if is_env(md) => env_variables(fig, &path)
            .unwrap_or_else(|| describe(md, e.profile.as_ref().unwrap_or(fig.profile()), &refs)),
        Some(md) => describe(md, e.profile.as_ref().unwrap_or(fig.profile()), &refs),
        None => locate(fig, &path.join(".")).unwrap_or_else(|| "configuration".into()),
    };
    let drop = path.clone();
    (
        Problem {
            source,
            key: path.join("."),
            message,
        },
        drop,
    )
}

/// Extracts a `T` from the figment that `build` makes, listing every problem. `build` must
/// wrap each provider that may hold bad keys (the file, the environment) with
/// [`Pruner::wrap`]; it is called once per pass.
pub fn extract_all<T: DeserializeOwned>(build: impl Fn(&Pruner) -> Figment) -> Extracted<T> {
    let pruner = Pruner::default();
    let mut problems: Vec<Problem> = Vec::new();
    for _ in 0..MAX_PROBLEMS {
        let fig = build(&pruner);
        let err = match fig.extract::<T>() {
            Ok(value) => {
                return Extracted {
                    value: Some(value),
                    problems,
                    filled: pruner.filled(),
                }
            }
            Err(e) => e,
        };
        let mut progressed = false;
        for e in err {
            // A placeholder of the wrong type is ours, not the operator's: try the next.
            if !matches!(e.kind, Kind::MissingField(_)) {
                if let Some(p) = pruner.refill(&e.path) {
                    progressed |= p;
                    continue;
                }
            }
            let (p, drop) = problem(&e, &fig);
            progressed |= match matches!(e.kind, Kind::MissingField(_)) {
                true => pruner.fill(drop),
                false => pruner.add(drop),
            };
            if !problems.contains(&p) {
                problems.push(p);
            }
        }
        if !progressed {
            break;
        }
    }
    Extracted {
        value: None,
        problems,
        filled: Vec::new(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::result_large_err)] // figment's Jail has a large error
mod tests;
