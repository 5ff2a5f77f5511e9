//! Loading the gpuwarden programs' configuration (`gpuwarden-agent` and `gpuwarden serve`).
//!
//! Both programs read TOML through figment, overridden by `GPUWARDEN_<SECTION>__<KEY>`
//! environment variables. This crate holds what the two loaders share:
//!
//! - [`extract_all`]: every problem of a configuration at once (unknown keys, values of the
//!   wrong type, in every section), each as a [`Problem`] naming the key path and where the
//!   value came from: the file's absolute path, or the environment variable. figment stops at
//!   the first error; here the offending key is set aside and the extraction is repeated, so
//!   one run lists them all, and the rest of the configuration can still be validated.
//! - [`mod@env`]: which `GPUWARDEN_*` variables belong to which program, so that one
//!   program's variables in the environment of the other (one host, one environment file)
//!   are ignored, while a misspelt key of its own still fails.
//!
//! - [`undocumented_keys`]: the keys an example configuration file lacks.
//!
//! It does not know the programs' configuration structures; it holds no I/O beyond figment's.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod defaults;
pub mod env;
mod example;
pub mod parent;
mod problems;
mod report;

pub use defaults::{defaults, Defaults};
pub use example::undocumented_keys;
pub use problems::{extract_all, locate, Extracted, Problem, Pruner};
pub use report::{key_of, ConfigError};
