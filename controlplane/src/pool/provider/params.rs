//! Reading a provider's params (a JSON object from the pool spec): typed getters that
//! collect every problem, each naming the param, and refuse params the provider does not
//! know.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Map, Value};

/// A provider's params being read; [`Params::finish`] returns every problem at once.
#[derive(Debug)]
pub struct Params<'a> {
    kind: &'static str,
    map: &'a Map<String, Value>,
    known: Vec<&'static str>,
    problems: Vec<String>,
}

impl<'a> Params<'a> {
    /// Starts reading the params of a provider of `kind`.
    pub fn new(kind: &'static str, map: &'a Map<String, Value>) -> Self {
        Self {
            kind,
            map,
            known: Vec::new(),
            problems: Vec::new(),
        }
    }

    /// Records a problem with `key`.
    pub fn problem(&mut self, key: &str, message: impl std::fmt::Display) {
        self.problems
            .push(format!("provider {}: param {key:?}: {message}", self.kind));
    }

    fn get(&mut self, key: &'static str) -> Option<&'a Value> {
        self.known.push(key);
        self.map.get(key).filter(|v| !v.is_null())
    }

    /// A string; `None` when absent.
    pub fn string(&mut self, key: &'static str) -> Option<String> {
        match self.get(key)? {
            Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
            Value::String(_) => {
                self.problem(key, "must not be empty");
                None
            }
            other => {
                self.problem(key, format!("must be a string, not {}", type_name(other)));
                None
            }
        }
    }

    /// A string that must be there.
    pub fn required_string(&mut self, key: &'static str, what: &str) -> Option<String> {
        if self.map.get(key).is_none_or(Value::is_null) {
            self.known.push(key);
            self.problem(key, format!("required ({what})"));
            return None;
        }
        self.string(key)
    }

    /// A whole number in `min..=max`; `default` when absent.
    pub fn uint(&mut self, key: &'static str, default: u64, min: u64, max: u64) -> u64 {
        match self.get(key) {
            None => default,
            Some(v) => match v.as_u64() {
                Some(n) if (min..=max).contains(&n) => n,
                _ => {
                    self.problem(key, format!("must be a whole number from {min} to {max}"));
                    default
                }
            },
        }
    }

    /// A duration like `"30s"` or `"500ms"` in `min..=max`; `default` when absent.
    pub fn duration(
        &mut self,
        key: &'static str,
        default: Duration,
        min: Duration,
        max: Duration,
    ) -> Duration {
        let Some(v) = self.get(key) else {
            return default;
        };
        let Some(s) = v.as_str() else {
            self.problem(key, "must be a duration like \"30s\"");
            return default;
        };
        match crate::validate::duration(s, min, max) {
            Ok(d) => d,
            Err(e) => {
                self.problem(key, e);
                default
            }
        }
    }

    /// A list of strings; empty when absent.
    pub fn strings(&mut self, key: &'static str) -> Vec<String> {
        match self.get(key) {
            None => Vec::new(),
            Some(Value::Array(a))
                if a.iter().all(|v| v.as_str().is_some_and(|s| !s.is_empty())) =>
            {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            }
            Some(_) => {
                self.problem(key, "must be a list of non-empty strings");
                Vec::new()
            }
        }
    }

    /// A command: a program path, or a list `[program, arg, …]`.
    pub fn command(&mut self, key: &'static str, required: bool) -> Option<Vec<String>> {
        let argv = match self.get(key) {
            None if required => {
                self.problem(key, "required (a program, or [program, args…])");
                return None;
            }
            None => return None,
            Some(Value::String(s)) if !s.trim().is_empty() => vec![s.clone()],
            Some(Value::Array(a))
                if !a.is_empty() && a.iter().all(|v| v.as_str().is_some_and(|s| !s.is_empty())) =>
            {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            }
            Some(_) => {
                self.problem(key, "must be a program path or a list [program, args…]");
                return None;
            }
        };
        let program = PathBuf::from(&argv[0]);
        if !is_executable(&program) {
            self.problem(
                key,
                format!("{} is not an executable file", program.display()),
            );
            return None;
        }
        Some(argv)
    }

    /// An object of strings; empty when absent.
    pub fn string_map(&mut self, key: &'static str) -> BTreeMap<String, String> {
        match self.get(key) {
            None => BTreeMap::new(),
            Some(Value::Object(o)) if o.values().all(Value::is_string) => o
                .iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                .collect(),
            Some(_) => {
                self.problem(key, "must be an object of strings");
                BTreeMap::new()
            }
        }
    }

    /// A value of any shape `T` reads from JSON; `None` when absent or invalid.
    pub fn json<T: serde::de::DeserializeOwned>(&mut self, key: &'static str) -> Option<T> {
        let v = self.get(key)?;
        match serde_json::from_value(v.clone()) {
            Ok(t) => Some(t),
            Err(e) => {
                self.problem(key, e);
                None
            }
        }
    }

    /// Every problem, with params nobody asked for named as unknown.
    pub fn finish(mut self) -> Result<(), Vec<String>> {
        let unknown: Vec<String> = self
            .map
            .keys()
            .filter(|k| !self.known.contains(&k.as_str()))
            .cloned()
            .collect();
        for k in unknown {
            let mut known = self.known.clone();
            known.sort_unstable();
            known.dedup();
            self.problem(&k, format!("unknown (known: {})", known.join(", ")));
        }
        if self.problems.is_empty() {
            Ok(())
        } else {
            Err(self.problems)
        }
    }
}

/// Whether `p` is a file with an execute bit.
pub fn is_executable(p: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_problem_is_reported_at_once_naming_its_param() {
        let map = json!({"count": -1, "wait": "soon", "name": 3, "extra": true})
            .as_object()
            .unwrap()
            .clone();
        let mut p = Params::new("fake", &map);
        assert_eq!(p.uint("count", 5, 0, 10), 5);
        let d = Duration::from_secs(1);
        assert_eq!(p.duration("wait", d, Duration::ZERO, d * 60), d);
        assert_eq!(p.string("name"), None);
        assert_eq!(p.required_string("key", "an env var name"), None);
        let e = p.finish().unwrap_err();
        assert_eq!(e.len(), 5, "{e:#?}");
        assert!(e[0].starts_with("provider fake: param \"count\": must be a whole number"));
        assert!(
            e[1].starts_with("provider fake: param \"wait\": "),
            "{}",
            e[1]
        );
        assert_eq!(
            e[2],
            "provider fake: param \"name\": must be a string, not a number"
        );
        assert_eq!(
            e[3],
            "provider fake: param \"key\": required (an env var name)"
        );
        assert_eq!(
            e[4],
            "provider fake: param \"extra\": unknown (known: count, key, name, wait)"
        );
    }
}
