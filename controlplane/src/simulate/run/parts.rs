//! The parts of a run that talk to the processes: the fleet's node list, the control
//! plane's config, the fleet read through `GET /v1/nodes`, faults injected, expectations
//! checked.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::cli::client::Client;
use crate::simulate::report::{self, Seen};
use crate::simulate::scenario::{Expect, Fault, Scenario};

/// Each node's base URL and labels, by name.
pub(super) type Urls = BTreeMap<String, (String, BTreeMap<String, String>)>;

/// Whether a fault reaches a node (by its name and what the listing says of it).
type Pick<'a> = Box<dyn Fn(&str, &Seen) -> bool + 'a>;

/// The scenario's fleet as `gpuwarden-agent fleet --spec` takes it: node `i` on
/// `127.2.0.1 + i`, all on `port`.
pub(super) fn fleet_spec(s: &Scenario, port: u16) -> (Value, Urls) {
    let base = u32::from(std::net::Ipv4Addr::new(127, 2, 0, 1));
    let mut urls = BTreeMap::new();
    let nodes: Vec<Value> = s
        .nodes()
        .into_iter()
        .enumerate()
        .map(|(i, n)| {
            let ip = std::net::Ipv4Addr::from(base + u32::try_from(i).unwrap_or(0));
            let listen = format!("{ip}:{port}");
            urls.insert(
                n.name.clone(),
                (format!("http://{listen}"), n.labels.clone()),
            );
            json!({"name": n.name, "listen": listen, "gpus": n.gpus, "model": n.model,
                   "labels": n.labels, "pool": n.pool})
        })
        .collect();
    (Value::Array(nodes), urls)
}

/// The control plane's configuration for a simulation.
pub(super) fn control_plane_toml(s: &Scenario, dir: &Path, port: u16, bootstrap: &str) -> String {
    let iv = humantime::format_duration(s.control_plane.scrape_interval);
    format!(
        "# A simulation's control plane (config/controlplane.toml documents every key).\n\
         [server]\nlisten = \"127.0.0.1:{port}\"\ndata_dir = \"{d}\"\n\n\
         [database]\nurl = \"sqlite://{d}/gpuwarden.db\"\nflush_interval = \"2s\"\n\n\
         [scrape]\ninterval = \"{iv}\"\ntimeout = \"{iv}\"\n\n\
         [auth]\nbootstrap_tokens = [\"{bootstrap}\"]\n\n\
         [commands]\npoll_interval = \"200ms\"\n\n\
         [pool_manager]\ninterval = \"{pi}\"\nreconcile_interval = \"5s\"\ncall_timeout = \"30s\"\n\n{extra}\n",
        d = dir.display(),
        pi = humantime::format_duration(s.control_plane.pool_interval),
        extra = s.control_plane.extra
    )
}

/// Every page of `GET /v1/nodes`.
pub(super) fn list(client: &Client) -> Result<BTreeMap<String, Seen>, String> {
    let mut pages = Vec::new();
    let mut offset = 0;
    loop {
        let page = client
            .call(
                "GET",
                &format!("/v1/nodes?limit=1000&offset={offset}"),
                None,
            )
            .map_err(|e| e.to_string())?;
        let n = page["nodes"].as_array().map_or(0, Vec::len);
        pages.push(page);
        if n < 1000 {
            break;
        }
        offset += 1000;
    }
    Ok(report::read_nodes(&pages))
}

/// The body of `POST /v1/fake/inject` for a fault.
pub(super) fn inject_body(f: &Fault) -> Value {
    if f.fault == "agent_down" {
        // Not a GPU's: the agent as a whole, for `for` (none: to the end).
        return json!({"fault": f.fault, "for_s": f.down_for.map(|d| d.as_secs_f64())});
    }
    let mut b = json!({"gpu": f.gpu, "fault": f.fault});
    let mut put = |k: &str, v: Value| {
        if !v.is_null() {
            b[k] = v;
        }
    };
    put("code", json!(f.code));
    put("value", json!(f.value));
    put("type", json!(f.ecc_type));
    put("count", json!(f.count));
    put("link", json!(f.link));
    put("reason", json!(f.reason));
    b
}

/// How many injections run at once (a rack's or a zone's nodes).
const INJECTORS: usize = 16;

/// The nodes fault number `index` reaches now: its target's name and each node's name and
/// agent URL. Nodes come from the last look at the fleet (terminated ones and those with
/// no address left out); a pool's `nodes = K` are picked by `seed`.
pub(super) fn targets(
    f: &Fault,
    index: usize,
    nodes: &BTreeMap<String, Seen>,
    seed: u64,
) -> (String, Vec<(String, String)>) {
    let (target, pick): (String, Pick<'_>) = match (&f.node, &f.rack, &f.zone, &f.pool) {
        (Some(n), ..) => (format!("node:{n}"), Box::new(move |name, _| name == n)),
        (_, Some(r), ..) => (
            format!("rack:{r}"),
            Box::new(move |_, s| s.labels.get("rack") == Some(r)),
        ),
        (_, _, Some(z), _) => (
            format!("zone:{z}"),
            Box::new(move |_, s| s.labels.get("zone") == Some(z)),
        ),
        (.., Some(p)) => (format!("pool:{p}"), Box::new(move |_, s| &s.pool == p)),
        _ => (String::new(), Box::new(|_, _| false)),
    };
    let mut picked: Vec<(String, String)> = nodes
        .iter()
        .filter(|(name, s)| s.status != "terminated" && pick(name, s))
        .filter_map(|(name, s)| Some((name.clone(), s.address.clone()?)))
        .collect();
    if let Some(k) = f.nodes {
        let mut rng = fastrand::Rng::with_seed(seed ^ (index as u64).wrapping_mul(0x9e37_79b9));
        rng.shuffle(&mut picked);
        picked.truncate(k as usize);
        picked.sort();
    }
    (target, picked)
}

/// Sends `path` (with `body`) to every node of `picked`, [`INJECTORS`] at a time: each node
/// reached with when (ms after `t0`), and the errors. `url_of` gives a node's URL to post
/// to from its name and agent URL.
pub(super) fn send_all(
    picked: &[(String, String)],
    url_of: &(dyn Fn(&str, &str) -> String + Sync),
    body: Option<&Value>,
    http: &ureq::Agent,
    t0: Instant,
) -> (Vec<(String, u64)>, Vec<String>) {
    let one = |(name, url): &(String, String)| {
        let at = u64::try_from(t0.elapsed().as_millis()).unwrap_or(u64::MAX);
        let to = url_of(name, url);
        let r = match body {
            Some(b) => http.post(&to).send_json(b),
            None => http.post(&to).send_empty(),
        };
        match r {
            Ok(r) if r.status().is_success() => Ok((name.clone(), at)),
            Ok(mut r) => Err(format!(
                "{name}: HTTP {} {}",
                r.status().as_u16(),
                r.body_mut().read_to_string().unwrap_or_default()
            )),
            Err(e) => Err(format!("{name}: {e}")),
        }
    };
    let chunk = picked.len().div_ceil(INJECTORS).max(1);
    let results: Vec<Result<(String, u64), String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = picked
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(one).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let (mut reached, mut errors) = (Vec::new(), Vec::new());
    for r in results {
        match r {
            Ok(n) => reached.push(n),
            Err(e) => errors.push(e),
        }
    }
    (reached, errors)
}

/// Checks one expectation against the fleet now.
pub(super) fn check(
    e: &Expect,
    nodes: &BTreeMap<String, Seen>,
    faulted: &BTreeSet<String>,
    pools: Option<&Value>,
) -> (bool, String) {
    let matches = |s: &Seen| {
        e.health.as_deref().is_none_or(|h| s.health == h)
            && e.status.as_deref().is_none_or(|st| s.status == st)
            && e.connectivity
                .as_deref()
                .is_none_or(|c| s.connectivity == c)
    };
    let held_in = |pool: Option<&str>| {
        nodes
            .values()
            .filter(|s| s.held && pool.is_none_or(|p| s.pool == p))
            .count()
    };
    if let Some(p) = &e.pool {
        let view = pools
            .and_then(|v| v["pools"].as_array())
            .and_then(|a| a.iter().find(|x| x["name"] == p.as_str()));
        let Some(view) = view else {
            return (false, format!("pool {p} not listed"));
        };
        let serving = nodes
            .values()
            .filter(|s| {
                &s.pool == p
                    && s.status == "active"
                    && s.connectivity == "online"
                    && s.health != "unhealthy"
            })
            .count() as u64;
        let seen = [
            ("nodes", e.nodes, view["nodes"].as_u64().unwrap_or(0)),
            ("target", e.target, view["target"].as_u64().unwrap_or(0)),
            ("serving", e.serving, serving),
            ("held", e.held, held_in(Some(p)) as u64),
        ];
        let passed = seen
            .iter()
            .all(|(_, want, got)| want.is_none_or(|w| u64::from(w) == *got));
        let observed = seen
            .iter()
            .map(|(k, _, got)| format!("{k} {got}"))
            .collect::<Vec<_>>()
            .join(", ");
        return (passed, observed);
    }
    if let Some(n) = &e.node {
        return match nodes.get(n) {
            Some(s) => (
                matches(s),
                format!("{}, {}, {}", s.health, s.status, s.connectivity),
            ),
            None => (false, "not listed".into()),
        };
    }
    if let Some(c) = e.count {
        let seen = nodes.values().filter(|s| matches(s)).count();
        return (seen == c as usize, format!("{seen} node(s)"));
    }
    if let Some(max) = e.unhealthy_outside_faulted {
        let outside: Vec<&String> = nodes
            .iter()
            .filter(|(n, s)| s.health == "unhealthy" && !faulted.contains(*n))
            .map(|(n, _)| n)
            .collect();
        let names = outside
            .iter()
            .take(10)
            .map(|n| n.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let seen = if outside.is_empty() {
            "none".to_string()
        } else {
            format!("{} ({names})", outside.len())
        };
        return (outside.len() <= max as usize, seen);
    }
    if let Some(max) = e.faulted_not_unhealthy {
        let missed: Vec<&str> = faulted
            .iter()
            .filter(|n| nodes.get(*n).is_some_and(|s| s.health != "unhealthy"))
            .map(String::as_str)
            .collect();
        let seen = if missed.is_empty() {
            format!("all {} unhealthy", faulted.len())
        } else {
            format!(
                "{} not ({})",
                missed.len(),
                missed
                    .iter()
                    .take(10)
                    .copied()
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        return (missed.len() <= max as usize, seen);
    }
    if let Some(h) = e.held {
        let seen = held_in(None);
        return (seen == h as usize, format!("{seen} held"));
    }
    (false, "nothing to check".into())
}

/// Seconds, to the millisecond (the report's and the progress lines' unit).
pub(super) fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}

/// Why a wait ended without its condition.
pub(super) enum Ended {
    /// Ctrl-C, SIGTERM or SIGHUP.
    Interrupted,
    /// A process exited, or the time limit passed (with the last error seen).
    Failed(String),
}
