//! The documented example files (`config/agent.toml`, `config/controlplane.toml`) promise
//! every key; [`undocumented_keys`] lists the keys of a configuration that an example lacks,
//! so each program's test keeps its example complete.

use figment::providers::{Format, Toml};
use figment::value::{Dict, Value};
use figment::Provider;

/// The dotted key paths of `defaults` (a program's default configuration) that the example
/// TOML text `example` neither sets nor shows in a comment (`# key = …`, for optional keys
/// without a default). Maps and lists that are empty by default (labels, `[[plugins]]`)
/// have no fixed keys and are skipped. A TOML syntax error is returned as one entry.
pub fn undocumented_keys<T: serde::Serialize>(defaults: &T, example: &str) -> Vec<String> {
    let want = match Value::serialize(defaults) {
        Ok(Value::Dict(_, d)) => d,
        Ok(_) => return vec!["the configuration is not a table".into()],
        Err(e) => return vec![format!("cannot serialize the defaults: {e}")],
    };
    let have = match Toml::string(example).data() {
        Ok(mut m) => m.pop_first().map(|(_, d)| d).unwrap_or_default(),
        Err(e) => return vec![format!("the example is no valid TOML: {e}")],
    };
    let mut commented: Vec<String> = example
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix('#'))
        .filter_map(|l| l.split_once('=').map(|(k, _)| k.trim().to_string()))
        .collect();
    // A list of tables shown as a commented `# [[name]]` entry.
    commented.extend(
        example
            .lines()
            .filter_map(|l| l.trim_start().strip_prefix('#'))
            .filter_map(|l| l.trim().strip_prefix("[["))
            .filter_map(|l| l.split_once("]]").map(|(k, _)| k.to_string())),
    );
    let mut out = Vec::new();
    walk(&want, Some(&have), &mut Vec::new(), &commented, &mut out);
    out
}

fn walk(
    want: &Dict,
    have: Option<&Dict>,
    path: &mut Vec<String>,
    commented: &[String],
    out: &mut Vec<String>,
) {
    for (k, v) in want {
        path.push(k.clone());
        let here = have.and_then(|h| h.get(k));
        match v {
            Value::Dict(_, d) if d.is_empty() => {}
            Value::Array(_, a) if a.is_empty() => {
                if here.is_none() && !commented.contains(k) {
                    out.push(path.join("."));
                }
            }
            Value::Dict(_, d) => {
                let inner = match here {
                    Some(Value::Dict(_, h)) => Some(h),
                    _ => None,
                };
                walk(d, inner, path, commented, out);
            }
            _ if here.is_some() || commented.contains(k) => {}
            _ => out.push(path.join(".")),
        }
        path.pop();
    }
}
