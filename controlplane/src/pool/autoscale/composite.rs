//! `composite`: several autoscalers, combined by the largest, smallest or mean answer.

use super::metrics::{Autoscale, Metrics, Recommendation};
use crate::model::pool::CompositeMode;

/// Children and how their answers combine.
#[derive(Debug)]
pub struct Composite {
    mode: CompositeMode,
    children: Vec<Box<dyn Autoscale>>,
}

impl Composite {
    /// Combines `children` by `mode`.
    pub fn new(mode: CompositeMode, children: Vec<Box<dyn Autoscale>>) -> Composite {
        Composite { mode, children }
    }
}

impl Autoscale for Composite {
    fn recommend(&self, m: &Metrics, now_ms: i64) -> Recommendation {
        let answers: Vec<Recommendation> = self
            .children
            .iter()
            .map(|c| c.recommend(m, now_ms))
            .collect();
        let counts: Vec<u64> = answers
            .iter()
            .filter_map(|a| a.nodes)
            .map(u64::from)
            .collect();
        let reasons = answers
            .iter()
            .map(|a| a.reason.as_str())
            .collect::<Vec<_>>()
            .join("; ");
        let combined = match self.mode {
            CompositeMode::Max => counts.iter().max().copied(),
            CompositeMode::Min => counts.iter().min().copied(),
            CompositeMode::Avg => (!counts.is_empty())
                .then(|| counts.iter().sum::<u64>().div_ceil(counts.len() as u64)),
        };
        let mode = match self.mode {
            CompositeMode::Max => "max",
            CompositeMode::Min => "min",
            CompositeMode::Avg => "avg",
        };
        match combined {
            // Each count came from a u32, so their max, min and mean fit one.
            Some(n) => Recommendation::nodes(
                u32::try_from(n).unwrap_or(u32::MAX),
                format!("composite {mode}: {n} of [{reasons}]"),
            ),
            None => Recommendation::none(format!(
                "composite {mode}: no child has an answer [{reasons}]"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A child with a fixed answer.
    #[derive(Debug)]
    struct Fixed(Option<u32>);

    impl Autoscale for Fixed {
        fn recommend(&self, _: &Metrics, _: i64) -> Recommendation {
            match self.0 {
                Some(n) => Recommendation::nodes(n, format!("fixed {n}")),
                None => Recommendation::none("fixed none"),
            }
        }
    }

    #[test]
    fn children_combine_by_mode_and_silent_ones_are_left_out() {
        let kids = |v: &[Option<u32>]| -> Vec<Box<dyn Autoscale>> {
            v.iter()
                .map(|n| Box::new(Fixed(*n)) as Box<dyn Autoscale>)
                .collect()
        };
        use CompositeMode::*;
        for (mode, answers, want) in [
            (Max, vec![Some(2), Some(7), Some(4)], Some(7)),
            (Min, vec![Some(2), Some(7), Some(4)], Some(2)),
            (Avg, vec![Some(2), Some(7), Some(4)], Some(5)),
            (Avg, vec![Some(2), Some(3)], Some(3)),
            (Max, vec![None, Some(3)], Some(3)),
            (Min, vec![None, Some(3)], Some(3)),
            (Avg, vec![None, None], None),
            (Max, vec![Some(u32::MAX), Some(u32::MAX)], Some(u32::MAX)),
            (Avg, vec![Some(u32::MAX), Some(u32::MAX)], Some(u32::MAX)),
        ] {
            let c = Composite::new(mode, kids(&answers));
            let got = c.recommend(&Metrics::default(), 0);
            assert_eq!(got.nodes, want, "{mode:?} {answers:?}: {}", got.reason);
            assert!(
                got.reason.contains("fixed"),
                "children's reasons shown: {}",
                got.reason
            );
        }
    }
}
