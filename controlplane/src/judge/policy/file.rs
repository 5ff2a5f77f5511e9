//! The policy file: TOML → validated rules → compiled programs, every problem reported with
//! its rule, line and column.

use std::collections::HashSet;
use std::ops::Range;

use cel::{ExecutionError, Program};

use super::input;
use super::rule::{Rule, Scope, Verdict};

mod errors;
pub mod limits;
mod read;

pub use errors::PolicyError;
use errors::{position, Errors};

const ACTIONS: &[&str] = &[
    "ignore",
    "restart_app",
    "reset_gpu",
    "reboot_node",
    "contact_support",
];

/// Where the expression of a `when` starts in the document (after the opening quotes).
fn expression_start(text: &str, span: &Range<usize>) -> usize {
    let raw = &text[span.start.min(text.len())..];
    if raw.starts_with("'''") || raw.starts_with("\"\"\"") {
        span.start + 3
    } else {
        span.start + 1
    }
}

/// A dry run on a representative input: unknown variables, functions and fields, and type
/// errors, surface at load time instead of on the first real event.
fn dry_run(program: &Program, scope: Scope, when: &str) -> Option<String> {
    let (event, gpu, obs, node) = input::samples();
    let mut ctx = super::functions::base_context();
    match scope {
        Scope::Event => {
            ctx.add_variable_as_val("event", Box::new(super::vals::EventVal(&event)));
            ctx.add_variable_as_val("node", Box::new(super::vals::NodeVal::new(&node, None)));
        }
        Scope::Gpu => {
            // With a previous observation, so the growth fields exist too.
            ctx.add_variable_as_val(
                "gpu",
                Box::new(super::vals::GpuVal::new(&gpu, Some((&gpu, 60.0)))),
            );
            ctx.add_variable_as_val(
                "node",
                Box::new(super::vals::NodeVal::new(&node, Some(&obs))),
            );
        }
        Scope::Node => ctx.add_variable_as_val(
            "node",
            Box::new(super::vals::NodeVal::new(&node, Some(&obs))),
        ),
    }
    match program.execute(&ctx) {
        Ok(cel::Value::Bool(_)) => None,
        Ok(other) => Some(format!("the expression gives {other:?}, not a bool")),
        Err(ExecutionError::UndeclaredReference(name)) => Some(format!(
            "unknown name {name:?} (a {} rule sees {})",
            match scope {
                Scope::Event => "event",
                Scope::Gpu => "gpu",
                Scope::Node => "node",
            },
            match scope {
                Scope::Event => "`event` and `node`",
                Scope::Gpu => "`gpu` and `node`",
                Scope::Node => "`node`",
            }
        )),
        // A missing map key is normal for optional values (`has()` guards them), but a field
        // written `x.field` that no input ever has is a typo.
        Err(ExecutionError::NoSuchKey(k)) if when.contains(&format!(".{k}")) => Some(format!(
            "no field {k:?} (see docs/policies.md for the fields of each scope)"
        )),
        Err(ExecutionError::NoSuchKey(_)) => None,
        Err(e) => Some(format!("type error: {e}")),
    }
}

/// Compiles one `when` (already within [`limits`]); CEL's errors are placed in the document.
fn compile(
    when: &str,
    text: &str,
    start: usize,
    name: &str,
    errs: &mut Errors<'_>,
) -> Option<Program> {
    match Program::compile(when) {
        Ok(p) => Some(p),
        Err(e) => {
            for pe in &e.errors {
                let (line, column) = position(text, start);
                let (l, c) = (
                    usize::try_from(pe.pos.0).unwrap_or(1).max(1),
                    usize::try_from(pe.pos.1).unwrap_or(1).max(1),
                );
                errs.list.push(PolicyError {
                    rule: Some(name.to_string()),
                    line: line + l - 1,
                    column: if l == 1 { column + c - 1 } else { c },
                    message: format!("CEL: {}", pe.msg),
                });
            }
            None
        }
    }
}

/// Parses and validates; compiles only a document without problems.
pub(super) fn parse(text: &str) -> Result<Vec<Rule>, Vec<PolicyError>> {
    let mut errs = Errors {
        text,
        list: Vec::new(),
    };
    let Some(raw) = read::rules(text, &mut errs) else {
        return Err(errs.list);
    };
    if raw.is_empty() && errs.list.is_empty() {
        errs.at(None, 0..0, "no [[rule]] in the policy".into());
    }
    let mut names = HashSet::new();
    let mut rules = Vec::new();
    for r in raw {
        let name = r.name.get_ref().trim().to_string();
        let n = Some(name.as_str());
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            errs.at(
                n,
                r.name.span(),
                format!("rule name {name:?} must be letters, digits, '-', '_' or '.'"),
            );
        } else if !names.insert(name.clone()) {
            errs.at(
                n,
                r.name.span(),
                format!("a rule named {name:?} appears twice"),
            );
        }
        // Shown in node views, tables and the console: one line of plain text.
        if let Err(e) = crate::validate::free_text(&r.description, 1024) {
            errs.at(n, r.name.span(), format!("description {e}"));
        }
        let scope = match r.scope.get_ref().as_str() {
            "event" => Some(Scope::Event),
            "gpu" => Some(Scope::Gpu),
            "node" => Some(Scope::Node),
            other => {
                errs.at(
                    n,
                    r.scope.span(),
                    format!("unknown scope {other:?}: use event, gpu or node"),
                );
                None
            }
        };
        let verdict = match r.verdict.get_ref().as_str() {
            "degraded" => Some(Verdict::Degraded),
            "unhealthy" => Some(Verdict::Unhealthy),
            other => {
                errs.at(
                    n,
                    r.verdict.span(),
                    format!("unknown verdict {other:?}: use degraded or unhealthy"),
                );
                None
            }
        };
        let hold = match &r.hold {
            None => None,
            Some(h) if scope == Some(Scope::Event) => {
                errs.at(
                    n,
                    h.span(),
                    "`for` applies to gpu and node rules; an event happens once".into(),
                );
                None
            }
            Some(h) => match humantime::parse_duration(h.get_ref()) {
                Ok(d) => Some(d),
                Err(e) => {
                    errs.at(n, h.span(), format!("for = {:?}: {e}", h.get_ref()));
                    None
                }
            },
        };
        if let Some(a) = &r.action {
            if !ACTIONS.contains(&a.get_ref().as_str()) {
                errs.at(
                    n,
                    a.span(),
                    format!(
                        "unknown action {:?}: use {}",
                        a.get_ref(),
                        ACTIONS.join(", ")
                    ),
                );
            }
        }
        let when = r.when.get_ref().clone();
        let start = expression_start(text, &r.when.span());
        let program = match limits::check(&when) {
            Err(too) => {
                errs.at(n, start + too.offset..start + too.offset, too.message);
                None
            }
            Ok(()) => compile(&when, text, start, &name, &mut errs),
        };
        if let (Some(p), Some(s)) = (&program, scope) {
            if let Some(m) = dry_run(p, s, &when) {
                errs.at(n, start..start, m);
            }
        }
        if let (Some(program), Some(scope), Some(verdict)) = (program, scope, verdict) {
            let reads = super::reads::reads(&when);
            rules.push(Rule {
                name,
                description: r.description,
                scope,
                when,
                verdict,
                hold,
                action: r.action.map(|a| a.into_inner()),
                program,
                reads,
                fast: None,
            });
        }
    }
    if errs.list.is_empty() {
        Ok(rules)
    } else {
        Err(errs.list)
    }
}
