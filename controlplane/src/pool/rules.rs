//! Every rule of a pool at once, the same for `POST /v1/pools`, `PUT /v1/pools/{name}`
//! and the config file's `[[pools]]` (at start, in `--check-config` and at each reload):
//! the spec's own rules ([`crate::model::pool::PoolSpec::validate`], compiled by
//! [`Pool::build`]) and each provider's params as the provider reads them.

use crate::model::pool::{PoolError, PoolSpec};

use super::provider::{self, ProviderEnv};
use super::Pool;

/// Every problem of `spec`, each naming its field; empty when the pool is valid.
pub fn problems(spec: &PoolSpec) -> Vec<PoolError> {
    let mut out = match Pool::build(spec.clone()) {
        Ok(_) => Vec::new(),
        Err(p) => p,
    };
    out.extend(param_problems(spec));
    out
}

/// The problems of each provider's params (required, unknown and out-of-range params; an
/// API key's variable that is not set), each named `providers[I].params`: the provider is
/// built, not started. An agent binary that is not named is the pool manager's to find
/// when it provisions (a pool may be declared before the binary is installed); one that
/// is named is checked. A provider of an unknown kind is left to the spec's rules.
pub fn param_problems(spec: &PoolSpec) -> Vec<PoolError> {
    let mut env = ProviderEnv::new("http://127.0.0.1", std::env::temp_dir());
    env.agent_binary = std::env::current_exe().ok();
    let mut out = Vec::new();
    for (i, p) in spec.provider_list().iter().enumerate() {
        if !provider::KINDS.contains(&p.kind.as_str()) {
            continue;
        }
        if let Err(problems) = provider::build(&p.kind, &p.params, &env) {
            out.extend(problems.into_iter().map(|message| PoolError {
                field: format!("providers[{i}].params"),
                message,
            }));
        }
    }
    out
}
