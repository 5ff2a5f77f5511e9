//! Write gpuwarden plugins in Rust.
//!
//! A health check is one function and an export macro:
//!
//! ```ignore
//! use gpuwarden_plugin_sdk::prelude::*;
//!
//! struct HotGpus;
//!
//! impl HealthCheck for HotGpus {
//!     fn check(host: &Host) -> Report {
//!         let limit = host.config().f64("max_celsius").unwrap_or(85.0);
//!         let mut report = ReportBuilder::new();
//!         for s in host.samples() {
//!             if let Some(t) = s.temperature_celsius.filter(|t| *t >= limit) {
//!                 report.finding(Some(s.index), Status::Degraded, format!("{t}°C"), Action::None);
//!             }
//!         }
//!         report.finish("all GPUs below the limit")
//!     }
//! }
//!
//! export_health_check!(HotGpus);
//! ```
//!
//! Build with `cargo build --release --target wasm32-wasip2`: the `.wasm` in
//! `target/wasm32-wasip2/release/` is a component the agent loads as it is.
//!
//! The SDK generates the bindings of both worlds of `wit/plugin.wit`; only the world whose
//! export macro a plugin uses ends up in its component.
#![deny(missing_docs)]

extern crate self as gpuwarden_plugin_sdk;

pub mod checks;
mod host;
mod report;

pub use host::{Config, Host};
pub use report::ReportBuilder;

/// Generated bindings (an implementation detail of the export macros).
#[doc(hidden)]
pub mod bindings {
    /// The health-check world.
    #[allow(missing_docs)]
    pub mod check {
        wit_bindgen::generate!({
            path: "../../wit",
            world: "health-check",
            pub_export_macro: true,
            export_macro_name: "__export_health_check",
            default_bindings_module: "gpuwarden_plugin_sdk::bindings::check",
            runtime_path: "gpuwarden_plugin_sdk::__rt",
        });
    }
    /// The diagnostic world; shares the host and types bindings of `check`.
    #[allow(missing_docs)]
    pub mod diagnostic {
        wit_bindgen::generate!({
            path: "../../wit",
            world: "diagnostic",
            with: {
                "gpuwarden:plugin/types@0.1.0": crate::bindings::check::gpuwarden::plugin::types,
                "gpuwarden:plugin/host@0.1.0": crate::bindings::check::gpuwarden::plugin::host,
            },
            pub_export_macro: true,
            export_macro_name: "__export_diagnostic",
            default_bindings_module: "gpuwarden_plugin_sdk::bindings::diagnostic",
            runtime_path: "gpuwarden_plugin_sdk::__rt",
        });
    }
}

/// The wit-bindgen runtime, re-exported so plugins need no dependency of their own.
#[doc(hidden)]
pub mod __rt {
    pub use wit_bindgen::rt::*;
}

pub use bindings::check::gpuwarden::plugin::types::{
    Action, EccCounts, Finding, GpuInfo, GpuSample, HealthEvent, LogLevel, Metric, Nvlink,
    RemappedRows, Report, Severity, Status,
};

/// The XID table shared with the agent: meaning, severity and recommended action per XID.
///
/// Where the driver's message is at hand (a [`HealthEvent`]'s `message`), use
/// [`xid::action_of`] and [`xid::status_of`]: some XIDs (NVLink5 144–150, 154) are decided by
/// their message, the same way the agent and the control plane decide them
/// (`gpuwarden_wire::xid::classify`).
pub mod xid {
    pub use gpuwarden_wire::xid::{lookup, XidInfo, XID_TABLE};

    use crate::{Action, Status};

    /// The plugin-contract action for an XID known by its code alone.
    pub fn action(code: u32) -> Action {
        action_of(code, None)
    }

    /// The status an XID known by its code alone implies: fatal → unhealthy,
    /// warning → degraded, info → healthy.
    pub fn status(code: u32) -> Status {
        status_of(code, None)
    }

    /// The plugin-contract action for XID `code` with the driver's `message`.
    pub fn action_of(code: u32, message: Option<&str>) -> Action {
        crate::report::action_from_wire(gpuwarden_wire::xid::classify(code, message).1)
    }

    /// The status XID `code` with the driver's `message` implies.
    pub fn status_of(code: u32, message: Option<&str>) -> Status {
        match gpuwarden_wire::xid::classify(code, message).0 {
            gpuwarden_wire::Severity::Fatal => Status::Unhealthy,
            gpuwarden_wire::Severity::Warning => Status::Degraded,
            gpuwarden_wire::Severity::Info => Status::Healthy,
        }
    }
}

/// A health check: the agent calls [`HealthCheck::check`] on the plugin's interval.
pub trait HealthCheck {
    /// Looks at the node and reports.
    fn check(host: &Host) -> Report;
}

/// A diagnostic: run on demand with parameters (`POST /v1/plugins/{name}/run`).
pub trait Diagnostic {
    /// Runs with the operator's parameters and reports.
    fn run(host: &Host, params: &Config) -> Report;
}

/// Exports a [`HealthCheck`] implementation as the plugin's `check`.
#[macro_export]
macro_rules! export_health_check {
    ($t:ty) => {
        #[doc(hidden)]
        pub struct __GpuwardenHealthCheck;
        impl $crate::bindings::check::exports::gpuwarden::plugin::checker::Guest
            for __GpuwardenHealthCheck
        {
            fn check() -> $crate::Report {
                <$t as $crate::HealthCheck>::check(&$crate::Host::new())
            }
        }
        $crate::bindings::check::__export_health_check!(
            __GpuwardenHealthCheck with_types_in $crate::bindings::check
        );
    };
}

/// Exports a [`Diagnostic`] implementation as the plugin's `run`.
#[macro_export]
macro_rules! export_diagnostic {
    ($t:ty) => {
        #[doc(hidden)]
        pub struct __GpuwardenDiagnostic;
        impl $crate::bindings::diagnostic::exports::gpuwarden::plugin::diagnostics::Guest
            for __GpuwardenDiagnostic
        {
            fn run(params: $crate::__rt_vec::Vec<(String, String)>) -> $crate::Report {
                <$t as $crate::Diagnostic>::run(&$crate::Host::new(), &$crate::Config::from_pairs(params))
            }
        }
        $crate::bindings::diagnostic::__export_diagnostic!(
            __GpuwardenDiagnostic with_types_in $crate::bindings::diagnostic
        );
    };
}

#[doc(hidden)]
pub mod __rt_vec {
    pub use std::vec::Vec;
}

/// What most plugins need.
pub mod prelude {
    pub use crate::{
        export_diagnostic, export_health_check, xid, Action, Config, Diagnostic, Finding, GpuInfo,
        GpuSample, HealthCheck, HealthEvent, Host, Report, ReportBuilder, Severity, Status,
    };
}
