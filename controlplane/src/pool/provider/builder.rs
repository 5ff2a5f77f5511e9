//! From a pool spec's provider (`kind` and `params`) to a running provider.

use std::sync::Arc;

use super::{exec, fake, lambda, local, Provider, ProviderEnv, KINDS};

/// Builds a provider from its kind and params (the JSON object of the pool spec); every
/// problem at once, each naming the param.
pub fn build(
    kind: &str,
    params: &serde_json::Map<String, serde_json::Value>,
    env: &ProviderEnv,
) -> Result<Arc<dyn Provider>, Vec<String>> {
    Ok(match kind {
        "fake" => Arc::new(fake::FakeProvider::from_params(params)?),
        "local" => Arc::new(local::LocalProvider::from_params(params, env)?),
        "exec" => Arc::new(exec::ExecProvider::from_params(params)?),
        "lambda" => Arc::new(lambda::LambdaProvider::from_params(params, env)?),
        other => {
            return Err(vec![format!(
                "unknown provider {other:?} (known: {})",
                KINDS.join(", ")
            )])
        }
    })
}
