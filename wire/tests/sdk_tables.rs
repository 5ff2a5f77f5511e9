//! The Python and JavaScript plugin SDKs carry the XID table as generated files, rendered here
//! from the one table (`wire/src/xid/table.rs`), with test vectors of [`classify`] that the SDKs'
//! own tests check their ports of its message rules against. This test fails when a committed
//! file differs from what the table renders; `GPUWARDEN_BLESS=1 cargo test -p gpuwarden-wire
//! --test sdk_tables` writes them anew.

use std::path::{Path, PathBuf};

use gpuwarden_wire::xid::{classify, UNKNOWN_XID, XID_TABLE};

const HEADER: &str = "Generated from wire/src/xid/table.rs (NVIDIA's XID catalog) by \
`GPUWARDEN_BLESS=1 cargo test -p gpuwarden-wire --test sdk_tables`: do not edit.";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .to_path_buf()
}

/// A string literal both Python and JavaScript read as `s` (JSON's escapes are valid in both).
fn lit(s: &str) -> String {
    serde_json::to_string(s).expect("a string")
}

fn python() -> String {
    let mut out = format!(
        "# {HEADER}\n\"\"\"The XID table: code -> (name, meaning, severity, action).\"\"\"\n\n\
         UNKNOWN_XID = ({}, {})\n\nXID_TABLE = {{\n",
        lit(UNKNOWN_XID.0.as_str()),
        lit(UNKNOWN_XID.1.as_str())
    );
    for x in XID_TABLE {
        out += &format!(
            "    {}: ({}, {}, {}, {}),\n",
            x.code,
            lit(x.name),
            lit(x.meaning),
            lit(x.severity.as_str()),
            lit(x.action.as_str())
        );
    }
    out + "}\n"
}

fn javascript() -> String {
    let mut out = format!(
        "// {HEADER}\n// The XID table: code -> [name, meaning, severity, action].\n\n\
         export const UNKNOWN_XID = [{}, {}];\n\nexport const XID_TABLE = new Map([\n",
        lit(UNKNOWN_XID.0.as_str()),
        lit(UNKNOWN_XID.1.as_str())
    );
    for x in XID_TABLE {
        out += &format!(
            "  [{}, [{}, {}, {}, {}]],\n",
            x.code,
            lit(x.name),
            lit(x.meaning),
            lit(x.severity.as_str()),
            lit(x.action.as_str())
        );
    }
    out + "]);\n"
}

/// Every code of the table without a message, an unknown code, and the messages the rules
/// read (NVLink5 144–150, XID 154), each with what [`classify`] makes of it.
fn vectors() -> String {
    let mut cases: Vec<(u32, Option<&str>)> = XID_TABLE.iter().map(|x| (x.code, None)).collect();
    cases.extend([
        (9999, None),
        (9999, Some("anything")),
        (
            145,
            Some("145, RLW_RXPIPE Nonfatal XC0 i0 Link 13 (0x0409a0c2 0x00000008)"),
        ),
        (144, Some("144, NVLW_NVLIPT Fatal XC2 i1 Link 2 (0x1)")),
        (150, Some("150, something non-fatal XC12 Link 3")),
        (
            147,
            Some("pid=12, name=Fatal XC1 job, 147, RLW Nonfatal XC0 i0 Link 1"),
        ),
        (
            146,
            Some("pid=7, name=Nonfatal XC3, 146, RLW Fatal XC0 i0 Link 1"),
        ),
        (148, Some("148, no status word here")),
        (149, Some("149, Fatal XCx Link 1")),
        (145, Some("")),
        (
            154,
            Some("GPU recovery action changed from 0x0 (None) to 0x2 (Node Reboot Required)"),
        ),
        (
            154,
            Some("GPU recovery action changed from 0x0 (None) to 0x1 (GPU Reset Required)"),
        ),
        (
            154,
            Some("GPU recovery action changed from 0x2 (Node Reboot Required) to 0x0 (None)"),
        ),
        (154, Some("GPU recovery action changed to something new")),
        (79, Some("GPU has fallen off the bus")),
    ]);
    let rows: Vec<serde_json::Value> = cases
        .into_iter()
        .map(|(code, message)| {
            let (s, a) = classify(code, message);
            serde_json::json!({"code": code, "message": message,
                "severity": s.as_str(), "action": a.as_str()})
        })
        .collect();
    serde_json::to_string_pretty(&rows).expect("json") + "\n"
}

#[test]
fn the_sdks_xid_tables_are_rendered_from_the_one_table() {
    let root = repo();
    let files = [
        ("plugins/python/gpuwarden_plugin/xid_table.py", python()),
        ("plugins/js/sdk/xid_table.js", javascript()),
        ("plugins/xid-vectors.json", vectors()),
    ];
    let bless = std::env::var_os("GPUWARDEN_BLESS").is_some();
    let mut stale = Vec::new();
    for (path, want) in files {
        let file = root.join(path);
        if bless {
            std::fs::create_dir_all(file.parent().expect("a folder")).expect("mkdir");
            std::fs::write(&file, &want).expect("write");
        } else if std::fs::read_to_string(&file).ok().as_deref() != Some(want.as_str()) {
            stale.push(path);
        }
    }
    assert!(
        stale.is_empty(),
        "{stale:?} differ from the XID table: run GPUWARDEN_BLESS=1 cargo test -p gpuwarden-wire --test sdk_tables"
    );
}
