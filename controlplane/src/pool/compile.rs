//! A pool compiled from its validated spec: durations parsed, the autoscaler built once.

use crate::model::pool::{AutoscalerSpec, PoolError, PoolSpec, ProviderSpec};

use super::autoscale::{build, Autoscale};

/// What the pool manager runs for one pool.
#[derive(Debug)]
pub struct Pool {
    /// The spec it was built from (shown by the API as it was given).
    pub spec: PoolSpec,
    /// The providers in effect ([`PoolSpec::provider_list`]).
    pub providers: Vec<ProviderSpec>,
    /// `scale_up_cooldown` in milliseconds.
    pub scale_up_cooldown_ms: i64,
    /// `scale_down_cooldown` in milliseconds.
    pub scale_down_cooldown_ms: i64,
    /// `registration_timeout` in milliseconds.
    pub registration_timeout_ms: i64,
    /// `remediation.drain_timeout` in milliseconds.
    pub drain_timeout_ms: i64,
    /// The autoscaler, when the spec names one.
    pub autoscaler: Option<Box<dyn Autoscale>>,
    /// How far back the autoscaler reads the pool's utilization (the longest `window` of
    /// its predictive autoscalers; 0: none reads it, and no history is stored).
    pub history_window_ms: i64,
}

impl Pool {
    /// Validates `spec` ([`PoolSpec::validate`]: every problem at once) and compiles it.
    pub fn build(spec: PoolSpec) -> Result<Pool, Vec<PoolError>> {
        let problems = spec.validate();
        if !problems.is_empty() {
            return Err(problems);
        }
        let ms = |field: &str, d: &crate::model::pool::DurationText| {
            d.parse()
                .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
                .map_err(|message| {
                    vec![PoolError {
                        field: field.into(),
                        message,
                    }]
                })
        };
        let autoscaler = match &spec.autoscaler {
            Some(a) => Some(build(a, "autoscaler").map_err(|e| vec![e])?),
            None => None,
        };
        Ok(Pool {
            history_window_ms: spec.autoscaler.as_ref().map_or(0, history_window_ms),
            providers: spec.provider_list(),
            scale_up_cooldown_ms: ms("scale_up_cooldown", &spec.scale_up_cooldown)?,
            scale_down_cooldown_ms: ms("scale_down_cooldown", &spec.scale_down_cooldown)?,
            registration_timeout_ms: ms("registration_timeout", &spec.registration_timeout)?,
            drain_timeout_ms: ms("remediation.drain_timeout", &spec.remediation.drain_timeout)?,
            autoscaler,
            spec,
        })
    }
}

/// The longest `window` of the predictive autoscalers in `a` (a composite's children
/// included), in milliseconds; 0 when there is none.
pub fn history_window_ms(a: &AutoscalerSpec) -> i64 {
    match a {
        AutoscalerSpec::Predictive(p) => p
            .window
            .parse()
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
        AutoscalerSpec::Composite(c) => c
            .autoscalers
            .iter()
            .map(history_window_ms)
            .max()
            .unwrap_or(0),
        _ => 0,
    }
}
