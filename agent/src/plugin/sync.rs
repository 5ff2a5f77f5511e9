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

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use gpuwarden_wire::plugin_sync::{
    valid_digest, valid_sha256_hex, AssignedPlugin, PluginAssignment, PluginReport, MAX_PLUGINS,
};
use sha2::{Digest, Sha256};
use tracing::{info, warn};

use super::files::read_regular;
pub use super::files::MAX_COMPONENT_BYTES;
use super::manager::PluginManager;
use crate::config::{valid_plugin_name, PluginEntry, PluginValue, MAX_PLUGIN_MEMORY_MIB};

/// The largest answer read from the control plane, and the largest assignment kept, bytes.
const MAX_ANSWER_BYTES: u64 = 4 << 20;

/// Fetches and applies the control plane's assignment.
pub struct PluginSync {
    manager: Arc<PluginManager>,
    dir: PathBuf,
    runtime: tokio::runtime::Handle,
    http: ureq::Agent,
    /// Files whose digest was checked, by (size, modification time): not hashed again.
    verified: Mutex<HashMap<PathBuf, (u64, SystemTime)>>,
    /// Fetches that failed, by digest: (failures, when to try again, why).
    failed: Mutex<HashMap<String, (u32, Instant, String)>>,
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
            verified: Mutex::default(),
            failed: Mutex::default(),
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
        self.keep(&asked);
        self.apply(base, token, asked, &report, node_id);
    }

    /// Where the last assignment is kept, to run it again after a restart while the control
    /// plane cannot be reached.
    fn kept(&self) -> PathBuf {
        self.dir.join("assignment.json")
    }

    fn keep(&self, asked: &PluginAssignment) {
        let Ok(text) = serde_json::to_string(asked) else {
            return;
        };
        let path = self.kept();
        if read_regular(&path, MAX_ANSWER_BYTES).ok().as_deref() == Some(text.as_bytes()) {
            return;
        }
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let written = std::fs::create_dir_all(&self.dir)
            .and_then(|()| std::fs::write(&tmp, &text))
            .and_then(|()| std::fs::rename(&tmp, &path));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            warn!(file = %path.display(), error = %e, "cannot keep the plugin assignment: after a restart, assigned plugins wait for the control plane");
        }
    }

    /// At start, before the control plane answers: runs the last assignment kept, with the
    /// components held here (a node restarted while the control plane is away keeps its
    /// health checks). Nothing is fetched.
    pub fn restore(&self) {
        let text = match read_regular(&self.kept(), MAX_ANSWER_BYTES) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) => {
                warn!(file = %self.kept().display(), error = %e, "the kept plugin assignment cannot be read: assigned plugins wait for the control plane");
                return;
            }
        };
        let Ok(asked) = serde_json::from_slice::<PluginAssignment>(&text) else {
            warn!(file = %self.kept().display(), "the kept plugin assignment is unreadable: ignored");
            return;
        };
        let mut entries = Vec::new();
        for a in asked.plugins.into_iter().take(MAX_PLUGINS) {
            let held = valid_digest(&a.digest)
                && self.held(
                    &self
                        .dir
                        .join(format!("{}.wasm", &a.digest["sha256:".len()..])),
                    &a.digest["sha256:".len()..],
                );
            if held {
                if let Ok(e) = self.entry("", "", &a) {
                    entries.push(e);
                }
            } else {
                warn!(plugin = %a.name, digest = %a.digest, "an assigned component is not held here (or not intact): it waits for the control plane");
            }
        }
        if entries.is_empty() {
            return;
        }
        info!(
            plugins = entries.len(),
            "running the plugins last assigned until the control plane answers"
        );
        let manager = Arc::clone(&self.manager);
        self.runtime
            .block_on(async move { manager.apply_assigned(entries).await });
    }

    fn apply(
        &self,
        base: &str,
        token: &str,
        asked: PluginAssignment,
        report: &PluginReport,
        node_id: &str,
    ) {
        let mut entries = Vec::new();
        let mut refused = BTreeMap::new();
        let mut asked = asked.plugins;
        for a in asked.split_off(asked.len().min(MAX_PLUGINS)) {
            refused.insert(
                a.name.clone(),
                (
                    a.digest.clone(),
                    format!("more than {MAX_PLUGINS} plugins are assigned: not run"),
                ),
            );
        }
        for a in asked {
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
            .limit(MAX_ANSWER_BYTES)
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
        if !self.manager.runs(&a.name, want) && !self.held(&path, want) {
            self.fetch_with_backoff(base, token, &a.digest, &path)?;
            self.remember(&path);
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

    /// `fetch`, unless it failed a moment ago: then its error again, without asking (the
    /// wait doubles from 5 s up to 10 min at each failure).
    fn fetch_with_backoff(
        &self,
        base: &str,
        token: &str,
        digest: &str,
        path: &Path,
    ) -> Result<(), String> {
        if let Some((_, next, why)) = lock(&self.failed).get(digest) {
            if Instant::now() < *next {
                return Err(why.clone());
            }
        }
        match self.fetch(base, token, digest, path) {
            Ok(()) => {
                lock(&self.failed).remove(digest);
                Ok(())
            }
            Err(why) => {
                let mut failed = lock(&self.failed);
                let n = failed.get(digest).map_or(0, |f| f.0).saturating_add(1);
                let wait = Duration::from_secs(5)
                    .saturating_mul(1u32 << n.min(8))
                    .min(Duration::from_secs(600));
                failed.insert(digest.to_string(), (n, Instant::now() + wait, why.clone()));
                Err(why)
            }
        }
    }

    fn stamp(path: &Path) -> Option<(u64, SystemTime)> {
        let m = std::fs::metadata(path).ok()?;
        Some((m.len(), m.modified().ok()?))
    }

    fn remember(&self, path: &Path) {
        if let Some(s) = Self::stamp(path) {
            lock(&self.verified).insert(path.to_path_buf(), s);
        }
    }

    /// Whether `path` holds the component of sha256 `hex`: hashed once, then known by its
    /// size and modification time.
    fn held(&self, path: &Path, hex_want: &str) -> bool {
        let Some(now) = Self::stamp(path) else {
            return false;
        };
        if lock(&self.verified).get(path) == Some(&now) {
            return true;
        }
        let ok = read_regular(path, MAX_COMPONENT_BYTES)
            .is_ok_and(|b| hex(&Sha256::digest(&b)) == hex_want);
        if ok {
            lock(&self.verified).insert(path.to_path_buf(), now);
        }
        ok
    }

    /// Removes the components no plugin uses any more.
    fn clean(&self) {
        let keep = self.manager.files_in_use();
        let Ok(dir) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for f in dir.flatten() {
            let p = f.path();
            // A component no longer used, or what a fetch or a keep killed midway left
            // (`HEX.tmpPID`, `assignment.tmpPID`); only the names written here: other files
            // stay.
            let name = f.file_name().to_string_lossy().into_owned();
            let Some((stem, ext)) = name.split_once('.') else {
                continue;
            };
            let fetched = valid_sha256_hex(stem);
            let temporary = ext
                .strip_prefix("tmp")
                .is_some_and(|pid| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()));
            // `assignment.tmpPID`: a `keep` killed midway.
            let ours = fetched || (stem == "assignment" && temporary);
            if ours && ((fetched && ext == "wasm" && !keep.contains(&p)) || temporary) {
                let _ = std::fs::remove_file(&p);
                lock(&self.verified).remove(&p);
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
