//! Health policies: rules in CEL over health events (scope `event`), each GPU of an
//! observation (`gpu`) and the node (`node`), compiled once when the policy loads.
//!
//! Raw → validated → compiled: [`Policy::parse`] reads the TOML, checks every rule (names,
//! scopes, verdicts, durations, actions, CEL syntax, and a dry run against a representative
//! input that catches unknown variables, functions and fields) and returns every problem at
//! once with its rule, line and column; only a policy without problems is compiled. The
//! evaluation builds one CEL context per event, per GPU and per node and runs every rule of
//! that scope against it. A rule that fails at run time is reported as a [`RuleFailure`]
//! (the caller logs and counts it), never skipped silently.
//!
//! Being built (step 4): what exists is the policy language, its validation, the default
//! policy and the evaluation; the node health state machine (`for` durations, stickiness),
//! remediation, hot reload and the API come next.

mod file;
mod input;
mod memo;
mod vals;
pub mod watch;

use std::time::Duration;

use cel::{Context, Program};
use serde::Serialize;

pub use file::limits;
pub use file::PolicyError;
pub use input::{EventInput, NodeInput};
pub use memo::RuleMemo;

use crate::model::observation::NodeObservation;

/// The shipped default policy (`config/policies.toml`).
pub const DEFAULT_POLICY: &str = include_str!("../../../config/policies.toml");

/// What a rule is evaluated on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Each new health event.
    Event,
    /// Each GPU of each observation.
    Gpu,
    /// Each node observation.
    Node,
}

impl Scope {
    /// The name used in policy files.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Event => "event",
            Scope::Gpu => "gpu",
            Scope::Node => "node",
        }
    }
}

/// What a matching rule says about the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Works, but needs a look.
    Degraded,
    /// Should not run work.
    Unhealthy,
}

impl Verdict {
    /// The name used in policy files.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Degraded => "degraded",
            Verdict::Unhealthy => "unhealthy",
        }
    }
}

/// A compiled rule.
#[derive(Debug)]
pub struct Rule {
    /// Unique name.
    pub name: String,
    /// For people.
    pub description: String,
    /// What it looks at.
    pub scope: Scope,
    /// The CEL source.
    pub when: String,
    /// Its verdict.
    pub verdict: Verdict,
    /// How long the condition must hold (gpu and node rules).
    pub hold: Option<Duration>,
    /// Recommended action.
    pub action: Option<String>,
    program: Program,
    /// The fields it reads, when the text says them all (memoization).
    reads: Option<Vec<memo::Read>>,
}

/// A rule that matched.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Match {
    /// The rule.
    pub rule: String,
    /// Its verdict.
    pub verdict: Verdict,
    /// Its recommended action (the rule's, else the event's).
    pub action: Option<String>,
    /// The GPU, for gpu rules and GPU events.
    pub gpu: Option<u32>,
    /// What matched, for people (`XID 79 on GPU 3: …`, `temperature_celsius = 97`).
    pub detail: String,
    /// How long it must hold before it counts.
    #[serde(skip)]
    pub hold: Option<Duration>,
}

/// A rule that could not be evaluated: its name, the input and the error.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleFailure {
    /// The rule.
    pub rule: String,
    /// The input, summarized (`event 17`, `gpu 3`, `node`).
    pub input: String,
    /// The error.
    pub error: String,
}

/// The outcome of evaluating a policy on one input.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Evaluation {
    /// Rules that matched, in policy order.
    pub matches: Vec<Match>,
    /// Rules that failed.
    pub failures: Vec<RuleFailure>,
}

impl Evaluation {
    /// The worst verdict among the matches (`None`: healthy as far as these rules see).
    pub fn worst(&self) -> Option<Verdict> {
        self.matches.iter().map(|m| m.verdict).max()
    }
}

/// The running policy, swapped whole by `PUT /v1/policies` (readers keep the one they took).
pub type SharedPolicy = std::sync::Arc<std::sync::RwLock<std::sync::Arc<Policy>>>;

/// The policy to evaluate now.
pub fn current(shared: &SharedPolicy) -> std::sync::Arc<Policy> {
    shared.read().unwrap_or_else(|p| p.into_inner()).clone()
}

/// A compiled policy.
pub struct Policy {
    rules: Vec<Rule>,
    /// The document it was compiled from.
    source: String,
    /// The functions, registered once; each evaluation opens a child scope for its variables.
    functions: Context<'static, 'static>,
    /// Unique per loaded policy: remembered rule results of another policy are not used.
    generation: u64,
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy")
            .field("rules", &self.rules)
            .finish_non_exhaustive()
    }
}

/// The XID an expression names, with the driver's message when it passes one:
/// `xid_severity(code)` or `xid_severity(code, message)`.
fn xid_args(name: &str, args: &[cel::Value]) -> Result<(u32, Option<String>), cel::ExecutionError> {
    let code = match args.first() {
        Some(cel::Value::Int(c)) => u32::try_from(*c).unwrap_or(u32::MAX),
        Some(cel::Value::UInt(c)) => u32::try_from(*c).unwrap_or(u32::MAX),
        _ => {
            return Err(cel::ExecutionError::function_error(
                name,
                "takes an XID code (int) and, optionally, the event's message (string)",
            ))
        }
    };
    match args.get(1..) {
        Some([]) | None => Ok((code, None)),
        Some([cel::Value::String(m)]) => Ok((code, Some(m.to_string()))),
        Some(_) => Err(cel::ExecutionError::function_error(
            name,
            "takes an XID code (int) and, optionally, the event's message (string)",
        )),
    }
}

fn register_functions(ctx: &mut Context<'_, '_>) {
    use cel::extractors::Arguments;
    // Both read `gpuwarden_wire::xid::classify`, the classification the agent uses: with the
    // message, XIDs decided by their text (NVLink5 144–150, 154) are read as the agent reads them.
    let _ = ctx.add_function(
        "xid_severity",
        |Arguments(args): Arguments| -> Result<cel::Value, cel::ExecutionError> {
            let (code, message) = xid_args("xid_severity", &args)?;
            let v = gpuwarden_wire::xid::classify(code, message.as_deref()).0;
            Ok(cel::Value::String(std::sync::Arc::new(
                v.as_str().to_string(),
            )))
        },
    );
    let _ = ctx.add_function(
        "xid_action",
        |Arguments(args): Arguments| -> Result<cel::Value, cel::ExecutionError> {
            let (code, message) = xid_args("xid_action", &args)?;
            let v = gpuwarden_wire::xid::classify(code, message.as_deref()).1;
            Ok(cel::Value::String(std::sync::Arc::new(
                v.as_str().to_string(),
            )))
        },
    );
}

/// Runs `f` (an evaluation of rules) on a thread with [`limits::EVAL_STACK_BYTES`] of stack
/// and waits for it; for callers on threads with a smaller stack. Errors: the thread cannot
/// be started. A panic in `f` is resumed in the caller.
pub fn on_eval_stack<T: Send>(f: impl FnOnce() -> T + Send) -> std::io::Result<T> {
    std::thread::scope(|s| {
        let h = std::thread::Builder::new()
            .name("policy-eval".into())
            .stack_size(limits::EVAL_STACK_BYTES)
            .spawn_scoped(s, f)?;
        Ok(h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
    })
}

/// A fresh context with the policy functions.
pub(crate) fn base_context() -> Context<'static, 'static> {
    let mut ctx = Context::default();
    register_functions(&mut ctx);
    ctx
}

impl Policy {
    /// Parses, validates and compiles a policy document; every problem at once.
    pub fn parse(text: &str) -> Result<Self, Vec<PolicyError>> {
        static GENERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        // Parsed (and dry-run) on a thread of its own whose stack is sized for the
        // expression limits (`file::limits`), whatever thread the caller runs on (an HTTP
        // worker, the blocking pool, a config check).
        let parsed = std::thread::scope(|s| {
            std::thread::Builder::new()
                .name("policy-parse".into())
                .stack_size(file::limits::PARSE_STACK_BYTES)
                .spawn_scoped(s, || file::parse(text))
                .map(|h| h.join())
        });
        let parsed = match parsed {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(vec![file::PolicyError::internal(
                "the policy parser failed unexpectedly",
            )]),
            Err(e) => Err(vec![file::PolicyError::internal(&format!(
                "cannot start the policy parser thread: {e}"
            ))]),
        };
        parsed.map(|rules| Self {
            rules,
            source: text.to_string(),
            functions: base_context(),
            generation: GENERATION.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        })
    }

    /// The shipped default policy.
    pub fn default_policy() -> Self {
        // The default is tested to parse; failing here is a build defect.
        #[allow(clippy::expect_used)]
        Self::parse(DEFAULT_POLICY).expect("config/policies.toml is valid")
    }

    /// The rules, in order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The document it was compiled from.
    pub fn source(&self) -> &str {
        &self.source
    }

    fn run(
        &self,
        scope: Scope,
        ctx: &Context<'_, '_>,
        input: &str,
        gpu: Option<u32>,
        detail: impl Fn(&Rule) -> String,
        out: &mut Evaluation,
    ) {
        for r in self.rules.iter().filter(|r| r.scope == scope) {
            match r.program.execute(ctx) {
                Ok(cel::Value::Bool(true)) => out.matches.push(Match {
                    rule: r.name.clone(),
                    verdict: r.verdict,
                    action: r.action.clone(),
                    gpu,
                    detail: detail(r),
                    hold: r.hold,
                }),
                Ok(cel::Value::Bool(false)) => {}
                Ok(other) => out.failures.push(RuleFailure {
                    rule: r.name.clone(),
                    input: input.to_string(),
                    error: format!("returned {other:?}, not a bool"),
                }),
                Err(e) => out.failures.push(RuleFailure {
                    rule: r.name.clone(),
                    input: input.to_string(),
                    error: e.to_string(),
                }),
            }
        }
    }

    /// Evaluates the event rules on one health event of `node`.
    pub fn eval_event(&self, event: &EventInput, node: &NodeInput) -> Evaluation {
        let mut out = Evaluation::default();
        let parent: &Context<'_, '_> = &self.functions;
        let mut ctx = parent.new_inner_scope();
        ctx.add_variable_as_val("event", Box::new(vals::EventVal(event)));
        ctx.add_variable_as_val("node", Box::new(vals::NodeVal::new(node, None)));
        let detail = |_: &Rule| {
            let gpu = event
                .gpu
                .map(|g| format!(" on GPU {g}"))
                .unwrap_or_default();
            format!(
                "{} {}{gpu}: {}",
                event.kind,
                event.code.map(|c| c.to_string()).unwrap_or_default(),
                event.message
            )
        };
        self.run(
            Scope::Event,
            &ctx,
            &format!("event {}", event.seq),
            event.gpu,
            detail,
            &mut out,
        );
        for m in &mut out.matches {
            if m.action.is_none() {
                m.action = event.action.clone();
            }
        }
        out
    }

    /// Evaluates the node rules alone, without an observation (a node that is not scraped
    /// now, e.g. offline: `gpu_count` and `driver_version` are absent, plugin verdicts none).
    pub fn eval_node(&self, node: &NodeInput) -> Evaluation {
        let mut out = Evaluation::default();
        let parent: &Context<'_, '_> = &self.functions;
        let mut ctx = parent.new_inner_scope();
        ctx.add_variable_as_val("node", Box::new(vals::NodeVal::new(node, None)));
        let detail = |r: &Rule| r.description.clone();
        self.run(Scope::Node, &ctx, "node", None, detail, &mut out);
        out
    }

    /// Evaluates the gpu rules on every GPU of an observation, then the node rules.
    /// `prev` (with the seconds between the two) gives counters' growth.
    pub fn eval_observation(
        &self,
        obs: &NodeObservation,
        prev: Option<(&NodeObservation, f64)>,
        node: &NodeInput,
    ) -> Evaluation {
        self.eval_state(obs, prev, node, &mut RuleMemo::default(), false)
    }
}

#[cfg(test)]
mod tests;
