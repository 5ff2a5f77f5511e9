//! [`build`]: an autoscaler from its spec, children first.

use crate::model::pool::{AutoscalerSpec, PoolError};

use super::composite::Composite;
use super::metrics::Autoscale;
use super::predictive::Predictive;
use super::queue::Queue;
use super::reactive::Reactive;
use super::scheduled::Scheduled;

/// The autoscaler a validated spec describes; an error only for what validation reports
/// too (an unknown time zone, a bad duration or clock time), under the field `at`.
pub fn build(spec: &AutoscalerSpec, at: &str) -> Result<Box<dyn Autoscale>, PoolError> {
    let err = |field: &str, message: String| PoolError {
        field: format!("{at}.{field}"),
        message,
    };
    Ok(match spec {
        AutoscalerSpec::Reactive(r) => Box::new(Reactive::new(r)),
        AutoscalerSpec::Queue(q) => Box::new(Queue::new(q)),
        AutoscalerSpec::Scheduled(s) => {
            let fallback = match &s.fallback {
                Some(fb) => Some(build(fb, &format!("{at}.fallback"))?),
                None => None,
            };
            Box::new(Scheduled::new(s, at, fallback)?)
        }
        AutoscalerSpec::Predictive(p) => Box::new(Predictive::new(p).map_err(|(f, m)| err(f, m))?),
        AutoscalerSpec::Composite(c) => {
            let children = c
                .autoscalers
                .iter()
                .enumerate()
                .map(|(i, a)| build(a, &format!("{at}.autoscalers[{i}]")))
                .collect::<Result<Vec<_>, _>>()?;
            Box::new(Composite::new(c.mode, children))
        }
    })
}
