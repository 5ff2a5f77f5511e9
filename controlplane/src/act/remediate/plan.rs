//! The plan itself: from a node's status and the commands of its episode, the next step
//! (pure; the database reads and writes are the `Remediator`'s).

use crate::config::Plan;
use crate::model::lifecycle::Step;
use crate::model::{CommandKind, CommandState, Status};
use crate::store::rows::CommandRow;

/// Who remediation's commands and transitions are by.
pub const ACTOR: &str = "remediation";

/// What to do next with one unhealthy node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Take this step.
    Step(Step),
    /// A command is under way; wait for it.
    Wait,
    /// Nothing (more) to do: the plan is complete, or says nothing.
    Done,
    /// Stop: an operator took over, or a step failed (why).
    Stop(String),
}

/// The next step for a node whose status is `status`, with `episode` the commands created
/// since it turned unhealthy (any order). Diagnostics neither wait nor take over: only
/// lifecycle commands count.
pub fn decide(plan: Plan, status: Status, episode: &[CommandRow]) -> Decision {
    let diagnostic = CommandKind::RunDiagnostic.as_str();
    let episode: Vec<&CommandRow> = episode.iter().filter(|c| c.kind != diagnostic).collect();
    if episode.iter().any(|c| {
        c.state == CommandState::Pending.as_str() || c.state == CommandState::Running.as_str()
    }) {
        return Decision::Wait;
    }
    if let Some(c) = episode.iter().find(|c| c.requested_by != ACTOR) {
        return Decision::Stop(format!(
            "{} asked for {} ({}) since the node turned unhealthy",
            c.requested_by, c.kind, c.id
        ));
    }
    let ours = |kind: CommandKind| episode.iter().find(|c| c.kind == kind.as_str());
    for kind in [
        CommandKind::Cordon,
        CommandKind::Drain,
        CommandKind::Terminate,
    ] {
        if let Some(c) = ours(kind) {
            if c.state != CommandState::Succeeded.as_str() {
                return Decision::Stop(format!("{} {} ended {}", c.kind, c.id, c.state));
            }
        }
    }
    let want = |p: Plan| plan >= p;
    // A drain of ours that completed leaves the node cordoned (the lifecycle's "drain
    // ended"): the next step is the terminate, never a second drain.
    let drained = ours(CommandKind::Drain).is_some();
    match status {
        Status::Active if want(Plan::Cordon) => Decision::Step(Step::Cordon),
        Status::Cordoned if drained && want(Plan::CordonDrainTerminate) => {
            Decision::Step(Step::Terminate)
        }
        Status::Cordoned if !drained && want(Plan::CordonDrain) => Decision::Step(Step::Drain),
        // A node still `draining` after our drain succeeded was drained before the
        // lifecycle moved finished drains to `cordoned`.
        Status::Draining if want(Plan::CordonDrainTerminate) => {
            // Terminate only after a drain remediation saw through.
            if ours(CommandKind::Drain).is_some() {
                Decision::Step(Step::Terminate)
            } else {
                Decision::Stop("the node was draining before it turned unhealthy".into())
            }
        }
        _ => Decision::Done,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(kind: CommandKind, state: CommandState, by: &str) -> CommandRow {
        CommandRow {
            id: format!("cmd-{}", kind.as_str()),
            node_id: "n".into(),
            kind: kind.as_str().into(),
            params: "{}".into(),
            state: state.as_str().into(),
            attempts: 1,
            result: None,
            requested_by: by.into(),
            created_at: 0,
            updated_at: 0,
            next_attempt_at: 0,
            completed_at: None,
        }
    }

    #[test]
    fn the_full_plan_walks_cordon_drain_terminate_one_finished_step_at_a_time() {
        use CommandKind::*;
        use CommandState::*;
        let full = Plan::CordonDrainTerminate;
        assert_eq!(
            decide(full, Status::Active, &[]),
            Decision::Step(Step::Cordon)
        );
        let cordoning = [cmd(Cordon, Pending, ACTOR)];
        assert_eq!(decide(full, Status::Cordoned, &cordoning), Decision::Wait);
        let cordoned = [cmd(Cordon, Succeeded, ACTOR)];
        assert_eq!(
            decide(full, Status::Cordoned, &cordoned),
            Decision::Step(Step::Drain)
        );
        let draining = [cmd(Cordon, Succeeded, ACTOR), cmd(Drain, Running, ACTOR)];
        assert_eq!(decide(full, Status::Draining, &draining), Decision::Wait);
        let drained = [cmd(Cordon, Succeeded, ACTOR), cmd(Drain, Succeeded, ACTOR)];
        assert_eq!(
            decide(full, Status::Cordoned, &drained),
            Decision::Step(Step::Terminate),
            "a finished drain leaves the node cordoned; the terminate follows"
        );
        assert_eq!(
            decide(full, Status::Draining, &drained),
            Decision::Step(Step::Terminate)
        );
        let gone = [
            cmd(Cordon, Succeeded, ACTOR),
            cmd(Drain, Succeeded, ACTOR),
            cmd(Terminate, Succeeded, ACTOR),
        ];
        assert_eq!(decide(full, Status::Terminated, &gone), Decision::Done);
    }

    #[test]
    fn each_plan_stops_where_it_says() {
        use CommandKind::*;
        use CommandState::*;
        assert_eq!(decide(Plan::Nothing, Status::Active, &[]), Decision::Done);
        let cordoned = [cmd(Cordon, Succeeded, ACTOR)];
        assert_eq!(
            decide(Plan::Cordon, Status::Cordoned, &cordoned),
            Decision::Done
        );
        let drained = [cmd(Cordon, Succeeded, ACTOR), cmd(Drain, Succeeded, ACTOR)];
        assert_eq!(
            decide(Plan::CordonDrain, Status::Cordoned, &drained),
            Decision::Done,
            "no second drain"
        );
        assert_eq!(
            decide(Plan::CordonDrain, Status::Draining, &drained),
            Decision::Done
        );
        // A node an operator had cordoned already goes straight to the drain.
        assert_eq!(
            decide(Plan::CordonDrain, Status::Cordoned, &[]),
            Decision::Step(Step::Drain)
        );
    }

    #[test]
    fn a_failed_step_or_an_operator_stops_the_plan() {
        use CommandKind::*;
        use CommandState::*;
        let full = Plan::CordonDrainTerminate;
        let failed = [cmd(Cordon, Failed, ACTOR)];
        match decide(full, Status::Cordoned, &failed) {
            Decision::Stop(why) => assert!(why.contains("cordon cmd-cordon ended failed"), "{why}"),
            other => panic!("{other:?}"),
        }
        let operator = [
            cmd(Cordon, Succeeded, ACTOR),
            cmd(Uncordon, Succeeded, "admin:gwa_1234"),
        ];
        match decide(full, Status::Active, &operator) {
            Decision::Stop(why) => assert!(
                why.starts_with("admin:gwa_1234 asked for uncordon"),
                "{why}"
            ),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            decide(full, Status::Draining, &[]),
            Decision::Stop(_)
        ));
        // An operator's diagnostic, running or done, is not taking over.
        let diagnosing = [
            cmd(Cordon, Succeeded, ACTOR),
            cmd(RunDiagnostic, Running, "admin:gwa_1234"),
        ];
        assert_eq!(
            decide(full, Status::Cordoned, &diagnosing),
            Decision::Step(Step::Drain)
        );
    }
}
