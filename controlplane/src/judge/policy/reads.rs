//! Which fields of `gpu` and `node` a rule's expression reads, found once when the policy
//! loads, so that a rule whose fields did not change since its last evaluation on a GPU is
//! not run again (`memo`).

/// A field a rule reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Read {
    /// `gpu.FIELD`
    Gpu(String),
    /// `node.FIELD`
    Node(String),
}

/// The fields `when` reads, or `None` when they cannot all be known from the text.
pub(crate) fn reads(when: &str) -> Option<Vec<Read>> {
    if when.contains('\\') {
        return None;
    }
    let b = when.as_bytes();
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut out: Vec<Read> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'"' || c == b'\'' {
            // A string literal: skip to its closing quote.
            i += 1;
            while i < b.len() && b[i] != c {
                i += 1;
            }
            i += 1;
            continue;
        }
        if !ident(c) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && ident(b[i]) {
            i += 1;
        }
        let word = &when[start..i];
        let is_field_name = start > 0 && b[start - 1] == b'.';
        if is_field_name || !matches!(word, "gpu" | "node" | "event") {
            continue;
        }
        let mut j = i;
        while j < b.len() && b[j].is_ascii_whitespace() {
            j += 1;
        }
        if j >= b.len() || b[j] != b'.' {
            return None;
        }
        j += 1;
        while j < b.len() && b[j].is_ascii_whitespace() {
            j += 1;
        }
        let fs = j;
        while j < b.len() && ident(b[j]) {
            j += 1;
        }
        if j == fs {
            return None;
        }
        let field = when[fs..j].to_string();
        let r = match word {
            "gpu" => Read::Gpu(field),
            "node" => Read::Node(field),
            _ => return None, // state rules do not see events
        };
        if !out.contains(&r) {
            out.push(r);
        }
        i = j;
    }
    Some(out)
}
