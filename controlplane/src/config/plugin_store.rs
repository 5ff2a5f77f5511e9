//! `[plugin_store]`: plugin components distributed from the control plane
//! (docs/plugins-distribution.md).

use serde::{Deserialize, Serialize};

/// `[plugin_store]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PluginStoreConfig {
    /// Largest component `POST /v1/plugins` takes, bytes (default 64 MiB, as the agent's
    /// limit; 1 KiB to 1 GiB). Python and JavaScript components are tens of MB.
    pub max_component_bytes: usize,
    /// Memory for components served to agents (`GET /v1/blobs/{digest}`), bytes (default
    /// 256 MiB; 0 caches none): a pool of agents fetching one new version reads it from the
    /// database once.
    pub blob_cache_bytes: usize,
    /// Components read from the database at once for agents (default 4, 1 to 64): with
    /// `max_component_bytes`, bounds the memory of cache misses.
    pub blob_reads: usize,
    /// Bytes of components being sent to agents at once (default 512 MiB; at least
    /// `max_component_bytes`): a response holds its share until its last byte is written, so
    /// slow readers cannot make the control plane hold more; past it a fetch waits up to
    /// 30 s, then is answered 503 (the agent retries later).
    pub blob_send_bytes: usize,
}

impl Default for PluginStoreConfig {
    fn default() -> Self {
        Self {
            max_component_bytes: 64 << 20,
            blob_cache_bytes: 256 << 20,
            blob_reads: 4,
            blob_send_bytes: 512 << 20,
        }
    }
}

impl PluginStoreConfig {
    /// Every problem, naming its key.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if !(1024..=1 << 30).contains(&self.max_component_bytes) {
            p.push(format!(
                "plugin_store.max_component_bytes: {} is not between 1024 and 1073741824",
                self.max_component_bytes
            ));
        }
        if self.blob_send_bytes < self.max_component_bytes {
            p.push(format!(
                "plugin_store.blob_send_bytes: {} is less than max_component_bytes ({})",
                self.blob_send_bytes, self.max_component_bytes
            ));
        }
        if !(1..=64).contains(&self.blob_reads) {
            p.push(format!(
                "plugin_store.blob_reads: {} is not between 1 and 64",
                self.blob_reads
            ));
        }
        p
    }
}
