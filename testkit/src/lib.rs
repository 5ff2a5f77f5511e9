//! Test support shared by the agent's integration tests (`agent/tests/`) and the end-to-end
//! tests (`tests/`): one [`Scratch`] folder, one process handle ([`Proc`]) that starts a
//! binary on an ephemeral 127.0.0.1 port, keeps its log, waits for it to listen and stops it
//! (SIGTERM, then SIGKILL) when dropped, one [`wait_for`], the plugin build ([`plugins`]) and
//! one HTTP client ([`http::client`], [`Api`]).
//!
//! Everything here panics with a message instead of returning errors: a failure of the
//! harness is a failed test. Used only as a dev-dependency.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod bins;
pub mod http;
pub mod imports;
mod plugins;
mod process;
mod scratch;
mod wait;

use std::path::{Path, PathBuf};

pub use bins::bins;
pub use http::Api;
pub use plugins::{lang_toolchains, plugins};
pub use process::{Launch, Proc};
pub use scratch::Scratch;
pub use wait::{poll, wait_for};

/// The repository root (the folder above this crate's).
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}
