//! What the CLI prints comes from the API, which stores what operators and agents sent
//! (cordon reasons, event messages, node names). A control character in such text (a
//! newline, ESC, BEL) would forge table rows or drive the terminal, so every string the
//! CLI shows as text goes through [`escape`] (table cells and view values) or
//! [`escape_text`] (whole outputs, whose own line breaks stay), and every URL in an error
//! message has its password masked by [`crate::validate::redact_urls`].

/// `s` with each control character written as an escape (`\n`, `\t`, `\r`, `\u{1b}`), so a
/// value is always one line of inert text.
pub fn escape(s: &str) -> String {
    if !s.chars().any(needs_escape) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        push(&mut out, c);
    }
    out
}

/// [`escape`] for a whole text output: its line breaks stay, other control characters are
/// escaped.
pub fn escape_text(s: &str) -> String {
    if !s.chars().any(|c| c != '\n' && needs_escape(c)) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push('\n'),
            c => push(&mut out, c),
        }
    }
    out
}

/// Control characters (C0, DEL, C1) and the bidirectional overrides that reorder text.
fn needs_escape(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

fn push(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\t' => out.push_str("\\t"),
        '\r' => out.push_str("\\r"),
        c if needs_escape(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
        c => out.push(c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hardening follow-up: a cordon reason `line1\nFAKE-ROW\u{1b}[31mred\u{7}` printed a
    /// fake table row and raw ESC/BEL.
    #[test]
    fn control_characters_are_shown_as_escapes() {
        let reason = "line1\nFAKE-ROW\u{1b}[31mred\u{7}";
        assert_eq!(escape(reason), "line1\\nFAKE-ROW\\u{1b}[31mred\\u{7}");
        assert_eq!(escape_text("a\u{1b}b\nc\u{9b}"), "a\\u{1b}b\nc\\u{9b}");
        assert_eq!(escape("plain ünïcode"), "plain ünïcode");
        assert_eq!(escape("\u{202e}evil"), "\\u{202e}evil");
    }
}
