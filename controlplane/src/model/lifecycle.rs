//! The node lifecycle (docs/remediation.md, "Node states"), and the one place its
//! transitions are decided.
//!
//! ```text
//! pending ─register─► active ─cordon─► cordoned ─drain─► draining ─terminate─► terminating ─► terminated
//!                       ▲  └────────drain──────────────────┘  │  ▲                  │
//!                       └──────────uncordon───────────────────┘  │                  │
//!                          cordoned ◄─drain ended (done or failed)┘                  │
//!                          cordoned ◄─terminate failed──────────────────────────────┘
//! ```
//!
//! Every step that fails or ends leaves a status an operator can act on: a drain that ended
//! (completed or failed) leaves the node `cordoned` (no new work, none left running when it
//! completed), from where it can be uncordoned, drained again or terminated; a terminate
//! that failed (no terminate hook, the hook failed, nobody took the command) leaves it
//! `cordoned` too, not `terminating`, where only another terminate would be allowed.

use thiserror::Error;

use crate::model::{CommandKind, Status};

/// Something that moves a node through its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// An agent registered for the node.
    Register,
    /// Stop scheduling.
    Cordon,
    /// Schedule again.
    Uncordon,
    /// Move the work off.
    Drain,
    /// Shut down.
    Terminate,
    /// The shutdown finished.
    Terminated,
    /// The drain command ended (completed or failed): the node stays cordoned.
    DrainEnded,
    /// The terminate command failed: the node is out of service but still there.
    TerminateFailed,
}

impl Step {
    /// The verb, as in the API path.
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Register => "register",
            Step::Cordon => "cordon",
            Step::Uncordon => "uncordon",
            Step::Drain => "drain",
            Step::Terminate => "terminate",
            Step::Terminated => "terminated",
            Step::DrainEnded => "end the drain of",
            Step::TerminateFailed => "fail the terminate of",
        }
    }
}

/// A step that the node's status does not allow.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("cannot {step} a node that is {from}", step = step.as_str())]
pub struct TransitionError {
    /// The node's status.
    pub from: Status,
    /// The refused step.
    pub step: Step,
}

/// The status after `step`, or why it is not allowed. `Ok(from)` means the step changes
/// nothing (it is idempotent: cordoning a cordoned node).
pub fn next(from: Status, step: Step) -> Result<Status, TransitionError> {
    use Status::*;
    let to = match (from, step) {
        (Pending, Step::Register) => Active,
        (Active | Cordoned | Draining, Step::Register) => from,
        (Active | Cordoned, Step::Cordon) => Cordoned,
        (Draining, Step::Cordon) => Draining,
        (Active | Cordoned | Draining, Step::Uncordon) => Active,
        (Active | Cordoned | Draining, Step::Drain) => Draining,
        (Pending | Active | Cordoned | Draining | Terminating, Step::Terminate) => Terminating,
        (Terminating | Terminated, Step::Terminated) => Terminated,
        (Draining, Step::DrainEnded) => Cordoned,
        (Terminating, Step::TerminateFailed) => Cordoned,
        _ => return Err(TransitionError { from, step }),
    };
    Ok(to)
}

/// The step that the end of a `kind` command (`succeeded` or not) takes, if any: a
/// terminate that succeeded → [`Step::Terminated`], one that failed →
/// [`Step::TerminateFailed`]; a drain that ended either way → [`Step::DrainEnded`].
pub fn after_command(kind: CommandKind, succeeded: bool) -> Option<Step> {
    match (kind, succeeded) {
        (CommandKind::Terminate, true) => Some(Step::Terminated),
        (CommandKind::Terminate, false) => Some(Step::TerminateFailed),
        (CommandKind::Drain, _) => Some(Step::DrainEnded),
        _ => None,
    }
}

/// The steps an operator may ask for (`POST /v1/nodes/{id}/STEP`) in `status`.
pub fn allowed(status: Status) -> Vec<Step> {
    [Step::Cordon, Step::Uncordon, Step::Drain, Step::Terminate]
        .into_iter()
        .filter(|s| next(status, *s).is_ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use Status::*;

    #[test]
    fn the_lifecycle_runs_forward_and_uncordon_goes_back() {
        let mut s = Pending;
        for (step, want) in [
            (Step::Register, Active),
            (Step::Cordon, Cordoned),
            (Step::Drain, Draining),
            (Step::Uncordon, Active),
            (Step::Drain, Draining),
            (Step::Terminate, Terminating),
            (Step::Terminated, Terminated),
        ] {
            s = next(s, step).unwrap();
            assert_eq!(s, want, "after {step:?}");
        }
    }

    #[test]
    fn forbidden_steps_are_errors_that_say_why() {
        for (from, step) in [
            (Pending, Step::Cordon),
            (Pending, Step::Drain),
            (Terminating, Step::Uncordon),
            (Terminated, Step::Register),
            (Terminated, Step::Terminate),
            (Active, Step::Terminated),
        ] {
            let e = next(from, step).unwrap_err();
            assert_eq!((e.from, e.step), (from, step));
        }
        assert_eq!(
            next(Terminated, Step::Cordon).unwrap_err().to_string(),
            "cannot cordon a node that is terminated"
        );
    }

    #[test]
    fn every_ended_or_failed_step_leaves_a_status_an_operator_can_act_on() {
        // A finished drain and a failed terminate leave the node cordoned, where it can be
        // uncordoned, drained again or terminated.
        let step = after_command(CommandKind::Drain, true).unwrap();
        assert_eq!(next(Draining, step), Ok(Cordoned));
        let step = after_command(CommandKind::Drain, false).unwrap();
        assert_eq!(next(Draining, step), Ok(Cordoned));
        let step = after_command(CommandKind::Terminate, false).unwrap();
        assert_eq!(next(Terminating, step), Ok(Cordoned));
        assert_eq!(after_command(CommandKind::Cordon, false), None);
        for s in [Pending, Active, Cordoned, Draining, Terminating] {
            let can = allowed(s);
            assert!(!can.is_empty(), "{s} allows nothing");
            if s != Terminating && s != Pending {
                assert!(can.contains(&Step::Uncordon), "{s} cannot be uncordoned");
            }
        }
        assert_eq!(allowed(Terminating), [Step::Terminate]);
        assert!(allowed(Terminated).is_empty());
        // Ending a drain the operator already uncordoned changes nothing.
        assert!(next(Active, Step::DrainEnded).is_err());
    }

    #[test]
    fn repeating_a_step_changes_nothing() {
        assert_eq!(next(Cordoned, Step::Cordon), Ok(Cordoned));
        assert_eq!(next(Draining, Step::Cordon), Ok(Draining));
        assert_eq!(next(Active, Step::Register), Ok(Active));
    }
}
