//! The agent's values a policy's native rules read (`gpu.temperature_celsius`, …), found on
//! each GPU without searching for their names again.
//!
//! GPUs that report the same families share one list of names (`Values`' schema, the
//! same strings in memory); where a GPU's names are the very strings of the GPU before it,
//! the values sit at the same positions. Otherwise the positions are found again, in one
//! walk over the sorted names.

use super::super::vals::Scalar;
use crate::model::observation::Values;

/// A cached field value on one GPU.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) enum Slot<'a> {
    /// Not read yet.
    #[default]
    Unread,
    /// Read: its value, or absent.
    Read(Option<Scalar<'a>>),
}

/// The value fields of a policy's native rules: name and slot, sorted by name.
pub(crate) type ValueFields = Vec<(Box<str>, usize)>;

/// Where each value field sits in the names of the GPU seen last (of one observation).
#[derive(Debug, Default)]
pub(crate) struct Positions<'o> {
    /// The names the positions were found in.
    names: Option<&'o Values>,
    /// Per value field (in [`ValueFields`] order), its position.
    at: Vec<Option<usize>>,
    /// The GPU's values in name order.
    buf: Vec<f64>,
}

impl<'o> Positions<'o> {
    /// Reads every value field of `v` into `cache`.
    pub(crate) fn read(&mut self, v: &'o Values, fields: &ValueFields, cache: &mut [Slot<'_>]) {
        if fields.is_empty() {
            return;
        }
        // Both observations' names are borrowed for 'o: the same address is the same string.
        let same = self.names.is_some_and(|n| {
            n.len() == v.len() && n.keys().zip(v.keys()).all(|(a, b)| std::ptr::eq(a, b))
        });
        if !same {
            self.at.clear();
            let mut keys = v.keys().enumerate().peekable();
            for (name, _) in fields {
                let mut at = None;
                while let Some((p, k)) = keys.peek() {
                    match (*k).cmp(&**name) {
                        std::cmp::Ordering::Less => {
                            keys.next();
                        }
                        std::cmp::Ordering::Equal => {
                            at = Some(*p);
                            break;
                        }
                        std::cmp::Ordering::Greater => break,
                    }
                }
                self.at.push(at);
            }
            self.names = Some(v);
        }
        self.buf.clear();
        self.buf.extend(v.iter().map(|(_, x)| x));
        for ((_, slot), at) in fields.iter().zip(&self.at) {
            let value = at.and_then(|p| self.buf.get(p)).map(|x| Scalar::F(*x));
            if let Some(c) = cache.get_mut(*slot) {
                *c = Slot::Read(value);
            }
        }
    }
}
