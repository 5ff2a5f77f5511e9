//! The caps on a pool spec's lists and sizes ([`super`] applies them).

use crate::model::pool::autoscaler::AutoscalerSpec;

/// Most providers of one pool.
pub const MAX_PROVIDERS: usize = 16;

/// Most zones of one pool.
pub const MAX_ZONES: usize = 32;

/// Most windows of one scheduled autoscaler.
pub const MAX_WINDOWS: usize = 64;

/// Most children of one composite autoscaler.
pub const MAX_CHILDREN: usize = 8;

/// Most autoscalers in one pool, nested ones included (with [`MAX_CHILDREN`] and the
/// depth alone, a tree could hold thousands).
pub const MAX_AUTOSCALERS: usize = 16;

/// Most bytes of one provider's params, as JSON.
pub const MAX_PARAMS_BYTES: usize = 16 * 1024;

/// `s` cut to 64 bytes (at a character boundary), `…` marking the cut.
pub(super) fn clip(s: &str) -> String {
    if s.len() <= 64 {
        return s.to_string();
    }
    let mut end = 64;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Autoscalers in the tree under `a`, `a` included (stops counting past the cap).
pub(super) fn count(a: &AutoscalerSpec) -> usize {
    match a {
        AutoscalerSpec::Composite(c) => {
            1 + c
                .autoscalers
                .iter()
                .take(MAX_AUTOSCALERS + 1)
                .map(count)
                .sum::<usize>()
        }
        AutoscalerSpec::Scheduled(s) => 1 + s.fallback.as_deref().map_or(0, count),
        _ => 1,
    }
}
