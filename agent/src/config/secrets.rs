//! Checks of what guards the node: the token file that holds the node credential, and URLs
//! that must not carry credentials (they end up in logs, process lists and the control
//! plane's node records).

use std::io::Read;
use std::path::Path;

/// Shortest token accepted from the token file, in characters: the credential of
/// `/v1/commands` and `/v1/plugins/{name}/run` must not be guessable. Tokens the control
/// plane issues are far longer.
pub const MIN_TOKEN_CHARS: usize = 16;

/// Longest token file read, in bytes (a token is a line).
const MAX_TOKEN_FILE_BYTES: u64 = 4096;

/// What is wrong with the token file at `path`, as `control_plane.token_file: …` lines:
/// a token shorter than [`MIN_TOKEN_CHARS`], or a file that its group or others may read or
/// write (it holds a credential, like an ssh key: `chmod 600`). A missing or empty file is
/// fine (the agent writes the node token there when it registers); a file this process may
/// not read is not judged by its content (`--check-config` run as another user).
pub fn token_file_problems(path: &Path) -> Vec<String> {
    use std::os::unix::fs::PermissionsExt;
    let mut p = Vec::new();
    let key = "control_plane.token_file";
    let Ok(meta) = std::fs::metadata(path) else {
        return p;
    };
    if !meta.is_file() {
        p.push(format!("{key}: {} is not a file", path.display()));
        return p;
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        p.push(format!(
            "{key}: {} holds the node credential but its mode is {mode:04o} (group or others may read or change it): chmod 600 it",
            path.display()
        ));
    }
    let mut text = String::new();
    let read = std::fs::File::open(path).and_then(|f| {
        f.take(MAX_TOKEN_FILE_BYTES)
            .read_to_string(&mut text)
            .map(|_| ())
    });
    match read {
        Ok(()) => {
            let chars = text.trim().chars().count();
            if chars > 0 && chars < MIN_TOKEN_CHARS {
                p.push(format!(
                    "{key}: the token in {} has {chars} characters; at least {MIN_TOKEN_CHARS} are required (e.g. `openssl rand -hex 32`)",
                    path.display()
                ));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {}
        Err(e) => p.push(format!("{key}: cannot read {}: {e}", path.display())),
    }
    p
}

/// A warning when the config file at `path` holds a credential (a non-empty `token` or
/// `bootstrap_token` line) and its group or others may read it; `None` otherwise. A warning,
/// not an error: the credential is for joining, and the control plane may have spent it.
pub fn config_file_warning(path: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
    if mode & 0o044 == 0 {
        return None;
    }
    let mut text = String::new();
    std::fs::File::open(path)
        .ok()?
        .take(1 << 20)
        .read_to_string(&mut text)
        .ok()?;
    let holds = text.lines().any(|l| {
        let Some((key, value)) = l.split_once('=') else {
            return false;
        };
        matches!(key.trim(), "token" | "bootstrap_token") && !matches!(value.trim(), "\"\"" | "''")
    });
    holds.then(|| {
        format!(
            "{} holds a join or bootstrap token but its mode is {mode:04o} (group or others may read it): chmod 600 it, or pass the token in GPUWARDEN_BOOTSTRAP_TOKEN",
            path.display()
        )
    })
}

/// `url` with the password of its user info replaced by `***` (and the user kept), so it
/// can be shown and logged; unchanged when it has none.
pub fn redact_url(url: &str) -> String {
    match split_userinfo(url) {
        Some((scheme, info, rest)) => {
            let user = info.split_once(':').map_or(info, |(u, _)| u);
            let pw = if info.contains(':') { ":***" } else { "" };
            format!("{scheme}{user}{pw}@{rest}")
        }
        None => url.to_string(),
    }
}

/// Whether `url` carries user info (`user[:password]@` before the host).
pub fn has_credentials(url: &str) -> bool {
    split_userinfo(url).is_some()
}

/// `(scheme://, userinfo, rest after '@')` when the authority has user info.
fn split_userinfo(url: &str) -> Option<(&str, &str, &str)> {
    let start = url.find("://").map_or(0, |i| i + 3);
    let after = &url[start..];
    let authority_end = after.find(['/', '?', '#']).unwrap_or(after.len());
    let at = after[..authority_end].rfind('@')?;
    Some((&url[..start], &after[..at], &after[at + 1..]))
}

/// The problem with a URL under `key` that carries credentials, shown with its password
/// masked.
pub fn url_credentials_problem(key: &str, url: &str) -> Option<String> {
    has_credentials(url).then(|| {
        format!(
            "{key}: {:?} carries credentials; they would be logged and stored: remove them (the agent authenticates with control_plane.token, control_plane.bootstrap_token or GPUWARDEN_BOOTSTRAP_TOKEN)",
            redact_url(url)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_urls_are_found_and_masked() {
        let u = "http://u:secretpw@127.0.0.1:18410";
        assert!(has_credentials(u));
        assert_eq!(redact_url(u), "http://u:***@127.0.0.1:18410");
        let m = url_credentials_problem("control_plane.url", u).unwrap();
        assert!(m.contains("u:***@") && !m.contains("secretpw"), "{m}");
        // A password with '@' in it, a user only, no scheme.
        assert_eq!(redact_url("https://a:p@ss@h/x@y"), "https://a:***@h/x@y");
        assert_eq!(redact_url("http://tok@h:1"), "http://tok@h:1");
        assert!(has_credentials("u:pw@h:1"));
        for clean in [
            "http://h:1/p?x=a@b",
            "http://h#a@b",
            "http://[::1]:9410",
            "",
        ] {
            assert!(!has_credentials(clean), "{clean}");
            assert_eq!(redact_url(clean), clean);
        }
    }

    #[test]
    fn a_token_file_must_hold_a_strong_token_only_its_owner_reads() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("gw-secrets-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("token");
        let set = |body: &str, mode: u32| {
            std::fs::write(&f, body).unwrap();
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(mode)).unwrap();
            token_file_problems(&f)
        };
        let p = set("x\n", 0o600);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].contains("1 characters") && p[0].contains(&*f.to_string_lossy()));
        let p = set("0123456789abcdef\n", 0o644);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].contains("0644") && p[0].contains("chmod 600"), "{p:?}");
        assert_eq!(set("x", 0o644).len(), 2);
        assert!(set("0123456789abcdef\n", 0o600).is_empty());
        assert!(set("", 0o600).is_empty(), "no token yet");
        assert!(token_file_problems(&dir.join("missing")).is_empty());
        let secret = "[control_plane]\nbootstrap_token = \"boot-token-0123456789\"\n";
        set(secret, 0o644);
        assert!(config_file_warning(&f).unwrap().contains("0644"));
        set("[control_plane]\ntoken = \"\"\n", 0o644);
        assert!(config_file_warning(&f).is_none(), "no credential in it");
        set(secret, 0o600);
        assert!(config_file_warning(&f).is_none());
        assert_eq!(token_file_problems(&dir).len(), 1, "a folder");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
