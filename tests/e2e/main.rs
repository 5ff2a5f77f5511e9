//! End-to-end: real `gpuwarden serve` and `gpuwarden-agent --fake-gpus` processes on
//! 127.0.0.1, driven through the REST API and the CLI.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod config_errors;
mod console;
mod cp;
mod demo;
mod grafana;
mod install;
mod join;
mod notify;
mod plugins_dist;
mod prometheus;
mod rejoin;
mod remediate;
mod restart;
mod simulate;
