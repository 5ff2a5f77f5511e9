//! Duplicate keys in a JSON body (`{"min_nodes":1,"min_nodes":2}`): serde keeps one of the
//! two silently where the body is read as a map or a `serde_json::Value` (a pool body,
//! provider params, labels), so which one counts would depend on how a field is read. Every
//! body is refused instead, with 400 naming the key and where it is; the CLI checks a
//! `--file` the same way before sending it.

use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// Walks a JSON document and fails at the first object with a key given twice.
struct Unique;

impl<'de> serde::Deserialize<'de> for Unique {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(UniqueVisitor)
    }
}

struct UniqueVisitor;

/// A key as the message shows it: at most 64 bytes of it.
fn shown(k: &str) -> String {
    let mut end = k.len().min(64);
    while !k.is_char_boundary(end) {
        end -= 1;
    }
    if end < k.len() {
        format!("{:?}…", &k[..end])
    } else {
        format!("{k:?}")
    }
}

impl<'de> Visitor<'de> for UniqueVisitor {
    type Value = Unique;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Unique, E> {
        Ok(Unique)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Unique, A::Error> {
        while seq.next_element::<Unique>()?.is_some() {}
        Ok(Unique)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Unique, A::Error> {
        let mut seen = HashSet::new();
        while let Some(k) = map.next_key::<String>()? {
            if !seen.insert(k.clone()) {
                return Err(de::Error::custom(format!(
                    "the key {} is given twice",
                    shown(&k)
                )));
            }
            map.next_value_seed(UniqueSeed)?;
        }
        Ok(Unique)
    }
}

struct UniqueSeed;

impl<'de> DeserializeSeed<'de> for UniqueSeed {
    type Value = Unique;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Unique, D::Error> {
        d.deserialize_any(UniqueVisitor)
    }
}

/// `Err` naming the first key given twice in one object of `bytes` (and the path to that
/// object), or why `bytes` is not JSON; `Ok` when every object's keys are unique.
pub fn check(bytes: &[u8]) -> Result<(), String> {
    let mut d = serde_json::Deserializer::from_slice(bytes);
    match serde_path_to_error::deserialize::<_, Unique>(&mut d) {
        Ok(_) => Ok(()),
        Err(e) => {
            let path = e.path().to_string();
            let inner = e.into_inner();
            Err(if path == "." {
                inner.to_string()
            } else {
                format!("{path}: {inner}")
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn a_key_given_twice_is_named_with_its_path() {
        assert!(check(br#"{"a":1,"b":{"a":2},"c":[{"a":1},{"a":2}]}"#).is_ok());
        let e = check(br#"{"min_nodes":1,"min_nodes":2}"#).unwrap_err();
        assert!(e.contains("\"min_nodes\" is given twice"), "{e}");
        let e = check(br#"{"autoscaler":{"autoscalers":[{},{"type":"queue","type":"x"}]}}"#)
            .unwrap_err();
        assert!(e.contains("autoscaler.autoscalers[1]"), "{e}");
        assert!(e.contains("\"type\" is given twice"), "{e}");
    }
}
