//! Native rules: the commonest rule shapes, compiled from the CEL syntax tree when the policy
//! loads and evaluated straight on the observation, without the interpreter.
//!
//! A gpu or node rule made only of `has(gpu.f)`, `gpu.f` / `node.f` (scalar fields), number,
//! string and bool literals, `*` of two doubles, the comparisons `< <= > >= == !=`, `!`,
//! `&&` and `||` is compiled to a [`Cond`]. Anything else (function calls, macros such as
//! `exists`, indexing, `xid_errors`, `labels`, …) keeps the interpreter only.
//!
//! The result is the interpreter's, exactly (the `cel` crate 0.15, `objects.rs`): a native
//! evaluation answers only when the interpreter would give the same bool, and otherwise
//! says "ask the interpreter" (`None`), which then runs the rule and gives its result or its
//! error. That happens for an absent field read without `has()`, NaN in an ordering
//! (`values_not_comparable`), a type the operator does not take, and a left operand of `&&`
//! / `||` that is not a bool. What is answered natively:
//! - `a && b`: `false` when `a` is `false`; `b` when `a` is `true` (and `b` a bool).
//!   `a || b`: `true` when `a` is `true`; `b` when `a` is `false`.
//! - `!a`: the negation of a bool.
//! - `has(x.f)`: whether the field is present (the interpreter: the value's `get` is Ok).
//! - Ordering: int with int as `i64`; int or double with double as `f64` (an int converted
//!   with `as f64`); string with string, bool with bool by their order. NaN: ask.
//! - `==` / `!=`: as ordering, where "not comparable" (NaN) is *not equal* (the crate's
//!   `equals`).
//! - `a * b` of two doubles: their product (overflow to ±Inf and NaN as in `f64`).

use cel::common::ast::{operators, CallExpr, Expr, LiteralValue};
use cel::IdedExpr;

mod values;

pub(crate) use values::{Positions, Slot, ValueFields};

use super::field::{GpuField, NodeField};
use super::vals::{GpuVal, NodeVal, Scalar};

/// A field the native rules read, with the slot that caches its value on one GPU.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum FieldRef {
    /// `gpu.NAME`: its kind, its name, its slot.
    Gpu(GpuField, Box<str>, usize),
    /// `node.NAME`: its kind and slot.
    Node(NodeField, usize),
}

/// A value-giving expression.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Operand {
    /// A field (absent: ask the interpreter).
    Field(FieldRef),
    /// A double literal.
    F(f64),
    /// An int literal.
    I(i64),
    /// A bool literal.
    B(bool),
    /// A string literal.
    S(Box<str>),
    /// `a * b` (two doubles).
    Mul(Box<Operand>, Box<Operand>),
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CmpOp {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

/// A compiled rule condition.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cond {
    And(Box<Cond>, Box<Cond>),
    Or(Box<Cond>, Box<Cond>),
    Not(Box<Cond>),
    /// `has(x.f)`.
    Has(FieldRef),
    /// A comparison.
    Cmp(CmpOp, Operand, Operand),
    /// A bool-valued operand used as a condition (`gpu.up`, `true`).
    Value(Operand),
}

/// The distinct fields of a policy's native rules, each with its slot.
#[derive(Debug, Default)]
pub(crate) struct Slots {
    names: Vec<(bool, String)>,
}

impl Slots {
    /// How many slots a GPU's cache needs.
    pub(crate) fn len(&self) -> usize {
        self.names.len()
    }

    /// The agent's values among the fields (`gpu.temperature_celsius`, …), sorted by name.
    pub(crate) fn value_fields(&self) -> ValueFields {
        let mut v: ValueFields = self
            .names
            .iter()
            .enumerate()
            .filter(|(_, (gpu, n))| *gpu && GpuField::of(n) == GpuField::Value)
            .map(|(i, (_, n))| (n.as_str().into(), i))
            .collect();
        v.sort();
        v
    }

    fn slot(&mut self, gpu: bool, name: &str) -> usize {
        if let Some(i) = self.names.iter().position(|(g, n)| *g == gpu && n == name) {
            return i;
        }
        self.names.push((gpu, name.to_string()));
        self.names.len() - 1
    }
}

/// What a rule's variables are: `gpu` and `node` (gpu rules) or `node` alone (node rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    Gpu,
    Node,
}

/// `expr` as a native condition of a rule of `scope`; `None` when it is not one of the
/// shapes evaluated natively.
pub(crate) fn compile(expr: &IdedExpr, scope: Scope, slots: &mut Slots) -> Option<Cond> {
    cond(&expr.expr, scope, slots)
}

fn cond(e: &Expr, scope: Scope, slots: &mut Slots) -> Option<Cond> {
    match e {
        Expr::Call(c) if c.target.is_none() => call(c, scope, slots),
        Expr::Select(s) if s.test => field(&s.operand.expr, &s.field, scope, slots).map(Cond::Has),
        _ => operand(e, scope, slots).map(Cond::Value),
    }
}

fn call(c: &CallExpr, scope: Scope, slots: &mut Slots) -> Option<Cond> {
    let op = match (c.func_name.as_str(), c.args.as_slice()) {
        (operators::LOGICAL_AND, [a, b]) => {
            return Some(Cond::And(
                Box::new(cond(&a.expr, scope, slots)?),
                Box::new(cond(&b.expr, scope, slots)?),
            ))
        }
        (operators::LOGICAL_OR, [a, b]) => {
            return Some(Cond::Or(
                Box::new(cond(&a.expr, scope, slots)?),
                Box::new(cond(&b.expr, scope, slots)?),
            ))
        }
        (operators::LOGICAL_NOT, [a]) => {
            return Some(Cond::Not(Box::new(cond(&a.expr, scope, slots)?)))
        }
        (operators::LESS, [_, _]) => CmpOp::Lt,
        (operators::LESS_EQUALS, [_, _]) => CmpOp::Le,
        (operators::GREATER, [_, _]) => CmpOp::Gt,
        (operators::GREATER_EQUALS, [_, _]) => CmpOp::Ge,
        (operators::EQUALS, [_, _]) => CmpOp::Eq,
        (operators::NOT_EQUALS, [_, _]) => CmpOp::Ne,
        _ => return None,
    };
    Some(Cond::Cmp(
        op,
        operand(&c.args[0].expr, scope, slots)?,
        operand(&c.args[1].expr, scope, slots)?,
    ))
}

fn operand(e: &Expr, scope: Scope, slots: &mut Slots) -> Option<Operand> {
    match e {
        Expr::Literal(LiteralValue::Double(d)) => Some(Operand::F(*d.inner())),
        Expr::Literal(LiteralValue::Int(i)) => Some(Operand::I(*i.inner())),
        Expr::Literal(LiteralValue::Boolean(b)) => Some(Operand::B(*b.inner())),
        Expr::Literal(LiteralValue::String(s)) => Some(Operand::S(s.inner().into())),
        Expr::Select(s) if !s.test => {
            field(&s.operand.expr, &s.field, scope, slots).map(Operand::Field)
        }
        Expr::Call(c)
            if c.target.is_none() && c.func_name == operators::MULTIPLY && c.args.len() == 2 =>
        {
            Some(Operand::Mul(
                Box::new(operand(&c.args[0].expr, scope, slots)?),
                Box::new(operand(&c.args[1].expr, scope, slots)?),
            ))
        }
        _ => None,
    }
}

/// `var.name` as a field the native rules read: `gpu` in gpu rules, `node` in both, and
/// only fields that are scalars or absent (never a list or map).
fn field(var: &Expr, name: &str, scope: Scope, slots: &mut Slots) -> Option<FieldRef> {
    let Expr::Ident(var) = var else { return None };
    match var.as_str() {
        "gpu" if scope == Scope::Gpu && !GpuField::may_be_container(name) => Some(FieldRef::Gpu(
            GpuField::of(name),
            name.into(),
            slots.slot(true, name),
        )),
        "node" => match NodeField::of(name) {
            NodeField::Other => None,
            k => Some(FieldRef::Node(k, slots.slot(false, name))),
        },
        _ => None,
    }
}

/// What a native rule reads: the GPU (gpu rules), the node, and the cache of fields read.
pub(crate) struct Input<'v, 'a> {
    pub(crate) gpu: Option<&'v GpuVal<'a>>,
    pub(crate) node: &'v NodeVal<'a>,
    pub(crate) cache: &'v mut [Slot<'a>],
}

impl<'a> Input<'_, 'a> {
    fn read(&mut self, f: &FieldRef) -> Option<Scalar<'a>> {
        let slot = match f {
            FieldRef::Gpu(_, _, s) | FieldRef::Node(_, s) => *s,
        };
        if let Some(Slot::Read(v)) = self.cache.get(slot) {
            return *v;
        }
        let v = match f {
            FieldRef::Gpu(k, name, _) => self.gpu.and_then(|g| g.field(*k, name)),
            FieldRef::Node(k, _) => self.node.field(*k),
        };
        if let Some(c) = self.cache.get_mut(slot) {
            *c = Slot::Read(v);
        }
        v
    }
}

/// The condition's value, or `None`: ask the interpreter (see the module's documentation).
pub(crate) fn eval(c: &Cond, input: &mut Input<'_, '_>) -> Option<bool> {
    match c {
        Cond::And(a, b) => match eval(a, input)? {
            false => Some(false),
            true => eval(b, input),
        },
        Cond::Or(a, b) => match eval(a, input)? {
            true => Some(true),
            false => eval(b, input),
        },
        Cond::Not(a) => eval(a, input).map(|v| !v),
        Cond::Has(f) => Some(input.read(f).is_some()),
        Cond::Value(o) => match value(o, input)? {
            V::B(b) => Some(b),
            _ => None,
        },
        Cond::Cmp(op, a, b) => {
            let a = value(a, input)?;
            let b = value(b, input)?;
            compare(*op, a, b)
        }
    }
}

/// A value during a native evaluation.
#[derive(Debug, Clone, Copy)]
enum V<'s> {
    F(f64),
    I(i64),
    B(bool),
    S(&'s str),
}

fn value<'x, 'a: 'x>(o: &'x Operand, input: &mut Input<'_, 'a>) -> Option<V<'x>> {
    Some(match o {
        Operand::Field(f) => match input.read(f)? {
            Scalar::F(v) => V::F(v),
            Scalar::I(v) => V::I(v),
            Scalar::B(v) => V::B(v),
            Scalar::S(v) => V::S(v),
        },
        Operand::F(v) => V::F(*v),
        Operand::I(v) => V::I(*v),
        Operand::B(v) => V::B(*v),
        Operand::S(v) => V::S(v),
        Operand::Mul(a, b) => match (value(a, input)?, value(b, input)?) {
            (V::F(a), V::F(b)) => V::F(a * b),
            _ => return None,
        },
    })
}

/// `a op b`; `None` where the interpreter fails (or answers by a rule not written here).
fn compare(op: CmpOp, a: V<'_>, b: V<'_>) -> Option<bool> {
    use std::cmp::Ordering;
    // `None` inside: not comparable (NaN).
    let ord: Option<Ordering> = match (a, b) {
        (V::I(a), V::I(b)) => Some(a.cmp(&b)),
        (V::F(a), V::F(b)) => a.partial_cmp(&b),
        (V::I(a), V::F(b)) => (a as f64).partial_cmp(&b),
        (V::F(a), V::I(b)) => a.partial_cmp(&(b as f64)),
        (V::S(a), V::S(b)) => Some(a.cmp(b)),
        (V::B(a), V::B(b)) => Some(a.cmp(&b)),
        _ => return None,
    };
    match op {
        CmpOp::Eq => Some(ord == Some(Ordering::Equal)),
        CmpOp::Ne => Some(ord != Some(Ordering::Equal)),
        CmpOp::Lt => ord.map(|o| o == Ordering::Less),
        CmpOp::Le => ord.map(|o| o != Ordering::Greater),
        CmpOp::Gt => ord.map(|o| o == Ordering::Greater),
        CmpOp::Ge => ord.map(|o| o != Ordering::Less),
    }
}
