//! Webhooks: health transitions, remediation steps and command results, POSTed as JSON to
//! each `[[webhooks]]` URL, signed, and retried with backoff.
//!
//! Headers: `X-Gpuwarden-Event` (the kind), `X-Gpuwarden-Delivery` (an id, the same on every
//! retry), `X-Gpuwarden-Timestamp` (Unix seconds) and, with a secret,
//! `X-Gpuwarden-Signature: sha256=HEX`, the HMAC-SHA256 of `TIMESTAMP.BODY` with the secret.
//! A receiver recomputes it and refuses old timestamps, so a captured request cannot be
//! replayed later. Each webhook has a thread and a bounded queue of its own, so a slow
//! receiver delays nobody else; when its queue is full the newest notification is dropped
//! (logged and counted). Notifications are a courtesy: the audit log and the node history
//! are the record.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use tracing::{debug, warn};

use crate::clock::rfc3339;
use crate::config::WebhookConfig;
use crate::metrics::Metrics;

/// Notifications queued per webhook before new ones are dropped.
const QUEUE: usize = 10_000;

/// The signature header value of `body` sent at `timestamp`.
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    // HMAC takes a key of any length.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

struct Sink {
    kinds: Vec<String>,
    tx: SyncSender<Arc<(String, String, Value)>>,
    url: String,
}

/// Sends notifications to the configured webhooks; cheap to clone.
#[derive(Clone, Default)]
pub struct Notifier {
    sinks: Arc<Vec<Sink>>,
    metrics: Option<Metrics>,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier")
            .field("webhooks", &self.sinks.len())
            .finish()
    }
}

/// The webhook threads; [`NotifierHandle::stop`] ends them.
#[derive(Debug)]
pub struct NotifierHandle {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl NotifierHandle {
    /// Stops retrying and ends the threads (what is still queued is dropped).
    pub fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads {
            let _ = t.join();
        }
    }
}

impl Notifier {
    /// Starts one thread per webhook.
    pub fn start(
        hooks: &[WebhookConfig],
        metrics: Metrics,
    ) -> std::io::Result<(Notifier, NotifierHandle)> {
        let stop = Arc::new(AtomicBool::new(false));
        let mut sinks = Vec::new();
        let mut threads = Vec::new();
        for (i, h) in hooks.iter().enumerate() {
            let (tx, rx) = sync_channel(QUEUE);
            let (cfg, st, m) = (h.clone(), stop.clone(), metrics.clone());
            threads.push(
                std::thread::Builder::new()
                    .name(format!("webhook-{i}"))
                    .spawn(move || run(&cfg, &rx, &st, &m))?,
            );
            sinks.push(Sink {
                kinds: h.events.clone(),
                tx,
                url: crate::validate::redact_url(&h.url),
            });
        }
        Ok((
            Notifier {
                sinks: Arc::new(sinks),
                metrics: Some(metrics),
            },
            NotifierHandle { stop, threads },
        ))
    }

    /// Queues a notification of `kind` (`health`, `remediation`, `command`) about node
    /// `node` for every webhook that wants it. `details` is merged into the body.
    pub fn send(&self, kind: &str, node: &str, time: i64, details: Value) {
        if self.sinks.is_empty() {
            return;
        }
        let id = format!("ntf-{:016x}", fastrand::u64(..));
        let mut body = json!({"id": id, "kind": kind, "node_id": node, "time": rfc3339(time)});
        if let (Some(b), Value::Object(d)) = (body.as_object_mut(), details) {
            b.extend(d);
        }
        let item = Arc::new((id, kind.to_string(), body));
        for s in self.sinks.iter() {
            if !s.kinds.is_empty() && !s.kinds.iter().any(|k| k == kind) {
                continue;
            }
            if let Err(TrySendError::Full(_)) = s.tx.try_send(item.clone()) {
                warn!(url = %s.url, "webhook queue is full; notification dropped");
                if let Some(m) = &self.metrics {
                    m.webhook_deliveries.with_label_values(&["dropped"]).inc();
                }
            }
        }
    }
}

fn run(
    cfg: &WebhookConfig,
    rx: &Receiver<Arc<(String, String, Value)>>,
    stop: &AtomicBool,
    metrics: &Metrics,
) {
    // A URL may carry basic-auth credentials; logs show it without the password.
    let shown = crate::validate::redact_url(&cfg.url);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(cfg.timeout))
        .build()
        .into();
    while !stop.load(Ordering::SeqCst) {
        let item = match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(i) => i,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let (id, kind, body) = &*item;
        let bytes = serde_json::to_vec(body).unwrap_or_default();
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let ts = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0));
            let mut req = agent
                .post(&cfg.url)
                .header("Content-Type", "application/json")
                .header("X-Gpuwarden-Event", kind)
                .header("X-Gpuwarden-Delivery", id)
                .header("X-Gpuwarden-Timestamp", &ts.to_string());
            if !cfg.secret.is_empty() {
                req = req.header("X-Gpuwarden-Signature", &signature(&cfg.secret, ts, &bytes));
            }
            let outcome = match req.send(&bytes[..]) {
                Ok(r) if r.status().is_success() => Ok(()),
                Ok(r) => Err(format!("HTTP {}", r.status().as_u16())),
                Err(e) => Err(e.to_string()),
            };
            match outcome {
                Ok(()) => {
                    metrics.webhook_deliveries.with_label_values(&["ok"]).inc();
                    debug!(url = %shown, %id, %kind, "webhook delivered");
                    break;
                }
                Err(e) if attempt >= cfg.max_attempts => {
                    metrics
                        .webhook_deliveries
                        .with_label_values(&["dropped"])
                        .inc();
                    warn!(url = %shown, %id, %kind, attempts = attempt, error = %crate::validate::redact_url(&e), "webhook not delivered; notification dropped");
                    break;
                }
                Err(e) => {
                    metrics
                        .webhook_deliveries
                        .with_label_values(&["retry"])
                        .inc();
                    debug!(url = %shown, %id, error = %crate::validate::redact_url(&e), "webhook failed; retrying");
                    let wait = Duration::from_millis(500)
                        .saturating_mul(1 << attempt.min(6))
                        .min(Duration::from_secs(30));
                    let until = Instant::now() + wait;
                    while Instant::now() < until {
                        if stop.load(Ordering::SeqCst) {
                            return;
                        }
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_the_hmac_of_timestamp_and_body() {
        // Computed independently: printf '1700000000.{"kind":"health"}' | openssl dgst -sha256 -hmac whsec-test
        let body = br#"{"kind":"health"}"#;
        assert_eq!(
            signature("whsec-test", 1_700_000_000, body),
            "sha256=c6abebfa1649e0c3fc5d0f4739ac57a86c3ab62296a09cf7f345a1bcab464929"
        );
        assert_ne!(
            signature("whsec-test", 1_700_000_001, body),
            signature("whsec-test", 1_700_000_000, body),
            "the timestamp is signed"
        );
    }
}
