//! `decide` and instances that boot: each counted once (an instance and its pre-created
//! node are one member), and a registration timeout replaced in the same decision.

use super::tests::{booting, node, pool, provisioned, state, up, MIN, NOW};
use super::*;
use crate::model::{Connectivity, Health, Status};

#[test]
fn an_instance_that_never_registers_is_failed_terminated_and_replaced() {
    let p = pool(2, 4, |_| {});
    let mut s = state(
        &p,
        vec![up("a")],
        vec![
            booting("late", NOW - 10 * MIN),
            booting("ok", NOW - 9 * MIN),
        ],
    );
    s.last_scale_up_ms = Some(NOW - 10 * MIN);
    let d = decide(&s, NOW);
    assert!(
        matches!(&d.actions[0], Action::FailInstance { instance, reason } if instance == "late" && reason.contains("did not register within 10m")),
        "{:?}",
        d.actions
    );
    assert_eq!(
        provisioned(&d),
        0,
        "the other booting instance makes up min"
    );
    s.instances.remove(1);
    // Its pre-created node, still pending, is no capacity once the instance fails.
    s.instances[0].node_id = Some("late-node".into());
    s.nodes.push(node(
        "late-node",
        Status::Pending,
        Health::Unknown,
        Connectivity::Offline,
    ));
    let d = decide(&s, NOW);
    assert_eq!(provisioned(&d), 1, "replaced in the same decision");
    assert_eq!(d.counts.members, 1, "only a: {:?}", d.counts);
    // Next round it is failed: terminated.
    s.instances[0].state = InstanceState::Failed;
    let d = decide(&s, NOW);
    assert!(d.actions.contains(&Action::TerminateInstance {
        instance: "late".into(),
        reason: "the instance failed".into()
    }));
}

/// A booting instance's pre-created node (pending, or registered and not yet scraped) is
/// the same member as its instance: counted twice, a pool at half its max had no room.
#[test]
fn a_booting_instance_and_its_node_are_one_member() {
    let p = pool(1, 4, |_| {});
    let mut s = state(&p, vec![], vec![booting("i1", NOW), booting("i2", NOW)]);
    s.instances[0].node_id = Some("n1".into());
    s.instances[1].node_id = Some("n2".into());
    s.nodes = vec![
        node(
            "n1",
            Status::Pending,
            Health::Unknown,
            Connectivity::Offline,
        ),
        node("n2", Status::Active, Health::Unknown, Connectivity::Offline),
    ];
    s.manual_target = Some(4);
    s.last_scale_up_ms = Some(NOW - 2 * MIN);
    let d = decide(&s, NOW);
    assert_eq!(d.counts.members, 2, "{:?}", d.counts);
    assert_eq!(provisioned(&d), 2, "{:?} {:?}", d.actions, d.reasons);
    // At the target, nothing more.
    s.manual_target = Some(2);
    assert_eq!(provisioned(&decide(&s, NOW)), 0);
}
