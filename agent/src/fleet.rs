//! Many simulated agents in one process: `gpuwarden-agent fleet`, for `gpuwarden simulate`
//! and fleet-scale benchmarks.
//!
//! Each node is built from the agent's own parts, not a second fake: a
//! [`FakeBackend`](crate::backend::fake::FakeBackend) seeded by the node's name, a
//! [`Collector`], an [`EventLog`], the command runner and the HTTP
//! [`router`](crate::http::router), served on an address of its own (one loopback
//! address per node, `127.1.0.1`, `127.1.0.2`, …, as a real fleet has one host per agent).
//! A control plane scrapes its `/metrics`, reads its `/v1/events`, sends it `/v1/commands`
//! and injects faults through its `/v1/fake/inject` as with a real agent, and with a
//! bootstrap token every node joins through the agent's own registration.
//!
//! What differs from `gpuwarden-agent --fake-gpus N`: one thread collects for every node
//! (a real agent has a collector thread of its own), and there are no plugins, no kernel
//! log, no node metrics, no urgent notices and nothing written to disk.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::collector::{Collector, CollectorSettings, Msg};
use crate::config::{AgentConfig, BackendKind};
use crate::events::EventLog;
use crate::http::serve::Server;

pub mod cli;

/// Most nodes one process hosts.
pub const MAX_NODES: usize = 100_000;

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

fn eight() -> u32 {
    8
}

fn h100() -> String {
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
}

/// `count` nodes named `{prefix}{i:05}` on consecutive addresses from `first`, all on
/// `port`.
pub fn uniform(
    count: usize,
    prefix: &str,
    first: std::net::Ipv4Addr,
    port: u16,
    gpus: u32,
    model: &str,
) -> anyhow::Result<Vec<FleetNode>> {
    anyhow::ensure!(
        (1..=MAX_NODES).contains(&count),
        "--nodes must be 1 to {MAX_NODES}"
    );
    let base = u32::from(first);
    (0..count)
        .map(|i| {
            let ip = u32::try_from(i)
                .ok()
                .and_then(|i| base.checked_add(i))
                .context("the addresses run past 255.255.255.255")?;
            Ok(FleetNode {
                name: format!("{prefix}{i:05}"),
                listen: SocketAddr::from((std::net::Ipv4Addr::from(ip), port)),
                gpus,
                model: model.to_string(),
                labels: BTreeMap::new(),
                pool: String::new(),
            })
        })
        .collect()
}

/// Every problem of a node list at once (names unique and valid, addresses unique, GPU
/// counts in range), or none.
pub fn check(nodes: &[FleetNode]) -> Vec<String> {
    let mut p = Vec::new();
    if nodes.is_empty() || nodes.len() > MAX_NODES {
        p.push(format!("1 to {MAX_NODES} nodes, not {}", nodes.len()));
    }
    let mut names = std::collections::HashSet::new();
    let mut addrs = std::collections::HashSet::new();
    for (i, n) in nodes.iter().enumerate() {
        let at = format!("nodes[{i}] ({})", n.name);
        if n.name.is_empty()
            || n.name.len() > 253
            || !n
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            p.push(format!(
                "{at}: a name is 1 to 253 letters, digits, '-', '_' or '.'"
            ));
        }
        if !names.insert(n.name.as_str()) {
            p.push(format!("{at}: name given twice"));
        }
        if !addrs.insert(n.listen) {
            p.push(format!("{at}: address {} given twice", n.listen));
        }
        if !(1..=64).contains(&n.gpus) {
            p.push(format!("{at}: gpus must be 1 to 64, not {}", n.gpus));
        }
    }
    p
}

/// A collector and what it reads, driven by the fleet's one thread.
struct Driven {
    collector: Collector,
    rx: Receiver<Msg>,
    next: Instant,
}

/// The running fleet; [`Fleet::stop`] stops every node.
pub struct Fleet {
    /// Each node's name and the address it serves on, in the order given.
    pub nodes: Vec<(String, SocketAddr)>,
    servers: Vec<Server>,
    registrars: Vec<crate::register::RegistrarHandle>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet")
            .field("nodes", &self.nodes.len())
            .finish()
    }
}

/// Node `name`'s fake-GPU seed: 0 stays 0 (the agent then seeds by the name), any other
/// seed is mixed with the name, so the nodes of one fleet differ and the same seed gives the
/// same fleet again.
fn node_seed(seed: u64, name: &str) -> u64 {
    if seed == 0 {
        return 0;
    }
    let h = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    (h ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15)).max(1)
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

/// Starts every node (within a tokio runtime): binds each address first, so a fleet that
/// cannot bind one address starts none.
pub fn start(nodes: &[FleetNode], opts: &FleetOptions) -> anyhow::Result<Fleet> {
    let problems = check(nodes);
    anyhow::ensure!(problems.is_empty(), "{}", problems.join("\n"));
    let mut bound = Vec::with_capacity(nodes.len());
    for n in nodes {
        let b = crate::http::serve::bind(&n.listen.to_string()).with_context(|| {
            format!(
                "node {}: cannot listen on {} (addresses beyond 127.0.0.1 need Linux's \
                 127.0.0.0/8 loopback)",
                n.name, n.listen
            )
        })?;
        bound.push(b);
    }
    let mut driven = Vec::with_capacity(nodes.len());
    let mut servers = Vec::with_capacity(nodes.len());
    let mut registrars = Vec::new();
    let mut names = Vec::with_capacity(nodes.len());
    for (n, b) in nodes.iter().zip(bound) {
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
        let addr = b.addrs().first().copied().unwrap_or(n.listen);
        if let Some((_, token)) = &opts.join {
            registrars.push(crate::startup::start_registration(
                &cfg,
                vec![token.clone()],
                &n.name,
                &inventory,
                "fake",
                addr,
                (Arc::clone(&auth), None),
            )?);
        }
        let state = crate::http::AppState {
            snapshot,
            events,
            fake: opened.fake,
            collector: tx,
            plugins: None,
            commands: Some(runner),
            command_auth: auth,
            reload: None,
        };
        servers.push(b.serve(crate::http::router(state)));
        names.push((n.name.clone(), addr));
        // Phases spread over the interval, as independent machines' are.
        let phase = opts.interval.mul_f64(fastrand::f64());
        driven.push(Driven {
            collector,
            rx,
            next: Instant::now() + phase,
        });
    }
    let stop = Arc::new(AtomicBool::new(false));
    let thread = {
        let stop = Arc::clone(&stop);
        let interval = opts.interval;
        std::thread::Builder::new()
            .name("fleet-collector".into())
            .spawn(move || drive(driven, interval, &stop))
            .context("starting the fleet's collector thread")?
    };
    Ok(Fleet {
        nodes: names,
        servers,
        registrars,
        stop,
        thread: Some(thread),
    })
}

/// How often the collector thread looks for messages (an injected fault, a command's
/// collect-now) between collections: the latency a fault adds, at most.
const POLL: Duration = Duration::from_millis(50);

/// The fleet's one collector loop: each node collected when due, its messages handled as
/// its own collector thread would, until `stop`.
fn drive(mut nodes: Vec<Driven>, interval: Duration, stop: &AtomicBool) {
    let mut acks = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        let now = Instant::now();
        for n in &mut nodes {
            if now >= n.next {
                n.collector.collect();
                n.next += interval;
                if n.next <= now {
                    n.next = now + interval;
                }
            }
            let mut handled = false;
            while let Ok(m) = n.rx.try_recv() {
                handled = true;
                // Only `Shutdown` asks to stop, and nothing here sends it.
                let _ = n.collector.handle(m, &mut acks);
            }
            if handled {
                n.collector.publish();
            }
            for a in acks.drain(..) {
                let _ = a.send(());
            }
        }
        std::thread::sleep(POLL);
    }
}

impl Fleet {
    /// Deregisters every node (when joined), stops the servers, then the collector thread.
    pub async fn stop(mut self) {
        let registrars = std::mem::take(&mut self.registrars);
        let _ = tokio::task::spawn_blocking(move || {
            for r in registrars {
                r.stop();
            }
        })
        .await;
        for s in std::mem::take(&mut self.servers) {
            s.stop().await;
        }
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
    }
}

#[cfg(test)]
mod tests;
