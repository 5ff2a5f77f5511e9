//! One set of rules for what the control plane takes from outside: node and pool names,
//! label names and values, URLs, tokens and durations. The configuration (`--check-config`
//! and start-up), the REST API and Prometheus service discovery all use these functions,
//! so a value one of them accepts is never refused, or emitted broken, by another.
//!
//! Each check returns `Err(message)`; the message says what is wrong in words an operator
//! can act on, without the value's key (callers prefix it: `static_targets[0].labels`,
//! `label "x"`, …).

pub mod dupes;

use std::collections::BTreeMap;
use std::time::Duration;

/// The rule for node and pool names, as shown in errors.
pub const NAME_RULE: &str =
    "1-63 letters, digits, '.', '_' or '-', starting with a letter or digit";

/// Most labels a node may carry.
pub const MAX_LABELS: usize = 64;

/// Longest label value, in bytes.
pub const MAX_LABEL_VALUE: usize = 256;

/// Shortest admin or bootstrap token, in characters.
pub const MIN_TOKEN_LEN: usize = 16;

/// Checks a node or pool name: [`NAME_RULE`].
pub fn name(s: &str) -> Result<(), String> {
    let b = s.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"._-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!("{s:?} must be {NAME_RULE}"))
    }
}

/// Checks a label name as Prometheus takes it: `[a-zA-Z_][a-zA-Z0-9_]*`, at most 63
/// characters, not starting with `__` (reserved for Prometheus's own labels).
pub fn label_name(k: &str) -> Result<(), String> {
    let b = k.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 63
        && (b[0].is_ascii_alphabetic() || b[0] == b'_')
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
        && !k.starts_with("__");
    if ok {
        Ok(())
    } else {
        Err(format!(
            "label name {k:?} must match [a-zA-Z_][a-zA-Z0-9_]* (at most 63 characters) and not start with __"
        ))
    }
}

/// Checks a label value: at most [`MAX_LABEL_VALUE`] bytes of printable text.
pub fn label_value(k: &str, v: &str) -> Result<(), String> {
    if v.len() > MAX_LABEL_VALUE || v.chars().any(char::is_control) {
        Err(format!(
            "label {k}: the value must be at most {MAX_LABEL_VALUE} bytes of printable characters"
        ))
    } else {
        Ok(())
    }
}

/// Checks a node's labels: at most [`MAX_LABELS`], each name and value valid.
pub fn labels(labels: &BTreeMap<String, String>) -> Result<(), String> {
    if labels.len() > MAX_LABELS {
        return Err(format!("at most {MAX_LABELS} labels"));
    }
    for (k, v) in labels {
        label_name(k)?;
        label_value(k, v)?;
    }
    Ok(())
}

/// The parts of an `http(s)://` URL this module looks at.
struct Parts<'a> {
    /// `user:pass` before the `@`, when present.
    userinfo: Option<&'a str>,
    /// Host and port.
    hostport: &'a str,
    /// Everything after the authority (path, query, fragment).
    rest: &'a str,
}

fn split_url(s: &str) -> Result<Parts<'_>, String> {
    // Every message shows the URL without its password.
    split(s).map_err(|e| e.replace(&format!("{s:?}"), &format!("{:?}", redact_url(s))))
}

fn split(s: &str) -> Result<Parts<'_>, String> {
    let after = s
        .strip_prefix("http://")
        .or_else(|| s.strip_prefix("https://"))
        .ok_or_else(|| format!("{s:?} is not an http:// or https:// URL"))?;
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("{s:?} contains white space or control characters"));
    }
    let end = after.find(['/', '?', '#']).unwrap_or(after.len());
    let (authority, rest) = after.split_at(end);
    let (userinfo, hostport) = match authority.rfind('@') {
        Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
        None => (None, authority),
    };
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let close = v6
            .find(']')
            .ok_or_else(|| format!("{s:?}: unclosed '[' in the host"))?;
        (&v6[..close], v6[close + 1..].strip_prefix(':'))
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    if host.is_empty() {
        return Err(format!("{s:?} has no host"));
    }
    if let Some(p) = port {
        if p.parse::<u16>().map_or(true, |p| p == 0) {
            return Err(format!("{s:?}: the port must be a number from 1 to 65535"));
        }
    }
    Ok(Parts {
        userinfo,
        hostport,
        rest,
    })
}

/// Checks an agent's base URL (a node's address, a registration's advertised URL, a static
/// target, the control plane's external URL): `http(s)://host[:port][/path]`, with no
/// credentials (`user:pass@` would be stored and shown in every answer), query or fragment.
pub fn base_url(s: &str) -> Result<(), String> {
    let p = split_url(s)?;
    if p.userinfo.is_some() {
        return Err(format!(
            "{:?} carries credentials (user:password@): they would be stored and shown in every answer; give the bare http(s)://host:port",
            redact_url(s)
        ));
    }
    if p.rest.contains(['?', '#']) {
        return Err(format!("{s:?} must not have a query or fragment"));
    }
    Ok(())
}

/// Checks a webhook URL: `http(s)://` with a host. Credentials are allowed (a receiver
/// behind basic auth) and [`redact_url`] keeps them out of logs.
pub fn webhook_url(s: &str) -> Result<(), String> {
    split_url(s).map(|_| ())
}

/// `s` with the password of any `user:password@` replaced by `***` (the user stays, so a
/// log still says which account), with or without a scheme (`u:pw@host` is masked too: a
/// mistyped URL is still a secret). Text without `@` in its authority comes back unchanged.
pub fn redact_url(s: &str) -> String {
    // Without a scheme (`user:pass@host`, a mistyped URL), the authority starts at once.
    let scheme_end = s.find("://").map(|i| i + 3).unwrap_or(0);
    let after = &s[scheme_end..];
    let end = after.find(['/', '?', '#']).unwrap_or(after.len());
    let authority = &after[..end];
    let Some(at) = authority.rfind('@') else {
        return s.to_string();
    };
    let user = authority[..at].split(':').next().unwrap_or("");
    format!("{}{user}:***@{}", &s[..scheme_end], &after[at + 1..])
}

/// `text` with the password of every `scheme://user:password@` in it masked as
/// [`redact_url`] does; for messages that quote URLs among other words (the CLI's errors).
pub fn redact_urls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        // The scheme starts after the last character that cannot be part of it.
        let start = rest[..i]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
            .map_or(0, |j| j + 1);
        out.push_str(&rest[..start]);
        let tail = &rest[start..];
        let end = tail[i - start + 3..]
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '>' | ')' | ','))
            .map_or(tail.len(), |e| e + i - start + 3);
        out.push_str(&redact_url(&tail[..end]));
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// Checks free text an operator sends (a cordon reason): at most `max` bytes and no
/// control characters at all (no newline, ESC, BEL, C1), which would forge lines in logs
/// and tables or drive terminals; the error names what was found, e.g. `U+001B`.
pub fn free_text(s: &str, max: usize) -> Result<(), String> {
    if s.len() > max {
        return Err(format!("is longer than {max} bytes"));
    }
    match s.chars().find(|c| c.is_control()) {
        Some(c) => Err(format!(
            "contains the control character U+{:04X}; send one line of plain text",
            c as u32
        )),
        None => Ok(()),
    }
}

/// `host:port` of a base URL for Prometheus service discovery, credentials dropped.
pub fn host_port(s: &str) -> Option<&str> {
    split_url(s).ok().map(|p| p.hostport)
}

/// Checks an admin or bootstrap token as configured: at least [`MIN_TOKEN_LEN`] characters
/// with no white space, or `sha256:` followed by the 64 hex digits of a token's SHA-256.
pub fn token(t: &str) -> Result<(), String> {
    if let Some(d) = t.strip_prefix("sha256:") {
        return if d.len() == 64 && d.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(())
        } else {
            Err("sha256:… must be followed by the 64 hex digits of the token's SHA-256".into())
        };
    }
    if t.chars().count() < MIN_TOKEN_LEN {
        return Err(format!(
            "shorter than {MIN_TOKEN_LEN} characters: use a random token (e.g. `openssl rand -hex 32`)"
        ));
    }
    if t.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("contains white space or control characters".into());
    }
    Ok(())
}

/// Parses a duration like `30m` and checks it is within `min..=max`.
pub fn duration(s: &str, min: Duration, max: Duration) -> Result<Duration, String> {
    let d = humantime::parse_duration(s)
        .map_err(|e| format!("{s:?} is not a duration like 30m: {e}"))?;
    if d < min || d > max {
        return Err(format!(
            "{s:?} must be between {} and {}",
            show(min),
            show(max)
        ));
    }
    Ok(d)
}

/// A whole number of days, hours or minutes as `7d`, `2h`, `1m`; anything else as humantime.
fn show(d: Duration) -> String {
    let s = d.as_secs();
    if u128::from(s) * 1000 != d.as_millis() || s == 0 {
        return humantime::format_duration(d).to_string();
    }
    for (unit, n) in [("d", 86_400), ("h", 3_600), ("m", 60)] {
        if s.is_multiple_of(n) {
            return format!("{}{unit}", s / n);
        }
    }
    format!("{s}s")
}

/// The SQLite file a `sqlite://PATH` (or bare path) URL names.
pub fn sqlite_path(url: &str) -> Option<&str> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return None;
    }
    let path = url.strip_prefix("sqlite://").unwrap_or(url);
    (!path.is_empty() && !path.contains("://")).then_some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hardening follow-up: `--server http://u:secretpw@127.0.0.1:1` showed the password in
    /// `cannot reach the control plane at …`.
    #[test]
    fn every_url_in_a_message_has_its_password_masked() {
        let m = "cannot reach the control plane at http://u:secretpw@127.0.0.1:1: \
                 io: Connection refused (url \"https://a:b@h/x?y\")";
        let r = redact_urls(m);
        assert!(!r.contains("secretpw") && !r.contains(":b@"), "{r}");
        assert!(
            r.contains("http://u:***@127.0.0.1:1:") && r.contains("https://a:***@h/x"),
            "{r}"
        );
        assert_eq!(redact_urls("no url here"), "no url here");
        assert_eq!(redact_urls("x ://y"), "x ://y");
    }

    /// Hardening follow-up: a cordon reason `line1\nFAKE-ROW\u{1b}[31mred\u{7}` was stored.
    #[test]
    fn free_text_refuses_control_characters() {
        assert!(free_text("kernel panic on GPU 3 — ticket #12", 1024).is_ok());
        for bad in [
            "line1\nFAKE-ROW",
            "\u{1b}[31mred",
            "bell\u{7}",
            "tab\there",
            "c1\u{9b}",
        ] {
            assert!(free_text(bad, 1024).is_err(), "{bad:?}");
        }
        assert!(free_text(&"x".repeat(1025), 1024).is_err());
    }

    #[test]
    fn names_are_dns_like() {
        for ok in ["gpu-node-01", "a", "n1.rack2", "H100_box"] {
            assert!(name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-x", "a b", "x/y", &"a".repeat(64), "ümlaut"] {
            assert!(name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn label_names_follow_prometheus() {
        for ok in ["rack", "_x", "zone_1"] {
            assert!(label_name(ok).is_ok(), "{ok}");
        }
        for bad in ["ignore-tls", "__name__", "1x", "", "a.b", "ü"] {
            assert!(label_name(bad).is_err(), "{bad}");
        }
        assert!(label_value("k", "ok value").is_ok());
        assert!(label_value("k", "bad\nvalue").is_err());
        assert!(label_value("k", &"v".repeat(257)).is_err());
    }

    #[test]
    fn base_urls_carry_no_credentials_and_say_why() {
        for ok in [
            "http://10.0.0.5:9410",
            "https://n1.example/agent/",
            "http://[::1]:9410",
        ] {
            assert!(base_url(ok).is_ok(), "{ok}");
        }
        let e = base_url("http://user:s3cret@10.0.0.5:9410").unwrap_err();
        assert!(e.contains("credentials") && !e.contains("s3cret"), "{e}");
        let e = base_url("http://user:s3cret@h:99999").unwrap_err();
        assert!(e.contains("port") && !e.contains("s3cret"), "{e}");
        for bad in [
            "10.0.0.5:9410",
            "ftp://x",
            "http://",
            "http://:9410",
            "http://h:99999",
            "http://h:0",
            "http://h x",
            "http://h/?q=1",
        ] {
            assert!(base_url(bad).is_err(), "{bad}");
        }
        assert!(webhook_url("https://u:p@hooks.example/x").is_ok());
    }

    #[test]
    fn passwords_are_redacted_and_host_ports_drop_them() {
        assert_eq!(
            redact_url("https://bot:s3cret@hooks.example/x?y=1"),
            "https://bot:***@hooks.example/x?y=1"
        );
        assert_eq!(redact_url("http://h:9410/a@b"), "http://h:9410/a@b");
        // Without a scheme (a mistyped --server or webhook URL) the password is masked too.
        assert_eq!(redact_url("u:secretpw@127.0.0.1:1"), "u:***@127.0.0.1:1");
        assert_eq!(redact_url("127.0.0.1:1"), "127.0.0.1:1");
        assert_eq!(host_port("http://u:p@h:9410/x"), Some("h:9410"));
        assert_eq!(host_port("http://[::1]:9410"), Some("[::1]:9410"));
    }

    #[test]
    fn tokens_must_be_long_enough_or_real_digests() {
        assert!(token("x").unwrap_err().contains("16"));
        assert!(token("admin-token-0123456789").is_ok());
        assert!(token("sixteen chars ok").is_err(), "white space");
        assert!(token(&format!("sha256:{}", "ab".repeat(32))).is_ok());
        assert!(token("sha256:abc0123456789abc").is_err());
    }

    #[test]
    fn durations_are_parsed_within_their_range() {
        let (min, max) = (Duration::from_secs(60), Duration::from_secs(86_400));
        assert_eq!(duration("2h", min, max), Ok(Duration::from_secs(7200)));
        assert!(duration("1s", min, max)
            .unwrap_err()
            .contains("between 1m and 1d"));
        assert!(duration("soon", min, max).is_err());
    }
}
