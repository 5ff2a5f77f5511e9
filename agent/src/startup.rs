//! Start-up helpers of [`crate::run`]: the state folder, the node token kept from an earlier
//! run, the credentials to join with, and the registration thread.

use std::os::unix::fs::DirBuilderExt;
use std::sync::Arc;

use anyhow::Context;

use crate::config::AgentConfig;
use crate::{backend, commands, config, notify, register};

/// Creates the state folder (mode 0700) when the agent keeps state; a folder that cannot be
/// made is reported, and the agent runs on with its state in memory.
pub(crate) fn prepare_state_dir(cfg: &AgentConfig) {
    let Some(dir) = cfg.state_dir() else {
        tracing::info!("no node.state_dir (fake GPUs): the node token, the commands received and the kernel-log position are kept in memory only");
        return;
    };
    let made = std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir);
    if let Err(e) = made {
        let joining = !cfg.control_plane.url.is_empty();
        tracing::warn!(
            dir = %dir.display(),
            error = %e,
            "cannot create the state folder (node.state_dir): the node token, the commands received and \
             the kernel-log position are not kept across restarts{}",
            if joining { "; after a restart a spent join token cannot rejoin" } else { "" }
        );
    }
}

/// The node token kept from an earlier run, if any.
pub(crate) fn kept_node_token(cfg: &AgentConfig) -> Option<String> {
    let f = cfg.token_file()?;
    let t = std::fs::read_to_string(f).ok()?;
    let t = t.trim();
    (!t.is_empty()).then(|| t.to_string())
}

/// The credentials to join the control plane with; none when no control plane is set.
pub(crate) fn join_credentials(cfg: &AgentConfig) -> anyhow::Result<Vec<String>> {
    let cp = &cfg.control_plane;
    if cp.url.is_empty() {
        return Ok(Vec::new());
    }
    let env_bootstrap = std::env::var("GPUWARDEN_BOOTSTRAP_TOKEN")
        .ok()
        .filter(|t| !t.trim().is_empty());
    let credentials = register::credentials(cp, cfg.token_file().as_deref(), env_bootstrap);
    if credentials.is_empty() {
        anyhow::bail!(
            "control_plane.url is set but there is no credential: set GPUWARDEN_BOOTSTRAP_TOKEN, \
             control_plane.bootstrap_token, or control_plane.token (a join token from `gpuwarden nodes token`)"
        );
    }
    Ok(credentials)
}

pub(crate) fn start_registration(
    cfg: &AgentConfig,
    credentials: Vec<String>,
    node_id: &str,
    inv: &backend::Inventory,
    backend_name: &str,
    bound: std::net::SocketAddr,
    // Told of each join: the commands' credential, the urgent-event notifier, and what syncs
    // the plugins the control plane assigns.
    (command_auth, notifier, plugins): (
        Arc<commands::CommandAuth>,
        Option<Arc<notify::Notifier>>,
        Option<Arc<crate::plugin::sync::PluginSync>>,
    ),
) -> anyhow::Result<register::RegistrarHandle> {
    let cp = &cfg.control_plane;
    let host = sysinfo::System::host_name().unwrap_or_else(|_| node_id.to_string());
    let mut capabilities = register::host_capabilities();
    capabilities.gpus = inv
        .gpus
        .iter()
        .map(|g| gpuwarden_wire::join::GpuInfo {
            index: g.index,
            uuid: g.uuid.clone(),
            model: g.model.clone(),
            memory_bytes: g.memory_total_bytes,
        })
        .collect();
    capabilities.driver_version = Some(inv.driver_version.clone());
    capabilities.cuda_version = Some(inv.cuda_version.clone());
    capabilities.backend = Some(backend_name.to_string());
    let request = gpuwarden_wire::join::RegisterRequest {
        name: node_id.to_string(),
        address: register::advertise_url(&cp.advertise, bound, &host),
        pool: (!cp.pool.is_empty()).then(|| cp.pool.clone()),
        labels: cfg.node.labels.clone(),
        capabilities,
    };
    tracing::info!(control_plane = %config::secrets::redact_url(&cp.url), address = %config::secrets::redact_url(&request.address), "registering with the control plane");
    register::spawn(register::Registration {
        url: cp.url.clone(),
        credentials,
        token_file: cfg.token_file(),
        request,
        retry_max: cp.retry_max,
        command_auth: Some(command_auth),
        notifier,
        plugins,
    })
    .context("starting the registration thread")
}
