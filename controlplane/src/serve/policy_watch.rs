//! The health policy file's watcher, as `serve` starts it: each reload audited and counted.

use std::sync::Arc;

use tracing::warn;

use crate::clock::SharedClock;
use crate::config::ControlPlaneConfig;
use crate::metrics::Metrics;
use crate::store::Store;

/// Reloads `health.policy_file` when it is edited; each reload is audited and counted.
pub(super) fn watch_policy(
    cfg: &ControlPlaneConfig,
    policy: &crate::judge::policy::SharedPolicy,
    store: &Arc<Store>,
    metrics: &Metrics,
    clock: &SharedClock,
) -> std::io::Result<crate::judge::policy::watch::WatchHandle> {
    use crate::judge::policy::watch::{self, Reload};
    let (store, m, c) = (store.clone(), metrics.clone(), clock.clone());
    let running = policy.clone();
    let w = watch::Watcher::new(cfg.health.policy_file.clone(), policy.clone());
    watch::spawn(w, cfg.health.reload_interval, move |r| {
        let (label, details, result) = match r {
            Reload::Applied(n) => {
                let p = crate::judge::policy::current(&running);
                m.init_rules(p.rules().iter().map(|r| r.name.as_str()));
                ("applied", serde_json::json!({"rules": n}), "ok".to_string())
            }
            Reload::Rejected(p) => (
                "rejected",
                serde_json::json!({"problems": p}),
                format!("rejected: {} problem(s); the running policy stays", p.len()),
            ),
            Reload::Unchanged => return,
        };
        m.policy_reloads.with_label_values(&[label]).inc();
        let entry = crate::store::rows::NewAudit {
            result,
            ..crate::store::rows::NewAudit::ok(
                "file",
                "policy.reload",
                "policy",
                details,
                c.now_ms(),
            )
        };
        if let Err(e) = store.audit(entry) {
            warn!(error = %e, "auditing a policy reload failed");
        }
    })
}
