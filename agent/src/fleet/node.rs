//! One simulated node: the agent's own parts (fake GPUs, collector, event log, command
//! runner, HTTP router) put together for the fleet, and taken apart again.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::collector::{Collector, CollectorSettings, Msg};
use crate::config::{AgentConfig, BackendKind};
use crate::events::EventLog;
use crate::http::serve::{Bound, Server};
use crate::register::RegistrarHandle;

/// One simulated node, as `--spec FILE` lists them (a JSON array).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetNode {
    /// Node name (the agent's `node.id`).
    pub name: String,
    /// Address and port it serves on, e.g. `127.1.0.1:9410`.
    pub listen: SocketAddr,
    /// Fake GPUs (1 to 64).
    #[serde(default = "eight")]
    pub gpus: u32,
    /// GPU model name.
    #[serde(default = "h100")]
    pub model: String,
    /// Node labels (rack, zone, …), sent with the registration and on every GPU series.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Pool to join (empty: the control plane's choice).
    #[serde(default)]
    pub pool: String,
}

pub(super) fn eight() -> u32 {
    8
}

pub(super) fn h100() -> String {
    "NVIDIA H100 80GB HBM3".into()
}

/// What every node shares.
#[derive(Debug, Clone)]
pub struct FleetOptions {
    /// Collection interval.
    pub interval: Duration,
    /// Join this control plane (base URL) with this bootstrap token; `None`: do not register
    /// (the nodes are declared on the control plane some other way).
    pub join: Option<(String, String)>,
    /// Seed of the fake GPUs (0: each node seeded by its name; any other: mixed with each
    /// node's name, so nodes differ and a seed gives the same fleet again).
    pub seed: u64,
    /// Where nodes added later ([`super::Fleet::add`], the control API's
    /// `POST /v1/fleet/nodes`) serve: the first address and the port; each takes the address
    /// after the last one handed out that is not in use (a freed address is not handed out
    /// again).
    /// `None`: nodes cannot be added.
    pub spare: Option<SocketAddr>,
}

/// A collector and what it reads, driven by the fleet's one thread; dropped from it once
/// `gone` (its node removed).
pub(super) struct Driven {
    pub(super) collector: Collector,
    pub(super) rx: Receiver<Msg>,
    pub(super) next: Instant,
    pub(super) gone: Arc<AtomicBool>,
}

/// Node `name`'s fake-GPU seed: 0 stays 0 (the agent then seeds by the name), any other
/// seed is mixed with the name, so the nodes of one fleet differ and the same seed gives the
/// same fleet again.
pub(super) fn node_seed(seed: u64, name: &str) -> u64 {
    if seed == 0 {
        return 0;
    }
    let h = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    (h ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15)).max(1)
}

/// A running node of the fleet.
pub(super) struct Node {
    /// The address it serves on.
    pub(super) addr: SocketAddr,
    /// When it came, for the fleet's listing order.
    pub(super) order: u64,
    /// Its server; `None` while it is down.
    pub(super) server: Option<Server>,
    app: crate::http::AppState,
    registrar: Option<RegistrarHandle>,
    /// Set when it is removed: the collector thread drops its collector.
    gone: Arc<AtomicBool>,
}

/// Binds node `n`'s address.
pub(super) fn bind(n: &FleetNode) -> anyhow::Result<Bound> {
    crate::http::serve::bind(&n.listen.to_string()).with_context(|| {
        format!(
            "node {}: cannot listen on {} (addresses beyond 127.0.0.1 need Linux's \
             127.0.0.0/8 loopback)",
            n.name, n.listen
        )
    })
}

/// The agent configuration of one simulated node: fake GPUs, its name, labels and pool,
/// no node metrics.
fn node_config(n: &FleetNode, opts: &FleetOptions) -> AgentConfig {
    let mut cfg = AgentConfig::default();
    cfg.gpu.backend = BackendKind::Fake;
    cfg.gpu.fake_count = n.gpus;
    cfg.gpu.fake_model = n.model.clone();
    cfg.gpu.fake_seed = node_seed(opts.seed, &n.name);
    cfg.node.id = n.name.clone();
    cfg.node.labels = n.labels.clone();
    cfg.server.listen = n.listen.to_string();
    cfg.collector.interval = opts.interval;
    cfg.metrics.system = false;
    if let Some((url, _)) = &opts.join {
        cfg.control_plane.url = url.clone();
        cfg.control_plane.pool = n.pool.clone();
        cfg.control_plane.advertise = format!("http://{}", n.listen);
        cfg.control_plane.notify_urgent = false;
    }
    cfg
}

/// Builds node `n` on `bound` (within a tokio runtime): it serves at once, and joins the
/// control plane with `token` when the fleet joins one. The collector goes to the fleet's
/// thread.
pub(super) fn build(
    n: &FleetNode,
    bound: Bound,
    opts: &FleetOptions,
    token: Option<String>,
) -> anyhow::Result<(Node, Driven)> {
    let cfg = node_config(n, opts);
    let opened = crate::open_backend(&cfg, &n.name)?;
    let instance = format!("{:016x}", fastrand::u64(..));
    let events = Arc::new(Mutex::new(EventLog::new(cfg.events.capacity, instance)));
    let snapshot = Arc::new(RwLock::new(Arc::default()));
    let mut settings = CollectorSettings::defaults(&n.name);
    settings.node_labels = n
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    settings.interval = opts.interval;
    let mut collector = Collector::new(
        settings,
        Arc::clone(&opened.gpus),
        Arc::clone(&events),
        Arc::clone(&snapshot),
    )
    .with_context(|| format!("node {}: reading its fake GPUs", n.name))?;
    let (tx, rx) = mpsc::channel::<Msg>();
    let sink_tx = Mutex::new(tx.clone());
    let sink: crate::backend::EventSink = Box::new(move |e| {
        sink_tx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(Msg::Backend(e))
            .is_ok()
    });
    if opened.gpus.start_events(sink).is_ok() {
        collector.set_gpu_events_up(true);
    }
    collector.collect();
    let inventory = collector.inventory().clone();
    let auth = Arc::new(crate::commands::CommandAuth::default());
    let runner = crate::commands::Commands::new(
        cfg.commands.clone(),
        n.name.clone(),
        Arc::clone(&snapshot),
        None,
        None,
    );
    let addr = bound.addrs().first().copied().unwrap_or(n.listen);
    let registrar = match (&opts.join, token) {
        (Some(_), Some(token)) => Some(crate::startup::start_registration(
            &cfg,
            vec![token],
            &n.name,
            &inventory,
            "fake",
            addr,
            (Arc::clone(&auth), None, None),
        )?),
        _ => None,
    };
    let app = crate::http::AppState {
        snapshot,
        events,
        fake: opened.fake,
        collector: tx,
        plugins: None,
        commands: Some(runner),
        command_auth: auth,
        reload: None,
    };
    let server = bound.serve(crate::http::router(app.clone()));
    // Phases spread over the interval, as independent machines' are.
    let phase = opts.interval.mul_f64(fastrand::f64());
    let gone = Arc::new(AtomicBool::new(false));
    Ok((
        Node {
            addr,
            order: 0,
            server: Some(server),
            app,
            registrar,
            gone: Arc::clone(&gone),
        },
        Driven {
            collector,
            rx,
            next: Instant::now() + phase,
            gone,
        },
    ))
}

impl Node {
    /// Serves again on its address after a `down` (within a tokio runtime); nothing when
    /// it serves.
    pub(super) fn serve_again(&mut self) -> anyhow::Result<()> {
        if self.server.is_some() {
            return Ok(());
        }
        let b = crate::http::serve::bind(&self.addr.to_string())
            .with_context(|| format!("cannot listen on {} again", self.addr))?;
        self.server = Some(b.serve(crate::http::router(self.app.clone())));
        Ok(())
    }

    /// Its registrar and server, to be stopped by the caller; its collection ends.
    pub(super) fn parts(self) -> (Option<RegistrarHandle>, Option<Server>) {
        self.gone.store(true, Ordering::SeqCst);
        (self.registrar, self.server)
    }

    /// Deregisters (when joined), stops serving and collecting.
    pub(super) async fn stop(self) {
        let (registrar, server) = self.parts();
        if let Some(r) = registrar {
            let _ = tokio::task::spawn_blocking(move || r.stop()).await;
        }
        if let Some(s) = server {
            s.stop().await;
        }
    }
}
