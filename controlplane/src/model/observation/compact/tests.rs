//! The compact containers: map semantics, shared schemas, bounded interning.

use super::*;

#[test]
fn a_small_map_reads_like_a_sorted_map() {
    let mut m: SmallMap<u32, f64> = [(3, 1.0), (1, 2.0)].into_iter().collect();
    assert_eq!(m.insert(2, 5.0), None);
    assert_eq!(m.insert(3, 7.0), Some(1.0));
    assert_eq!(m.keys().copied().collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(m.get(&3), Some(&7.0));
    assert_eq!(m.get(&4), None);
    assert_eq!(
        serde_json::to_string(&m).unwrap(),
        r#"{"1":2.0,"2":5.0,"3":7.0}"#
    );
    let back: SmallMap<u32, f64> = serde_json::from_str(r#"{"3":7.0,"1":2.0}"#).unwrap();
    assert_eq!(back.keys().copied().collect::<Vec<_>>(), [1, 3]);
    // Collected pairs with one key: the last one given is kept, as `insert` would.
    let m: SmallMap<u32, f64> = [(2, 1.0), (1, 0.0), (2, 3.0)].into_iter().collect();
    assert_eq!(m.iter().collect::<Vec<_>>(), [(&1, &0.0), (&2, &3.0)]);
    let mut m = m;
    assert_eq!(m.remove(&1), Some(0.0));
    assert_eq!((m.len(), m.get(&2)), (1, Some(&3.0)));
}

#[test]
fn gpus_reporting_the_same_families_share_one_schema() {
    let a = Values::from_pairs(vec![("temperature_celsius", 70.0), ("power_watts", 300.0)]);
    let b = Values::from_pairs(vec![("power_watts", 310.0), ("temperature_celsius", 71.0)]);
    let (Some(x), Some(y)) = (&a.names, &b.names) else {
        panic!("schemas")
    };
    assert!(Arc::ptr_eq(x, y), "one schema for both GPUs");
    assert_eq!(a.get("power_watts"), Some(&300.0));
    assert_eq!(b.get("temperature_celsius"), Some(&71.0));
    assert_eq!(a.get("missing"), None);
    assert_ne!(a, b);
    assert_eq!(
        a.iter().collect::<Vec<_>>(),
        [("power_watts", 300.0), ("temperature_celsius", 70.0)]
    );
}

#[test]
fn a_name_given_twice_keeps_its_last_value() {
    let v = Values::from_pairs(vec![("x", 1.0), ("y", 2.0), ("x", 3.0)]);
    assert_eq!(v.len(), 2);
    assert_eq!(v.get("x"), Some(&3.0));
    let mut w = v.clone();
    w.insert("y", 9.0);
    w.insert("z", 1.0);
    assert_eq!(
        serde_json::to_string(&w).unwrap(),
        r#"{"x":3.0,"y":9.0,"z":1.0}"#
    );
    let back: Values = serde_json::from_str(r#"{"z":1.0,"x":3.0,"y":9.0}"#).unwrap();
    assert_eq!(back, w);
}

#[test]
fn interning_shares_text_and_stays_bounded() {
    let t = Interner::new(2);
    let a = t.intern("double_bit");
    let b = t.intern(&String::from("double_bit"));
    assert!(Arc::ptr_eq(&a, &b));
    t.intern("single_bit");
    // Past the bound: the text comes back right, unshared, and the table does not grow.
    let c = t.intern("volatile");
    let d = t.intern("volatile");
    assert_eq!((&*c, &*d), ("volatile", "volatile"));
    assert!(!Arc::ptr_eq(&c, &d));
    assert_eq!(t.table.lock().unwrap().len(), 2);
}
