//! Providers built from the pools' specs, kept while the spec is the same, and calls that
//! run on a thread of their own under a deadline (never under a lock: Navarch called its
//! providers one at a time under the pool lock).

use std::collections::HashMap;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::model::pool::ProviderSpec;
use crate::pool::provider::{self, ErrorKind, Provider, ProviderEnv, ProviderError};

/// (pool, provider name).
type Key = (String, String);
/// A built provider with the spec it was built from.
type Built = HashMap<Key, (String, Arc<dyn Provider>)>;

/// Built providers by (pool, provider name), with the params they were built from.
#[derive(Clone, Default)]
pub struct ProviderCache {
    built: Arc<Mutex<Built>>,
    preset: Arc<Mutex<HashMap<Key, Arc<dyn Provider>>>>,
}

impl std::fmt::Debug for ProviderCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProviderCache")
    }
}

impl ProviderCache {
    /// Uses `p` for `pool`'s provider `name` whatever its spec says (tests, the simulator).
    pub fn preset(&self, pool: &str, name: &str, p: Arc<dyn Provider>) {
        self.preset
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((pool.into(), name.into()), p);
    }

    /// The provider `spec` of `pool`, built once per distinct spec.
    pub fn get(
        &self,
        pool: &str,
        spec: &ProviderSpec,
        env: &ProviderEnv,
    ) -> Result<Arc<dyn Provider>, String> {
        let key = (pool.to_string(), spec.name.clone());
        if let Some(p) = self
            .preset
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return Ok(p.clone());
        }
        let fingerprint = format!(
            "{}:{}",
            spec.kind,
            serde_json::Value::Object(spec.params.clone())
        );
        let mut built = self.built.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((fp, p)) = built.get(&key) {
            if *fp == fingerprint {
                return Ok(p.clone());
            }
        }
        let p = provider::build(&spec.kind, &spec.params, env)
            .map_err(|e| format!("provider {}: {}", spec.name, e.join("; ")))?;
        built.insert(key, (fingerprint, p.clone()));
        Ok(p)
    }
}

/// Runs `f` on a thread of its own and waits at most `timeout`: past it the answer is a
/// `timeout` error (the call may still finish; the reconciler finds what it made).
pub fn call<T: Send + 'static>(
    what: &str,
    timeout: Duration,
    f: impl FnOnce() -> Result<T, ProviderError> + Send + 'static,
) -> Result<T, ProviderError> {
    let (tx, rx) = mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("provider-call".into())
        .spawn(move || {
            let _ = tx.send(f());
        });
    if let Err(e) = spawned {
        return Err(ProviderError::new(
            ErrorKind::Unavailable,
            format!("{what}: no thread for the call: {e}"),
        ));
    }
    match rx.recv_timeout(timeout) {
        Ok(r) => r,
        Err(_) => Err(ProviderError::new(
            ErrorKind::Timeout,
            format!(
                "{what}: no answer within {}",
                humantime::format_duration(timeout)
            ),
        )),
    }
}
