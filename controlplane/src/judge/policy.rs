//! Health policies: rules in CEL over health events (scope `event`), each GPU of an
//! observation (`gpu`) and the node (`node`), compiled once when the policy loads.
//!
//! Raw → validated → compiled: [`Policy::parse`] reads the TOML, checks every rule (names,
//! scopes, verdicts, durations, actions, CEL syntax, and a dry run against a representative
//! input that catches unknown variables, functions and fields) and returns every problem at
//! once with its rule, line and column; only a policy without problems is compiled. The
//! evaluation builds one CEL context per event, per GPU and per node and runs every rule of
//! that scope against it; gpu and node rules of the commonest shapes are compiled further
//! into native conditions (`fast`) that give the interpreter's results without running it.
//! A rule that fails at run time is reported as a [`RuleFailure`]
//! (the caller logs and counts it), never skipped silently.
//!
//! Being built (step 4): what exists is the policy language, its validation, the default
//! policy and the evaluation; the node health state machine (`for` durations, stickiness),
//! remediation, hot reload and the API come next.

mod fast;
mod field;
mod file;
mod fingerprint;
mod functions;
mod input;
mod memo;
mod reads;
mod rule;
mod vals;
pub mod watch;

use cel::Context;

pub use file::limits;
pub use file::PolicyError;
pub use input::{EventInput, NodeInput};
pub use memo::RuleMemo;
pub use rule::{Evaluation, Match, Rule, RuleFailure, Scope, Verdict};

use functions::base_context;

/// The shipped default policy (`config/policies.toml`).
pub const DEFAULT_POLICY: &str = include_str!("../../../config/policies.toml");

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
    /// The distinct fields the native rules read (`fast`): the slots of a GPU's cache.
    fast_slots: usize,
    /// Those of them that are the agent's values, by name.
    fast_values: fast::ValueFields,
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy")
            .field("rules", &self.rules)
            .finish_non_exhaustive()
    }
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

/// Compiles the rules that have a native form (`fast`); with the slots their fields need.
fn compile_fast(mut rules: Vec<Rule>) -> (Vec<Rule>, fast::Slots) {
    let mut slots = fast::Slots::default();
    for r in &mut rules {
        let scope = match r.scope {
            Scope::Gpu => fast::Scope::Gpu,
            Scope::Node => fast::Scope::Node,
            Scope::Event => continue,
        };
        r.fast = fast::compile(r.program.expression(), scope, &mut slots);
    }
    (rules, slots)
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
                .spawn_scoped(s, || file::parse(text).map(compile_fast))
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
        parsed.map(|(rules, slots)| Self {
            rules,
            fast_slots: slots.len(),
            fast_values: slots.value_fields(),
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
}

#[cfg(test)]
mod tests;
