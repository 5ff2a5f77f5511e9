//! `gpuwarden-agent fleet`: the flags' meaning and the run until SIGINT or SIGTERM.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use super::{start, uniform, FleetNode, FleetOptions};

/// What `gpuwarden-agent fleet` was asked (docs/simulate.md).
#[derive(Debug, Clone)]
pub struct FleetArgs {
    /// Nodes listed in a JSON file (an array of [`FleetNode`]).
    pub spec: Option<PathBuf>,
    /// Or this many alike nodes.
    pub nodes: Option<usize>,
    /// Their names' prefix.
    pub prefix: String,
    /// The first node's address; the next ones follow it.
    pub first_address: Ipv4Addr,
    /// The port every node listens on.
    pub port: u16,
    /// GPUs per node.
    pub gpus: u32,
    /// GPU model.
    pub model: String,
    /// Collection interval.
    pub interval: Duration,
    /// Join this control plane (bootstrap token from `GPUWARDEN_BOOTSTRAP_TOKEN`).
    pub control_plane: Option<String>,
    /// Fake GPUs' seed (0: each node by its name).
    pub seed: u64,
    /// Serve the control API here ([`super::control`]).
    pub control: Option<std::net::SocketAddr>,
    /// The first address (and port) of nodes added through the control API.
    pub spare_from: std::net::SocketAddr,
}

/// The node list the flags ask for.
fn nodes(a: &FleetArgs) -> anyhow::Result<Vec<FleetNode>> {
    match (&a.spec, a.nodes) {
        (Some(f), None) => {
            let text =
                std::fs::read_to_string(f).map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))?;
            serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))
        }
        (None, Some(n)) => uniform(n, &a.prefix, a.first_address, a.port, a.gpus, &a.model),
        (None, None) if a.control.is_some() => Ok(Vec::new()),
        _ => anyhow::bail!("give --spec FILE or --nodes N"),
    }
}

/// Raises the open-file limit to its hard limit: a node is a listening socket, and each
/// scrape a connection.
fn raise_open_files() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let l = getrlimit(Resource::Nofile);
    // `None` is unlimited.
    if l.current.is_some() && l.current != l.maximum {
        let _ = setrlimit(
            Resource::Nofile,
            rustix::process::Rlimit {
                current: l.maximum,
                maximum: l.maximum,
            },
        );
    }
}

/// Serves the fleet until SIGINT or SIGTERM. Exit status: 0 after a signal, 2 bad flags or
/// node list, 1 it could not start.
pub fn main(a: FleetArgs) -> ExitCode {
    let list = match nodes(&a) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    if let Some(c) = a.control.filter(|c| !c.ip().is_loopback()) {
        eprintln!("error: --control {c}: the control API has no authentication, so it listens on a loopback address only");
        return ExitCode::from(2);
    }
    if a.control.is_some() && !a.spare_from.ip().is_loopback() {
        eprintln!(
            "error: --spare-from {}: nodes added through the control API serve /v1/fake/inject without authentication, so on loopback addresses only",
            a.spare_from
        );
        return ExitCode::from(2);
    }
    let problems = if list.is_empty() && a.control.is_some() {
        Vec::new()
    } else {
        super::check(&list)
    };
    if !problems.is_empty() {
        eprintln!("error: the node list is not valid:");
        for p in problems {
            eprintln!("  - {p}");
        }
        return ExitCode::from(2);
    }
    let join = match (&a.control_plane, std::env::var("GPUWARDEN_BOOTSTRAP_TOKEN")) {
        (Some(url), Ok(t)) if !t.trim().is_empty() => Some((url.clone(), t.trim().to_string())),
        (Some(_), _) => {
            eprintln!(
                "error: --control-plane needs the bootstrap token in GPUWARDEN_BOOTSTRAP_TOKEN"
            );
            return ExitCode::from(2);
        }
        (None, _) => None,
    };
    raise_open_files();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let opts = FleetOptions {
        interval: a.interval,
        join,
        seed: a.seed,
        spare: a.control.map(|_| a.spare_from),
    };
    rt.block_on(async {
        let shutdown = crate::ShutdownSignal::install();
        let fleet = match start(&list, &opts) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("error: {e:#}");
                return ExitCode::FAILURE;
            }
        };
        let nodes = fleet.nodes();
        let (first, last) = (nodes.first(), nodes.last());
        if let (Some(f), Some(l)) = (first, last) {
            println!(
                "serving {} simulated agents: {} on http://{} … {} on http://{}",
                nodes.len(),
                f.0,
                f.1,
                l.0,
                l.1
            );
        }
        let control = match a.control {
            Some(addr) => match crate::http::serve::bind(&addr.to_string()) {
                Ok(b) => {
                    let at = b.addrs().first().copied().unwrap_or(addr);
                    println!("fleet control API on http://{at}");
                    Some(b.serve(super::control::router(fleet.clone())))
                }
                Err(e) => {
                    eprintln!("error: --control {addr}: {e}");
                    fleet.stop().await;
                    return ExitCode::FAILURE;
                }
            },
            None => None,
        };
        shutdown.wait().await;
        tracing::info!("stopping the fleet");
        if let Some(c) = control {
            c.stop().await;
        }
        fleet.stop().await;
        ExitCode::SUCCESS
    })
}
