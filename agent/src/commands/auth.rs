//! Who may send commands.

use std::sync::RwLock;

use sha2::{Digest, Sha256};

/// Who may send commands: the control plane, proving it with the SHA-256 digest (hex) of
/// the node token it issued to this agent. The control plane keeps only that digest, and
/// the digest does not authenticate as the node, so neither side holds the other's secret.
#[derive(Debug, Default)]
pub struct CommandAuth {
    expected: RwLock<Option<String>>,
}

impl CommandAuth {
    /// Accepts commands for the node token `token` from now on.
    pub fn set_token(&self, token: &str) {
        let digest: String = Sha256::digest(token.trim().as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        *self.expected.write().unwrap_or_else(|p| p.into_inner()) = Some(digest);
    }

    /// `None` when no node token is known yet; else whether `presented` is its digest.
    pub fn check(&self, presented: &str) -> Option<bool> {
        let guard = self.expected.read().unwrap_or_else(|p| p.into_inner());
        let want = guard.as_deref()?;
        let (a, b) = (want.as_bytes(), presented.as_bytes());
        // Compare in time that does not depend on where they differ.
        let diff = a
            .iter()
            .zip(b)
            .fold(u8::from(a.len() != b.len()), |d, (x, y)| d | (x ^ y));
        Some(diff == 0)
    }
}
