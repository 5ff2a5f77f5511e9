//! The rules' variables as CEL values that read the observation in place.
//!
//! Building a CEL map per GPU and event (30-odd owned keys and values), which the `cel` crate
//! then converts again on each field access, was most of a policy's cost. These types answer
//! `gpu.temperature_celsius`, `has(gpu.x)` and `gpu["x"]` by looking the field up when it is
//! read, borrowing the observation; the few container fields (`xid_errors`, `labels`, …)
//! are built on first use and kept for the rest of the evaluation.

use std::collections::HashMap;
use std::sync::OnceLock;

use cel::common::traits::Indexer;
use cel::common::types::{
    CelBool, CelDouble, CelInt, CelList, CelMap, CelMapKey, CelString, Kind, Type,
};
use cel::common::value::{CowVal, Val};
use cel::ExecutionError;

use super::field::{GpuField, NodeField};
use super::fingerprint::Fingerprint;
use super::input::{ecc, growth, nvlink_errors, EventInput, NodeInput};
use crate::model::observation::{GpuObservation, NodeObservation};

static EVENT_TYPE: Type = Type::simple_type(Kind::Struct, "gpuwarden.Event");
static GPU_TYPE: Type = Type::simple_type(Kind::Struct, "gpuwarden.Gpu");
static NODE_TYPE: Type = Type::simple_type(Kind::Struct, "gpuwarden.Node");

fn field(idx: &dyn Val) -> Result<&str, ExecutionError> {
    idx.downcast_ref::<CelString>()
        .map(CelString::inner)
        .ok_or_else(|| ExecutionError::no_such_key("(not a string)"))
}

fn double<'b, 'v>(v: f64) -> Result<CowVal<'b, 'v>, ExecutionError> {
    Ok(CowVal::owned(CelDouble::from(v)))
}

fn int<'b, 'v>(v: i64) -> Result<CowVal<'b, 'v>, ExecutionError> {
    Ok(CowVal::owned(CelInt::from(v)))
}

fn string<'b, 'v>(v: &'v str) -> Result<CowVal<'b, 'v>, ExecutionError> {
    Ok(CowVal::owned(CelString::from(v)))
}

fn string_map<'v, V: Val + 'v>(entries: impl Iterator<Item = (String, V)>) -> CelMap<'v> {
    let m: HashMap<CelMapKey<'v>, Box<dyn Val + 'v>> = entries
        .map(|(k, v)| {
            (
                CelMapKey::String(CelString::from(k)),
                Box::new(v) as Box<dyn Val + 'v>,
            )
        })
        .collect();
    CelMap::from(m)
}

/// A field's value that is not a container.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Scalar<'a> {
    F(f64),
    I(i64),
    B(bool),
    S(&'a str),
}

impl<'a> Scalar<'a> {
    fn into_val<'b, 'v>(self) -> Result<CowVal<'b, 'v>, ExecutionError>
    where
        'a: 'v,
    {
        match self {
            Scalar::F(v) => double(v),
            Scalar::I(v) => int(v),
            Scalar::B(v) => Ok(CowVal::owned(CelBool::from(v))),
            Scalar::S(v) => string(v),
        }
    }

    fn mix(self, h: &mut Fingerprint) {
        match self {
            Scalar::F(v) => h.add(v.to_bits()),
            Scalar::I(v) => h.add(v as u64),
            Scalar::B(v) => h.add(u64::from(v)),
            Scalar::S(v) => h.add_str(v),
        }
    }
}

macro_rules! struct_val {
    ($t:ident, $ty:ident) => {
        impl<'a> Val for $t<'a> {
            fn get_type(&self) -> &Type {
                &$ty
            }
            fn cel_type() -> &'static Type {
                &$ty
            }
            fn as_indexer<'b, 'w>(&'b self) -> Option<&'b (dyn Indexer + 'w)>
            where
                Self: 'w,
            {
                Some(self)
            }
            fn clone_as_boxed<'w>(&self) -> Box<dyn Val + 'w>
            where
                Self: 'w,
            {
                Box::new(self.fresh())
            }
        }

        impl<'a> Indexer for $t<'a> {
            fn get<'b, 'v>(&'b self, idx: &dyn Val) -> Result<CowVal<'b, 'v>, ExecutionError>
            where
                Self: 'v,
            {
                self.lookup(field(idx)?)
            }
            fn steal<'v>(
                self: Box<Self>,
                idx: &dyn Val,
            ) -> Result<Box<dyn Val + 'v>, ExecutionError>
            where
                Self: 'v,
            {
                self.get(idx).map(CowVal::into_owned)
            }
        }
    };
}

/// `event`.
#[derive(Debug)]
pub(crate) struct EventVal<'a>(pub &'a EventInput);

impl<'a> EventVal<'a> {
    fn fresh(&self) -> Self {
        EventVal(self.0)
    }

    fn lookup<'b, 'v>(&'b self, f: &str) -> Result<CowVal<'b, 'v>, ExecutionError>
    where
        'a: 'v,
    {
        let e = self.0;
        match f {
            "seq" => int(e.seq),
            "kind" => string(&e.kind),
            "code" => e
                .code
                .map_or_else(|| Err(ExecutionError::no_such_key("code")), int),
            "gpu" => int(e.gpu.map_or(-1, i64::from)),
            "uuid" => e
                .uuid
                .as_deref()
                .map_or_else(|| Err(ExecutionError::no_such_key("uuid")), string),
            "message" => string(&e.message),
            "severity" => string(&e.severity),
            "action" => string(e.action.as_deref().unwrap_or("ignore")),
            "source" => string(&e.source),
            other => Err(ExecutionError::no_such_key(other)),
        }
    }
}

struct_val!(EventVal, EVENT_TYPE);

/// `gpu`: one GPU, and the same GPU in the previous observation with the seconds between.
#[derive(Debug)]
pub(crate) struct GpuVal<'a> {
    g: &'a GpuObservation,
    prev: Option<(&'a GpuObservation, f64)>,
    xids: OnceLock<CelMap<'a>>,
    clocks: OnceLock<CelList<'a>>,
}

impl<'a> GpuVal<'a> {
    pub(crate) fn new(g: &'a GpuObservation, prev: Option<(&'a GpuObservation, f64)>) -> Self {
        GpuVal {
            g,
            prev,
            xids: OnceLock::new(),
            clocks: OnceLock::new(),
        }
    }

    fn fresh(&self) -> Self {
        GpuVal::new(self.g, self.prev)
    }

    /// A field that is a number, string or bool; `None` when absent (unknown, see `input.rs`).
    fn scalar(&self, f: &str) -> Option<Scalar<'a>> {
        self.field(GpuField::of(f), f)
    }

    /// [`GpuVal::scalar`] of field `f`, whose kind `k` (`GpuField::of(f)`) was found before.
    /// The fields the control plane derives (`ecc_uncorrected`, `nvlink_down`, the deltas, …)
    /// come first: a series of the same name in the agent's body cannot stand in for them.
    pub(crate) fn field(&self, k: GpuField, f: &str) -> Option<Scalar<'a>> {
        let g = self.g;
        let prev = self.prev.map(|(p, _)| p);
        match k {
            GpuField::Index => Some(Scalar::I(i64::from(g.index))),
            GpuField::Uuid => Some(Scalar::S(&g.uuid)),
            GpuField::Model => Some(Scalar::S(&g.model)),
            GpuField::Up => g.up.map(Scalar::B),
            GpuField::EccCorrected => ecc(g, "corrected").map(Scalar::F),
            GpuField::EccUncorrected => ecc(g, "uncorrected").map(Scalar::F),
            GpuField::NvlinkErrors => nvlink_errors(g).map(Scalar::F),
            GpuField::NvlinkDown => (!g.nvlink_up.is_empty()).then(|| {
                Scalar::I(
                    i64::try_from(g.nvlink_up.values().filter(|up| !*up).count()).unwrap_or(0),
                )
            }),
            GpuField::EccCorrectedPerHour => match self.prev {
                Some((p, dt)) if dt > 0.0 => growth(ecc(g, "corrected"), ecc(p, "corrected"))
                    .map(|d| Scalar::F(d * 3600.0 / dt)),
                _ => None,
            },
            GpuField::NvlinkErrorsDelta => {
                growth(nvlink_errors(g), prev.and_then(nvlink_errors)).map(Scalar::F)
            }
            GpuField::PcieReplaysDelta => growth(
                g.values.get("pcie_replays_total").copied(),
                prev.and_then(|p| p.values.get("pcie_replays_total").copied()),
            )
            .map(Scalar::F),
            GpuField::Value => g.values.get(f).map(|v| Scalar::F(*v)),
        }
    }

    /// Mixes field `f`'s value into `h` (rule memoization: same values, same result).
    pub(crate) fn fingerprint(&self, f: &str, h: &mut Fingerprint) {
        if let Some(v) = self.scalar(f) {
            return v.mix(h);
        }
        match f {
            "xid_errors" => {
                for (c, n) in &self.g.xid_errors {
                    h.add(u64::from(*c));
                    h.add(n.to_bits());
                }
            }
            "clock_events" => {
                for r in &self.g.clock_events {
                    h.add_str(r);
                }
            }
            _ => h.add(u64::MAX), // absent
        }
    }

    fn lookup<'b, 'v>(&'b self, f: &str) -> Result<CowVal<'b, 'v>, ExecutionError>
    where
        'a: 'v,
    {
        if let Some(v) = self.scalar(f) {
            return v.into_val();
        }
        let g = self.g;
        match f {
            "xid_errors" => Ok(CowVal::Borrowed(self.xids.get_or_init(|| {
                string_map(
                    g.xid_errors
                        .iter()
                        .map(|(c, n)| (c.to_string(), CelDouble::from(*n))),
                )
            }))),
            "clock_events" => Ok(CowVal::Borrowed(self.clocks.get_or_init(|| {
                let v: Vec<Box<dyn Val + 'a>> = g
                    .clock_events
                    .iter()
                    .map(|r| Box::new(CelString::from(&**r)) as Box<dyn Val + 'a>)
                    .collect();
                CelList::from(v)
            }))),
            other => Err(ExecutionError::no_such_key(other)),
        }
    }
}

struct_val!(GpuVal, GPU_TYPE);

/// `node`, with the observation when there is one.
#[derive(Debug)]
pub(crate) struct NodeVal<'a> {
    n: &'a NodeInput,
    obs: Option<&'a NodeObservation>,
    labels: OnceLock<CelMap<'a>>,
    checks: OnceLock<CelMap<'a>>,
}

impl<'a> NodeVal<'a> {
    pub(crate) fn new(n: &'a NodeInput, obs: Option<&'a NodeObservation>) -> Self {
        NodeVal {
            n,
            obs,
            labels: OnceLock::new(),
            checks: OnceLock::new(),
        }
    }

    fn fresh(&self) -> Self {
        NodeVal::new(self.n, self.obs)
    }

    fn scalar(&self, f: &str) -> Option<Scalar<'a>> {
        self.field(NodeField::of(f))
    }

    /// The field of kind `k`, when it is a number or string; `None` when absent or a map.
    pub(crate) fn field(&self, k: NodeField) -> Option<Scalar<'a>> {
        let n = self.n;
        let count = |c: usize| Scalar::I(i64::try_from(c).unwrap_or(i64::MAX));
        match k {
            NodeField::Name => Some(Scalar::S(&n.name)),
            NodeField::Pool => Some(Scalar::S(&n.pool)),
            NodeField::Connectivity => Some(Scalar::S(&n.connectivity)),
            // Absent when unknown: 0 expected, or no observation to count GPUs in.
            NodeField::ExpectedGpus => (n.expected_gpus > 0).then(|| count(n.expected_gpus)),
            NodeField::GpuCount => self.obs.map(|o| count(o.gpus.len())),
            NodeField::DriverVersion => self
                .obs
                .and_then(|o| o.driver_version.as_deref())
                .map(Scalar::S),
            NodeField::Other => None,
        }
    }

    /// Mixes field `f`'s value into `h`.
    pub(crate) fn fingerprint(&self, f: &str, h: &mut Fingerprint) {
        if let Some(v) = self.scalar(f) {
            return v.mix(h);
        }
        match f {
            "labels" => {
                for (k, v) in &self.n.labels {
                    h.add_str(k);
                    h.add_str(v);
                }
            }
            "health_checks" => {
                for (k, v) in self.obs.into_iter().flat_map(|o| o.health_checks.iter()) {
                    h.add_str(k);
                    h.add(v.to_bits());
                }
            }
            _ => h.add(u64::MAX),
        }
    }

    fn lookup<'b, 'v>(&'b self, f: &str) -> Result<CowVal<'b, 'v>, ExecutionError>
    where
        'a: 'v,
    {
        if let Some(v) = self.scalar(f) {
            return v.into_val();
        }
        let n = self.n;
        match f {
            "labels" => Ok(CowVal::Borrowed(self.labels.get_or_init(|| {
                string_map(
                    n.labels
                        .iter()
                        .map(|(k, v)| (k.clone(), CelString::from(v.as_str()))),
                )
            }))),
            "health_checks" => Ok(CowVal::Borrowed(self.checks.get_or_init(|| {
                string_map(
                    self.obs
                        .into_iter()
                        .flat_map(|o| o.health_checks.iter())
                        .map(|(k, v)| (k.clone(), CelDouble::from(*v))),
                )
            }))),
            other => Err(ExecutionError::no_such_key(other)),
        }
    }
}

struct_val!(NodeVal, NODE_TYPE);
