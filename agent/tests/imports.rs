//! The agent's shape: no two of its files import each other, directly or through others
//! (what counts as an import: `gpuwarden_testkit::imports`), so each can be read, tested and
//! moved on its own.

use std::path::Path;

use gpuwarden_testkit::imports::{assert_no_circles, imports};

#[test]
fn no_two_files_of_the_agent_import_each_other() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let edges = imports(&src);
    assert!(
        edges.len() > 40,
        "the agent's files were not found: {edges:?}"
    );
    assert_no_circles(&src);
}
