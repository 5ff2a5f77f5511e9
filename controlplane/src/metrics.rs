//! The control plane's own `/metrics`: scrapes by result, scrape duration, samples and events
//! ingested, store writes, and nodes by status, health and connectivity. Names are constants
//! here, in one place.

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

/// Every metric the control plane exports.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    /// `gpuwarden_cp_scrapes_total{result}`
    pub scrapes: IntCounterVec,
    /// `gpuwarden_cp_scrape_duration_seconds`
    pub scrape_duration: Histogram,
    /// `gpuwarden_cp_scrape_delay_seconds`: how late a scheduled scrape started (its
    /// phase's due time to a worker taking it): the scheduler keeping up, or not.
    pub scrape_delay: Histogram,
    /// `gpuwarden_cp_samples_ingested_total`
    pub samples: IntCounter,
    /// `gpuwarden_cp_events_ingested_total`
    pub events: IntCounter,
    /// `gpuwarden_cp_events_lost_total`: an agent's ring overflowed before it was read.
    pub events_lost: IntCounter,
    /// `gpuwarden_cp_event_read_failures_total{reason}`: reads of an agent's `/v1/events`
    /// that failed (`too_large`: the answer was over the byte cap; `error`: any other
    /// failure), streaks of failures that made the read stuck (`stuck`, logged as an error
    /// with the node and cursor), and events skipped to get past one (`skipped`).
    pub event_read_failures: IntCounterVec,
    /// `gpuwarden_cp_store_errors_total{op}`
    pub store_errors: IntCounterVec,
    /// `gpuwarden_cp_observation_flushes_total`
    pub flushes: IntCounter,
    /// `gpuwarden_cp_observation_flush_seconds`: how long one flush took.
    pub flush_seconds: Histogram,
    /// `gpuwarden_cp_rule_failures_total{rule}`: a policy rule failed at run time.
    pub rule_failures: IntCounterVec,
    /// `gpuwarden_cp_health_changes_total{to}`
    pub health_changes: IntCounterVec,
    /// `gpuwarden_cp_nodes{status,health,connectivity}`
    pub nodes: IntGaugeVec,
    /// `gpuwarden_cp_targets`
    pub targets: IntGaugeVec,
    /// `gpuwarden_cp_command_deliveries_total{result}`: attempts to deliver a command.
    pub command_deliveries: IntCounterVec,
    /// `gpuwarden_cp_remediation_steps_total{step}`
    pub remediation_steps: IntCounterVec,
    /// `gpuwarden_cp_webhook_deliveries_total{result}`
    pub webhook_deliveries: IntCounterVec,
    /// `gpuwarden_cp_policy_reloads_total{result}`
    pub policy_reloads: IntCounterVec,
    /// `gpuwarden_cp_notices_total{result}`: agents' urgent-event notices ([`NOTICE_RESULTS`]).
    pub notices: IntCounterVec,
    /// `gpuwarden_cp_notice_reads_total`: event reads made for notices.
    pub notice_reads: IntCounter,
}

/// `result` of `gpuwarden_cp_scrapes_total`: `success`, or the failure kind
/// (`scrape::fetch::ScrapeError::kind`).
pub const SCRAPE_RESULTS: &[&str] = &[
    "success",
    "connect",
    "timeout",
    "http_status",
    "content_type",
    "too_large",
    "body",
    "sample_limit",
    "cardinality",
    "not_agent",
    "parse",
    "events",
];
/// `reason` of `gpuwarden_cp_event_read_failures_total`.
pub const EVENT_READ_FAILURES: &[&str] = &["too_large", "error", "stuck", "skipped"];
/// `op` of `gpuwarden_cp_store_errors_total`.
pub const STORE_OPS: &[&str] = &["transition", "observations", "commands"];
/// `result` of `gpuwarden_cp_command_deliveries_total`.
pub const DELIVERY_RESULTS: &[&str] = &[
    "succeeded",
    "failed",
    "running",
    "unreachable",
    "refused",
    "expired",
];
/// `step` of `gpuwarden_cp_remediation_steps_total`.
pub const REMEDIATION_STEPS: &[&str] = &["cordon", "drain", "terminate"];
/// `result` of `gpuwarden_cp_webhook_deliveries_total`.
pub const WEBHOOK_RESULTS: &[&str] = &["ok", "retry", "dropped"];
/// `result` of `gpuwarden_cp_notices_total`: `accepted` (the node's events are read now),
/// `coalesced` (a read was already due or under way: one read, or one more after it, serves
/// it), `stale` (its `seq` is stored already: no read), `refused` (401, 403, 404, bad body).
pub const NOTICE_RESULTS: &[&str] = &["accepted", "coalesced", "stale", "refused"];
/// `result` of `gpuwarden_cp_policy_reloads_total`.
pub const RELOAD_RESULTS: &[&str] = &["applied", "rejected"];

fn zero(c: &IntCounterVec, values: &[&str]) {
    for v in values {
        c.with_label_values(&[v]);
    }
}

fn must<T>(r: prometheus::Result<T>) -> T {
    // Metric definitions are constants; a failure is a programming error caught by tests.
    #[allow(clippy::expect_used)]
    r.expect("metric definition")
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric in a fresh registry.
    pub fn new() -> Self {
        let registry = Registry::new();
        let scrapes = must(IntCounterVec::new(
            Opts::new(
                "gpuwarden_cp_scrapes_total",
                "Agent scrapes by result (success, or the failure kind).",
            ),
            &["result"],
        ));
        let scrape_duration = must(Histogram::with_opts(
            HistogramOpts::new(
                "gpuwarden_cp_scrape_duration_seconds",
                "Time to fetch and parse one agent's /metrics.",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
        ));
        let scrape_delay = must(Histogram::with_opts(
            HistogramOpts::new(
                "gpuwarden_cp_scrape_delay_seconds",
                "Time from a scheduled scrape's due time to a worker starting it.",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ]),
        ));
        let samples = must(IntCounter::new(
            "gpuwarden_cp_samples_ingested_total",
            "Samples parsed from agents.",
        ));
        let events = must(IntCounter::new(
            "gpuwarden_cp_events_ingested_total",
            "Health events read from agents and stored.",
        ));
        let events_lost = must(IntCounter::new(
            "gpuwarden_cp_events_lost_total",
            "Times an agent's event ring overflowed before the control plane read it.",
        ));
        let event_read_failures = must(IntCounterVec::new(
            Opts::new(
                "gpuwarden_cp_event_read_failures_total",
                "Failed reads of agents' /v1/events by reason (too_large, error), read streaks stuck, events skipped.",
            ),
            &["reason"],
        ));
        let store_errors = must(IntCounterVec::new(
            Opts::new(
                "gpuwarden_cp_store_errors_total",
                "Failed database writes by operation.",
            ),
            &["op"],
        ));
        let flushes = must(IntCounter::new(
            "gpuwarden_cp_observation_flushes_total",
            "Batched writes of the latest observations.",
        ));
        let flush_seconds = must(Histogram::with_opts(
            HistogramOpts::new(
                "gpuwarden_cp_observation_flush_seconds",
                "Time one flush of the changed observations took.",
            )
            .buckets(vec![0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]),
        ));
        let rule_failures = must(IntCounterVec::new(
            Opts::new(
                "gpuwarden_cp_rule_failures_total",
                "Policy rules that failed at run time, by rule.",
            ),
            &["rule"],
        ));
        let health_changes = must(IntCounterVec::new(
            Opts::new(
                "gpuwarden_cp_health_changes_total",
                "Node health changes, by the new health.",
            ),
            &["to"],
        ));
        let nodes = must(IntGaugeVec::new(
            Opts::new(
                "gpuwarden_cp_nodes",
                "Nodes by lifecycle status, health and connectivity.",
            ),
            &["status", "health", "connectivity"],
        ));
        let targets = must(IntGaugeVec::new(
            Opts::new(
                "gpuwarden_cp_targets",
                "Scrape targets by whether their last scrape succeeded.",
            ),
            &["up"],
        ));
        let command_deliveries = must(IntCounterVec::new(
            Opts::new(
                "gpuwarden_cp_command_deliveries_total",
                "Attempts to deliver a command to an agent, by result (succeeded, failed, running, unreachable, refused, expired).",
            ),
            &["result"],
        ));
        let remediation_steps = must(IntCounterVec::new(
            Opts::new(
                "gpuwarden_cp_remediation_steps_total",
                "Lifecycle steps taken by automatic remediation, by step.",
            ),
            &["step"],
        ));
        let webhook_deliveries = must(IntCounterVec::new(
            Opts::new(
                "gpuwarden_cp_webhook_deliveries_total",
                "Webhook POSTs by result (ok, retry, dropped).",
            ),
            &["result"],
        ));
        let policy_reloads = must(IntCounterVec::new(
            Opts::new(
                "gpuwarden_cp_policy_reloads_total",
                "Edits of the policy file seen, by result (applied, rejected).",
            ),
            &["result"],
        ));
        let notices = must(IntCounterVec::new(
            Opts::new(
                "gpuwarden_cp_notices_total",
                "Agents' urgent-event notices by result (accepted, coalesced, stale, refused).",
            ),
            &["result"],
        ));
        let notice_reads = must(IntCounter::new(
            "gpuwarden_cp_notice_reads_total",
            "Reads of an agent's /v1/events made for its urgent-event notices.",
        ));
        for c in [
            Box::new(policy_reloads.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(notices.clone()),
            Box::new(notice_reads.clone()),
            Box::new(command_deliveries.clone()),
            Box::new(remediation_steps.clone()),
            Box::new(webhook_deliveries.clone()),
            Box::new(scrapes.clone()),
            Box::new(scrape_duration.clone()),
            Box::new(scrape_delay.clone()),
            Box::new(samples.clone()),
            Box::new(events.clone()),
            Box::new(events_lost.clone()),
            Box::new(event_read_failures.clone()),
            Box::new(store_errors.clone()),
            Box::new(flushes.clone()),
            Box::new(flush_seconds.clone()),
            Box::new(rule_failures.clone()),
            Box::new(health_changes.clone()),
            Box::new(nodes.clone()),
            Box::new(targets.clone()),
        ] {
            must(registry.register(c));
        }
        // Every label set known up front is exported from the start, at 0: a rate() or an
        // alert on `increase(...) > 0` needs the series before the first increment.
        zero(&scrapes, SCRAPE_RESULTS);
        zero(&store_errors, STORE_OPS);
        zero(&event_read_failures, EVENT_READ_FAILURES);
        zero(&command_deliveries, DELIVERY_RESULTS);
        zero(&remediation_steps, REMEDIATION_STEPS);
        zero(&webhook_deliveries, WEBHOOK_RESULTS);
        zero(&policy_reloads, RELOAD_RESULTS);
        zero(&notices, NOTICE_RESULTS);
        let healths: Vec<&str> = crate::model::Health::ALL
            .iter()
            .map(|h| h.as_str())
            .collect();
        zero(&health_changes, &healths);
        for up in ["true", "false"] {
            targets.with_label_values(&[up]).set(0);
        }
        Self {
            registry,
            scrapes,
            scrape_duration,
            scrape_delay,
            samples,
            events,
            events_lost,
            event_read_failures,
            store_errors,
            flushes,
            flush_seconds,
            rule_failures,
            health_changes,
            nodes,
            targets,
            command_deliveries,
            remediation_steps,
            webhook_deliveries,
            policy_reloads,
            notices,
            notice_reads,
        }
    }

    /// Exports `gpuwarden_cp_rule_failures_total` at 0 for each rule of a newly loaded
    /// policy (a rule's series then exists before its first failure).
    pub fn init_rules<'a>(&self, rules: impl IntoIterator<Item = &'a str>) {
        for r in rules {
            self.rule_failures.with_label_values(&[r]);
        }
    }

    /// Exports one more collector (a part's own metric, e.g. the pool manager's).
    pub fn register(&self, c: Box<dyn prometheus::core::Collector>) {
        // A second registration of the same name is refused; the first stays exported.
        let _ = self.registry.register(c);
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        // Encoding into a Vec cannot fail for well-formed metrics.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_counter_series_is_exported_at_zero_before_its_first_increment() {
        let m = Metrics::new();
        m.init_rules(["fatal-xid"]);
        let text = m.render();
        let mut want: Vec<String> = Vec::new();
        let mut add = |name: &str, label: &str, values: &[&str]| {
            for v in values {
                want.push(format!("{name}{{{label}=\"{v}\"}} 0"));
            }
        };
        add("gpuwarden_cp_scrapes_total", "result", SCRAPE_RESULTS);
        add("gpuwarden_cp_store_errors_total", "op", STORE_OPS);
        add("gpuwarden_cp_notices_total", "result", NOTICE_RESULTS);
        add(
            "gpuwarden_cp_command_deliveries_total",
            "result",
            DELIVERY_RESULTS,
        );
        add(
            "gpuwarden_cp_remediation_steps_total",
            "step",
            REMEDIATION_STEPS,
        );
        add(
            "gpuwarden_cp_webhook_deliveries_total",
            "result",
            WEBHOOK_RESULTS,
        );
        add(
            "gpuwarden_cp_policy_reloads_total",
            "result",
            RELOAD_RESULTS,
        );
        add(
            "gpuwarden_cp_health_changes_total",
            "to",
            &["healthy", "degraded", "unhealthy", "unknown"],
        );
        add("gpuwarden_cp_rule_failures_total", "rule", &["fatal-xid"]);
        add("gpuwarden_cp_targets", "up", &["true", "false"]);
        add(
            "gpuwarden_cp_event_read_failures_total",
            "reason",
            EVENT_READ_FAILURES,
        );
        for w in &want {
            assert!(text.contains(w.as_str()), "{w} missing from:\n{text}");
        }
        for plain in [
            "gpuwarden_cp_samples_ingested_total 0",
            "gpuwarden_cp_events_ingested_total 0",
            "gpuwarden_cp_events_lost_total 0",
            "gpuwarden_cp_observation_flushes_total 0",
        ] {
            assert!(text.contains(plain), "{plain} missing");
        }
    }
}
