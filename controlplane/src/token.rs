//! Tokens: random, shown once, stored hashed, compared in constant time.
//!
//! A token is `gw<kind>_` followed by 32 random bytes from the operating system, hex-encoded
//! (`gwn_…` node, `gwb_…` bootstrap, `gwa_…` admin, `gwv_…` viewer, `gws_…` console session,
//! `gwc_…` a session's CSRF token), so a leaked token says what it is.
//! Only its SHA-256 is stored; a presented token is hashed and compared with
//! [`subtle::ConstantTimeEq`], so timing reveals nothing about the stored digest.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// What a token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// Acts for one node only.
    Node,
    /// Lets agents register.
    Bootstrap,
    /// The admin API.
    Admin,
    /// Read-only access to the API (`POST /v1/tokens` with `role` `viewer`).
    Viewer,
    /// A web console session (the `gw_session` cookie).
    Session,
    /// A console session's CSRF token (a hidden field of every form).
    Csrf,
}

impl TokenKind {
    fn prefix(self) -> &'static str {
        match self {
            TokenKind::Node => "gwn_",
            TokenKind::Bootstrap => "gwb_",
            TokenKind::Admin => "gwa_",
            TokenKind::Viewer => "gwv_",
            TokenKind::Session => "gws_",
            TokenKind::Csrf => "gwc_",
        }
    }
}

/// The operating system's random source failed.
#[derive(Debug, thiserror::Error)]
#[error("no randomness from the operating system: {0}")]
pub struct RandomError(String);

/// A new token: the secret (to show once) and its digest (to store).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    /// Give this to the holder; never store it.
    pub secret: String,
    /// Store this.
    pub digest: String,
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

/// The stored form of a token.
pub fn digest(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

/// Issues a token of `kind`.
pub fn issue(kind: TokenKind) -> Result<Issued, RandomError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| RandomError(e.to_string()))?;
    let secret = format!("{}{}", kind.prefix(), hex(&bytes));
    Ok(Issued {
        digest: digest(&secret),
        secret,
    })
}

/// True when `presented` is the token whose digest is `stored` (and of `kind`).
pub fn verify(kind: TokenKind, presented: &str, stored: &str) -> bool {
    let kind_ok = presented.starts_with(kind.prefix());
    let d = digest(presented);
    let same = d.as_bytes().ct_eq(stored.as_bytes());
    kind_ok & bool::from(same)
}

/// True when `presented` hashes to `stored`, whatever its form (operators may configure
/// tokens of their own making).
pub fn matches_digest(presented: &str, stored: &str) -> bool {
    bool::from(digest(presented).as_bytes().ct_eq(stored.as_bytes()))
}

/// A random identifier: `prefix` and 16 hex digits (64 bits).
pub fn random_id(prefix: &str) -> Result<String, RandomError> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|e| RandomError(e.to_string()))?;
    Ok(format!("{prefix}{}", hex(&bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_is_sha256_in_lowercase_hex() {
        // FIPS 180-2's example: what stored digests and `sha256:` configuration hold.
        assert_eq!(
            digest("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn issued_tokens_verify_and_only_their_digest_is_kept() {
        let t = issue(TokenKind::Node).unwrap();
        assert!(t.secret.starts_with("gwn_") && t.secret.len() == 4 + 64);
        assert!(!t.digest.contains(&t.secret[4..]));
        assert!(verify(TokenKind::Node, &t.secret, &t.digest));
    }

    #[test]
    fn wrong_tokens_and_wrong_kinds_are_refused() {
        let a = issue(TokenKind::Admin).unwrap();
        let b = issue(TokenKind::Admin).unwrap();
        assert_ne!(a.secret, b.secret, "tokens are random");
        assert!(!verify(TokenKind::Admin, &b.secret, &a.digest));
        assert!(!verify(TokenKind::Admin, "", &a.digest));
        assert!(!verify(TokenKind::Admin, &a.secret[..20], &a.digest));
        // A node token is not an admin token, even with the right digest.
        let n = issue(TokenKind::Node).unwrap();
        assert!(!verify(TokenKind::Admin, &n.secret, &n.digest));
    }
}
