use std::time::Duration;

use gpuwarden_testkit::Scratch;

use super::*;

/// Much shorter than the waits below: a check that still polled would wake within them.
const POLL: Duration = Duration::from_millis(50);

/// Whether `w.wait()` returns within `within`.
async fn wakes(w: &mut Wakeups, within: Duration) -> bool {
    tokio::time::timeout(within, w.wait()).await.is_ok()
}

#[tokio::test]
async fn only_a_change_wakes_the_check() {
    let dir = Scratch::new("watch-change");
    let file = dir.write("agent.toml", "a = 1\n");
    let mut w = Wakeups::new(POLL);
    assert!(
        w.follow([file.as_path()]),
        "a new folder is checked at once"
    );
    assert!(!w.polling());
    assert!(!w.follow([file.as_path()]), "nothing new to watch");
    assert!(
        !wakes(&mut w, POLL * 8).await,
        "nothing changed: no wake-up, though the poll interval passed 8 times"
    );
    // The agent reads the file on every check: reads are no changes.
    std::fs::read(&file).unwrap();
    assert!(!wakes(&mut w, POLL * 8).await, "a read woke the check");

    std::fs::write(&file, "a = 2\n").unwrap();
    assert!(
        wakes(&mut w, Duration::from_secs(5)).await,
        "a write was missed"
    );
    assert!(
        !wakes(&mut w, POLL * 4).await,
        "one write (several notifications) is one wake-up"
    );

    // Replaced by renaming another file over it, as editors and deployment tools do.
    let new = dir.write("agent.toml.new", "a = 3\n");
    assert!(wakes(&mut w, Duration::from_secs(5)).await);
    std::fs::rename(&new, &file).unwrap();
    assert!(
        wakes(&mut w, Duration::from_secs(5)).await,
        "a rename over the file was missed"
    );
}

#[tokio::test]
async fn a_folder_that_cannot_be_watched_is_polled_until_it_can() {
    let dir = Scratch::new("watch-missing");
    let missing = dir.0.join("not-yet").join("p.wasm");
    let mut w = Wakeups::new(POLL);
    assert!(!w.follow([missing.as_path()]));
    assert!(w.polling(), "a missing folder is polled");
    assert!(
        wakes(&mut w, POLL * 10).await,
        "the poll interval wakes the check"
    );

    std::fs::create_dir(dir.0.join("not-yet")).unwrap();
    assert!(w.follow([missing.as_path()]), "the folder exists now");
    assert!(!w.polling(), "every folder watched: polling stops");
    assert!(!wakes(&mut w, POLL * 8).await);
    std::fs::write(&missing, b"x").unwrap();
    assert!(wakes(&mut w, Duration::from_secs(5)).await);
}

#[tokio::test]
async fn a_folder_made_again_is_watched_again() {
    let dir = Scratch::new("watch-again");
    let sub = dir.0.join("plugins");
    std::fs::create_dir(&sub).unwrap();
    let file = sub.join("p.wasm");
    std::fs::write(&file, b"1").unwrap();
    let mut w = Wakeups::new(POLL);
    assert!(w.follow([file.as_path()]));
    std::fs::remove_dir_all(&sub).unwrap();
    std::fs::create_dir(&sub).unwrap();
    assert!(wakes(&mut w, Duration::from_secs(5)).await, "removal seen");
    assert!(w.follow([file.as_path()]), "the new folder is watched");
    std::fs::write(&file, b"2").unwrap();
    assert!(
        wakes(&mut w, Duration::from_secs(5)).await,
        "a change in the new folder was missed"
    );
}

#[tokio::test]
async fn a_symbolic_link_has_its_target_folder_watched() {
    let dir = Scratch::new("watch-link");
    let real = dir.0.join("real");
    let links = dir.0.join("links");
    std::fs::create_dir(&real).unwrap();
    std::fs::create_dir(&links).unwrap();
    let target = real.join("p.wasm");
    std::fs::write(&target, b"1").unwrap();
    let link = links.join("p.wasm");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let mut w = Wakeups::new(POLL);
    assert!(w.follow([link.as_path()]));
    assert!(!wakes(&mut w, POLL * 4).await);
    std::fs::write(&target, b"2").unwrap();
    assert!(
        wakes(&mut w, Duration::from_secs(5)).await,
        "a change of the link's target was missed"
    );
}
