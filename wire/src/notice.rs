//! Urgent-event notices: what an agent sends to `POST /v1/nodes/{id}/notify` when it records
//! an event of severity `fatal` (an XID, a critical temperature, an unhealthy plugin
//! verdict), so the control plane reads its events now instead of at the next scrape.
//!
//! A notice carries no event: it only says "read my events up to at least `seq`". The control
//! plane then reads `GET /v1/events` from its stored cursor as a scrape would, so an event is
//! stored and judged once whichever of the notice and the scrape reads it first, and a lost
//! notice only means the next scrape reads the event.

use serde::{Deserialize, Serialize};

/// Body of `POST /v1/nodes/{id}/notify` (authenticated with the node's token).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UrgentNotice {
    /// The agent run that recorded the event: `instance` of its `GET /v1/events` pages
    /// ([`crate::EventsPage::instance`]). 1 to [`MAX_INSTANCE_BYTES`] printable ASCII
    /// characters.
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 128, pattern = "^[!-~]+$")
    )]
    pub instance: String,
    /// Sequence number of the newest urgent event (`seq` of [`crate::HealthEvent`]); a
    /// burst of events is one notice with the newest.
    pub seq: u64,
}

/// Longest `instance` the control plane accepts, in bytes (the agent's are 16 hex digits).
pub const MAX_INSTANCE_BYTES: usize = 128;

/// Answer of `POST /v1/nodes/{id}/notify`: 202 with `accepted: true`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NoticeAccepted {
    /// Always true: the read is due (or was not needed because the events up to `seq` are
    /// stored already).
    pub accepted: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notice_is_two_fields_and_refuses_others() {
        let n: UrgentNotice = serde_json::from_str(r#"{"instance":"00ab","seq":7}"#).unwrap();
        assert_eq!(
            n,
            UrgentNotice {
                instance: "00ab".into(),
                seq: 7
            }
        );
        assert!(serde_json::from_str::<UrgentNotice>(r#"{"instance":"a","seq":1,"x":1}"#).is_err());
        assert!(serde_json::from_str::<UrgentNotice>(r#"{"instance":"a","seq":-1}"#).is_err());
        assert!(serde_json::from_str::<UrgentNotice>(r#"{"seq":1}"#).is_err());
    }
}
