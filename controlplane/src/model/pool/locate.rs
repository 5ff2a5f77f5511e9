//! Where in an autoscaler a shape error is. The autoscaler is tagged by `type`, so serde
//! reads each one whole before it knows its kind, and an error inside (a bad `mode`, a
//! window's wrong type) loses its path: `autoscaler: unknown variant …`. Reading the
//! autoscaler again, one level at a time with its kind known, finds the field
//! (`autoscaler.autoscalers[1].mode`). The API reads a pool body's autoscaler again this
//! way, and the config loader a `[[pools]]` entry's.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::autoscaler::{CompositeSpec, PredictiveSpec, QueueSpec, ReactiveSpec, ScheduledSpec};

/// The first shape error under the autoscaler `v` found at `at`, as `PATH: message`;
/// `None` when every level reads (or `v` is not an object: serde's error says so).
pub fn autoscaler_error(v: &Value, at: &str) -> Option<String> {
    let obj = v.as_object()?;
    let kind = obj.get("type")?.as_str()?;
    let mut rest: Map<String, Value> = obj.clone();
    rest.remove("type");
    // The nested autoscalers first, each with its own path; then this level without them.
    match kind {
        "composite" => {
            if let Some(Value::Array(children)) = rest.get_mut("autoscalers") {
                for (i, c) in children.iter().enumerate() {
                    if let Some(e) = autoscaler_error(c, &format!("{at}.autoscalers[{i}]")) {
                        return Some(e);
                    }
                }
                children.clear();
            }
        }
        "scheduled" => {
            if let Some(fb) = rest.get("fallback") {
                if let Some(e) = autoscaler_error(fb, &format!("{at}.fallback")) {
                    return Some(e);
                }
            }
            rest.remove("fallback");
        }
        _ => {}
    }
    let rest = Value::Object(rest);
    match kind {
        "reactive" => level::<ReactiveSpec>(rest, at),
        "queue" => level::<QueueSpec>(rest, at),
        "scheduled" => level::<ScheduledSpec>(rest, at),
        "predictive" => level::<PredictiveSpec>(rest, at),
        "composite" => level::<CompositeSpec>(rest, at),
        _ => None, // an unknown `type`: serde's error names it
    }
}

fn level<T: DeserializeOwned>(v: Value, at: &str) -> Option<String> {
    let e = serde_path_to_error::deserialize::<_, T>(v).err()?;
    let path = e.path().to_string();
    let inner = e.into_inner();
    Some(if path == "." {
        format!("{at}: {inner}")
    } else {
        format!("{at}.{path}: {inner}")
    })
}
