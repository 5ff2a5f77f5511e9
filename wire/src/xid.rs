//! The XID table: the one place that says what each NVIDIA XID means and what to do.
//!
//! The agent uses it to give events their severity and action, the plugin SDK to give
//! findings theirs, and the control plane's policy functions (`xid_severity(code, message)`,
//! `xid_action(code, message)`) to decide health. All of them call [`classify`], so an XID
//! whose meaning depends on its message (NVLink5 XIDs 144–150, XID 154) is read the same way
//! everywhere. Sources are given in `xid/table.rs` (one row per code, NVIDIA's XID catalog
//! for Ampere and newer GPUs) and on [`classify`].

use crate::event::{Action, Severity};

/// What one XID means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XidInfo {
    /// The XID number.
    pub code: u32,
    /// NVIDIA's mnemonic.
    pub name: &'static str,
    /// What it means, in a sentence.
    pub meaning: &'static str,
    /// How serious it is.
    pub severity: Severity,
    /// NVIDIA's recommended immediate action.
    pub action: Action,
}

mod table;

pub use table::XID_TABLE;

use Action::{ContactSupport, Ignore, RebootNode, ResetGpu};
use Severity::{Fatal, Warning};

/// Severity and action used for an XID that is not in the table.
pub const UNKNOWN_XID: (Severity, Action) = (Warning, ContactSupport);

/// Looks an XID up.
pub fn lookup(code: u32) -> Option<&'static XidInfo> {
    XID_TABLE
        .binary_search_by_key(&code, |x| x.code)
        .ok()
        .map(|i| &XID_TABLE[i])
}

/// Severity of an XID known by its code alone (no message); unknown XIDs are warnings.
/// Prefer [`classify`] wherever the driver's message is at hand.
pub fn severity(code: u32) -> Severity {
    classify(code, None).0
}

/// Recommended action for an XID known by its code alone; unknown XIDs go to support.
/// Prefer [`classify`] wherever the driver's message is at hand.
pub fn action(code: u32) -> Action {
    classify(code, None).1
}

/// Severity and recommended action of XID `code`, reading the driver's `message` where the
/// catalog decides by it:
///
/// - XIDs 144–150 (NVLink5): the driver prints the error's status after the unit, e.g.
///   `145, RLW_RXPIPE Nonfatal XC0 i0 Link 13 (0x0409a0c2 0x00000008 …)`. NVIDIA's catalog
///   (workflow `WORKFLOW_NVLINK5_ERR`) resets the GPU for fatal errors and takes no action
///   for non-fatal ones: `Fatal` → (`fatal`, `reset_gpu`), `Nonfatal` → (`warning`,
///   `ignore`). Without that word (an XID read from NVML carries no text) the table row
///   applies: (`warning`, `contact_support`), never a reset on a guess; a link that really
///   went down is caught by its NVLink state and XID 154.
/// - XID 154: the recovery action the message names (see
///   [`recovery_action_from_message`]); the table's action when it names none.
/// - Every other XID: its table row; an XID not in the table is [`UNKNOWN_XID`].
pub fn classify(code: u32, message: Option<&str>) -> (Severity, Action) {
    let row = lookup(code).map_or(UNKNOWN_XID, |x| (x.severity, x.action));
    let Some(message) = message else { return row };
    match code {
        144..=150 => match nvlink5_status(message) {
            Some(true) => (Fatal, ResetGpu),
            Some(false) => (Warning, Ignore),
            None => row,
        },
        154 => (
            row.0,
            recovery_action_from_message(message).unwrap_or(row.1),
        ),
        _ => row,
    }
}

/// Whether an NVLink5 XID message says `Fatal` (true) or `Nonfatal` (false): the status word
/// the driver prints right before the `XC<n>` field of the error
/// (`145, RLW_RXPIPE Nonfatal XC0 i0 Link 13 (…)`).
///
/// Only that position counts, and the last such pair in the text wins: the driver prints
/// `pid=…, name=…` of the process before the unit, and a process name (which its owner
/// chooses, spaces included) must not decide whether a GPU is reset.
fn nvlink5_status(message: &str) -> Option<bool> {
    let words: Vec<&str> = message
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|w| !w.is_empty())
        .collect();
    words.windows(2).rev().find_map(|w| {
        let xc = w[1]
            .strip_prefix("XC")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        if !xc {
            return None;
        }
        match w[0].to_ascii_lowercase().as_str() {
            "fatal" => Some(true),
            "nonfatal" | "non-fatal" => Some(false),
            _ => None,
        }
    })
}

/// The action an XID 154 message asks for, read from its text
/// (`… changed from 0x0 (None) to 0x2 (Node Reboot Required)`).
pub fn recovery_action_from_message(message: &str) -> Option<Action> {
    let to = message
        .rsplit_once(" to ")
        .map_or(message, |(_, t)| t)
        .to_ascii_lowercase();
    if to.contains("reboot") {
        Some(RebootNode)
    } else if to.contains("reset") {
        Some(ResetGpu)
    } else if to.contains("none") {
        Some(Ignore)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Action::RestartApp;

    #[test]
    fn table_is_sorted_and_unique_so_lookup_finds_every_entry() {
        for w in XID_TABLE.windows(2) {
            assert!(
                w[0].code < w[1].code,
                "XID {} listed out of order",
                w[1].code
            );
        }
        for x in XID_TABLE {
            assert_eq!(lookup(x.code), Some(x));
        }
    }

    #[test]
    fn table_covers_every_code_the_catalog_uses() {
        // NVIDIA's XID catalog for Ampere and newer: every code not marked "Unused".
        let mut catalog: Vec<u32> = vec![
            8, 11, 13, 14, 25, 31, 32, 37, 38, 39, 40, 41, 43, 44, 45, 46, 48, 54, 60, 62, 63, 64,
            66, 67, 68, 69, 70, 71, 72, 74, 75, 76, 77, 78, 79, 80, 82, 83, 84, 85, 86, 88, 89, 92,
            93, 94, 95, 106, 107, 108, 109, 110, 119, 120, 121, 136, 137, 139, 140, 141, 142, 143,
        ];
        catalog.extend(96..=105);
        catalog.extend(126..=135);
        catalog.extend(144..=172);
        for code in catalog {
            assert!(lookup(code).is_some(), "XID {code} missing from the table");
        }
    }

    #[test]
    fn fatal_xids_ask_for_reset_or_reboot_and_app_faults_do_not() {
        assert_eq!((severity(79), action(79)), (Fatal, RebootNode));
        assert_eq!((severity(48), action(48)), (Fatal, ResetGpu));
        assert_eq!((severity(13), action(13)), (Warning, RestartApp));
        assert_eq!((severity(9999), action(9999)), UNKNOWN_XID);
        // The XID: a security fault resets the GPU, it is not "unknown".
        assert_eq!(classify(110, None), (Fatal, ResetGpu));
        // What the catalog says to ignore is ignored.
        for code in [43, 45, 63, 92, 121] {
            assert_eq!(action(code), Ignore, "XID {code}");
        }
    }

    #[test]
    fn nvlink5_xids_follow_the_status_the_driver_prints() {
        let nonfatal = "NVRM: Xid (PCI:0000:18:00): 145, RLW_RXPIPE Nonfatal XC0 i0 Link 13 (0x0409a0c2 0x00000008 0x00000001 0x00000000 0x00100000 0x00000004)";
        assert_eq!(classify(145, Some(nonfatal)), (Warning, Ignore));
        let fatal = "NVRM: Xid (PCI:0000:04:00): 149, NETIR_LINK_EVT/NETIR_LINK_DOWN Fatal XC0 i0 Link 00 (0x00000011 0x00000000 0x00000000 0x00000000)";
        assert_eq!(classify(149, Some(fatal)), (Fatal, ResetGpu));
        // As the agent words it: the meaning, then the driver's text.
        let agent = format!("XID 144: NVLink5 SAW error ({})", &fatal[29..]);
        assert_eq!(classify(144, Some(&agent)), (Fatal, ResetGpu));
        // No status (NVML gives no text): the table row, no reset on a guess.
        for m in [None, Some("garbled")] {
            assert_eq!(classify(146, m), (Warning, ContactSupport));
        }
        // Other XIDs do not read the message.
        assert_eq!(classify(79, Some("Nonfatal")), (Fatal, RebootNode));
    }

    /// A process name is the user's to choose (spaces included) and the driver prints it
    /// before the unit: it must not decide whether a GPU is reset or its fault ignored.
    #[test]
    fn a_process_name_cannot_decide_an_nvlink5_xid() {
        let hidden = "149, pid=4242, name=job Nonfatal, NETIR_LINK_EVT/NETIR_LINK_DOWN Fatal XC0 i0 Link 00 (0x00000011 0x00000000)";
        assert_eq!(classify(149, Some(hidden)), (Fatal, ResetGpu));
        let forged = "145, pid=4243, name=a Fatal, RLW_RXPIPE Nonfatal XC0 i0 Link 13 (0x0409a0c2 0x00000008)";
        assert_eq!(classify(145, Some(forged)), (Warning, Ignore));
        // A name that forges the whole `Fatal XC0` pair comes before the driver's own.
        let forged =
            "145, pid=1, name=x Fatal XC0, RLW_RXPIPE Nonfatal XC0 i0 Link 13 (0x0409a0c2)";
        assert_eq!(classify(145, Some(forged)), (Warning, Ignore));
        // The word alone, without its XC field, decides nothing.
        assert_eq!(
            classify(146, Some("146, pid=1, name=Fatal")),
            (Warning, ContactSupport)
        );
    }

    #[test]
    fn xid_154_message_names_the_action() {
        let m = "GPU recovery action changed from 0x0 (None) to 0x2 (Node Reboot Required)";
        assert_eq!(recovery_action_from_message(m), Some(RebootNode));
        let m = "GPU recovery action changed from 0x2 (Node Reboot Required) to 0x1 (GPU Reset Required)";
        assert_eq!(recovery_action_from_message(m), Some(ResetGpu));
        assert_eq!(recovery_action_from_message("garbled"), None);
        assert_eq!(classify(154, Some(m)), (Warning, ResetGpu));
        let m = "GPU recovery action changed from 0x0 (None) to 0x2 (Node Reboot Required)";
        assert_eq!(classify(154, Some(m)), (Warning, RebootNode));
    }
}
