//! Host bindings of the plugin contract, generated from `wit/plugin.wit`.
#![allow(missing_docs, clippy::all)]

/// The `health-check` world; owns the `types` and `host` interfaces.
pub mod check {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "health-check",
        exports: { default: async },
    });
}

/// The `diagnostic` world; shares `types` and `host` with [`check`].
pub mod diagnostic {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "diagnostic",
        exports: { default: async },
        with: {
            "gpuwarden:plugin/types": super::check::gpuwarden::plugin::types,
            "gpuwarden:plugin/host": super::check::gpuwarden::plugin::host,
        },
    });
}

pub use check::gpuwarden::plugin::types;
