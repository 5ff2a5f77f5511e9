//! Starting a control plane for a test.

use gpuwarden_e2e::{start_bin, Api, Proc, Scratch};

pub const ADMIN: &str = "e2e-admin-token-0123456789";
pub const BOOT: &str = "e2e-bootstrap-token-012345";

/// A control plane on an ephemeral port with a SQLite file in `dir`, scraping every second.
pub fn start(dir: &Scratch, extra: &str) -> (Proc, Api) {
    start_every(dir, "1s", extra)
}

/// [`start`] scraping every `interval` (a duration like `"60s"`).
pub fn start_every(dir: &Scratch, interval: &str, extra: &str) -> (Proc, Api) {
    let db = dir.path().join("gw.db");
    let cfg = dir.write(
        "cp.toml",
        &format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n\n[database]\nurl = \"sqlite://{}\"\nflush_interval = \"1s\"\n\n[scrape]\ninterval = \"{interval}\"\ntimeout = \"1s\"\n{extra}\n",
            dir.path().display(),
            db.display()
        ),
    );
    let p = start_bin(
        "gpuwarden",
        &["serve", "--config", cfg.to_str().unwrap()],
        &[
            ("GPUWARDEN_ADMIN_TOKEN", ADMIN),
            ("GPUWARDEN_BOOTSTRAP_TOKEN", BOOT),
        ],
        dir.path(),
    );
    let api = Api::new(&p.base, ADMIN);
    (p, api)
}

/// An agent with 8 fake GPUs that registers with `cp` using the bootstrap token.
pub fn agent(cp: &str, name: &str, dir: &Scratch) -> Proc {
    agent_with(cp, name, dir, "")
}

/// [`agent`] with more config (TOML sections appended).
pub fn agent_with(cp: &str, name: &str, dir: &Scratch, extra: &str) -> Proc {
    let cfg = dir.write(
        &format!("{name}.toml"),
        &format!(
            "[node]\nid = \"{name}\"\n[gpu]\nbackend = \"fake\"\n[collector]\ninterval = \"500ms\"\n[control_plane]\nurl = \"{cp}\"\ntoken_file = \"{}\"\n{extra}\n",
            dir.path().join(format!("{name}.token")).display()
        ),
    );
    start_bin(
        "gpuwarden-agent",
        &["--config", cfg.to_str().unwrap(), "--listen", "127.0.0.1:0"],
        &[("GPUWARDEN_BOOTSTRAP_TOKEN", BOOT)],
        dir.path(),
    )
}

/// The node named `name`, once it is online.
pub fn online(api: &Api, name: &str) -> serde_json::Value {
    gpuwarden_e2e::wait_for(&format!("{name} online"), 30, || {
        let (st, v) = api.call("GET", &format!("/v1/nodes/{name}"), None);
        (st == 200 && v["connectivity"] == "online" && v["scrape"]["up"] == true).then_some(v)
    })
}
