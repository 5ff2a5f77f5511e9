//! Hot reload of `health.policy_file`: the file is looked at on an interval; when its text
//! differs from the running policy's, it is compiled, and swapped in only when valid. A
//! broken edit is logged with every problem (rule, line, column) and counted, and the
//! running policy stays; the next valid save takes effect.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use tracing::{error, info, warn};

use super::{Policy, SharedPolicy};

/// What one look at the file found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reload {
    /// Same text as the running policy (or the file did not change).
    Unchanged,
    /// A new valid policy with this many rules is running.
    Applied(usize),
    /// The file is invalid or unreadable; the running policy stays (every problem).
    Rejected(Vec<String>),
}

/// Watches one policy file.
#[derive(Debug)]
pub struct Watcher {
    file: PathBuf,
    policy: SharedPolicy,
    seen: Option<(SystemTime, u64)>,
}

fn stamp(path: &Path) -> std::io::Result<(SystemTime, u64)> {
    let m = std::fs::metadata(path)?;
    Ok((m.modified()?, m.len()))
}

impl Watcher {
    /// A watcher of `file` that swaps `policy`.
    pub fn new(file: PathBuf, policy: SharedPolicy) -> Self {
        let seen = stamp(&file).ok();
        Watcher { file, policy, seen }
    }

    /// Looks at the file once.
    pub fn check(&mut self) -> Reload {
        let now = match stamp(&self.file) {
            Ok(s) => s,
            Err(e) => {
                if self.seen.take().is_some() {
                    return Reload::Rejected(vec![format!("cannot read it: {e}")]);
                }
                return Reload::Unchanged;
            }
        };
        if self.seen == Some(now) {
            return Reload::Unchanged;
        }
        self.seen = Some(now);
        let text = match std::fs::read_to_string(&self.file) {
            Ok(t) => t,
            Err(e) => return Reload::Rejected(vec![format!("cannot read it: {e}")]),
        };
        if super::current(&self.policy).source() == text {
            return Reload::Unchanged;
        }
        match Policy::parse(&text) {
            Ok(p) => {
                let n = p.rules().len();
                *self.policy.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(p);
                Reload::Applied(n)
            }
            Err(errs) => Reload::Rejected(errs.iter().map(ToString::to_string).collect()),
        }
    }
}

/// The running watcher thread.
#[derive(Debug)]
pub struct WatchHandle {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl WatchHandle {
    /// Ends the thread.
    pub fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.thread.join();
    }
}

/// Looks at the file every `every`; `on_change` is told what each change did (audit, metrics).
pub fn spawn(
    mut w: Watcher,
    every: Duration,
    on_change: impl Fn(&Reload) + Send + 'static,
) -> std::io::Result<WatchHandle> {
    let stop = Arc::new(AtomicBool::new(false));
    let st = stop.clone();
    let thread = std::thread::Builder::new()
        .name("policy-watch".into())
        .spawn(move || {
            let mut last = Instant::now();
            while !st.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(50));
                if last.elapsed() < every {
                    continue;
                }
                last = Instant::now();
                let r = w.check();
                match &r {
                    Reload::Unchanged => continue,
                    Reload::Applied(n) => {
                        info!(file = %w.file.display(), rules = n, "health policy reloaded from its file")
                    }
                    Reload::Rejected(problems) => {
                        error!(file = %w.file.display(), problems = %problems.join("; "), "the edited policy file is invalid; the running policy stays");
                        for p in problems {
                            warn!(file = %w.file.display(), "policy problem: {p}");
                        }
                    }
                }
                on_change(&r);
            }
        })?;
    Ok(WatchHandle { stop, thread })
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULE: &str = r#"
[[rule]]
name = "hot"
scope = "gpu"
when = "gpu.temperature_celsius > 90.0"
verdict = "degraded"
"#;

    #[test]
    fn a_valid_edit_is_applied_and_a_broken_one_keeps_the_running_policy() {
        let dir = std::env::temp_dir().join(format!(
            "gw-watch-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("policies.toml");
        std::fs::write(&file, super::super::DEFAULT_POLICY).unwrap();
        let shared: SharedPolicy =
            Arc::new(std::sync::RwLock::new(Arc::new(Policy::default_policy())));
        let mut w = Watcher::new(file.clone(), shared.clone());
        assert_eq!(w.check(), Reload::Unchanged);

        std::fs::write(&file, RULE).unwrap();
        w.seen = None; // the same second and length are possible on fast file systems
        assert_eq!(w.check(), Reload::Applied(1));
        assert_eq!(super::super::current(&shared).rules().len(), 1);

        std::fs::write(&file, RULE.replace("> 90.0", "> > 90.0")).unwrap();
        w.seen = None;
        match w.check() {
            Reload::Rejected(p) => assert!(p[0].contains("rule \"hot\""), "{p:?}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            super::super::current(&shared).source(),
            RULE,
            "the running policy stays"
        );

        std::fs::remove_file(&file).unwrap();
        assert!(
            matches!(w.check(), Reload::Rejected(_)),
            "a deleted file is reported once"
        );
        assert_eq!(w.check(), Reload::Unchanged);
        assert_eq!(super::super::current(&shared).rules().len(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
