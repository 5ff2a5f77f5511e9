//! Type-checking a plugin's export at load.
//!
//! wasmtime checks the type of an export only when it is looked up in an instance, that is
//! at every run: a component whose `check` is `func() -> string` would load, show
//! `loaded: true`, and fail every run. The same check runs here once, at load, with the
//! same types the runs use (those `bindgen!` made from `wit/plugin.wit`), so the two can
//! never disagree.

use wasmtime::component::types::{self, ComponentFunc, ComponentItem, Type};
use wasmtime::Engine;

use super::super::bindings::types::Report;
use super::super::one_line;
use super::error::PluginError;
use crate::config::PluginKind;

/// The function each world's interface must export, and its type as `wit/plugin.wit` says.
fn expected(kind: PluginKind) -> (&'static str, &'static str) {
    match kind {
        PluginKind::Check => ("check", "func() -> report"),
        PluginKind::Diagnostic => ("run", "func(params: list<tuple<string, string>>) -> report"),
    }
}

/// Checks that interface `iface` of component `ty` exports the function of world `kind`
/// with the contract's type. Errors are [`PluginError::WrongSignature`], one line naming
/// the function, what it is and what the agent calls.
pub(super) fn check(
    engine: &Engine,
    ty: &types::Component,
    kind: PluginKind,
    iface: &str,
) -> Result<(), PluginError> {
    let (name, want) = expected(kind);
    let wrong = |m: String| PluginError::WrongSignature(one_line(&m));
    let Some(export) = ty.get_export(engine, iface) else {
        return Err(wrong(format!("{iface} is not exported")));
    };
    let ComponentItem::ComponentInstance(instance) = export.ty else {
        return Err(wrong(format!("{iface} is not an interface")));
    };
    let Some(item) = instance.get_export(engine, name) else {
        let has: Vec<&str> = instance.exports(engine).map(|(n, _)| n).collect();
        return Err(wrong(format!(
            "{iface} has no function `{name}` (it exports [{}]); the agent calls `{name}: {want}`",
            has.join(", ")
        )));
    };
    let ComponentItem::ComponentFunc(func) = item.ty else {
        return Err(wrong(format!(
            "`{name}` in {iface} is not a function; the agent calls `{name}: {want}`"
        )));
    };
    let found = describe_func(&func);
    if func.async_() {
        return Err(wrong(format!(
            "`{name}` in {iface} is an async function ({found}); the agent calls `{name}: {want}`"
        )));
    }
    let instance_type = ty.instance_type();
    let checked = match kind {
        PluginKind::Check => func.typecheck::<(), (Report,)>(&instance_type),
        PluginKind::Diagnostic => {
            func.typecheck::<(Vec<(String, String)>,), (Report,)>(&instance_type)
        }
    };
    checked.map_err(|e| {
        wrong(format!(
            "`{name}` in {iface} is `{found}`; this agent calls `{name}: {want}` ({e:#})"
        ))
    })
}

/// A function type in WIT-like words, e.g. `func() -> string`.
fn describe_func(f: &ComponentFunc) -> String {
    let params: Vec<String> = f
        .params()
        .map(|(n, t)| format!("{n}: {}", describe(&t, 2)))
        .collect();
    let results: Vec<String> = f.results().map(|t| describe(&t, 2)).collect();
    match results.as_slice() {
        [] => format!("func({})", params.join(", ")),
        [one] => format!("func({}) -> {one}", params.join(", ")),
        many => format!("func({}) -> ({})", params.join(", "), many.join(", ")),
    }
}

/// A type in WIT-like words; records show their field names `depth` levels deep.
fn describe(t: &Type, depth: usize) -> String {
    match t {
        Type::List(l) => format!("list<{}>", describe(&l.ty(), depth)),
        Type::Option(o) => format!("option<{}>", describe(&o.ty(), depth)),
        Type::Tuple(t) => format!(
            "tuple<{}>",
            t.types()
                .map(|t| describe(&t, depth))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Type::Record(r) if depth > 0 => format!(
            "record {{ {} }}",
            r.fields()
                .map(|f| format!("{}: {}", f.name, describe(&f.ty, depth - 1)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Type::Enum(e) => format!("enum {{ {} }}", e.names().collect::<Vec<_>>().join(", ")),
        other => format!("{other:?}")
            .split('(')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase(),
    }
}
