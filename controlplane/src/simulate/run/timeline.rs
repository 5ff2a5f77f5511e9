//! The timeline of a run once the fleet is online: faults, agents brought back up, demand
//! and expectations at their times, the fleet looked at every [`super::look_every`], and the
//! fleet process watched (its death ends the run).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::parts::{check, inject_body, list, secs, send_all, targets, Ended};
use crate::cli::client::Client;
use crate::simulate::report::{self, ExpectReport, Injected, Timeline};
use crate::simulate::scenario::{Expect, Fault, Scenario};

/// The timeline of a run: faults, agents brought back up, demand and expectations at
/// their times, the fleet looked at every [`super::look_every`].
pub(super) struct Run<'a> {
    /// The fleet process: its death ends the run (exit 3), not a list of failed expectations.
    pub(super) fleet_pid: u32,
    pub(super) fleet_log: PathBuf,
    pub(super) s: &'a Scenario,
    pub(super) client: &'a Client,
    pub(super) http: &'a ureq::Agent,
    pub(super) fleet_api: &'a str,
    pub(super) t0: Instant,
    pub(super) timeline: Timeline,
    pub(super) injected: Vec<Injected>,
    pub(super) results: Vec<ExpectReport>,
    /// Nodes to bring up again, and when.
    pub(super) ups: Vec<(Duration, String)>,
    /// How often the fleet is read.
    pub(super) look: Duration,
}

impl Run<'_> {
    /// Runs the timeline to its end; why it stopped early otherwise.
    pub(super) fn go(&mut self, interrupted: &AtomicBool) -> Result<(), Ended> {
        let s = self.s;
        let mut faults: Vec<(usize, &Fault)> = s.faults.iter().enumerate().collect();
        faults.sort_by_key(|(_, f)| f.at);
        let mut expects: Vec<&Expect> = s.expect.iter().collect();
        expects.sort_by_key(|e| e.at);
        let mut demand: Vec<&crate::simulate::scenario::Demand> = s.demand.iter().collect();
        demand.sort_by_key(|d| d.at);
        let (mut fi, mut ei, mut di) = (0, 0, 0);
        loop {
            if interrupted.load(Ordering::SeqCst) {
                return Err(Ended::Interrupted);
            }
            if !alive(self.fleet_pid) {
                return Err(Ended::Failed(format!(
                    "the fleet process exited during the run; see {}",
                    self.fleet_log.display()
                )));
            }
            let nodes =
                list(self.client).map_err(|e| Ended::Failed(format!("reading the fleet: {e}")))?;
            let ms = u64::try_from(self.t0.elapsed().as_millis()).unwrap_or(u64::MAX);
            self.timeline.observe(ms, &nodes);
            let now = self.t0.elapsed();
            while di < demand.len() && demand[di].at <= now {
                let d = demand[di];
                let path = format!("/v1/pools/{}/demand", d.pool);
                let body = serde_json::json!({"pending_jobs": d.pending_jobs});
                self.client
                    .call("PUT", &path, Some(body))
                    .map_err(|e| Ended::Failed(format!("pushing demand to {}: {e}", d.pool)))?;
                println!(
                    "{:>7.1} s  demand {}: {} pending jobs",
                    secs(now),
                    d.pool,
                    d.pending_jobs
                );
                di += 1;
            }
            self.bring_up(now);
            while fi < faults.len() && faults[fi].1.at <= now {
                let (index, f) = faults[fi];
                self.fault(index, f, &nodes);
                fi += 1;
            }
            // Read only when an expectation is due (not at every look).
            let mut faulted = None;
            let mut pools = None;
            while ei < expects.len() && expects[ei].at <= self.t0.elapsed() {
                let e = expects[ei];
                if e.pool.is_some() && pools.is_none() {
                    pools = Some(
                        self.client
                            .call("GET", "/v1/pools", None)
                            .map_err(|e| Ended::Failed(format!("reading the pools: {e}")))?,
                    );
                }
                let faulted = faulted.get_or_insert_with(|| report::faulted(&self.injected));
                let (passed, observed) = check(e, &nodes, faulted, pools.as_ref());
                println!(
                    "{:>7.1} s  expect {}: {} (saw {observed})",
                    secs(self.t0.elapsed()),
                    e.describe(),
                    if passed { "ok" } else { "FAILED" }
                );
                self.results.push(ExpectReport {
                    at_s: secs(e.at),
                    what: e.describe(),
                    passed,
                    observed,
                });
                ei += 1;
            }
            if self.t0.elapsed() >= s.duration
                && fi == faults.len()
                && ei == expects.len()
                && di == demand.len()
            {
                return Ok(());
            }
            std::thread::sleep(self.look);
        }
    }

    /// Brings up the nodes whose `agent_down` is over.
    fn bring_up(&mut self, now: Duration) {
        let (due, later): (Vec<_>, Vec<_>) = self.ups.drain(..).partition(|(t, _)| *t <= now);
        self.ups = later;
        for (_, name) in due {
            let url = format!("{}/v1/fleet/nodes/{name}/up", self.fleet_api);
            let ok = self
                .http
                .post(&url)
                .send_empty()
                .is_ok_and(|r| r.status().is_success());
            println!(
                "{:>7.1} s  agent of {name} up again{}",
                secs(now),
                if ok { "" } else { " (refused)" }
            );
        }
    }

    /// Injects fault number `index` into the nodes it reaches now.
    fn fault(&mut self, index: usize, f: &Fault, nodes: &BTreeMap<String, report::Seen>) {
        let started = self.t0.elapsed();
        let (target, picked) = targets(f, index, nodes, self.s.seed);
        let (reached, mut errors) = if f.fault == "agent_down" {
            let api = self.fleet_api;
            let url_of = move |name: &str, _: &str| format!("{api}/v1/fleet/nodes/{name}/down");
            send_all(&picked, &url_of, None, self.http, self.t0)
        } else {
            let body = inject_body(f);
            let url_of = |_: &str, url: &str| format!("{url}/v1/fake/inject");
            send_all(&picked, &url_of, Some(&body), self.http, self.t0)
        };
        if picked.is_empty() {
            errors.push(format!("{target}: no node to reach"));
        }
        if let Some(d) = f.down_for {
            self.ups
                .extend(reached.iter().map(|(n, _)| (f.at + d, n.clone())));
        }
        println!(
            "{:>7.1} s  fault {} on {target}: {} node(s){}",
            secs(started),
            f.fault,
            reached.len(),
            if f.chaos { " (chaos)" } else { "" }
        );
        self.injected.push(Injected {
            at_s: secs(f.at),
            injected_s: secs(started),
            target,
            fault: inject_body(f),
            benign: f.benign,
            reached: reached.into_iter().collect(),
            errors,
            chaos: f.chaos,
        });
    }
}

/// Whether process `pid` (our child) still runs: not gone, not a zombie.
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|st| {
        st.rsplit(')')
            .next()
            .and_then(|r| r.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X")
    })
}
