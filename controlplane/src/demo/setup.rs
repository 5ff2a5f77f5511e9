//! Starting the demo: its folder, the plugins, the control plane, and the pool.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::fleet::Snapshot;
use super::host::{
    free_port, fresh_dir, hex, random_bytes, spawn_serve, unix_secs, write, write_secret,
};
use crate::cli::client::{Client, Target};

/// What `gpuwarden demo` was asked.
#[derive(Debug, Clone)]
pub struct DemoArgs {
    /// The folder to run in (created; must be empty); default `./gpuwarden-demo-UNIXTIME`.
    pub dir: Option<PathBuf>,
    /// Lines instead of the live view, and exit once the faulty node has been replaced.
    pub ci: bool,
    /// Agents in the pool.
    pub nodes: u32,
    /// How long the healthy pool runs before the fault.
    pub fault_after: Duration,
    /// With `--ci` (or without a terminal), give up after this long.
    pub time_limit: Duration,
    /// Stop what a demo in `dir` left running (it was killed) and exit.
    pub stop: bool,
}

/// The pool the demo declares.
pub const POOL: &str = "demo";
/// The example plugins the demo's agents load when they are built (health checks).
const PLUGINS: &[&str] = &["xid", "thermal", "ecc", "nvlink", "pcie"];

/// A running demo: what [`super::stop::everything`] stops.
#[derive(Debug)]
pub struct Demo {
    /// The demo's folder.
    pub dir: PathBuf,
    /// The control plane's base URL.
    pub base: String,
    /// Where the admin token is (mode 0600).
    pub token_file: PathBuf,
    /// The control plane (`gpuwarden serve`), the leader of its own process group.
    pub control_plane: Child,
    /// The folder under which the `local` provider keeps its agents' state.
    pub agents_dir: PathBuf,
    /// Agents in the pool.
    pub nodes: u32,
    /// Plugins loaded by the agents (empty when not built).
    pub plugins: Vec<String>,
    client: Client,
}

/// Makes the folder, starts the control plane and declares the pool. On an error after the
/// control plane started, it is stopped before returning.
pub fn start(args: &DemoArgs) -> Result<Demo, String> {
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => PathBuf::from(format!("gpuwarden-demo-{}", unix_secs())),
    };
    fresh_dir(&dir)?;
    let dir = std::fs::canonicalize(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let exe = std::env::current_exe().map_err(|e| format!("this executable: {e}"))?;
    let agent = exe.with_file_name("gpuwarden-agent");
    ensure_agent(&exe)?;
    let (plugins, plugin_config) = plugins(&dir);
    let agent_config = dir.join("agent.toml");
    write(
        &agent_config,
        &format!(
            "# The demo's agents: every setting but the plugins comes from the local provider.\n[collector]\ninterval = \"1s\"\n{plugin_config}"
        ),
    )?;
    let port = free_port()?;
    let base = format!("http://127.0.0.1:{port}");
    let token = format!("gwa_demo_{}", hex(&random_bytes()?));
    let token_file = dir.join("admin-token");
    write_secret(&token_file, &token)?;
    let cp_config = dir.join("controlplane.toml");
    write(
        &cp_config,
        &format!(
            "# The demo's control plane (config/controlplane.toml documents every key).\n\
             [server]\nlisten = \"127.0.0.1:{port}\"\ndata_dir = \"{d}\"\n\n\
             [database]\nurl = \"sqlite://{d}/gpuwarden.db\"\nflush_interval = \"2s\"\n\n\
             [scrape]\ninterval = \"2s\"\ntimeout = \"2s\"\n\n\
             [commands]\npoll_interval = \"200ms\"\n\n\
             [pool_manager]\ninterval = \"500ms\"\nreconcile_interval = \"2s\"\n",
            d = dir.display()
        ),
    )?;
    let control_plane = spawn_serve(&exe, &cp_config, &dir, &token)?;
    let client = Client::new(Target {
        server: base.clone(),
        token: Some(token),
    });
    let mut demo = Demo {
        agents_dir: dir.join("agents"),
        dir,
        base,
        token_file,
        control_plane,
        nodes: args.nodes,
        plugins,
        client,
    };
    if let Err(e) = demo.declare_pool(&agent, &agent_config) {
        let stopped = super::stop::everything(demo.control_plane.id(), &demo.agents_dir);
        return Err(format!("{e}\n{stopped}"));
    }
    Ok(demo)
}

impl Demo {
    /// Waits for the control plane, then creates the pool.
    fn declare_pool(&mut self, agent: &Path, agent_config: &Path) -> Result<(), String> {
        let t = Instant::now();
        loop {
            if let Ok(Some(status)) = self.control_plane.try_wait() {
                return Err(format!(
                    "the control plane exited ({status}); see {}",
                    self.dir.join("controlplane.log").display()
                ));
            }
            if self.client.call("GET", "/v1/pools", None).is_ok() {
                break;
            }
            if t.elapsed() > Duration::from_secs(60) {
                return Err(format!(
                    "the control plane did not answer within 60 s; see {}",
                    self.dir.join("controlplane.log").display()
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let spec = json!({
            "name": POOL,
            "providers": [{"name": "local", "kind": "local", "params": {
                "gpus": 8,
                "agent_binary": agent,
                "config": agent_config,
                "state_dir": self.agents_dir,
                "grace": "5s",
                "env": {"GPUWARDEN_COMMANDS__DRAIN_POLL": "200ms"},
            }}],
            "min_nodes": self.nodes,
            "max_nodes": self.nodes + 1,
            "auto_replace": true,
            "scale_up_cooldown": "1s",
            "scale_down_cooldown": "30s",
            "registration_timeout": "60s",
            "labels": {"demo": "true"},
        });
        self.client
            .call("POST", "/v1/pools", Some(spec))
            .map(|_| ())
            .map_err(|e| format!("creating the pool: {e}"))
    }

    /// The first lines: where things are and what to try.
    pub fn hello(&self) -> String {
        let plugins = if self.plugins.is_empty() {
            "no plugins (to add them: rustup target add wasm32-wasip2, then run the demo again)"
                .to_string()
        } else {
            format!("plugins {}", self.plugins.join(", "))
        };
        let gw = std::env::current_exe()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| "gpuwarden".into());
        format!(
            "control plane {} (folder {}); pool {POOL} of {} agents with 8 fake GPUs, {plugins}. \
             Admin token in {}; try, in another terminal: export GPUWARDEN_SERVER={} \
             GPUWARDEN_ADMIN_TOKEN=$(cat {}); {gw} nodes list; {gw} pools get {POOL}; \
             {gw} instances list --pool {POOL}; {gw} audit",
            self.base,
            self.dir.display(),
            self.nodes,
            self.token_file.display(),
            self.base,
            self.token_file.display(),
        )
    }

    /// The pool, its nodes and instances as the control plane sees them now.
    pub fn snapshot(&self) -> Result<Snapshot, String> {
        let mut nodes = self
            .client
            .call("GET", &format!("/v1/nodes?pool={POOL}&limit=1000"), None)
            .map_err(|e| e.to_string())?;
        // The listing leaves out why a node is not healthy; one node's page says it.
        for n in nodes["nodes"].as_array_mut().into_iter().flatten() {
            if matches!(n["health"].as_str(), Some("degraded" | "unhealthy")) {
                let path = format!("/v1/nodes/{}", n["id"].as_str().unwrap_or(""));
                if let Ok(one) = self.client.call("GET", &path, None) {
                    n["health_reason"] = one["health_reason"].clone();
                }
            }
        }
        let pool = self
            .client
            .call("GET", &format!("/v1/pools/{POOL}"), None)
            .map_err(|e| e.to_string())?;
        let instances = self
            .client
            .call("GET", &format!("/v1/instances?pool={POOL}"), None)
            .map_err(|e| e.to_string())?;
        Ok(Snapshot::read(&nodes, &pool, &instances))
    }

    /// Injects a fault into the agent at `address` (its fake GPU backend's `/v1/fake/inject`).
    pub fn inject(&self, address: &str, fault: Value) -> Result<(), String> {
        let url = format!("{}/v1/fake/inject", address.trim_end_matches('/'));
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(5)))
            .http_status_as_error(false)
            .build()
            .into();
        let resp = agent
            .post(&url)
            .send_json(&fault)
            .map_err(|e| format!("{url}: {e}"))?;
        match resp.status().as_u16() {
            200 => Ok(()),
            s => Err(format!("{url}: HTTP {s}")),
        }
    }
}

/// Makes sure `gpuwarden-agent` beside `exe` is there and current: under `cargo run` (cargo
/// sets `CARGO`) it is built every time, in the same profile (cargo does nothing when it is
/// up to date; an agent left by an older build would otherwise run with this one); outside
/// cargo it must be there.
pub(crate) fn ensure_agent(exe: &Path) -> Result<(), String> {
    if std::env::var_os("CARGO").is_some() || !exe.with_file_name("gpuwarden-agent").is_file() {
        build_agent(exe)?;
    }
    Ok(())
}

/// Builds `gpuwarden-agent` beside `exe` when the demo runs under `cargo run` (cargo sets
/// `CARGO`), in the same profile; otherwise says how.
fn build_agent(exe: &Path) -> Result<(), String> {
    let how = "build both programs first: cargo build --release --bins";
    let Some(cargo) = std::env::var_os("CARGO") else {
        return Err(format!(
            "no gpuwarden-agent beside {}: {how}",
            exe.display()
        ));
    };
    let release = exe
        .parent()
        .and_then(Path::file_name)
        .is_some_and(|d| d == "release");
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "-p", "gpuwarden-agent", "--bin", "gpuwarden-agent"]);
    if release {
        cmd.arg("--release");
    }
    println!(
        "building gpuwarden-agent if it is not up to date (cargo build{} -p gpuwarden-agent) …",
        if release { " --release" } else { "" }
    );
    match cmd.status() {
        Ok(s) if s.success() && exe.with_file_name("gpuwarden-agent").is_file() => Ok(()),
        Ok(s) => Err(format!("building gpuwarden-agent failed ({s}): {how}")),
        Err(e) => Err(format!("cannot run cargo ({e}): {how}")),
    }
}

/// The example plugins' `[[plugins]]` entries when their `.wasm` files are built (in
/// `plugins/target/wasm32-wasip2/release` under the current folder, the repository); built
/// here first when the wasm target is installed. Without them: none, and the reason.
fn plugins(dir: &Path) -> (Vec<String>, String) {
    let built = Path::new("plugins/target/wasm32-wasip2/release");
    let missing = || {
        PLUGINS
            .iter()
            .any(|p| !built.join(format!("{p}.wasm")).is_file())
    };
    if missing() && Path::new("plugins/Cargo.toml").is_file() && wasm_target_installed() {
        println!("building the example plugins (cd plugins && cargo build --release --target wasm32-wasip2) …");
        let ok = Command::new("cargo")
            .args(["build", "--release", "--target", "wasm32-wasip2", "-q"])
            .current_dir("plugins")
            .env_remove("CARGO_TARGET_DIR")
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            println!("building the plugins failed; going on without them");
        }
    }
    if missing() {
        return (Vec::new(), String::new());
    }
    let mut names = Vec::new();
    let mut toml = String::new();
    for p in PLUGINS {
        let src = built.join(format!("{p}.wasm"));
        // A copy in the demo's folder: what the agents load cannot change under them.
        let dst = dir.join(format!("{p}.wasm"));
        let Ok(bytes) = std::fs::read(&src) else {
            continue;
        };
        if std::fs::write(&dst, &bytes).is_err() {
            continue;
        }
        toml.push_str(&format!(
            "\n[[plugins]]\nname = \"{p}\"\npath = \"{}\"\nsha256 = \"{}\"\ninterval = \"5s\"\n",
            dst.display(),
            hex(&Sha256::digest(&bytes))
        ));
        names.push(p.to_string());
    }
    (names, toml)
}

fn wasm_target_installed() -> bool {
    Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("wasm32-wasip2"))
}
