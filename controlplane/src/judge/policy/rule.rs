//! A compiled rule and what evaluating rules yields: [`Scope`], [`Verdict`], [`Rule`],
//! [`Match`], [`RuleFailure`], [`Evaluation`].

use std::time::Duration;

use cel::Program;
use serde::Serialize;

use super::fast::Cond;
use super::reads::Read;

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
    pub(super) program: Program,
    /// The fields it reads, when the text says them all (memoization).
    pub(super) reads: Option<Vec<Read>>,
    /// Its native form, when it has one (`fast`): evaluated without the interpreter.
    pub(super) fast: Option<Cond>,
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
