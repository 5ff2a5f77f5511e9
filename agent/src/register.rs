//! Joining the control plane: register with backoff and jitter, keep the node token, check
//! now and then that the control plane still knows the node (and register again if it does
//! not), deregister on graceful shutdown.
//!
//! Runs on a thread of its own with a blocking HTTP client; nothing here touches the
//! collector or the server, so a control plane that is down never slows `/metrics`.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

use gpuwarden_wire::join::{RegisterRequest, Registered};
use tracing::{debug, info, warn};

use crate::config::secrets::redact_url;

mod join;
pub use join::{advertise_url, credentials, host_capabilities};

/// Everything the registrar sends.
#[derive(Debug, Clone)]
pub struct Registration {
    /// Control-plane base URL.
    pub url: String,
    /// Credentials to register with, tried in order (node token file first).
    pub credentials: Vec<String>,
    /// Where the node token is kept across restarts.
    pub token_file: Option<PathBuf>,
    /// The request.
    pub request: RegisterRequest,
    /// Backoff cap.
    pub retry_max: Duration,
    /// Told each node token issued, so the agent takes commands for it.
    pub command_auth: Option<std::sync::Arc<crate::commands::CommandAuth>>,
    /// Told each join (and when the control plane forgot the node), so urgent-event
    /// notices go out with the current node id and token.
    pub notifier: Option<std::sync::Arc<crate::notify::Notifier>>,
    /// Reports the plugins and applies the control plane's assignment after each join and
    /// at each check.
    pub plugins: Option<std::sync::Arc<crate::plugin::sync::PluginSync>>,
}

/// The control plane refused every credential the agent has, before it had joined once in
/// this run: a spent or revoked join token with no node token kept (a lost or unset token
/// file), or a wrong bootstrap token. Retrying cannot help, so the agent stops with
/// [`JoinRefused::EXIT_CODE`] (the systemd unit that `gpuwarden nodes token` prints does not
/// restart on it) instead of retrying in silence.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "the control plane at {url} refused every credential of this agent ({reason}); \
         a join token works once: keep the node token (node.state_dir or control_plane.token_file) \
         so restarts rejoin with it, and issue a new join token with `gpuwarden nodes token NODE`"
)]
pub struct JoinRefused {
    /// The control plane (its password masked, should the URL carry one).
    pub url: String,
    /// Its last answer.
    pub reason: String,
}

impl JoinRefused {
    /// The agent's exit status when it stops for this reason (`EX_CONFIG`).
    pub const EXIT_CODE: u8 = 78;
}

/// The running registrar; [`RegistrarHandle::stop`] deregisters.
#[derive(Debug)]
pub struct RegistrarHandle {
    stop: Sender<()>,
    thread: JoinHandle<()>,
    refused: Option<tokio::sync::oneshot::Receiver<JoinRefused>>,
}

impl RegistrarHandle {
    /// Resolves when the control plane refused every credential before the first join
    /// (see [`JoinRefused`]); never resolves otherwise. Once only.
    pub async fn refused(&mut self) -> JoinRefused {
        match self.refused.take() {
            Some(rx) => match rx.await {
                Ok(r) => r,
                Err(_) => std::future::pending().await,
            },
            None => std::future::pending().await,
        }
    }

    /// Deregisters (graceful shutdown) and ends the thread.
    pub fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.thread.join();
    }
}

fn write_token(path: &Path, token: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(d) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(d)?;
    }
    // A temporary file (mode 0600 from its creation) renamed over the old one: a full disk
    // leaves the token kept so far whole, and the file ends up 0600 whatever its mode was.
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| {
            writeln!(f, "{token}")?;
            f.sync_all()
        })
        .and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

enum Attempt {
    Done(Registered),
    /// Try the next credential.
    Refused(String),
    /// Try again later.
    Failed(String),
}

struct Client {
    agent: ureq::Agent,
    reg: Registration,
}

impl Client {
    fn register(&self, credential: &str) -> Attempt {
        let url = format!("{}/v1/nodes/register", self.reg.url.trim_end_matches('/'));
        let resp = self
            .agent
            .post(&url)
            .header("Authorization", &format!("Bearer {credential}"))
            .send_json(&self.reg.request);
        let mut resp = match resp {
            Ok(r) => r,
            Err(e) => return Attempt::Failed(e.to_string()),
        };
        let status = resp.status().as_u16();
        let body = resp
            .body_mut()
            .with_config()
            .limit(1 << 20)
            .read_to_string()
            .unwrap_or_default();
        match status {
            200 => match serde_json::from_str::<Registered>(&body) {
                Ok(r) => Attempt::Done(r),
                Err(e) => Attempt::Failed(format!("unreadable answer: {e}")),
            },
            401 | 403 => Attempt::Refused(format!("HTTP {status}: {body}")),
            _ => Attempt::Failed(format!("HTTP {status}: {body}")),
        }
    }

    /// Whether the control plane still knows the node: `Some(false)` when it answered that
    /// it does not, `None` when it could not be asked.
    fn known(&self, r: &Registered) -> Option<bool> {
        let url = format!(
            "{}/v1/nodes/{}",
            self.reg.url.trim_end_matches('/'),
            r.node_id
        );
        let resp = self
            .agent
            .get(&url)
            .header("Authorization", &format!("Bearer {}", r.node_token))
            .call()
            .ok()?;
        match resp.status().as_u16() {
            200 => Some(true),
            401 | 403 | 404 => Some(false),
            _ => None,
        }
    }

    fn deregister(&self, r: &Registered) {
        let url = format!(
            "{}/v1/nodes/{}",
            self.reg.url.trim_end_matches('/'),
            r.node_id
        );
        match self
            .agent
            .delete(&url)
            .header("Authorization", &format!("Bearer {}", r.node_token))
            .call()
        {
            Ok(resp) if resp.status().as_u16() == 204 => {
                info!(node_id = %r.node_id, "deregistered from the control plane")
            }
            Ok(resp) => warn!(status = resp.status().as_u16(), "deregistering was refused"),
            Err(e) => warn!(error = %e, "deregistering failed"),
        }
    }
}

/// The wait before attempt `n` (0-based): 1s doubling up to `max`, ±20 % jitter.
pub fn backoff(n: u32, max: Duration) -> Duration {
    let base = Duration::from_secs(1)
        .saturating_mul(1u32 << n.min(16))
        .min(max);
    base.mul_f64(0.8 + fastrand::f64() * 0.4)
}

/// Starts registering in the background.
pub fn spawn(reg: Registration) -> std::io::Result<RegistrarHandle> {
    let (stop, rx) = channel::<()>();
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let client = Client { agent, reg };
    let (refused_tx, refused_rx) = tokio::sync::oneshot::channel();
    let thread = std::thread::Builder::new()
        .name("register".into())
        .spawn(move || {
            // The plugins last assigned run until the control plane answers.
            if let Some(p) = &client.reg.plugins {
                p.restore();
            }
            let mut current: Option<Registered> = None;
            let mut joined_once = false;
            let mut attempt = 0u32;
            loop {
                let wait = match &current {
                    None => match try_all(&client) {
                        Joined::Yes(r) => {
                            attempt = 0;
                            joined_once = true;
                            if let Some(p) = &client.reg.plugins {
                                p.sync(&client.reg.url, &r.node_id, &r.node_token);
                            }
                            let wait = Duration::from_secs_f64(r.check_interval_seconds.clamp(1.0, 3600.0));
                            current = Some(r);
                            wait
                        }
                        Joined::Refused(reason) if !joined_once => {
                            let e = JoinRefused { url: redact_url(&client.reg.url), reason };
                            tracing::error!(error = %e, "cannot join the control plane");
                            let _ = refused_tx.send(e);
                            return;
                        }
                        Joined::Refused(_) | Joined::Failed => {
                            let w = backoff(attempt, client.reg.retry_max);
                            attempt = attempt.saturating_add(1);
                            w
                        }
                    },
                    Some(r) => {
                        if client.known(r) == Some(false) {
                            warn!(node_id = %r.node_id, "the control plane does not know this node any more; registering again");
                            if let Some(n) = &client.reg.notifier {
                                n.left();
                            }
                            current = None;
                            continue;
                        }
                        if let Some(p) = &client.reg.plugins {
                            p.sync(&client.reg.url, &r.node_id, &r.node_token);
                        }
                        Duration::from_secs_f64(r.check_interval_seconds.clamp(1.0, 3600.0))
                    }
                };
                match rx.recv_timeout(wait) {
                    Err(RecvTimeoutError::Timeout) => {}
                    Ok(()) | Err(RecvTimeoutError::Disconnected) => break,
                }
            }
            if let Some(r) = &current {
                if let Some(n) = &client.reg.notifier {
                    n.left();
                }
                client.deregister(r);
            }
        })?;
    Ok(RegistrarHandle {
        stop,
        thread,
        refused: Some(refused_rx),
    })
}

/// How one round of registration attempts went.
enum Joined {
    Yes(Registered),
    /// Every credential was refused (401/403); the last answer.
    Refused(String),
    /// The control plane could not be asked, or answered otherwise; retry later.
    Failed,
}

fn try_all(client: &Client) -> Joined {
    let mut creds = client.reg.credentials.clone();
    // The node token kept from the last run goes first.
    if let Some(f) = &client.reg.token_file {
        if let Ok(t) = std::fs::read_to_string(f) {
            let t = t.trim().to_string();
            if !t.is_empty() && !creds.contains(&t) {
                creds.insert(0, t);
            }
        }
    }
    let mut last = String::from("no credential configured");
    for c in &creds {
        match client.register(c) {
            Attempt::Done(r) => {
                info!(node_id = %r.node_id, control_plane = %redact_url(&client.reg.url), address = %redact_url(&client.reg.request.address), "registered with the control plane");
                if let Some(a) = &client.reg.command_auth {
                    a.set_token(&r.node_token);
                }
                if let Some(n) = &client.reg.notifier {
                    n.joined(&client.reg.url, &r.node_id, &r.node_token);
                }
                if let Some(f) = &client.reg.token_file {
                    if let Err(e) = write_token(f, &r.node_token) {
                        warn!(file = %f.display(), error = %e, "cannot keep the node token; a restart will need the join or bootstrap token");
                    }
                }
                return Joined::Yes(r);
            }
            Attempt::Refused(m) => {
                debug!(reason = %m, "credential refused; trying the next");
                last = m;
            }
            Attempt::Failed(m) => {
                warn!(control_plane = %redact_url(&client.reg.url), reason = %m, "registration failed; retrying with backoff");
                return Joined::Failed;
            }
        }
    }
    warn!(control_plane = %redact_url(&client.reg.url), reason = %last, "registration failed; retrying with backoff");
    if creds.is_empty() {
        Joined::Failed
    } else {
        Joined::Refused(last)
    }
}

#[cfg(test)]
mod tests;
