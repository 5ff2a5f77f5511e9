//! Scenario files: the shipped ones are valid, every problem of a bad one is named.

use super::*;

/// Every scenario in `config/scenarios/` (and `bench/`) parses and passes the checks.
#[test]
fn the_shipped_scenarios_are_valid() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/scenarios");
    let mut n = 0;
    let files = std::fs::read_dir(&dir)
        .unwrap()
        .chain(std::fs::read_dir(dir.join("bench")).unwrap());
    for e in files {
        let path = e.unwrap().path();
        if path.extension().is_some_and(|x| x == "toml") {
            let text = std::fs::read_to_string(&path).unwrap();
            if let Err(p) = Scenario::parse(&text) {
                panic!("{}: {p:#?}", path.display());
            }
            n += 1;
        }
    }
    assert!(n >= 11, "{n} scenarios");
}

/// A scenario with a problem in every section gets every problem named with its place.
#[test]
fn every_problem_of_a_scenario_is_named_with_its_place() {
    let text = r#"
name = ""
duration = "0s"
[control_plane]
scrape_interval = "10ms"
[[fleet]]
count = 0
gpus = 65
pool = "Sim_1"
racks = 1
zones = 2
[[faults]]
at = "5s"
node = "nobody"
rack = "r0"
fault = "melt"
[[faults]]
at = "1s"
zone = "z9"
fault = "xid"
gpu = 99
[[expect]]
at = "1s"
node = "nobody"
health = "sick"
status = "gone"
[[expect]]
at = "1s"
count = 1
"#;
    let p = Scenario::parse(text).unwrap_err();
    for want in [
        "name: must not be empty",
        "duration: 1s to 24h",
        "control_plane.scrape_interval: 100ms to 10m",
        "fleet[0].count: at least 1",
        "fleet[0].gpus: 1 to 64, not 65",
        "fleet[0]: racks and zones at least 1, and no more zones than racks",
        "fleet[0].pool: 1 to 63 lowercase letters",
        "faults[0]: exactly one of node, rack, zone, pool",
        "faults[0].node: no node \"nobody\" in the fleet",
        "faults[0].fault: unknown \"melt\"",
        "faults[1].zone: no zone \"z9\" in the fleet",
        "faults[1]: xid needs code",
        "faults[1].gpu: 99 is not below",
        "expect[0].node: no node \"nobody\"",
        "expect[0].health: \"sick\" is not one of",
        "expect[0].status: \"gone\" is not one of",
        "expect[1]: health, status or connectivity",
    ] {
        assert!(p.iter().any(|e| e.contains(want)), "{want:?} not in {p:#?}");
    }
    assert!(Scenario::parse("name = \"x\"\nbogus = 1\n").unwrap_err()[0].contains("bogus"));
}

/// Nodes are named per pool across templates, spread over racks round robin and racks over
/// zones; `--nodes` keeps the templates' proportions.
#[test]
fn templates_make_named_nodes_on_racks_and_scale_in_proportion() {
    let s = Scenario::parse(
        r#"
name = "t"
duration = "10s"
[[fleet]]
count = 4
racks = 2
zones = 2
[[fleet]]
count = 2
pool = "big"
gpus = 4
"#,
    )
    .unwrap();
    let nodes = s.nodes();
    let names: Vec<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "sim-00000",
            "sim-00001",
            "sim-00002",
            "sim-00003",
            "big-00000",
            "big-00001"
        ]
    );
    assert_eq!(nodes[1].labels["rack"], "r1");
    assert_eq!(nodes[1].labels["zone"], "z1");
    assert_eq!(nodes[2].labels["rack"], "r0");
    assert_eq!(nodes[4].gpus, 4);
    let mut s = s;
    s.expect.push(Expect {
        at: Duration::from_secs(1),
        node: None,
        health: None,
        status: Some("active".into()),
        count: Some(4),
        unhealthy_outside_faulted: None,
        faulted_not_unhealthy: None,
        connectivity: None,
        pool: None,
        nodes: None,
        target: None,
        serving: None,
        held: None,
    });
    let scaled = s.clone().scaled(60).unwrap();
    assert_eq!(scaled.fleet[0].count, 40);
    assert_eq!(scaled.fleet[1].count, 20);
    assert_eq!(scaled.expect[0].count, Some(40), "4 of 6 nodes is 40 of 60");
    assert!(s.clone().scaled(0).is_err());
    assert!(s.scaled(MAX_NODES + 1).is_err());
}

/// Pools, demand, pool faults and expectations, `agent_down` and chaos are checked with
/// every problem named: the pool's own spec by the control plane's rules.
#[test]
fn pools_demand_and_chaos_are_checked_with_every_problem_named() {
    let text = r#"
name = "p"
duration = "30s"
[[fleet]]
count = 2
[[pools]]
name = "train"
min_nodes = 3
max_nodes = 2
provider = "local"
warmup = "5m"
gpus = 0
[pools.autoscaler]
type = "queue"
jobs_per_node = 0
[[pools]]
name = "sim"
min_nodes = 1
max_nodes = 1
[[demand]]
at = "40s"
pool = "nope"
pending_jobs = 3
[[faults]]
at = "1s"
pool = "ghost"
nodes = 0
fault = "xid"
code = 79
[[faults]]
at = "1s"
node = "sim-00000"
fault = "xid"
code = 79
for = "5s"
[[expect]]
at = "1s"
pool = "ghost"
[[expect]]
at = "1s"
serving = 2
[[expect]]
at = "1s"
node = "sim-00000"
connectivity = "gone"
[chaos]
rate = 0.0
rack_share = 0.7
zone_share = 0.7
faults = ["meteor"]
"#;
    let p = Scenario::parse(text).unwrap_err();
    for want in [
        "pools[0].provider: set by the simulator",
        "pools[0].gpus: 1 to 64, not 0",
        "pools[0].min_nodes: 3 is more than max_nodes (2)",
        "pools[0].warmup: unknown key",
        "pools[0].autoscaler.jobs_per_node",
        "pools[1].name: \"sim\" is a [[fleet]] template's pool",
        "demand[0].at: after the scenario's duration",
        "demand[0].pool: no pool \"nope\"",
        "faults[0].pool: no pool \"ghost\"",
        "faults[0].nodes: 1 to the pool's",
        "faults[1].for: only agent_down takes it",
        "expect[0]: pool with nodes, target, serving or held",
        "expect[0].pool: no pool \"ghost\" in [[pools]]",
        "expect[1]: exactly one of node, count, unhealthy_outside_faulted, faulted_not_unhealthy, pool, held",
        "expect[1]: nodes, target and serving go with pool",
        "expect[2].connectivity: \"gone\" is not one of",
        "chaos.rate: above 0",
        "chaos: rack_share and zone_share add up to at most 1",
        "chaos.faults[0]: unknown \"meteor\"",
    ] {
        assert!(p.iter().any(|e| e.contains(want)), "{want:?} not in {p:#?}");
    }
}

/// Chaos draws about rate × nodes / 1,000 × hours faults within its window, on nodes,
/// racks and zones by the shares; the same seed draws the same faults, another seed others.
#[test]
fn chaos_draws_faults_at_its_rate_reproducibly() {
    let text = r#"
name = "c"
duration = "1h"
[[fleet]]
count = 1000
racks = 10
zones = 2
[chaos]
rate = 1000.0
from = "10m"
rack_share = 0.1
zone_share = 0.1
"#;
    let s = Scenario::parse(text).unwrap();
    let a = s.clone().with_chaos();
    let n = a.faults.len();
    // 1,000 per 1,000 node-hours × 1,000 nodes × 50 min: 833 expected.
    assert!((700..=970).contains(&n), "{n} faults");
    assert!(a
        .faults
        .iter()
        .all(|f| f.chaos && f.at >= Duration::from_secs(600)));
    assert!(
        a.faults.windows(2).all(|w| w[0].at <= w[1].at),
        "in time order"
    );
    let racks = a.faults.iter().filter(|f| f.rack.is_some()).count();
    let zones = a.faults.iter().filter(|f| f.zone.is_some()).count();
    assert!(
        (40..=130).contains(&racks) && (40..=130).contains(&zones),
        "{racks} {zones}"
    );
    let b = s.clone().with_chaos();
    let key = |s: &Scenario| -> Vec<String> {
        s.faults
            .iter()
            .map(|f| format!("{:?}{:?}{:?}{}", f.at, f.node, f.rack, f.fault))
            .collect()
    };
    assert_eq!(key(&a), key(&b), "the same seed, the same faults");
    let mut other = s;
    other.seed = 2;
    assert_ne!(key(&other.with_chaos()), key(&a));
}

/// `--nodes` scales only the templates of a scenario without pools: with pools (whose nodes
/// the count expectations would count too) it is refused with the reason.
#[test]
fn nodes_flag_is_refused_for_a_scenario_with_pools() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/scenarios");
    let text = std::fs::read_to_string(dir.join("rack-failure-budget.toml")).unwrap();
    let e = Scenario::parse(&text).unwrap().scaled(100).unwrap_err();
    assert!(e.contains("without [[pools]]"), "{e}");
    let text = std::fs::read_to_string(dir.join("chaos.toml")).unwrap();
    assert_eq!(
        Scenario::parse(&text)
            .unwrap()
            .scaled(100)
            .unwrap()
            .nodes()
            .len(),
        100
    );
}
