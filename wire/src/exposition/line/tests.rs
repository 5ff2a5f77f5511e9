//! The byte classes and the value fast path of [`super`].

use super::*;

/// The table gives the text format's classes for every byte: metric names
/// `[a-zA-Z_:][a-zA-Z0-9_:]*`, label names `[a-zA-Z_][a-zA-Z0-9_]*`.
#[test]
fn byte_classes_are_the_formats_for_every_byte() {
    for c in 0..=255u8 {
        let alpha = c.is_ascii_alphabetic() || c == b'_';
        let digit = c.is_ascii_digit();
        assert_eq!(is_name_start(c), alpha || c == b':', "{c}");
        assert_eq!(is_name_char(c), alpha || digit || c == b':', "{c}");
        assert_eq!(is_label_start(c), alpha, "{c}");
        assert_eq!(is_label_char(c), alpha || digit, "{c}");
    }
}

/// Plain integers take a path of their own; every value equals Go's/std's parse.
#[test]
fn integer_values_are_exact_on_the_fast_path_and_beside_it() {
    for v in [
        "0",
        "7",
        "42345481189",
        "999999999999999",
        "1000000000000000",
        "9007199254740993",
        "18446744073709551616",
        "00012",
        "1e3",
        "-5",
        "+5",
        "1.5",
    ] {
        assert_eq!(parse_value(v.as_bytes()), v.parse::<f64>().ok(), "{v}");
    }
    assert_eq!(parse_value(b""), None);
    assert_eq!(parse_value(b"12a"), None);
}
