//! Reading the policy document's structure with every problem at once: unknown keys, values
//! of the wrong type and missing keys, in every rule, each at its line and column. (A serde
//! derive stops at the first of them; this walks the parsed document instead.) Only a TOML
//! syntax error ends the reading early: nothing after it can be trusted.

use std::ops::Range;

use toml_edit::{ImDocument, Item, Key, TableLike, Value};

use super::errors::Errors;

/// A value and where it is in the document.
#[derive(Debug, Clone)]
pub(super) struct Sp<T> {
    value: T,
    span: Range<usize>,
}

impl<T> Sp<T> {
    pub(super) fn get_ref(&self) -> &T {
        &self.value
    }
    pub(super) fn span(&self) -> Range<usize> {
        self.span.clone()
    }
    pub(super) fn into_inner(self) -> T {
        self.value
    }
}

/// One `[[rule]]` whose keys are all there and all strings.
#[derive(Debug)]
pub(super) struct RawRule {
    pub(super) name: Sp<String>,
    pub(super) description: String,
    pub(super) scope: Sp<String>,
    pub(super) when: Sp<String>,
    pub(super) verdict: Sp<String>,
    pub(super) hold: Option<Sp<String>>,
    pub(super) action: Option<Sp<String>>,
}

/// The keys of a rule, required ones first.
const REQUIRED: &[&str] = &["name", "scope", "when", "verdict"];
const OPTIONAL: &[&str] = &["description", "for", "action"];

fn key_span(key: Option<&Key>, item: &Item) -> Range<usize> {
    key.and_then(Key::span)
        .or_else(|| item.span())
        .unwrap_or(0..0)
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a float",
        Value::Boolean(_) => "a boolean",
        Value::Datetime(_) => "a date",
        Value::Array(_) => "an array",
        Value::InlineTable(_) => "a table",
    }
}

/// The rules of `text`; every structural problem goes to `errs`. `None` when the text is not
/// TOML at all.
pub(super) fn rules(text: &str, errs: &mut Errors<'_>) -> Option<Vec<RawRule>> {
    let doc = match ImDocument::parse(text) {
        Ok(d) => d,
        Err(e) => {
            errs.at(
                None,
                e.span().unwrap_or(0..0),
                e.message().trim().to_string(),
            );
            return None;
        }
    };
    let mut out = Vec::new();
    for (k, item) in doc.as_table().iter() {
        let span = key_span(doc.as_table().key(k), item);
        if k != "rule" {
            errs.at(
                None,
                span,
                format!("unknown key {k:?}; a policy file holds [[rule]] tables only"),
            );
            continue;
        }
        let tables: Vec<&dyn TableLike> = match item {
            Item::ArrayOfTables(a) => a.iter().map(|t| t as &dyn TableLike).collect(),
            Item::Value(Value::Array(a)) if a.iter().all(|v| v.is_inline_table()) => a
                .iter()
                .filter_map(|v| v.as_inline_table().map(|t| t as &dyn TableLike))
                .collect(),
            _ => {
                errs.at(None, span, "\"rule\" must be [[rule]] tables".into());
                continue;
            }
        };
        let spans: Vec<Range<usize>> = match item {
            Item::ArrayOfTables(a) => a.iter().map(|t| t.span().unwrap_or(span.clone())).collect(),
            _ => vec![span.clone(); tables.len()],
        };
        for (t, at) in tables.into_iter().zip(spans) {
            if let Some(r) = rule(t, at, errs) {
                out.push(r);
            }
        }
    }
    Some(out)
}

/// One rule: every unknown key, wrong type and missing key is reported.
fn rule(t: &dyn TableLike, at: Range<usize>, errs: &mut Errors<'_>) -> Option<RawRule> {
    let name = t
        .get("name")
        .and_then(|i| i.as_str())
        .map(|n| n.trim().to_string());
    let n = name.as_deref();
    let mut strings = std::collections::HashMap::new();
    for (k, item) in t.iter() {
        let span = key_span(t.key(k), item);
        if !REQUIRED.contains(&k) && !OPTIONAL.contains(&k) {
            errs.at(
                n,
                span,
                format!(
                    "unknown key {k:?}; a rule has {} (required) and {} (optional)",
                    REQUIRED.join(", "),
                    OPTIONAL.join(", ")
                ),
            );
            continue;
        }
        match item.as_value() {
            Some(Value::String(s)) => {
                let vspan = item.span().unwrap_or(span);
                strings.insert(
                    k.to_string(),
                    Sp {
                        value: s.value().clone(),
                        span: vspan,
                    },
                );
            }
            Some(v) => errs.at(
                n,
                item.span().unwrap_or(span),
                format!("{k} must be a string, not {}", kind_of(v)),
            ),
            None => errs.at(n, span, format!("{k} must be a string, not a table")),
        }
    }
    let mut missing = false;
    for k in REQUIRED {
        if !t.contains_key(k) {
            errs.at(n, at.clone(), format!("missing key {k:?}"));
            missing = true;
        }
    }
    let mut take = |k: &str| strings.remove(k);
    let (name, scope, when, verdict) = (take("name"), take("scope"), take("when"), take("verdict"));
    let (description, hold, action) = (take("description"), take("for"), take("action"));
    if missing {
        return None;
    }
    Some(RawRule {
        name: name?,
        description: description.map(Sp::into_inner).unwrap_or_default(),
        scope: scope?,
        when: when?,
        verdict: verdict?,
        hold,
        action,
    })
}
