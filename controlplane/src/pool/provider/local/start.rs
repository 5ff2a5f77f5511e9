//! Starting one agent: its folder, its log, its clean environment with the join token,
//! and the wait for its `listening addr=` line.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rustix::process::Signal;

use super::state::{self, Kept};
use super::{proc, LocalProvider, JOIN_REFUSED};
use crate::pool::provider::{ErrorKind, ProviderError, ProvisionRequest};

impl LocalProvider {
    pub(super) fn start(&self, req: &ProvisionRequest) -> Result<Kept, ProviderError> {
        let other = |what: &str, e: std::io::Error| {
            ProviderError::new(ErrorKind::Other, format!("{what}: {e}"))
        };
        let dir = state::dir(&self.root, &req.instance_id);
        let agent_state = dir.join("agent-state");
        state::mkdir(&agent_state)
            .map_err(|e| other(&format!("create {}", agent_state.display()), e))?;
        let log_path = dir.join("agent.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| other(&format!("open {}", log_path.display()), e))?;
        let from = log.metadata().map(|m| m.len()).unwrap_or(0);
        let err_log = log.try_clone().map_err(|e| other("log file", e))?;
        let url = if req.control_plane_url.is_empty() {
            return Err(ProviderError::new(
                ErrorKind::InvalidRequest,
                "no control_plane_url",
            ));
        } else {
            req.control_plane_url.clone()
        };
        // An agent of this instance that no state file records (its start was cut short by
        // a crash) is stopped first: one instance, one agent.
        for pid in proc::agents_of(&agent_state) {
            tracing::warn!(instance = %req.instance_id, pid, "stopping an agent of this instance that no state records");
            proc::signal(pid, Signal::KILL);
        }
        let mut cmd = Command::new(&self.agent);
        cmd.args([
            "--fake-gpus",
            &self.gpus.to_string(),
            "--listen",
            "127.0.0.1:0",
            "--control-plane",
            &url,
        ])
        .env_clear();
        if let Some(c) = &self.config {
            cmd.arg("--config").arg(c);
        }
        for k in ["PATH", "HOME", "LANG"] {
            if let Some(v) = std::env::var_os(k) {
                cmd.env(k, v);
            }
        }
        cmd.env("RUST_LOG", "info")
            .envs(&self.env)
            .env("GPUWARDEN_NODE__ID", &req.node_name)
            .env("GPUWARDEN_CONTROL_PLANE__POOL", &req.pool)
            .env("GPUWARDEN_CONTROL_PLANE__TOKEN", &req.join_token)
            .env("GPUWARDEN_NODE__STATE_DIR", &agent_state)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err_log));
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let mut child = cmd
            .spawn()
            .map_err(|e| other(&format!("start {}", self.agent.display()), e))?;
        let pid = child.id();
        let start_ticks = proc::stat(pid).map(|s| s.0).unwrap_or(0);
        let mut kept = Kept {
            instance_id: req.instance_id.clone(),
            node_name: req.node_name.clone(),
            pool: req.pool.clone(),
            pid,
            start_ticks,
            address: String::new(),
            log: log_path.clone(),
            started_ms: self.clock.0.now_ms(),
        };
        // Kept from the moment it runs: a control plane that dies while the agent starts
        // lists it after its restart (and adopts or stops it) instead of starting a second
        // one beside an agent nobody knows of.
        if let Err(e) = state::save(&self.root, &kept) {
            proc::signal(pid, Signal::KILL);
            let _ = child.kill();
            let _ = child.wait();
            return Err(other("write the instance state", e));
        }
        let addr = match self.await_listening(&mut child, &log_path, from) {
            Ok(a) => a,
            Err(e) => {
                proc::signal(pid, Signal::KILL);
                let _ = child.kill();
                let _ = child.wait();
                let _ = state::forget(&self.root, &req.instance_id);
                return Err(e);
            }
        };
        kept.address = format!("http://{addr}");
        if let Err(e) = state::save(&self.root, &kept) {
            proc::signal(pid, Signal::KILL);
            let _ = child.wait();
            return Err(other("write the instance state", e));
        }
        self.children
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(req.instance_id.clone(), child);
        Ok(kept)
    }

    /// Waits for the agent's `listening addr=…` line in its log (written after `from`).
    fn await_listening(
        &self,
        child: &mut Child,
        log: &Path,
        from: u64,
    ) -> Result<String, ProviderError> {
        let deadline = Instant::now() + self.start_timeout;
        let read = || {
            let b = std::fs::read(log).unwrap_or_default();
            let from = usize::try_from(from).unwrap_or(0).min(b.len());
            String::from_utf8_lossy(&b[from..]).into_owned()
        };
        loop {
            let text = read();
            if let Some(addr) = text
                .lines()
                .filter(|l| l.contains(" listening"))
                .find_map(|l| {
                    l.split("addr=")
                        .nth(1)?
                        .split_whitespace()
                        .next()
                        .map(String::from)
                })
            {
                return Ok(addr);
            }
            if let Ok(Some(st)) = child.try_wait() {
                let tail =
                    crate::pool::provider::run::one_line(&text[text.len().saturating_sub(600)..]);
                let kind = if st.code() == Some(JOIN_REFUSED) {
                    ErrorKind::Auth
                } else {
                    ErrorKind::Other
                };
                return Err(ProviderError::new(
                    kind,
                    format!("the agent exited ({st}) before listening: {tail}"),
                ));
            }
            if Instant::now() >= deadline {
                return Err(ProviderError::new(
                    ErrorKind::Timeout,
                    format!(
                        "the agent did not listen within {} (log: {})",
                        humantime::format_duration(self.start_timeout),
                        log.display()
                    ),
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
