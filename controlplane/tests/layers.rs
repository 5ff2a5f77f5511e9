//! The control plane's shape (docs/ARCHITECTURE.md, "Layers"): its folders follow the data
//! flow and imports only run downwards, and no two files import each other, directly or
//! through others (what counts as an import: `gpuwarden_testkit::imports`).

use std::path::{Path, PathBuf};

use gpuwarden_testkit::imports::{
    all_modules, assert_no_circles, code, imports, name, paths_after, Module,
};

/// Folders (and bottom-layer files) from the bottom up: a file may import files of its own
/// folder and of lower layers only. Same-layer imports are allowed between the bottom
/// files (the import-circle check still applies to them).
const LAYERS: &[&[&str]] = &[
    &["model", "validate", "clock", "metrics", "token"],
    &["store"],
    &["judge"],
    &["config"],
    &["act"],
    &["scrape"],
    &["pool"],
    &["api", "cli"],
    &["console"],
    &["serve", "demo"],
    &["simulate"],
    &["lib", "main"],
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn layer(m: &Module) -> usize {
    let top = m.first().map(String::as_str).unwrap_or("lib");
    LAYERS
        .iter()
        .position(|l| l.contains(&top))
        .unwrap_or_else(|| {
            panic!("{top}: a folder in no layer; add it to LAYERS and to docs/ARCHITECTURE.md")
        })
}

#[test]
fn imports_run_downwards_between_folders() {
    let mut wrong = Vec::new();
    for (from, tos) in imports(&src()) {
        for to in tos {
            let (a, b) = (layer(&from), layer(&to));
            let same_folder = from.first() == to.first();
            if !same_folder && (a < b || (a == b && a != 0)) {
                wrong.push(format!("{} imports {}", name(&from), name(&to)));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports that run upwards or sideways:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn no_two_files_import_each_other() {
    assert_no_circles(&src());
}

/// The check itself finds what it is meant to find.
#[test]
fn the_checks_see_paths_of_every_kind() {
    let code = code(
        "use crate::store::rows::NodeRow;\n// crate::api::x in a comment\npub use inner::Thing;\nlet x = super::super::y::z();\n$crate::m::n\nuse super::{a, b::C};\nuse super::super::{d, e::F};\n#[cfg(test)]\nmod tests {\n    use crate::api::AppState;\n    fn f() { if true { crate::x::y(); } }\n}\nlet after = crate::store::Store;\n",
    );
    assert_eq!(
        paths_after(&code, "crate"),
        vec![
            vec!["store".to_string(), "rows".into(), "NodeRow".into()],
            vec!["store".to_string(), "Store".into()],
        ],
        "an inline test module is skipped to its end, and only it"
    );
    assert_eq!(
        paths_after(&code, "super"),
        vec![
            vec!["super".to_string(), "y".into(), "z".into()],
            vec!["a".to_string()],
            vec!["b".to_string(), "C".into()],
            vec!["super".to_string(), "d".into()],
            vec!["super".to_string(), "e".into(), "F".into()],
        ]
    );
    let modules = all_modules(&src());
    assert!(modules.contains(&vec!["judge".to_string(), "policy".into()]));
    let edges = imports(&src());
    let scrape = edges.get(&vec!["scrape".to_string()]).expect("scrape.rs");
    assert!(
        scrape.contains(&vec!["scrape".to_string(), "fleet".into()]),
        "{scrape:?}"
    );
    assert!(scrape.contains(&vec!["store".to_string()]), "{scrape:?}");
}
