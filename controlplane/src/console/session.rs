//! Console sessions: a sign-in with an admin or viewer token makes a session whose secret is
//! the `gw_session` cookie (HttpOnly, SameSite=Strict, `Path=/ui`, Secure when the request
//! came over TLS) and whose CSRF token is a hidden field of every form.
//!
//! Sessions live in this process's memory, bounded by `console.max_sessions` (past it the
//! oldest is signed out), [`MAX_PER_TOKEN`] a token (past it that token's oldest) and
//! `console.session_ttl`. Only digests are held: the session's
//! secret as the map's key, and the sign-in token's digest, which is checked against the
//! accepted tokens at every request, so revoking a token ends its sessions at once.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use subtle::ConstantTimeEq;

use crate::api::{Auth, Role};
use crate::token::{self, RandomError, TokenKind};

/// The session cookie's name.
pub const COOKIE: &str = "gw_session";

/// Sessions one token may hold at once; past it that token's oldest is signed out, so no
/// token (a viewer's) can push everyone else's sessions out by signing in again and again.
pub const MAX_PER_TOKEN: usize = 16;

/// A signed-in operator, as a request sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Who, as the audit log names them (`admin:…`, `token:NAME`, `viewer:NAME`).
    pub actor: String,
    /// What they may do.
    pub role: Role,
    /// The CSRF token every form of this session carries.
    pub csrf: String,
    /// When it ends (Unix ms).
    pub expires_at: i64,
}

impl Session {
    /// Whether the session may act (an admin's).
    pub fn can_act(&self) -> bool {
        self.role == Role::Admin
    }

    /// Whether `presented` is this session's CSRF token (compared in constant time).
    pub fn csrf_ok(&self, presented: &str) -> bool {
        bool::from(presented.as_bytes().ct_eq(self.csrf.as_bytes()))
    }
}

#[derive(Debug)]
struct Held {
    token_digest: String,
    csrf: String,
    created_at: i64,
    expires_at: i64,
}

/// Every session of this process.
#[derive(Debug)]
pub struct Sessions {
    ttl: Duration,
    max: usize,
    /// Session secret digest → session.
    map: Mutex<HashMap<String, Held>>,
}

/// Why a sign-in failed.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    /// The token is no admin or viewer token.
    #[error("that token is not accepted: give an admin token or a viewer token (gpuwarden tokens create NAME --role viewer)")]
    Refused,
    /// No randomness.
    #[error(transparent)]
    Random(#[from] RandomError),
}

impl Sessions {
    /// No sessions; each lasts `ttl`, at most `max` at once.
    pub fn new(ttl: Duration, max: usize) -> Self {
        Self {
            ttl,
            max: max.max(1),
            map: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Held>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How long a session lasts.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Signs in with `presented` (an admin or viewer token) at `now` (Unix ms): the
    /// session's secret (the cookie's value) and the session.
    pub fn sign_in(
        &self,
        auth: &Auth,
        presented: &str,
        now: i64,
    ) -> Result<(String, Session), SignInError> {
        let presented = presented.trim();
        let token_digest = token::digest(presented);
        let (role, actor) = auth
            .identify_digest(&token_digest)
            .ok_or(SignInError::Refused)?;
        let secret = token::issue(TokenKind::Session)?;
        let csrf = token::issue(TokenKind::Csrf)?.secret;
        let ttl = i64::try_from(self.ttl.as_millis()).unwrap_or(i64::MAX);
        let expires_at = now.saturating_add(ttl);
        let mut map = self.lock();
        map.retain(|_, h| h.expires_at > now);
        loop {
            let own: Vec<(&String, i64)> = map
                .iter()
                .filter(|(_, h)| h.token_digest == token_digest)
                .map(|(k, h)| (k, h.created_at))
                .collect();
            if own.len() < MAX_PER_TOKEN {
                break;
            }
            let oldest = own
                .iter()
                .min_by_key(|(_, t)| *t)
                .map(|(k, _)| (*k).clone());
            match oldest {
                Some(k) => map.remove(&k),
                None => break,
            };
        }
        while map.len() >= self.max {
            let oldest = map
                .iter()
                .min_by_key(|(_, h)| h.created_at)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => map.remove(&k),
                None => break,
            };
        }
        map.insert(
            secret.digest,
            Held {
                token_digest,
                csrf: csrf.clone(),
                created_at: now,
                expires_at,
            },
        );
        Ok((
            secret.secret,
            Session {
                actor,
                role,
                csrf,
                expires_at,
            },
        ))
    }

    /// The session whose secret is `cookie`, if it has not ended and its token is still
    /// accepted (with the token's role and name now); an ended one is forgotten.
    pub fn get(&self, auth: &Auth, cookie: &str, now: i64) -> Option<Session> {
        let key = token::digest(cookie);
        let mut map = self.lock();
        let h = map.get(&key)?;
        let who = (h.expires_at > now)
            .then(|| auth.identify_digest(&h.token_digest))
            .flatten();
        match who {
            Some((role, actor)) => Some(Session {
                actor,
                role,
                csrf: h.csrf.clone(),
                expires_at: h.expires_at,
            }),
            None => {
                map.remove(&key);
                None
            }
        }
    }

    /// Ends the session whose secret is `cookie`.
    pub fn sign_out(&self, cookie: &str) {
        self.lock().remove(&token::digest(cookie));
    }

    /// Sessions held now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::auth_digest;

    #[test]
    fn sessions_end_with_their_time_their_token_and_sign_out() {
        let auth = Auth::new(vec![auth_digest("admin-token-0001")], vec![]);
        auth.add_api_token("t1", "grafana", "viewer", &token::digest("gwv_viewer"));
        let s = Sessions::new(Duration::from_secs(60), 10);
        assert!(matches!(
            s.sign_in(&auth, "wrong", 0),
            Err(SignInError::Refused)
        ));
        let (admin_cookie, admin) = s.sign_in(&auth, "admin-token-0001", 0).unwrap();
        assert!(admin.can_act() && admin_cookie.starts_with("gws_"));
        let (viewer_cookie, viewer) = s.sign_in(&auth, " gwv_viewer\n", 0).unwrap();
        assert_eq!(viewer.actor, "viewer:grafana");
        assert!(!viewer.can_act());
        assert!(viewer.csrf_ok(&viewer.csrf) && !viewer.csrf_ok(&admin.csrf));
        assert_eq!(s.get(&auth, &viewer_cookie, 59_000), Some(viewer));
        // Revoking the token ends its session at once.
        auth.remove_api_token("t1");
        assert_eq!(s.get(&auth, &viewer_cookie, 1_000), None);
        // Time ends a session; so does signing out.
        assert!(s.get(&auth, &admin_cookie, 59_999).is_some());
        assert!(s.get(&auth, &admin_cookie, 60_000).is_none());
        let (c, _) = s.sign_in(&auth, "admin-token-0001", 0).unwrap();
        s.sign_out(&c);
        assert!(s.get(&auth, &c, 1).is_none());
        assert!(s.get(&auth, "gws_made_up", 1).is_none());
    }

    #[test]
    fn one_token_signing_in_again_and_again_signs_out_only_its_own_sessions() {
        let auth = Auth::new(vec![auth_digest("admin-token-0001")], vec![]);
        auth.add_api_token("t1", "noc", "viewer", &token::digest("gwv_viewer"));
        let s = Sessions::new(Duration::from_secs(600), 100);
        let (admin, _) = s.sign_in(&auth, "admin-token-0001", 0).unwrap();
        let (first, _) = s.sign_in(&auth, "gwv_viewer", 1).unwrap();
        for t in 2..1000 {
            s.sign_in(&auth, "gwv_viewer", t).unwrap();
        }
        assert_eq!(s.len(), 1 + MAX_PER_TOKEN);
        assert!(
            s.get(&auth, &admin, 2000).is_some(),
            "the admin stays signed in"
        );
        assert!(
            s.get(&auth, &first, 2000).is_none(),
            "the viewer's oldest went"
        );
    }

    #[test]
    fn past_the_bound_the_oldest_session_is_signed_out() {
        let auth = Auth::new(vec![auth_digest("admin-token-0001")], vec![]);
        let s = Sessions::new(Duration::from_secs(600), 2);
        let (a, _) = s.sign_in(&auth, "admin-token-0001", 1).unwrap();
        let (b, _) = s.sign_in(&auth, "admin-token-0001", 2).unwrap();
        let (c, _) = s.sign_in(&auth, "admin-token-0001", 3).unwrap();
        assert_eq!(s.len(), 2);
        assert!(s.get(&auth, &a, 4).is_none());
        assert!(s.get(&auth, &b, 4).is_some() && s.get(&auth, &c, 4).is_some());
    }
}
