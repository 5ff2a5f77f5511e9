//! What the bootstrap token may do to a node that already exists.
//!
//! The bootstrap token is shared by every machine that may join, so whoever holds it must
//! not be able to take over a node by naming it (repoint its scrape address, rotate its
//! node token so the real agent gets 401). It creates nodes; it registers an existing node
//! again only when
//!
//! - the node registered itself with the bootstrap token (an operator-created node joins
//!   with its join token, `gpuwarden nodes token NAME`; a static target is configuration),
//!   and
//! - no agent holds it now: its agent deregistered (graceful shutdown) or the node is
//!   offline (missed scrapes beyond `scrape.offline_after`).
//!
//! Otherwise the registration is refused (409 `conflict`) and nothing changes; the message
//! says what the operator can do. An agent with its kept node token is not affected (it
//! registers with that token, not the bootstrap token).

use super::super::rows::NodeRow;
use super::super::StoreError;
use crate::model::{Connectivity, Source};

/// `Ok` when a bootstrap-token registration may register `node` (which has its name)
/// again; else the conflict, in words.
pub(super) fn may_reregister(node: &NodeRow) -> Result<(), StoreError> {
    let name = &node.name;
    if node.source != Source::Registered.as_str() {
        let why = match node.source.as_str() {
            s if s == Source::Static.as_str() => "is a static target of the configuration",
            _ => "was created by an operator",
        };
        return Err(StoreError::Conflict(format!(
            "node {name:?} {why}; the bootstrap token only creates new nodes: its agent joins \
             with the node's join token (gpuwarden nodes token {name})"
        )));
    }
    if !node.deregistered && node.connectivity != Connectivity::Offline.as_str() {
        return Err(StoreError::Conflict(format!(
            "node {name:?} is registered and online; the bootstrap token does not take over a \
             node in use. Its agent re-registers with its node token; for an agent that lost \
             it, issue a join token (gpuwarden nodes token {name}) or delete the node first \
             (gpuwarden nodes delete {name})"
        )));
    }
    Ok(())
}
