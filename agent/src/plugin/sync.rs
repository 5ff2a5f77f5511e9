//! Plugins assigned by the control plane (docs/plugins-distribution.md): right after the agent
//! registers, and at every check of its registration, it reports what it runs
//! (`POST /v1/nodes/{id}/plugins`) and is answered what it should run. Each component it
//! does not hold yet is fetched by digest (`GET /v1/blobs/{digest}`, the node token), its
//! SHA-256 checked before anything else, and kept in a folder of its own; then the list is
//! handed to the [`PluginManager`], which compiles (or takes from the compile cache), runs a
//! new version once, and swaps it in as hot reload does. A component whose digest does not
//! match, that does not compile or whose first run fails is refused and reported, and the
//! previous version keeps running. Plugins configured on the node keep running beside these.
//!
//! Runs on the registration thread (blocking HTTP), so neither a slow control plane nor a
//! large component ever delays `/metrics`.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use gpuwarden_wire::plugin_sync::{
    valid_digest, AssignedPlugin, PluginAssignment, PluginReport, MAX_PLUGINS,
};
use sha2::{Digest, Sha256};
use tracing::{info, warn};

use super::manager::PluginManager;
use crate::config::{valid_plugin_name, PluginEntry, PluginValue, MAX_PLUGIN_MEMORY_MIB};

/// The largest component fetched, bytes (as the loader's limit).
pub const MAX_COMPONENT_BYTES: u64 = 64 * 1024 * 1024;

/// Fetches and applies the control plane's assignment.
pub struct PluginSync {
    manager: Arc<PluginManager>,
    dir: PathBuf,
    runtime: tokio::runtime::Handle,
    http: ureq::Agent,
}

impl std::fmt::Debug for PluginSync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginSync")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl PluginSync {
    /// Keeps fetched components in `dir` (created when needed); applies them to `manager`
    /// on `runtime`.
    pub fn new(manager: Arc<PluginManager>, dir: PathBuf, runtime: tokio::runtime::Handle) -> Self {
        let http = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(120)))
            .build()
            .into();
        Self {
            manager,
            dir,
            runtime,
            http,
        }
    }

    /// One round: report, fetch what is missing, apply. Errors are logged; what runs stays.
    pub fn sync(&self, url: &str, node_id: &str, token: &str) {
        let base = url.trim_end_matches('/');
        let report = PluginReport {
            plugins: self.manager.report(),
        };
        let asked = match self.exchange(base, node_id, token, &report) {
            Ok(a) => a,
            Err(e) => {
                warn!(error = %e, "reporting plugins to the control plane failed; the plugins running stay");
                return;
            }
        };
        let mut entries = Vec::new();
        let mut refused = BTreeMap::new();
        for a in asked.plugins.into_iter().take(MAX_PLUGINS) {
            match self.entry(base, token, &a) {
                Ok(e) => entries.push(e),
                Err(why) => {
                    warn!(plugin = %a.name, digest = %a.digest, error = %why, "assigned plugin refused; the previous version, if any, keeps running");
                    refused.insert(a.name.clone(), (a.digest.clone(), why));
                }
            }
        }
        // A refused version leaves the one running in place: keep its entry.
        for name in refused.keys() {
            if let Some(old) = self.manager.assigned_entry(name) {
                entries.push(old);
            }
        }
        self.manager.set_refused(refused);
        let manager = Arc::clone(&self.manager);
        self.runtime
            .block_on(async move { manager.apply_assigned(entries).await });
        self.clean();
        // Tell the control plane at once what changed, rather than at the next check.
        let after = PluginReport {
            plugins: self.manager.report(),
        };
        if after
            .plugins
            .iter()
            .map(|p| (&p.name, &p.running, &p.error))
            .ne(report
                .plugins
                .iter()
                .map(|p| (&p.name, &p.running, &p.error)))
        {
            if let Err(e) = self.exchange(base, node_id, token, &after) {
                warn!(error = %e, "reporting plugins to the control plane failed");
            }
        }
    }

    fn exchange(
        &self,
        base: &str,
        node_id: &str,
        token: &str,
        report: &PluginReport,
    ) -> Result<PluginAssignment, String> {
        let mut resp = self
            .http
            .post(&format!("{base}/v1/nodes/{node_id}/plugins"))
            .header("Authorization", &format!("Bearer {token}"))
            .send_json(report)
            .map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let body = resp
            .body_mut()
            .with_config()
            .limit(4 << 20)
            .read_to_string()
            .map_err(|e| e.to_string())?;
        if status == 404 {
            // A control plane without plugin distribution: nothing is assigned.
            return Ok(PluginAssignment::default());
        }
        if status != 200 {
            return Err(format!("HTTP {status}: {}", super::one_line(&body)));
        }
        serde_json::from_str(&body).map_err(|e| format!("unreadable answer: {e}"))
    }

    /// The entry of assigned plugin `a`, its component fetched when this agent lacks it.
    fn entry(&self, base: &str, token: &str, a: &AssignedPlugin) -> Result<PluginEntry, String> {
        if !valid_plugin_name(&a.name) {
            return Err(format!("{:?} is not a plugin name", a.name));
        }
        if !valid_digest(&a.digest) {
            return Err(format!("{:?} is not a sha256: digest", a.digest));
        }
        let want = &a.digest["sha256:".len()..];
        let path = self.dir.join(format!("{want}.wasm"));
        if !self.manager.runs(&a.name, want) && !held(&path, want) {
            self.fetch(base, token, &a.digest, &path)?;
        }
        let secs = |s: Option<f64>, what: &str| -> Result<Option<Duration>, String> {
            match s {
                None => Ok(None),
                Some(x) if x.is_finite() && x > 0.0 && x <= 86_400.0 => {
                    Ok(Some(Duration::from_secs_f64(x)))
                }
                Some(x) => Err(format!("{what} {x} s is out of range")),
            }
        };
        if a.memory_limit_mib
            .is_some_and(|m| m == 0 || m > MAX_PLUGIN_MEMORY_MIB)
        {
            return Err(format!(
                "memory limit {:?} MiB is not 1 to {MAX_PLUGIN_MEMORY_MIB}",
                a.memory_limit_mib
            ));
        }
        Ok(PluginEntry {
            name: a.name.clone(),
            path,
            sha256: want.to_string(),
            kind: None,
            interval: secs(a.interval_seconds, "interval")?,
            timeout: secs(a.timeout_seconds, "timeout")?,
            memory_limit_mib: a.memory_limit_mib,
            config: a
                .config
                .iter()
                .map(|(k, v)| (k.clone(), PluginValue::Text(v.clone())))
                .collect(),
            assigned: true,
        })
    }

    /// Fetches component `digest` into `path`: its SHA-256 is checked on the bytes received
    /// before they are written, and a mismatch is refused.
    fn fetch(&self, base: &str, token: &str, digest: &str, path: &Path) -> Result<(), String> {
        let mut resp = self
            .http
            .get(&format!("{base}/v1/blobs/{digest}"))
            .header("Authorization", &format!("Bearer {token}"))
            .call()
            .map_err(|e| format!("fetching {digest}: {e}"))?;
        let status = resp.status().as_u16();
        if status == 404 {
            return Err(format!(
                "the control plane does not hold {digest}: push it (gpuwarden plugins push)"
            ));
        }
        if status != 200 {
            return Err(format!("fetching {digest}: HTTP {status}"));
        }
        let mut bytes = Vec::new();
        resp.body_mut()
            .with_config()
            .limit(MAX_COMPONENT_BYTES + 1)
            .reader()
            .take(MAX_COMPONENT_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| format!("fetching {digest}: {e}"))?;
        if bytes.len() as u64 > MAX_COMPONENT_BYTES {
            return Err(format!(
                "{digest} is over {MAX_COMPONENT_BYTES} bytes: refused"
            ));
        }
        let got = hex(&Sha256::digest(&bytes));
        if format!("sha256:{got}") != digest {
            return Err(format!(
                "the control plane sent a component of digest sha256:{got} for {digest}: refused, nothing changed"
            ));
        }
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| format!("creating {}: {e}", self.dir.display()))?;
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, &bytes)
            .and_then(|()| std::fs::rename(&tmp, path))
            .map_err(|e| {
                let _ = std::fs::remove_file(&tmp);
                format!("writing {}: {e}", path.display())
            })?;
        info!(%digest, bytes = bytes.len(), "assigned plugin component fetched");
        Ok(())
    }

    /// Removes the components no plugin uses any more.
    fn clean(&self) {
        let keep = self.manager.files_in_use();
        let Ok(dir) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for f in dir.flatten() {
            let p = f.path();
            if p.extension().is_some_and(|e| e == "wasm") && !keep.contains(&p) {
                let _ = std::fs::remove_file(&p);
            }
        }
    }
}

/// Whether `path` holds the component of sha256 `hex`.
fn held(path: &Path, hex_want: &str) -> bool {
    std::fs::read(path).is_ok_and(|b| hex(&Sha256::digest(&b)) == hex_want)
}
