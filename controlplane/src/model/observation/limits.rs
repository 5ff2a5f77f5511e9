//! Per-target bounds on what one observation keeps. `scrape.sample_limit` bounds the
//! samples of a body, but not how many distinct GPUs, links or checks they name: 40,000
//! samples with distinct `gpu` labels made one observation of 40,000 GPUs (hundreds of MB
//! across scrapes, an 8 MB `/v1/nodes/{id}/observation`). A body past any bound below is
//! refused whole as a failed scrape (`gpuwarden_cp_scrapes_total{result="cardinality"}`).
//! The bounds are far above what real hardware reports.

use super::compact::SmallMap;

use std::borrow::Cow;

use gpuwarden_wire::exposition::Sample;

use super::error::ObserveError;

/// GPUs per target: the same bound registration applies (`POST /v1/nodes/register`).
pub const MAX_GPUS: usize = 1024;
/// NVLink links per GPU (an H100 has 18).
pub const MAX_LINKS: usize = 64;
/// Distinct XID codes, ECC counters, clock-event reasons and other series per GPU.
pub const MAX_PER_GPU: usize = 256;
/// Health-check (plugin) verdicts per target.
pub const MAX_CHECKS: usize = 256;
/// Longest label value (UUID, model, versions, check names, reasons) or metric name kept.
pub const MAX_VALUE_BYTES: usize = 256;

/// `Ok` while a collection of `len` items has room for one more under `limit`.
pub(super) fn room(
    len: usize,
    limit: usize,
    what: impl FnOnce() -> String,
) -> Result<(), ObserveError> {
    if len >= limit {
        return Err(ObserveError::TooMany {
            what: what(),
            limit,
        });
    }
    Ok(())
}

/// Inserts `k` → `v`, refusing a new key past `limit`.
pub(super) fn insert<K: Ord, V>(
    map: &mut SmallMap<K, V>,
    k: K,
    v: V,
    limit: usize,
    what: impl FnOnce() -> String,
) -> Result<(), ObserveError> {
    if !map.contains_key(&k) {
        room(map.len(), limit, what)?;
    }
    map.insert(k, v);
    Ok(())
}

/// The value of label `name` of `s` as sent (unescaped), refused when longer than
/// [`MAX_VALUE_BYTES`]; borrowed from the body unless it holds an escape.
pub(super) fn label_ref<'a>(
    s: &Sample<'a>,
    name: &str,
) -> Result<Option<Cow<'a, str>>, ObserveError> {
    match s.labels.get(name) {
        Some(v) if v.len() > MAX_VALUE_BYTES => Err(ObserveError::TooLong {
            metric: s.name.to_string(),
            label: format!("{name} label"),
            len: v.len(),
            max: MAX_VALUE_BYTES,
        }),
        v => Ok(v),
    }
}

/// [`label_ref`], owned.
pub(super) fn label(s: &Sample<'_>, name: &str) -> Result<Option<String>, ObserveError> {
    Ok(label_ref(s, name)?.map(Cow::into_owned))
}

pub(super) fn name(s: &Sample<'_>, short: &str) -> Result<(), ObserveError> {
    if short.len() > MAX_VALUE_BYTES {
        let head: String = s.name.chars().take(64).collect();
        return Err(ObserveError::TooLong {
            metric: format!("{head}…"),
            label: "metric name".into(),
            len: s.name.len(),
            max: MAX_VALUE_BYTES,
        });
    }
    Ok(())
}
