//! `gpuwarden-agent plugin test|digest|new`: the plugin author's loop.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use anyhow::{bail, Context};

use super::engine::{kind_name, PluginEngine};
use super::host::{HostView, RunLimits};
use super::manager::read_component;
use super::runner::{self, Limits, Outcome};
use crate::backend::fake::{FakeBackend, InjectRequest, DEFAULT_MODEL};
use crate::backend::GpuBackend;
use crate::collector::{Collector, CollectorSettings, Msg};
use crate::config::{PluginDefaults, PluginKind};
use crate::events::EventLog;

/// Options of `plugin test`.
#[derive(Debug, Clone)]
pub struct TestOptions {
    /// The component.
    pub file: PathBuf,
    /// Fake GPUs.
    pub fake_gpus: u32,
    /// Faults, `xid:79@0`, `temperature:97@1`, `ecc:double_bit@2`, `fell_off_bus@3`, …
    pub inject: Vec<String>,
    /// Plugin config values / diagnostic parameters, `key=value`.
    pub set: Vec<String>,
    /// Wall-clock deadline (default: 1 s for checks, 60 s for diagnostics).
    pub timeout: Option<Duration>,
    /// Memory cap, MiB.
    pub memory_limit_mib: u32,
    /// Print the outcome as JSON.
    pub json: bool,
    /// Keep compiled components here (by content hash) and load them from here: a large
    /// component compiles once. `plugin test`'s own entries (the agent's engine is configured
    /// differently, so they do not warm an agent); give it a folder of its own.
    pub cache_dir: Option<PathBuf>,
}

/// Parses `name[:value[:value]]@gpu` into an inject request.
pub fn parse_inject(spec: &str) -> anyhow::Result<InjectRequest> {
    let (fault, gpu) = spec
        .rsplit_once('@')
        .with_context(|| format!("\"{spec}\": expected FAULT@GPU, e.g. xid:79@0"))?;
    let gpu: u32 = gpu
        .parse()
        .with_context(|| format!("\"{spec}\": GPU \"{gpu}\" is not a number"))?;
    let mut parts = fault.split(':');
    let name = parts.next().unwrap_or_default().to_string();
    let args: Vec<&str> = parts.collect();
    let mut r = InjectRequest {
        gpu,
        fault: name.clone(),
        code: None,
        value: None,
        ecc_type: None,
        count: None,
        link: None,
        reason: None,
    };
    let num = |s: &str| -> anyhow::Result<f64> {
        s.parse()
            .with_context(|| format!("\"{spec}\": \"{s}\" is not a number"))
    };
    match (name.as_str(), args.as_slice()) {
        ("xid", [c]) => r.code = Some(num(c)? as u32),
        ("temperature" | "power" | "recovery_action", [v]) => r.value = Some(num(v)?),
        ("ecc", [t]) => r.ecc_type = Some((*t).to_string()),
        ("ecc", [t, n]) => {
            r.ecc_type = Some((*t).to_string());
            r.count = Some(num(n)? as u64);
        }
        ("nvlink_down", [l]) => r.link = Some(num(l)? as u32),
        ("pcie_replays", [n]) => r.count = Some(num(n)? as u64),
        ("nvlink_errors", [l, n]) => {
            r.link = Some(num(l)? as u32);
            r.count = Some(num(n)? as u64);
        }
        ("throttle", [reason]) => r.reason = Some((*reason).to_string()),
        ("processes", [n]) => r.count = Some(num(n)? as u64),
        (_, []) => {}
        _ => bail!("\"{spec}\": unexpected arguments for fault \"{name}\""),
    }
    r.to_fault()
        .map_err(|e| anyhow::anyhow!("\"{spec}\": {e}"))?;
    Ok(r)
}

fn parse_set(s: &str) -> anyhow::Result<(String, String)> {
    let (k, v) = s
        .split_once('=')
        .with_context(|| format!("\"{s}\": expected key=value"))?;
    Ok((k.trim().to_string(), v.to_string()))
}

/// Runs one plugin against a fake fleet with the given faults; returns its outcome.
pub fn test(opts: &TestOptions) -> anyhow::Result<(Outcome, PluginKind)> {
    let injects = opts
        .inject
        .iter()
        .map(|s| parse_inject(s))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let config = opts
        .set
        .iter()
        .map(|s| parse_set(s))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let fake = Arc::new(FakeBackend::new(opts.fake_gpus, DEFAULT_MODEL, 1));
    let backend: Arc<dyn GpuBackend> = Arc::new(Arc::clone(&fake));
    let events = Arc::new(Mutex::new(EventLog::new(10_000, "plugin-test".into())));
    let snapshot = Arc::new(RwLock::new(Arc::default()));
    let settings = CollectorSettings::defaults("plugin-test");
    let mut collector = Collector::new(
        settings,
        Arc::clone(&backend),
        Arc::clone(&events),
        Arc::clone(&snapshot),
    )?;
    collector.collect();
    // The fleet before the faults is the plugin's "previous run", as in the agent, so checks
    // that compare with it (counters that grew: PCIe replays, NVLink errors) see the faults.
    let before = Arc::clone(&snapshot.read().unwrap_or_else(|p| p.into_inner()));
    let cursor_before = events.lock().unwrap_or_else(|p| p.into_inner()).last_seq();
    let (tx, rx) = std::sync::mpsc::channel::<Msg>();
    let tx = Mutex::new(tx);
    backend.start_events(Box::new(move |e| {
        tx.lock()
            .map(|t| t.send(Msg::Backend(e)).is_ok())
            .unwrap_or(false)
    }))?;
    for r in &injects {
        let fault = r.to_fault().map_err(anyhow::Error::msg)?;
        fake.inject(r.gpu, fault)?;
    }
    let mut acks = Vec::new();
    while let Ok(m) = rx.try_recv() {
        collector.handle(m, &mut acks);
    }
    collector.collect();

    let engine = PluginEngine::new(false, opts.cache_dir.clone())?;
    // One read: the digest the cache is keyed by is that of the bytes compiled.
    let (bytes, sha) = read_component(&opts.file)?;
    let (component, _) = engine.compile(&bytes, &sha)?;
    let compiled = engine.prepare(&component, None, false)?;
    let d = PluginDefaults::default();
    let limits = Limits {
        timeout: opts.timeout.unwrap_or(match compiled.kind {
            PluginKind::Check => d.check_timeout,
            PluginKind::Diagnostic => d.diagnostic_timeout,
        }),
        run: RunLimits {
            memory_bytes: opts.memory_limit_mib as usize * 1024 * 1024,
            log_max_lines: d.log_max_lines,
            output_max_bytes: d.output_max_bytes,
        },
        report_max_bytes: d.report_max_bytes,
    };
    let view = HostView {
        plugin: opts
            .file
            .file_stem()
            .map_or("plugin".into(), |s| s.to_string_lossy().into_owned()),
        snapshot: Arc::clone(&snapshot.read().unwrap_or_else(|p| p.into_inner())),
        previous: Some(before),
        events,
        previous_cursor: cursor_before,
        config: config.clone(),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let outcome = rt.block_on(runner::run(
        &engine,
        &compiled.prepared,
        view,
        limits,
        config,
    ));
    Ok((outcome, compiled.kind))
}

/// Prints an outcome for people.
pub fn print(file: &Path, kind: PluginKind, gpus: u32, o: &Outcome) {
    out!(
        "{} ({}, {} fake GPUs): {} in {:.2} ms",
        file.display(),
        kind_name(kind),
        gpus,
        o.report.status.as_str().to_uppercase(),
        o.duration_seconds * 1e3
    );
    out!("  {}", o.report.message);
    if !o.report.findings.is_empty() {
        out!("  {:<6} {:<10} {:<16} message", "gpu", "status", "action");
        for f in &o.report.findings {
            let gpu = f.gpu.map_or("node".to_string(), |g| g.to_string());
            out!(
                "  {:<6} {:<10} {:<16} {}",
                gpu,
                f.status.as_str(),
                f.action,
                f.message
            );
        }
    }
    for (k, v) in &o.report.metrics {
        out!("  metric {k} = {v}");
    }
}

/// Creates a new plugin crate that builds as it is.
pub fn new_plugin(
    name: &str,
    dir: Option<&Path>,
    kind: PluginKind,
    sdk: Option<&Path>,
) -> anyhow::Result<PathBuf> {
    if !crate::config::valid_plugin_name(name) {
        bail!("\"{name}\": use letters, digits, '-' and '_'");
    }
    if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
        bail!("\"{name}\": a Rust crate's name starts with a letter");
    }
    let cwd = std::env::current_dir()?;
    let sdk = match sdk {
        Some(p) => p.to_path_buf(),
        None => cwd
            .ancestors()
            .map(|a| a.join("plugins/sdk"))
            .find(|p| p.join("Cargo.toml").exists())
            .context(
                "cannot find the plugin SDK (plugins/sdk) above this directory; pass --sdk PATH",
            )?,
    };
    let sdk = sdk
        .canonicalize()
        .with_context(|| format!("SDK at {}", sdk.display()))?;
    let workspace = sdk.parent().map(Path::to_path_buf).unwrap_or_default();
    let dir = match dir {
        Some(d) => d.to_path_buf(),
        None => workspace.join("examples"),
    };
    let target = dir.join(name);
    if target.exists() {
        bail!("{} already exists", target.display());
    }
    std::fs::create_dir_all(target.join("src"))?;
    let in_workspace = target
        .parent()
        .is_some_and(|p| p == workspace.join("examples"));
    let cargo = if in_workspace {
        format!(
            "[package]\nname = \"{name}\"\nversion.workspace = true\nedition.workspace = true\nlicense.workspace = true\npublish = false\n\n[lib]\ncrate-type = [\"cdylib\"]\n\n[dependencies]\ngpuwarden-plugin-sdk.workspace = true\n"
        )
    } else {
        std::fs::create_dir_all(target.join(".cargo"))?;
        std::fs::write(
            target.join(".cargo/config.toml"),
            "[build]\ntarget = \"wasm32-wasip2\"\n",
        )?;
        format!(
            "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\npublish = false\n\n[lib]\ncrate-type = [\"cdylib\"]\n\n[dependencies]\ngpuwarden-plugin-sdk = {{ path = \"{}\" }}\n\n[profile.release]\nopt-level = \"s\"\nlto = true\nstrip = true\npanic = \"abort\"\n\n[workspace]\n",
            sdk.display()
        )
    };
    std::fs::write(target.join("Cargo.toml"), cargo)?;
    let mut type_name: String = name
        .split(['-', '_'])
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map_or(String::new(), |f| f.to_uppercase().chain(c).collect())
        })
        .collect();
    // A Rust type name starts with a letter (`plugin new 123`, `plugin new _`).
    if !type_name.starts_with(|c: char| c.is_ascii_alphabetic()) {
        type_name.insert_str(0, "Plugin");
    }
    let src = match kind {
        PluginKind::Check => format!(
            "//! `{name}`: describe what this check looks at and when it is unhappy.\nuse gpuwarden_plugin_sdk::prelude::*;\n\nstruct {type_name};\n\nimpl HealthCheck for {type_name} {{\n    fn check(host: &Host) -> Report {{\n        let cfg = host.config();\n        let limit = cfg.f64(\"max_celsius\").unwrap_or(85.0);\n        let mut r = ReportBuilder::new();\n        for s in host.samples() {{\n            if s.lost {{\n                r.finding(Some(s.index), Status::Unhealthy, \"GPU lost\", Action::RebootNode);\n            }} else if let Some(t) = s.temperature_celsius.filter(|t| *t >= limit) {{\n                r.finding(Some(s.index), Status::Degraded, format!(\"{{t}}°C\"), Action::None);\n            }}\n        }}\n        r.finish(\"all good\")\n    }}\n}}\n\nexport_health_check!({type_name});\n"
        ),
        PluginKind::Diagnostic => format!(
            "//! `{name}`: describe what this diagnostic checks and its parameters.\nuse gpuwarden_plugin_sdk::prelude::*;\n\nstruct {type_name};\n\nimpl Diagnostic for {type_name} {{\n    fn run(host: &Host, params: &Config) -> Report {{\n        let expect = params.u64(\"expect_gpus\").unwrap_or(0) as usize;\n        let mut r = ReportBuilder::new();\n        let n = host.gpus().len();\n        if n < expect {{\n            r.finding(None, Status::Unhealthy, format!(\"{{n}} GPUs, expected {{expect}}\"), Action::RebootNode);\n        }}\n        r.metric(\"gpus\", n as f64);\n        r.finish(\"all good\")\n    }}\n}}\n\nexport_diagnostic!({type_name});\n"
        ),
    };
    std::fs::write(target.join("src/lib.rs"), src)?;
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inject_specs_parse() {
        assert_eq!(parse_inject("xid:79@0").unwrap().code, Some(79));
        let r = parse_inject("ecc:single_bit:5@2").unwrap();
        assert_eq!(
            (r.gpu, r.ecc_type.as_deref(), r.count),
            (2, Some("single_bit"), Some(5))
        );
        assert_eq!(
            parse_inject("fell_off_bus@3").unwrap().fault,
            "fell_off_bus"
        );
        assert_eq!(
            parse_inject("throttle:hw_slowdown@7")
                .unwrap()
                .reason
                .as_deref(),
            Some("hw_slowdown")
        );
        // Every fault the fake backend takes (backend/fake/inject.rs) has a spec here.
        for spec in [
            "xid:79@0",
            "temperature:97@1",
            "power:900@6",
            "ecc:double_bit@2",
            "ecc:single_bit:5@2",
            "fell_off_bus@3",
            "nvlink_down:0@4",
            "pcie_degraded@5",
            "throttle:hw_slowdown@7",
            "recovery_action:2@0",
            "row_remap_pending@0",
            "row_remap_failure@0",
            "processes:2@1",
            "pcie_replays:50@6",
            "nvlink_errors:2:9@7",
        ] {
            assert!(
                parse_inject(spec).is_ok(),
                "{spec}: {:?}",
                parse_inject(spec)
            );
        }
        assert_eq!(parse_inject("processes:2@1").unwrap().count, Some(2));
        for bad in [
            "xid:79",
            "xid@x",
            "xid:abc@0",
            "volcano@0",
            "xid@0",
            "nvlink_down:1:2@0",
        ] {
            assert!(parse_inject(bad).is_err(), "{bad}");
        }
    }
}
