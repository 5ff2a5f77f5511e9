//! The gpuwarden node agent.
//!
//! It reads the node's GPUs through a [`backend::GpuBackend`] (NVML, or fake GPUs for tests
//! and demos), samples them on an interval in the [`collector`], turns what it sees into
//! [health events](events) (XIDs from NVML and from the [kernel log](kmsg), ECC errors,
//! thresholds crossed), and serves Prometheus metrics and the events over [`http`].
//!
//! It does not decide whether a node is healthy: that is the control plane's job, through
//! its policies. The agent reports facts, with the severity and recommended action of the
//! one XID table in `gpuwarden-wire`.
//!
//! `main.rs` only parses flags; [`run`] wires everything, so tests build exactly what runs.

/// `println!` for the command-line output of one-shot commands (`plugin digest|test|build|new`,
/// `--check-config`): a reader that went away (`… | head`) is not an error of the command,
/// so the write is dropped instead of panicking as `println!` does (the control plane's CLI
/// does the same).
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

pub mod backend;
pub mod collector;
pub mod commands;
pub mod config;
pub mod derive;
pub mod events;
pub mod fleet;
pub mod http;
pub mod kmsg;
pub mod notify;
pub mod plugin;
pub mod register;
pub mod render;
pub mod system;
pub mod text;
pub mod workload;

/// dcgm-exporter compatibility, rendered by [`render`]; kept at this path for callers.
pub use render::dcgm;

mod lifecycle;
mod startup;
pub use lifecycle::log_panics;
use lifecycle::{RuntimeGuard, ShutdownSignal};

use std::sync::{mpsc, Arc, Mutex, RwLock};

use anyhow::Context;

use backend::fake::FakeBackend;
use backend::nvml::NvmlBackend;
use backend::GpuBackend;
use collector::{Collector, CollectorSettings, Msg};
use config::{AgentConfig, BackendKind};
use events::EventLog;
use startup::{join_credentials, kept_node_token, prepare_state_dir, start_registration};

/// The configured GPU backend; with fake GPUs also the fake backend itself, which
/// `/v1/fake/inject` and `/v1/fake/clear` drive.
pub struct OpenedBackend {
    /// What the collector reads.
    pub gpus: Arc<dyn GpuBackend>,
    /// The same backend as [`FakeBackend`] when it is the fake one; `None` for NVML.
    pub fake: Option<Arc<FakeBackend>>,
}

/// Builds the configured GPU backend (NVML fails here when the library cannot be loaded).
pub fn open_backend(cfg: &AgentConfig, node_id: &str) -> anyhow::Result<OpenedBackend> {
    Ok(match cfg.gpu.backend {
        BackendKind::Fake => {
            let seed = if cfg.gpu.fake_seed != 0 {
                cfg.gpu.fake_seed
            } else {
                node_id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                    (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
                })
            };
            let fake = Arc::new(FakeBackend::new(
                cfg.gpu.fake_count,
                &cfg.gpu.fake_model,
                seed,
            ));
            OpenedBackend {
                gpus: Arc::new(Arc::clone(&fake)),
                fake: Some(fake),
            }
        }
        BackendKind::Nvml => OpenedBackend {
            gpus: Arc::new(NvmlBackend::open()?),
            fake: None,
        },
    })
}

/// Runs the agent until SIGINT or SIGTERM. `config_file` and `overrides` are kept to reload
/// the plugin list when the file changes.
pub async fn run(
    cfg: AgentConfig,
    config_file: Option<std::path::PathBuf>,
    overrides: config::Overrides,
) -> anyhow::Result<()> {
    // Watch the signals before anything else, so a SIGTERM during start-up is not lost.
    let shutdown = ShutdownSignal::install();
    lifecycle::keep_running_on_sighup();
    if let Some(w) = config_file
        .as_deref()
        .and_then(config::secrets::config_file_warning)
    {
        tracing::warn!("{w}");
    }
    let node_id = cfg.node_id();
    let join_credentials = join_credentials(&cfg)?;
    let OpenedBackend {
        gpus: backend,
        fake,
    } = open_backend(&cfg, &node_id)?;
    prepare_state_dir(&cfg);
    let instance = format!("{:016x}", fastrand::u64(..));
    let notifier = (cfg.control_plane.notify_urgent && !cfg.control_plane.url.is_empty())
        .then(|| notify::Notifier::new(instance.clone(), notify::RetryPolicy::default()));
    let mut log = EventLog::new(cfg.events.capacity, instance);
    if let Some(n) = &notifier {
        log.notify_urgent(Arc::clone(n));
    }
    let events = Arc::new(Mutex::new(log));
    let snapshot = Arc::new(RwLock::new(Arc::default()));
    let settings = CollectorSettings {
        node_id: node_id.clone(),
        node_labels: cfg
            .node
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        interval: cfg.collector.interval,
        thresholds: derive::Thresholds {
            temperature_warning: cfg.events.temperature_warning_celsius,
            temperature_critical: cfg.events.temperature_critical_celsius,
        },
        xid_dedup_window: cfg.events.xid_dedup_window,
        system: cfg.metrics.system,
        dcgm_compat: cfg.metrics.dcgm_compat,
    };
    let mut collector = Collector::new(
        settings,
        Arc::clone(&backend),
        Arc::clone(&events),
        Arc::clone(&snapshot),
    )
    .context("reading the GPU inventory")?;
    // Plugins run on a runtime of their own, so a guest spinning until its deadline never
    // delays a scrape.
    let plugin_runtime = RuntimeGuard(Some(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("plugins")
            .enable_all()
            .build()
            .context("starting the plugin runtime")?,
    ));
    let plugin_rt = plugin_runtime.handle();
    let plugins = plugin::manager::PluginManager::new(
        cfg.plugin.clone(),
        Arc::clone(&snapshot),
        Arc::clone(&events),
        plugin_rt.clone(),
    )
    .context("starting the WebAssembly engine")?;
    let reload_status = Arc::new(config::reload::ReloadStatus::default());
    let mut extras: Vec<Arc<dyn render::ExtraMetrics>> =
        vec![plugins.clone(), reload_status.clone()];
    if let Some(n) = &notifier {
        extras.push(n.clone());
    }
    let workload = workload::Workload::new(&cfg.workload);
    if let Some(w) = &workload {
        extras.push(w.clone());
    }
    collector.set_extra(Arc::new(config::reload::Extras(extras)));
    let inv = collector.inventory().clone();
    tracing::info!(
        node = %node_id,
        backend = backend.name(),
        gpus = inv.gpus.len(),
        model = inv.gpus.first().map_or("-", |g| g.model.as_str()),
        driver = %inv.driver_version,
        cuda = %inv.cuda_version,
        "GPU inventory read"
    );

    let (tx, rx) = mpsc::channel::<Msg>();
    let events_tx = Mutex::new(tx.clone());
    let sink: backend::EventSink = Box::new(move |e| {
        events_tx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(Msg::Backend(e))
            .is_ok()
    });
    match backend.start_events(sink) {
        Ok(()) => collector.set_gpu_events_up(true),
        Err(e) => {
            tracing::warn!(error = %e, "no critical events from the GPU backend; XIDs come from the kernel log only")
        }
    }
    let kmsg_on = cfg
        .kmsg
        .enabled
        .unwrap_or(cfg.gpu.backend == BackendKind::Nvml);
    if kmsg_on {
        let source = kmsg::KmsgSource {
            path: cfg.kmsg.path.clone(),
            read_existing: cfg.kmsg.read_existing,
            position_file: cfg.kmsg_state_file(),
            boot_id: kmsg::position::boot_id(),
        };
        match kmsg::spawn_reader(source, tx.clone()) {
            Ok(()) => {
                collector.set_kmsg_up(true);
                tracing::info!(path = %cfg.kmsg.path.display(), "reading XIDs from the kernel log");
            }
            Err(e) => tracing::warn!(
                path = %cfg.kmsg.path.display(),
                error = %e,
                "cannot read the kernel log: XIDs that NVML does not report (79, 119, 120, …) will be missed; \
                 run the agent as root or with CAP_SYSLOG"
            ),
        }
    }
    collector.collect();
    plugins.set_notify(tx.clone());
    plugin_rt.spawn({
        let plugins = Arc::clone(&plugins);
        let entries = cfg.plugins.clone();
        async move { plugins.apply(entries).await }
    });
    plugin_rt.spawn(Arc::clone(&plugins).watch(config_file, overrides, reload_status.clone()));
    let workload_thread = match &workload {
        Some(w) => Some(
            w.spawn(cfg.collector.interval)
                .context("starting the workload reader")?,
        ),
        None => None,
    };
    let collector_thread = std::thread::Builder::new()
        .name("collector".into())
        .spawn(move || collector.run(rx))
        .context("starting the collector thread")?;

    let command_auth = Arc::new(commands::CommandAuth::default());
    if let Some(t) = kept_node_token(&cfg) {
        command_auth.set_token(&t);
    }
    let state_file = cfg.commands_state_file();
    if state_file.is_none() {
        tracing::info!("no commands.state_file or control_plane.token_file: the commands received are kept in memory only");
    }
    let runner = commands::Commands::new(
        cfg.commands.clone(),
        node_id.clone(),
        Arc::clone(&snapshot),
        Some(commands::Diagnostics {
            manager: Arc::clone(&plugins),
            runtime: plugin_rt.clone(),
            configured: cfg.plugins.iter().map(|p| p.name.clone()).collect(),
        }),
        state_file,
    );
    let state = http::AppState {
        snapshot,
        events,
        fake,
        collector: tx.clone(),
        plugins: Some(Arc::clone(&plugins)),
        commands: Some(runner),
        command_auth: Arc::clone(&command_auth),
        reload: Some(reload_status),
    };
    let bound = http::serve::bind(&cfg.server.listen)
        .with_context(|| format!("cannot listen on {}", cfg.server.listen))?;
    let addrs = bound.addrs();
    for addr in &addrs {
        tracing::info!(%addr, interval = %humantime::format_duration(cfg.collector.interval), "listening");
    }
    let assigned_dir = cfg.assigned_plugins_dir();
    let mut registrar = match addrs.first() {
        Some(bound) if !join_credentials.is_empty() => Some(start_registration(
            &cfg,
            join_credentials,
            &node_id,
            &inv,
            backend.name(),
            *bound,
            (
                Arc::clone(&command_auth),
                notifier.clone(),
                Some(Arc::new(plugin::sync::PluginSync::new(
                    Arc::clone(&plugins),
                    assigned_dir.0.clone(),
                    plugin_rt.clone(),
                ))),
            ),
        )?),
        _ => None,
    };
    let notify_thread = match &notifier {
        Some(n) => Some(n.spawn().context("starting the notice thread")?),
        None => None,
    };
    // On this runtime (`server.workers` threads in the binary); see `http::serve`.
    let server = bound.serve(http::router(state));

    let refused = async {
        match registrar.as_mut() {
            Some(r) => Some(r.refused().await),
            None => std::future::pending().await,
        }
    };
    let refused = tokio::select! {
        _ = shutdown.wait() => None,
        r = refused => r,
    };
    tracing::info!("shutting down");
    if let Some(r) = registrar {
        // Deregister first, so the control plane stops scraping before the server stops.
        let _ = tokio::task::spawn_blocking(move || r.stop()).await;
    }
    if let (Some(n), Some(t)) = (&notifier, notify_thread) {
        n.stop();
        let _ = tokio::task::spawn_blocking(move || t.join()).await;
    }
    if let (Some(w), Some(t)) = (&workload, workload_thread) {
        w.stop();
        let _ = tokio::task::spawn_blocking(move || t.join()).await;
    }
    server.stop().await;
    let _ = tx.send(Msg::Shutdown);
    let _ = collector_thread.join();
    drop(plugins);
    if assigned_dir.1 {
        let _ = std::fs::remove_dir_all(&assigned_dir.0);
    }
    tracing::info!("stopped");
    match refused {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}
