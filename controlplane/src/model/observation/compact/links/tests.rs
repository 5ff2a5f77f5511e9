//! Link sets read back exactly like the maps they replace: same links, values, order, JSON.

use super::*;

/// Links in an order no map would keep, some past the bits, one given twice.
const LINKS: [u32; 9] = [17, 3, 0, 63, 64, 200, 5, 3, 1];

#[test]
fn link_states_read_and_serialize_like_a_map() {
    let mut bits = LinkStates::default();
    let mut map = SmallMap::<u32, bool>::default();
    for (n, l) in LINKS.into_iter().enumerate() {
        let up = n % 3 != 0;
        assert_eq!(bits.insert(l, up), map.insert(l, up));
    }
    assert_eq!(bits.len(), map.len());
    assert_eq!(
        bits.iter().collect::<Vec<_>>(),
        map.iter().map(|(l, u)| (*l, *u)).collect::<Vec<_>>()
    );
    for l in 0..=300 {
        assert_eq!(bits.get(&l), map.get(&l), "link {l}");
    }
    assert_eq!(
        serde_json::to_string(&bits).unwrap(),
        serde_json::to_string(&map).unwrap()
    );
    assert_eq!(format!("{bits:?}"), format!("{map:?}"));
    assert!(bits[&3] && bits[&64] && !bits[&17]);
    bits.clear();
    assert!(bits.is_empty());
    assert_eq!(serde_json::to_string(&bits).unwrap(), "{}");
}

#[test]
fn link_values_read_sum_and_serialize_like_a_map() {
    let mut packed = LinkValues::default();
    let mut map = SmallMap::<u32, f64>::default();
    for (n, l) in LINKS.into_iter().enumerate() {
        // Totals that do not sum exactly in every order: the order must be the map's.
        let v = 0.1 * n as f64 + 1e16 * f64::from(u8::from(n == 2));
        assert_eq!(packed.insert(l, v), map.insert(l, v));
    }
    assert_eq!(packed.len(), map.len());
    assert_eq!(
        packed.iter().collect::<Vec<_>>(),
        map.iter().map(|(l, v)| (*l, *v)).collect::<Vec<_>>()
    );
    let sum: f64 = packed.values().sum();
    assert_eq!(sum.to_bits(), map.values().sum::<f64>().to_bits());
    for l in 0..=300 {
        assert_eq!(packed.get(&l), map.get(&l), "link {l}");
    }
    assert_eq!(
        serde_json::to_string(&packed).unwrap(),
        serde_json::to_string(&map).unwrap()
    );
    assert_eq!(packed[&200], map[&200]);
    let mut other = LinkValues::default();
    for (l, v) in map.iter().rev() {
        other.insert(*l, *v);
    }
    assert_eq!(other, packed, "one value per link whatever the order given");
}

#[test]
fn link_values_built_at_once_equal_built_link_by_link() {
    let mut one_by_one = LinkValues::default();
    let mut map = SmallMap::<u32, f64>::default();
    for (n, l) in LINKS.into_iter().enumerate() {
        one_by_one.insert(l, n as f64 + 0.5);
        map.insert(l, n as f64 + 0.5);
    }
    let sorted: Vec<(u32, f64)> = map.iter().map(|(l, v)| (*l, *v)).collect();
    let at_once = LinkValues::from_sorted(sorted.clone());
    assert_eq!(
        at_once, one_by_one,
        "same links, values and order, 64 and above included"
    );
    assert_eq!(at_once.iter().collect::<Vec<_>>(), sorted);
    assert_eq!(LinkValues::from_sorted(Vec::new()), LinkValues::default());
    // Collected from any order, the last value of a link is kept, as with insert.
    let collected: LinkValues = sorted.iter().rev().copied().chain([(3, 9.0)]).collect();
    one_by_one.insert(3, 9.0);
    assert_eq!(collected, one_by_one);
}
