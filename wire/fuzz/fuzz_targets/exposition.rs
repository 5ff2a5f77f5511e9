//! Any bytes: the parser returns samples or an error, never panics, and whatever it accepts
//! reads back consistently (every label iterates, a parsed body re-parses line by line).
#![no_main]

use gpuwarden_wire::exposition::{parse, Entry, Parser};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(samples) = parse(data) else { return };
    for s in &samples {
        for (name, value) in s.labels.iter() {
            assert!(!name.is_empty());
            assert_eq!(s.labels.get(name).is_some(), true);
            let _ = value.len();
        }
    }
    // The iterator agrees with `parse`.
    let n = Parser::new(data).filter(|e| matches!(e, Ok(Entry::Sample(_)))).count();
    assert_eq!(n, samples.len());
});
