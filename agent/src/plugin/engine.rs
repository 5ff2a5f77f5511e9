//! The one wasmtime engine: configuration, the epoch ticker, compilation with an on-disk cache,
//! and the checks that a component is a gpuwarden plugin of a compatible version.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::Arc;

use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::bindings::{check, diagnostic};
use super::host::{PluginCtx, RUN_CORE_INSTANCES, RUN_MEMORIES, RUN_TABLES};
use super::{one_line, WIT_VERSION};
use crate::config::{PluginKind, MAX_PLUGIN_MEMORY_MIB};
use ticker::Ticker;
pub use ticker::{Running, EPOCH_TICK};

mod cache;
mod error;
mod exports;
mod ticker;

pub use error::PluginError;

use cache::{entry_name, load_cached, prepare_cache_dir, touch, upkeep, write_atomically};
pub use cache::{Pruned, UPKEEP_EVERY};

/// Plugin instances that may exist at once (the pooling allocator's slots; with on-demand
/// allocation, the same bound keeps memory at most this many memory caps).
pub const MAX_INSTANCES: u32 = 64;

/// A component ready to instantiate.
#[derive(Clone)]
pub enum Prepared {
    /// A health check.
    Check(check::HealthCheckPre<PluginCtx>),
    /// A diagnostic.
    Diagnostic(diagnostic::DiagnosticPre<PluginCtx>),
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Prepared::Check(_) => "Prepared::Check",
            Prepared::Diagnostic(_) => "Prepared::Diagnostic",
        })
    }
}

/// A compiled, checked, pre-linked plugin.
#[derive(Debug, Clone)]
pub struct Compiled {
    /// Which world.
    pub kind: PluginKind,
    /// The contract version it was built against.
    pub world_version: String,
    /// Ready to instantiate.
    pub prepared: Prepared,
    /// Whether the machine code came from the on-disk cache.
    pub from_cache: bool,
}

/// The engine, its linker, and the compile cache.
pub struct PluginEngine {
    engine: Engine,
    ticker: Arc<Ticker>,
    linker: Linker<PluginCtx>,
    pooling: bool,
    cache_dir: Option<PathBuf>,
    engine_key: String,
}

impl Drop for PluginEngine {
    fn drop(&mut self) {
        self.ticker.stop();
    }
}

impl std::fmt::Debug for PluginEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginEngine")
            .field("pooling", &self.pooling)
            .field("cache_dir", &self.cache_dir)
            .finish()
    }
}

fn config(pooling: bool) -> Config {
    let mut c = Config::new();
    c.epoch_interruption(true);
    c.wasm_component_model(true);
    c.max_wasm_stack(512 * 1024);
    c.async_stack_size(2 * 1024 * 1024);
    if pooling {
        let max = MAX_PLUGIN_MEMORY_MIB as usize * 1024 * 1024;
        let mut p = PoolingAllocationConfig::default();
        p.total_component_instances(MAX_INSTANCES)
            .total_core_instances(RUN_CORE_INSTANCES * MAX_INSTANCES)
            .total_memories(RUN_MEMORIES * MAX_INSTANCES)
            .total_tables(RUN_TABLES * MAX_INSTANCES)
            .total_stacks(MAX_INSTANCES)
            .max_memory_size(max)
            // Reset small memories, tables and stacks with memset instead of madvise, so a
            // reused slot does not page-fault its way back in on every run.
            .linear_memory_keep_resident(2 << 20)
            .table_keep_resident(64 << 10)
            .async_stack_keep_resident(128 << 10)
            .pagemap_scan(wasmtime::Enabled::Auto);
        c.allocation_strategy(InstanceAllocationStrategy::Pooling(p));
        // Reserve only what the largest cap needs, not wasmtime's default 4 GiB per slot.
        c.memory_reservation(max as u64);
        c.memory_guard_size(64 * 1024);
    }
    c
}

impl PluginEngine {
    /// The engine, with the pooling allocator when asked for and possible (it falls back to
    /// on-demand allocation, with a warning, when the host cannot reserve the pool), and
    /// the epoch ticker thread.
    pub fn new(pooling: bool, cache_dir: Option<PathBuf>) -> Result<Self, PluginError> {
        let (engine, pooling) = match pooling.then(|| Engine::new(&config(true))) {
            Some(Ok(e)) => (e, true),
            Some(Err(e)) => {
                tracing::warn!(error = %e, "pooling allocator unavailable; plugins use on-demand allocation");
                (
                    Engine::new(&config(false)).map_err(|e| PluginError::Engine(e.to_string()))?,
                    false,
                )
            }
            None => (
                Engine::new(&config(false)).map_err(|e| PluginError::Engine(e.to_string()))?,
                false,
            ),
        };
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| PluginError::Engine(e.to_string()))?;
        check::HealthCheck::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)
            .map_err(|e| PluginError::Engine(e.to_string()))?;
        let mut h = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        let engine_key = format!("{:016x}", h.finish());
        // Ticks only while a plugin runs; ends when the engine is dropped.
        let ticker = Ticker::start(&engine)
            .map_err(|e| PluginError::Engine(format!("cannot start the epoch thread: {e}")))?;
        let cache_dir = cache_dir.and_then(|d| match prepare_cache_dir(&d) {
            Ok(()) => Some(d),
            Err(e) => {
                tracing::warn!(dir = %d.display(), error = %e, "plugin compile cache disabled");
                None
            }
        });
        Ok(PluginEngine {
            engine,
            ticker,
            linker,
            pooling,
            cache_dir,
            engine_key,
        })
    }

    /// The wasmtime engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Held while a plugin runs: the epoch (which interrupts guests at their deadline)
    /// advances only while some run holds one.
    pub fn running(&self) -> Running {
        self.ticker.running()
    }

    /// Whether the pooling allocator is in use.
    pub fn pooling(&self) -> bool {
        self.pooling
    }

    fn cache_path(&self, sha256: &str) -> Option<PathBuf> {
        self.cache_dir
            .as_ref()
            .map(|d| d.join(entry_name(sha256, &self.engine_key)))
    }

    /// Keeps the compile cache: marks the entries of `in_use` (plugin sha256s, hex) as used
    /// now, and removes those no agent sharing the folder used for a week (replaced versions,
    /// removed plugins, entries of older agents) and temporary files of writes killed an
    /// hour ago or more. Nothing without a cache.
    pub fn cache_upkeep(&self, in_use: &std::collections::BTreeSet<String>) -> Pruned {
        let Some(dir) = &self.cache_dir else {
            return Pruned::default();
        };
        let keep = in_use
            .iter()
            .map(|sha| entry_name(sha, &self.engine_key))
            .collect();
        upkeep(dir, &keep, std::time::SystemTime::now())
    }

    /// Compiles `bytes` (whose digest is `sha256`), or loads the machine code cached for it.
    pub fn compile(&self, bytes: &[u8], sha256: &str) -> Result<(Component, bool), PluginError> {
        if let Some(path) = self.cache_path(sha256) {
            if path.exists() {
                match load_cached(&self.engine, &path) {
                    Ok(c) => {
                        // Used now: kept by the pruning of every agent sharing the folder.
                        let _ = touch(&path);
                        return Ok((c, true));
                    }
                    Err(e) => {
                        tracing::warn!(path = %path.display(), error = %e, "ignoring unusable cache entry")
                    }
                }
            }
        }
        check_magic(bytes)?;
        let component = Component::new(&self.engine, bytes)
            .map_err(|e| PluginError::NotAComponent(one_line(&format!("{e:#}"))))?;
        if let Some(path) = self.cache_path(sha256) {
            if let Err(e) = component
                .serialize()
                .map_err(std::io::Error::other)
                .and_then(|b| write_atomically(&path, &b))
            {
                tracing::warn!(path = %path.display(), error = %e, "cannot write the plugin compile cache");
            }
        }
        Ok((component, false))
    }

    /// Checks that `component` is a gpuwarden plugin of a compatible contract version (and of
    /// `expected` kind, when given), then links it.
    pub fn prepare(
        &self,
        component: &Component,
        expected: Option<PluginKind>,
        from_cache: bool,
    ) -> Result<Compiled, PluginError> {
        let ty = component.component_type();
        let mut found: Vec<(PluginKind, String, String)> = Vec::new();
        let mut exports = Vec::new();
        for (name, _) in ty.exports(&self.engine) {
            exports.push(name.to_string());
            for (iface, kind) in [
                ("gpuwarden:plugin/checker@", PluginKind::Check),
                ("gpuwarden:plugin/diagnostics@", PluginKind::Diagnostic),
            ] {
                if let Some(v) = name.strip_prefix(iface) {
                    found.push((kind, v.to_string(), name.to_string()));
                }
            }
        }
        if found.len() > 1 {
            return Err(PluginError::WrongWorld(format!(
                "it exports both worlds' interfaces ({}); a plugin is either a health check or a diagnostic",
                found.iter().map(|f| f.2.as_str()).collect::<Vec<_>>().join(", ")
            )));
        }
        let Some((kind, version, iface)) = found.pop() else {
            return Err(PluginError::WrongWorld(format!(
                "not a gpuwarden plugin: it exports [{}], expected gpuwarden:plugin/checker@{WIT_VERSION} (world health-check) or gpuwarden:plugin/diagnostics@{WIT_VERSION} (world diagnostic)",
                exports.join(", ")
            )));
        };
        if !compatible(&version) {
            return Err(PluginError::Incompatible {
                found: version,
                provided: WIT_VERSION,
            });
        }
        if let Some(e) = expected.filter(|e| *e != kind) {
            return Err(PluginError::WrongWorld(format!(
                "the config says {}, the component is a {} (world {})",
                kind_name(e),
                kind_name(kind),
                world_name(kind)
            )));
        }
        exports::check(&self.engine, &ty, kind, &iface)?;
        let link = |e: wasmtime::Error| PluginError::Link(one_line(&format!("{e:#}")));
        let pre = self.linker.instantiate_pre(component).map_err(link)?;
        let prepared = match kind {
            PluginKind::Check => Prepared::Check(check::HealthCheckPre::new(pre).map_err(link)?),
            PluginKind::Diagnostic => {
                Prepared::Diagnostic(diagnostic::DiagnosticPre::new(pre).map_err(link)?)
            }
        };
        Ok(Compiled {
            kind,
            world_version: version,
            prepared,
            from_cache,
        })
    }
}

/// `check` or `diagnostic`.
pub fn kind_name(k: PluginKind) -> &'static str {
    match k {
        PluginKind::Check => "health check",
        PluginKind::Diagnostic => "diagnostic",
    }
}

/// The WIT world of a kind.
pub fn world_name(k: PluginKind) -> &'static str {
    match k {
        PluginKind::Check => "health-check",
        PluginKind::Diagnostic => "diagnostic",
    }
}

/// Semver compatibility of a plugin's contract version with ours: same major, and for 0.x the
/// same minor; not newer than ours.
pub fn compatible(plugin: &str) -> bool {
    fn parse(v: &str) -> Option<(u64, u64, u64)> {
        let v = v.split(['-', '+']).next()?;
        let mut it = v.split('.').map(|p| p.parse::<u64>().ok());
        Some((it.next()??, it.next()??, it.next()??))
    }
    let (Some(p), Some(h)) = (parse(plugin), parse(WIT_VERSION)) else {
        return false;
    };
    p.0 == h.0 && (h.0 != 0 || p.1 == h.1) && p <= h
}

/// Refuses, in one line, what is not a WebAssembly component before wasmparser does (its
/// message for a bad magic number is a multi-line byte dump).
fn check_magic(bytes: &[u8]) -> Result<(), PluginError> {
    const MAGIC: &[u8; 4] = b"\0asm";
    // The version of a core module (1, layer 0); components have layer 1.
    const CORE_MODULE: [u8; 4] = [1, 0, 0, 0];
    if bytes.len() < 8 || &bytes[..4] != MAGIC {
        return Err(PluginError::NotAComponent(
            "the file does not start with the WebAssembly magic number (\\0asm): it is not a .wasm file".into(),
        ));
    }
    if bytes[4..8] == CORE_MODULE {
        return Err(PluginError::NotAComponent(
            "a core WebAssembly module, not a component: build the plugin for wasm32-wasip2 with the SDK's export macro".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_that_are_not_components_are_refused_in_one_line() {
        for (bytes, want) in [
            (&b"hello, I am a text file"[..], "not a .wasm file"),
            (&b"\0as"[..], "not a .wasm file"),
            (&b"\0asm\x01\0\0\0"[..], "a core WebAssembly module"),
        ] {
            let e = check_magic(bytes).unwrap_err().to_string();
            assert!(e.contains(want) && !e.contains('\n'), "{e}");
        }
        assert!(check_magic(b"\0asm\x0d\0\x01\0").is_ok());
    }

    #[test]
    fn versions_compatible_with_0_1_0() {
        assert!(compatible("0.1.0"));
        assert!(!compatible("0.2.0"));
        assert!(!compatible("1.0.0"));
        assert!(!compatible("0.1.9"), "newer than the agent");
        assert!(!compatible("banana"));
    }
}
