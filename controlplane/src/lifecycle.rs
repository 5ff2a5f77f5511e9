//! The node lifecycle of `DESIGN.md`, and the one place its transitions are decided.
//!
//! ```text
//! pending ─register─► active ─cordon─► cordoned ─drain─► draining ─terminate─► terminating ─► terminated
//!                       ▲  └────────drain──────────────────┘  │                    ▲
//!                       └──────────uncordon───────────────────┘  (terminate from any live state)
//! ```

use thiserror::Error;

use crate::model::Status;

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
        _ => return Err(TransitionError { from, step }),
    };
    Ok(to)
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
    fn repeating_a_step_changes_nothing() {
        assert_eq!(next(Cordoned, Step::Cordon), Ok(Cordoned));
        assert_eq!(next(Draining, Step::Cordon), Ok(Draining));
        assert_eq!(next(Active, Step::Register), Ok(Active));
    }
}
