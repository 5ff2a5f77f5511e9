//! Rule results remembered per node between scrapes.
//!
//! Most gpu and node rules read fields that rarely change (ECC and XID counters, PCIe link
//! width, remapped rows, NVLink state); only a few read values that move on every scrape
//! (temperature, power). Each rule's fields are found when the policy loads (`reads`); at
//! each observation a 64-bit fingerprint of those fields' values is compared with the one
//! of the rule's last evaluation on that GPU, and when it is the same the last result is
//! used instead of running the program. A rule whose fields cannot all be found (it uses
//! `gpu` or `node` other than as `gpu.field`, or has a backslash in it) is always run.
//! Failures are never remembered. Native rules (`fast`) are not remembered either: running
//! one costs less than its fingerprint; only where one falls back to the interpreter does
//! the memory apply.

use cel::Context;

use super::fast::{self, Input, Positions, Slot};
use super::fingerprint::{Fingerprint, Remembered};
use super::input;
use super::reads::Read;
use super::rule::{Evaluation, Match, Rule, RuleFailure, Scope};
use super::vals::{GpuVal, NodeVal};
use super::Policy;
use crate::judge::policy::NodeInput;
use crate::model::observation::{NodeObservation, SmallMap};

/// One node's remembered rule results: per GPU (the node rules under `u32::MAX`), per rule,
/// the fingerprint of what it read and whether it matched, in one word (8 bytes per rule and
/// GPU: 1.4 KiB for 20 rules on 8 GPUs).
#[derive(Debug, Default)]
pub struct RuleMemo {
    generation: u64,
    slots: SmallMap<u32, Box<[Remembered]>>,
}

impl RuleMemo {
    /// The slots of GPU `gpu` (or [`NODE_SLOT`]), one per rule.
    fn slots(&mut self, gpu: u32, rules: usize) -> &mut [Remembered] {
        if !self.slots.contains_key(&gpu) {
            self.slots
                .insert(gpu, vec![Remembered::default(); rules].into_boxed_slice());
        }
        self.slots
            .get_mut(&gpu)
            .map(|s| &mut s[..])
            .unwrap_or(&mut [])
    }
}

const NODE_SLOT: u32 = u32::MAX;

fn fingerprint(r: &Rule, gpu: Option<&GpuVal<'_>>, node: &NodeVal<'_>) -> Option<Fingerprint> {
    let reads = r.reads.as_ref()?;
    let mut h = Fingerprint::default();
    for rd in reads {
        match (rd, gpu) {
            (Read::Gpu(f), Some(g)) => g.fingerprint(f, &mut h),
            (Read::Gpu(_), None) => return None,
            (Read::Node(f), _) => node.fingerprint(f, &mut h),
        }
    }
    Some(h)
}

impl Policy {
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

    /// [`Policy::eval_observation`], reusing the results of rules whose fields did not change
    /// since the same node's last evaluation (`memo` is that node's).
    pub fn eval_observation_memo(
        &self,
        obs: &NodeObservation,
        prev: Option<(&NodeObservation, f64)>,
        node: &NodeInput,
        memo: &mut RuleMemo,
    ) -> Evaluation {
        self.eval_state(obs, prev, node, memo, true)
    }

    /// The gpu and node rules on `obs`; with `remember`, through `memo`.
    pub(super) fn eval_state(
        &self,
        obs: &NodeObservation,
        prev: Option<(&NodeObservation, f64)>,
        node: &NodeInput,
        memo: &mut RuleMemo,
        remember: bool,
    ) -> Evaluation {
        if memo.generation != self.generation {
            memo.slots.clear();
            memo.generation = self.generation;
        }
        let mut out = Evaluation::default();
        let parent: &Context<'_, '_> = &self.functions;
        let n_rules = self.rules.len();
        let nv = NodeVal::new(node, Some(obs));
        // The fields the native rules read, cached per GPU (on the stack for up to 32).
        let mut small = [Slot::Unread; 32];
        let mut big = Vec::new();
        let cache: &mut [Slot<'_>] = if self.fast_slots <= small.len() {
            &mut small[..self.fast_slots]
        } else {
            big.resize(self.fast_slots, Slot::Unread);
            &mut big
        };
        let mut positions = Positions::default();
        if self.rules.iter().any(|r| r.scope == Scope::Gpu) {
            for g in obs.gpus.values() {
                let prev_g = prev.and_then(|(p, dt)| p.gpus.get(&g.index).map(|pg| (pg, dt)));
                let gv = GpuVal::new(g, prev_g);
                let slots = memo.slots(g.index, n_rules);
                let mut ctx: Option<Context<'_, '_>> = None;
                cache.fill(Slot::Unread);
                positions.read(&g.values, &self.fast_values, cache);
                for (i, r) in self.rules.iter().enumerate() {
                    if r.scope != Scope::Gpu {
                        continue;
                    }
                    // A native rule is cheaper to run than to look up; it falls back to the
                    // interpreter (and the memory) only where it cannot answer.
                    let native = r.fast.as_ref().and_then(|c| {
                        fast::eval(
                            c,
                            &mut Input {
                                gpu: Some(&gv),
                                node: &nv,
                                cache,
                            },
                        )
                    });
                    let fp = || remember.then(|| fingerprint(r, Some(&gv), &nv)).flatten();
                    let fp = if native.is_some() { None } else { fp() };
                    let matched =
                        match native.or_else(|| fp.and_then(|now| slots[i].result_for(now))) {
                            Some(m) => Some(m),
                            None => {
                                let ctx = ctx.get_or_insert_with(|| {
                                    let mut c = parent.new_inner_scope();
                                    c.add_variable_as_val("gpu", Box::new(GpuVal::new(g, prev_g)));
                                    c.add_variable_as_val(
                                        "node",
                                        Box::new(NodeVal::new(node, Some(obs))),
                                    );
                                    c
                                });
                                let m = judge(r, ctx, || format!("gpu {}", g.index), &mut out);
                                slots[i] = Remembered::new(fp.zip(m));
                                m
                            }
                        };
                    if matched == Some(true) {
                        out.matches.push(matched_rule(
                            r,
                            Some(g.index),
                            input::gpu_detail(g, &r.when),
                        ));
                    }
                }
            }
        }
        let slots = memo.slots(NODE_SLOT, n_rules);
        let mut ctx: Option<Context<'_, '_>> = None;
        for (i, r) in self.rules.iter().enumerate() {
            if r.scope != Scope::Node {
                continue;
            }
            let native = r.fast.as_ref().and_then(|c| {
                fast::eval(
                    c,
                    &mut Input {
                        gpu: None,
                        node: &nv,
                        cache,
                    },
                )
            });
            let fp = || remember.then(|| fingerprint(r, None, &nv)).flatten();
            let fp = if native.is_some() { None } else { fp() };
            let matched = match native.or_else(|| fp.and_then(|now| slots[i].result_for(now))) {
                Some(m) => Some(m),
                None => {
                    let ctx = ctx.get_or_insert_with(|| {
                        let mut c = parent.new_inner_scope();
                        c.add_variable_as_val("node", Box::new(NodeVal::new(node, Some(obs))));
                        c
                    });
                    let m = judge(r, ctx, || "node".to_string(), &mut out);
                    slots[i] = Remembered::new(fp.zip(m));
                    m
                }
            };
            if matched == Some(true) {
                out.matches
                    .push(matched_rule(r, None, r.description.clone()));
            }
        }
        out
    }
}

fn matched_rule(r: &Rule, gpu: Option<u32>, detail: String) -> Match {
    Match {
        rule: r.name.clone(),
        verdict: r.verdict,
        action: r.action.clone(),
        gpu,
        detail,
        hold: r.hold,
    }
}

/// Runs one rule: whether it matched, or `None` after recording its failure.
fn judge(
    r: &Rule,
    ctx: &Context<'_, '_>,
    input: impl Fn() -> String,
    out: &mut Evaluation,
) -> Option<bool> {
    match r.program.execute(ctx) {
        Ok(cel::Value::Bool(b)) => Some(b),
        Ok(other) => {
            out.failures.push(RuleFailure {
                rule: r.name.clone(),
                input: input(),
                error: format!("returned {other:?}, not a bool"),
            });
            None
        }
        Err(e) => {
            out.failures.push(RuleFailure {
                rule: r.name.clone(),
                input: input(),
                error: e.to_string(),
            });
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judge::policy::reads::reads;

    #[test]
    fn the_fields_a_rule_reads_are_found_or_it_is_always_run() {
        assert_eq!(
            reads("has(gpu.power_watts) && gpu.power_watts > gpu . power_limit_watts * 1.05"),
            Some(vec![
                Read::Gpu("power_watts".into()),
                Read::Gpu("power_limit_watts".into())
            ])
        );
        assert_eq!(
            reads(
                r#"node.health_checks.exists(c, node.health_checks[c] == 2.0) && "gpu" != node.name"#
            ),
            Some(vec![
                Read::Node("health_checks".into()),
                Read::Node("name".into())
            ])
        );
        // A string that mentions gpu is not a read; x.gpu is a field, not the variable.
        assert_eq!(
            reads(r#"node.labels.gpu == "gpu.temperature""#),
            Some(vec![Read::Node("labels".into())])
        );
        for opaque in [
            r#"gpu["temperature_celsius"] > 90.0"#,
            "size(gpu) > 3",
            "node.health_checks.exists(gpu, gpu == 'x')",
            r#"gpu.model == "a\"b" && gpu.up"#,
        ] {
            assert_eq!(reads(opaque), None, "{opaque}");
        }
    }
}
