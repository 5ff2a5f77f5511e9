//! Many simulated agents in one process: `gpuwarden-agent fleet`, for `gpuwarden simulate`
//! and fleet-scale benchmarks.
//!
//! Each node is built from the agent's own parts, not a second fake: a
//! [`FakeBackend`](crate::backend::fake::FakeBackend) seeded by the node's name, a
//! [`Collector`](crate::collector::Collector), an [`EventLog`](crate::events::EventLog),
//! the command runner and the HTTP
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
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;

use node::{Driven, Node};
pub use node::{FleetNode, FleetOptions};

pub mod cli;
pub mod control;
mod node;

/// Most nodes one process hosts.
pub const MAX_NODES: usize = 100_000;

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
/// counts in range), or none. An empty list is refused: a fleet of no nodes starts only
/// with a control API that adds them ([`start`] with [`FleetOptions::spare`]).
pub fn check(nodes: &[FleetNode]) -> Vec<String> {
    let mut p = Vec::new();
    if nodes.is_empty() || nodes.len() > MAX_NODES {
        p.push(format!("1 to {MAX_NODES} nodes, not {}", nodes.len()));
    }
    p.extend(check_each(nodes));
    p
}

/// The problems of each node (and of names or addresses given twice).
fn check_each(nodes: &[FleetNode]) -> Vec<String> {
    let mut p = Vec::new();
    let mut names = std::collections::HashSet::new();
    let mut addrs = std::collections::HashSet::new();
    for (i, n) in nodes.iter().enumerate() {
        // A name is echoed up to 64 characters.
        let shown: String = n.name.chars().take(64).collect();
        let at = format!("nodes[{i}] ({shown})");
        if !is_name(&n.name) {
            p.push(format!(
                "{at}: a name is 1 to 63 letters, digits, '-', '_' or '.', starting with a letter or digit (the control plane's rule)"
            ));
        }
        if !n.pool.is_empty() && !is_name(&n.pool) {
            p.push(format!("{at}: a pool name follows the same rule"));
        }
        if n.model.trim().is_empty() || n.model.len() > 256 || n.model.chars().any(char::is_control)
        {
            p.push(format!(
                "{at}: model must be 1 to 256 characters, none a control character"
            ));
        }
        if n.labels.len() > 32 {
            p.push(format!("{at}: at most 32 labels"));
        }
        for (k, v) in &n.labels {
            let k_ok = !k.is_empty()
                && k.len() <= 63
                && !k.starts_with("__")
                && k.bytes()
                    .next()
                    .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
                && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !k_ok {
                let k: String = k.chars().take(64).collect();
                p.push(format!(
                    "{at}: label {k:?} is not a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*, at most 63, not __…)"
                ));
            }
            if v.len() > 256 || v.chars().any(char::is_control) {
                p.push(format!(
                    "{at}: label {k:?}'s value must be at most 256 characters, none a control character"
                ));
            }
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

/// A node or pool name as the control plane takes it: 1 to 63 letters, digits, `-`, `_` or
/// `.`, starting with a letter or digit.
fn is_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"._-".contains(c))
}

/// Why [`Fleet::add`], [`Fleet::remove`], [`Fleet::down`] or [`Fleet::up`] refused.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// The node's description is not valid (every problem).
    #[error("{0}")]
    Invalid(String),
    /// A node of that name is there already.
    #[error("node {0} exists")]
    Exists(String),
    /// No node of that name.
    #[error("no node {0}")]
    NotFound(String),
    /// The fleet has no spare addresses ([`FleetOptions::spare`] unset or used up), or
    /// [`MAX_NODES`] nodes already.
    #[error("{0}")]
    Full(String),
    /// Binding its address or reading its fake GPUs failed.
    #[error("{0:#}")]
    Start(anyhow::Error),
}

/// The running fleet: its nodes can be added, removed, taken down and brought up again
/// while it runs; [`Fleet::stop`] stops every node. Clones share the one fleet.
#[derive(Clone)]
pub struct Fleet {
    shared: Arc<Shared>,
}

struct Shared {
    opts: FleetOptions,
    nodes: Mutex<Nodes>,
    /// Held through a whole [`Fleet::add`], so two adds of one name cannot both pass.
    adding: Mutex<()>,
    add: Mutex<Sender<Driven>>,
    stop: Arc<AtomicBool>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// The nodes by name, with the order they came in and the next spare address.
#[derive(Default)]
struct Nodes {
    by_name: BTreeMap<String, Node>,
    next_order: u64,
    next_spare: Option<SocketAddr>,
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet")
            .field("nodes", &self.shared.lock().by_name.len())
            .finish()
    }
}

/// A node as [`Fleet::list`] gives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Listed {
    /// Its name.
    pub name: String,
    /// The address it serves on (when up).
    pub address: SocketAddr,
    /// Serving (false after [`Fleet::down`]).
    pub up: bool,
}

/// Starts every node (within a tokio runtime): binds each address first, so a fleet that
/// cannot bind one address starts none. `nodes` may be empty only with
/// [`FleetOptions::spare`] (nodes come later through [`Fleet::add`]).
pub fn start(nodes: &[FleetNode], opts: &FleetOptions) -> anyhow::Result<Fleet> {
    let problems = if nodes.is_empty() && opts.spare.is_some() {
        Vec::new()
    } else {
        check(nodes)
    };
    anyhow::ensure!(problems.is_empty(), "{}", problems.join("\n"));
    let mut bound = Vec::with_capacity(nodes.len());
    for n in nodes {
        bound.push(node::bind(n)?);
    }
    let (tx, rx) = mpsc::channel::<Driven>();
    let stop = Arc::new(AtomicBool::new(false));
    let thread = {
        let stop = Arc::clone(&stop);
        let interval = opts.interval;
        std::thread::Builder::new()
            .name("fleet-collector".into())
            .spawn(move || drive(&rx, interval, &stop))
            .context("starting the fleet's collector thread")?
    };
    let fleet = Fleet {
        shared: Arc::new(Shared {
            opts: opts.clone(),
            nodes: Mutex::new(Nodes {
                next_spare: opts.spare,
                ..Nodes::default()
            }),
            add: Mutex::new(tx),
            adding: Mutex::new(()),
            stop,
            thread: Mutex::new(Some(thread)),
        }),
    };
    for (n, b) in nodes.iter().zip(bound) {
        let token = fleet.shared.opts.join.as_ref().map(|(_, t)| t.clone());
        if let Err(e) = fleet.shared.insert(n, b, token) {
            fleet.shared.halt();
            return Err(e);
        }
    }
    Ok(fleet)
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Nodes> {
        self.nodes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Builds node `n` on its bound socket and hands its collector to the thread.
    fn insert(
        &self,
        n: &FleetNode,
        bound: crate::http::serve::Bound,
        token: Option<String>,
    ) -> anyhow::Result<SocketAddr> {
        let (node, driven) = node::build(n, bound, &self.opts, token)?;
        let addr = node.addr;
        self.add
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(driven)
            .map_err(|_| anyhow::anyhow!("the fleet's collector thread has stopped"))?;
        let mut nodes = self.lock();
        nodes.next_order += 1;
        let mut node = node;
        node.order = nodes.next_order;
        nodes.by_name.insert(n.name.clone(), node);
        Ok(addr)
    }

    /// Stops the collector thread (the nodes' servers are stopped by their owner).
    fn halt(&self) {
        self.stop.store(true, Ordering::SeqCst);
        let t = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(t) = t {
            let _ = t.join();
        }
    }
}

/// How often the collector thread looks for messages (an injected fault, a command's
/// collect-now) between collections: the latency a fault adds, at most.
const POLL: Duration = Duration::from_millis(50);

/// The fleet's one collector loop: each node collected when due, its messages handled as
/// its own collector thread would, nodes added and removed as they come, until `stop`.
fn drive(added: &Receiver<Driven>, interval: Duration, stop: &AtomicBool) {
    let mut nodes: Vec<Driven> = Vec::new();
    let mut acks = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        nodes.extend(added.try_iter());
        nodes.retain(|n| !n.gone.load(Ordering::SeqCst));
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
    /// Each node's name and the address it serves on, in the order they came.
    pub fn nodes(&self) -> Vec<(String, SocketAddr)> {
        self.list()
            .into_iter()
            .map(|l| (l.name, l.address))
            .collect()
    }

    /// Every node, in the order they came.
    pub fn list(&self) -> Vec<Listed> {
        let nodes = self.shared.lock();
        let mut v: Vec<(u64, Listed)> = nodes
            .by_name
            .iter()
            .map(|(name, n)| {
                (
                    n.order,
                    Listed {
                        name: name.clone(),
                        address: n.addr,
                        up: n.server.is_some(),
                    },
                )
            })
            .collect();
        v.sort_by_key(|(o, _)| *o);
        v.into_iter().map(|(_, l)| l).collect()
    }

    /// Adds a node while the fleet runs, on the next spare address (its `listen` is not
    /// used); it joins with `token` (a join token of its own, or the fleet's bootstrap
    /// token when `None`). Within a tokio runtime. Errors: [`FleetError`].
    pub fn add(&self, n: &FleetNode, token: Option<String>) -> Result<SocketAddr, FleetError> {
        let problems = check_each(std::slice::from_ref(n));
        if !problems.is_empty() {
            // Said of this node, not of a list's first entry.
            let at = format!("nodes[0] ({}): ", n.name);
            let problems: Vec<String> = problems.iter().map(|p| p.replace(&at, "")).collect();
            return Err(FleetError::Invalid(problems.join("; ")));
        }
        let _adding = self.shared.adding.lock().unwrap_or_else(|p| p.into_inner());
        let (mut node, bound) = {
            let mut nodes = self.shared.lock();
            if nodes.by_name.contains_key(&n.name) {
                return Err(FleetError::Exists(n.name.clone()));
            }
            if nodes.by_name.len() >= MAX_NODES {
                return Err(FleetError::Full(format!("{MAX_NODES} nodes already")));
            }
            let mut at = nodes.next_spare.ok_or_else(|| {
                FleetError::Full("this fleet takes no nodes (no spare addresses)".into())
            })?;
            // The next address that binds (the bind itself says whether it is in use; no
            // list of the nodes' addresses is walked, so an add costs the same at any size).
            let mut tries = 0;
            loop {
                tries += 1;
                let next = next_address(at);
                let mut probe = n.clone();
                probe.listen = at;
                if let Ok(b) = node::bind(&probe) {
                    nodes.next_spare = next;
                    break (probe, b);
                }
                match next {
                    Some(a) if tries < 1024 => at = a,
                    _ => {
                        return Err(FleetError::Full(format!(
                            "no spare address binds (last tried {at}; the spare addresses end at 127.255.255.255)"
                        )))
                    }
                }
            }
        };
        let token = token.or_else(|| self.shared.opts.join.as_ref().map(|(_, t)| t.clone()));
        node.listen = bound.addrs().first().copied().unwrap_or(node.listen);
        self.shared
            .insert(&node, bound, token)
            .map_err(FleetError::Start)
    }

    /// Removes node `name`: deregisters it (when joined), stops its server and its
    /// collection, as a machine terminated with a clean shutdown.
    pub async fn remove(&self, name: &str) -> Result<(), FleetError> {
        let node = self
            .shared
            .lock()
            .by_name
            .remove(name)
            .ok_or_else(|| FleetError::NotFound(name.to_string()))?;
        node.stop().await;
        Ok(())
    }

    /// Takes node `name` down as if its agent had died: its server stops (connections are
    /// refused), its GPUs keep their state; [`Fleet::up`] serves it again. A node already
    /// down stays down.
    pub async fn down(&self, name: &str) -> Result<(), FleetError> {
        let server = {
            let mut nodes = self.shared.lock();
            let n = nodes
                .by_name
                .get_mut(name)
                .ok_or_else(|| FleetError::NotFound(name.to_string()))?;
            n.server.take()
        };
        if let Some(s) = server {
            s.stop().await;
        }
        Ok(())
    }

    /// Serves node `name` again on its address, as an agent restarted with its state. A
    /// node that is up stays up. Within a tokio runtime.
    pub fn up(&self, name: &str) -> Result<(), FleetError> {
        let mut nodes = self.shared.lock();
        let n = nodes
            .by_name
            .get_mut(name)
            .ok_or_else(|| FleetError::NotFound(name.to_string()))?;
        n.serve_again().map_err(FleetError::Start)
    }

    /// Deregisters every node (when joined), stops the servers, then the collector thread.
    pub async fn stop(self) {
        let nodes = std::mem::take(&mut self.shared.lock().by_name);
        let mut regs = Vec::new();
        let mut servers = Vec::new();
        for (_, n) in nodes {
            let (r, s) = n.parts();
            regs.extend(r);
            servers.extend(s);
        }
        let _ = tokio::task::spawn_blocking(move || {
            for r in regs {
                r.stop();
            }
        })
        .await;
        for s in servers {
            s.stop().await;
        }
        let shared = Arc::clone(&self.shared);
        let _ = tokio::task::spawn_blocking(move || shared.halt()).await;
    }
}

/// The address after `a` (same port) within 127.0.0.0/8; `None` past its end or for IPv6.
fn next_address(a: SocketAddr) -> Option<SocketAddr> {
    match a {
        SocketAddr::V4(v4) => u32::from(*v4.ip())
            .checked_add(1)
            .map(std::net::Ipv4Addr::from)
            .filter(std::net::Ipv4Addr::is_loopback)
            .map(|ip| SocketAddr::from((ip, v4.port()))),
        SocketAddr::V6(_) => None,
    }
}

#[cfg(test)]
mod tests;
