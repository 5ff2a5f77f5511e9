//! Bounds on the size of a `when` expression, checked by a cheap scan BEFORE the expression
//! reaches the CEL parser.
//!
//! The parser and the evaluator recurse once (or more) per nesting level and per operator of
//! a chain: an expression such as `1+1+…+1` with a few thousand terms, or a few dozen nested
//! parentheses in a debug build, overflows a thread's stack and aborts the whole process (a
//! stack overflow cannot be caught). The scan below is iterative and refuses such
//! expressions with a clear error instead. The limits are far above what real rules use (the
//! shipped `config/policies.toml` uses at most ~250 characters, 3 nesting levels and ~20
//! operators) and low enough that parsing (on a thread with [`PARSE_STACK_BYTES`]) and
//! evaluation (on threads with [`EVAL_STACK_BYTES`]) stay safe, debug build included.

/// Longest `when` expression, in bytes.
pub const MAX_EXPRESSION_BYTES: usize = 4096;
/// Deepest nesting of `()`, `[]` and `{}`.
pub const MAX_NESTING: usize = 24;
/// Most operators, member accesses (`.`), index/list brackets and call parentheses.
pub const MAX_OPERATORS: usize = 200;
/// Deepest nesting of comprehension macros (`all`, `exists`, `exists_one`, `map`,
/// `filter`): each level multiplies the iterations of the one it is in, so 20 nested loops
/// over 3-element lists (3^20 steps) would pin a scrape worker for good. Two levels over the
/// longest lists an expression or a GPU can hold stay in the milliseconds.
pub const MAX_COMPREHENSION_NESTING: usize = 2;

/// The CEL macros that loop over a list or map.
const COMPREHENSIONS: [&str; 5] = ["all", "exists", "exists_one", "map", "filter"];

/// Whether `b[at..]` is a comprehension macro's name followed by `(` (blanks allowed).
fn comprehension_at(b: &[u8], at: usize) -> bool {
    COMPREHENSIONS.iter().any(|name| {
        let end = at + name.len();
        b.get(at..end) == Some(name.as_bytes())
            && !b
                .get(end)
                .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
            && b[end..].iter().find(|c| !c.is_ascii_whitespace()) == Some(&b'(')
    })
}
/// Stack of the thread a policy document is parsed and dry-run on: enough for an
/// expression at the limits above in a debug build, with a wide margin.
pub const PARSE_STACK_BYTES: usize = 64 << 20;
/// Stack of every thread that evaluates rules (scrape workers, housekeeping, simulation):
/// enough for an expression at the limits above in a debug build, with a wide margin. Only
/// what is touched is committed; the rest is address space.
pub const EVAL_STACK_BYTES: usize = 16 << 20;

/// A limit an expression exceeds: the byte offset in the expression where it was crossed,
/// and the message for the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooComplex {
    /// Byte offset in the expression.
    pub offset: usize,
    /// What is wrong, naming the limit.
    pub message: String,
}

/// Scans `expr` (strings and comments skipped) and refuses it when it exceeds a limit.
pub fn check(expr: &str) -> Result<(), TooComplex> {
    if expr.len() > MAX_EXPRESSION_BYTES {
        return Err(TooComplex {
            offset: 0,
            message: format!(
                "the expression is {} bytes long; at most {MAX_EXPRESSION_BYTES} are allowed \
                 (split it into several rules)",
                expr.len()
            ),
        });
    }
    let b = expr.as_bytes();
    let (mut depth, mut ops, mut i) = (0usize, 0usize, 0usize);
    // The bracket depths at which open comprehensions' argument lists began.
    let mut loops: Vec<usize> = Vec::new();
    let mut loop_next = false;
    while i < b.len() {
        let c = b[i];
        match c {
            b'"' | b'\'' => {
                let raw = i > 0 && matches!(b[i - 1], b'r' | b'R');
                i = skip_string(b, i, raw);
                continue;
            }
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'(' | b'[' | b'{' => {
                depth += 1;
                ops += 1;
                if c == b'(' && std::mem::take(&mut loop_next) {
                    loops.push(depth);
                    if loops.len() > MAX_COMPREHENSION_NESTING {
                        return Err(TooComplex {
                            offset: i,
                            message: format!(
                                "the expression nests comprehensions (all, exists, map, …) more \
                                 than {MAX_COMPREHENSION_NESTING} deep"
                            ),
                        });
                    }
                }
                if depth > MAX_NESTING {
                    return Err(TooComplex {
                        offset: i,
                        message: format!(
                            "the expression nests brackets more than {MAX_NESTING} deep"
                        ),
                    });
                }
            }
            b')' | b']' | b'}' => {
                if c == b')' && loops.last() == Some(&depth) {
                    loops.pop();
                }
                depth = depth.saturating_sub(1);
            }
            // A decimal point inside a number is not a member access.
            b'.' if i > 0
                && b[i - 1].is_ascii_digit()
                && b.get(i + 1).is_some_and(u8::is_ascii_digit) => {}
            b'.' => {
                ops += 1;
                loop_next = comprehension_at(b, i + 1);
            }
            b'+' | b'-' | b'*' | b'/' | b'%' | b'!' | b'?' | b':' | b'<' | b'>' | b',' => ops += 1,
            // `==`, `&&`, `||` count once per pair.
            b'=' | b'&' | b'|' if b.get(i + 1) == Some(&c) => {
                ops += 1;
                i += 1;
            }
            _ => {}
        }
        if ops > MAX_OPERATORS {
            return Err(TooComplex {
                offset: i,
                message: format!(
                    "the expression has more than {MAX_OPERATORS} operators, member accesses \
                     and brackets (split it into several rules)"
                ),
            });
        }
        i += 1;
    }
    Ok(())
}

/// The index after the string literal starting at `start` (a quote; triple quotes too;
/// `raw`: an `r` prefix, where a backslash escapes nothing).
fn skip_string(b: &[u8], start: usize, raw: bool) -> usize {
    let q = b[start];
    let triple = b.get(start + 1) == Some(&q) && b.get(start + 2) == Some(&q);
    let mut i = start + if triple { 3 } else { 1 };
    while i < b.len() {
        if b[i] == b'\\' && !raw {
            i += 2;
            continue;
        }
        if b[i] == q && (!triple || (b.get(i + 1) == Some(&q) && b.get(i + 2) == Some(&q))) {
            return i + if triple { 3 } else { 1 };
        }
        i += 1;
    }
    b.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Follow-up of the hardening issue: 20 nested loops over 3-element lists passed every
    /// size limit, then pinned a scrape worker at full CPU for good (and a fatal XID on that
    /// node was never judged). Comprehensions nest at most two deep.
    #[test]
    fn comprehensions_nest_at_most_two_deep() {
        let nest = |n: usize| {
            let mut e = "v0 == 0".to_string();
            for k in 1..=n {
                e = format!("[0,0,0].all(v{k}, {e})");
            }
            e.replace("v0 == 0", "v1 == 0")
        };
        assert_eq!(check(&nest(1)), Ok(()));
        assert_eq!(check(&nest(2)), Ok(()));
        for n in [3, 20] {
            let e = check(&nest(n)).expect_err("refused");
            assert!(e.message.contains("comprehensions"), "{e:?}");
        }
        // Side by side is not nested; names that only start like a macro are not macros.
        assert_eq!(
            check("[1].exists(x, x == 1) && [2].all(y, y > 0) && [3].map(z, z).size() == 1"),
            Ok(())
        );
        assert_eq!(check("a.mapping(b(c(d)))"), Ok(()));
        assert_eq!(
            check("gpu.clock_events.exists(r, r in [\"a\"]) && node.health_checks.exists(c, true)"),
            Ok(())
        );
    }
}
