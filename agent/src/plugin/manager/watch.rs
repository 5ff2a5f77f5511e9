//! What wakes the hot-reload check: the kernel's file notifications (inotify, through the
//! `notify` crate) on the folders that hold the config file and the plugin files, so an
//! agent whose files do not change never wakes up for them. Where a folder cannot be
//! watched (it does not exist, the inotify limits are reached, the platform has none), the
//! check falls back to a poll every `[plugin] reload_interval`.
//!
//! Folders are watched rather than files: editors and deployment tools replace a file by
//! renaming a new one over it (a watch on the old file would see nothing more), and a
//! Kubernetes ConfigMap swaps a symbolic link in the folder. A file that is a symbolic link
//! also has its target's folder watched.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use notify::event::{AccessKind, AccessMode, ModifyKind};
use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc;

/// After the first notification, how long to wait for a burst of them (a file being
/// written, a config and a plugin replaced together) to end before checking once.
pub const SETTLE: Duration = Duration::from_millis(50);

/// Paths removed or renamed since the last [`Wakeups::follow`], at most this many; a watched
/// folder among them has lost its watch and is watched again.
const MAX_GONE: usize = 256;

/// Paths removed or renamed, as the watcher's thread reports them.
#[derive(Debug, Default)]
struct Gone {
    paths: BTreeSet<PathBuf>,
    /// More than [`MAX_GONE`]: every folder is watched again.
    overflow: bool,
}

/// The notifications and the folders they come from.
pub struct Wakeups {
    watcher: Option<notify::RecommendedWatcher>,
    /// A pending notification (capacity 1: a burst is one wake-up).
    rx: mpsc::Receiver<()>,
    /// Watched folders and their inode: a folder removed and made again is watched anew.
    watched: BTreeMap<PathBuf, u64>,
    gone: Arc<Mutex<Gone>>,
    /// Folders that could not be watched: the check polls while there is one.
    unwatched: BTreeSet<PathBuf>,
    poll_every: Duration,
}

impl std::fmt::Debug for Wakeups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wakeups")
            .field("watched", &self.watched)
            .field("unwatched", &self.unwatched)
            .finish()
    }
}

/// The folders whose changes can change `file`: its own, and its target's when it is a
/// symbolic link.
fn folders_of(file: &Path) -> Vec<PathBuf> {
    let parent = |p: &Path| match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut out = vec![parent(file)];
    if let Ok(real) = std::fs::canonicalize(file) {
        let d = parent(&real);
        if std::fs::canonicalize(&out[0]).ok().as_ref() != Some(&d) {
            out.push(d);
        }
    }
    out
}

impl Wakeups {
    /// Starts the kernel watcher; without one (an error is logged) every check polls.
    pub fn new(poll_every: Duration) -> Self {
        let (tx, rx) = mpsc::channel(1);
        let gone = Arc::new(Mutex::new(Gone::default()));
        let seen = Arc::clone(&gone);
        let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            // Reads (the agent's own included) change nothing; a file closed after writing,
            // or an error (a lost event), might.
            let relevant = match res {
                Ok(e) => {
                    if matches!(
                        e.kind,
                        EventKind::Remove(_) | EventKind::Modify(ModifyKind::Name(_))
                    ) {
                        let mut g = seen.lock().unwrap_or_else(|p| p.into_inner());
                        g.overflow |= g.paths.len() + e.paths.len() > MAX_GONE;
                        if !g.overflow {
                            g.paths.extend(e.paths);
                        }
                    }
                    !matches!(e.kind, EventKind::Access(a) if a != AccessKind::Close(AccessMode::Write))
                }
                Err(_) => true,
            };
            if relevant {
                // Full: a wake-up is already pending, which covers this one.
                let _ = tx.try_send(());
            }
        });
        let watcher = match watcher {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(error = %e, every = %humantime::format_duration(poll_every),
                    "cannot watch files for changes: the config and plugin files are polled");
                None
            }
        };
        Wakeups {
            watcher,
            rx,
            watched: BTreeMap::new(),
            gone,
            unwatched: BTreeSet::new(),
            poll_every,
        }
    }

    /// Whether a check waits for a poll interval instead of a notification.
    pub fn polling(&self) -> bool {
        self.watcher.is_none() || !self.unwatched.is_empty()
    }

    /// Watches the folders of `files` (and only those). Returns whether a folder that was
    /// not watched before is now: a change there before this call was not seen, so the
    /// caller checks at once.
    pub fn follow<'a>(&mut self, files: impl IntoIterator<Item = &'a Path>) -> bool {
        let wanted: BTreeSet<PathBuf> = files.into_iter().flat_map(folders_of).collect();
        let Some(w) = self.watcher.as_mut() else {
            self.unwatched = wanted;
            return false;
        };
        let inode = |d: &Path| std::fs::metadata(d).ok().map(|m| m.ino());
        let gone = std::mem::take(&mut *self.gone.lock().unwrap_or_else(|p| p.into_inner()));
        // Folders no longer wanted, and folders removed, moved or replaced since they were
        // watched (their watch is gone, or follows the old folder).
        let stale: Vec<PathBuf> = self
            .watched
            .iter()
            .filter(|(d, ino)| {
                !wanted.contains(*d)
                    || gone.overflow
                    || gone.paths.contains(*d)
                    || inode(d) != Some(**ino)
            })
            .map(|(d, _)| d.clone())
            .collect();
        for d in stale {
            // Already gone when the folder was removed: nothing left to undo.
            let _ = w.unwatch(&d);
            self.watched.remove(&d);
        }
        let mut added = false;
        let mut unwatched = BTreeSet::new();
        for dir in wanted {
            if self.watched.contains_key(&dir) {
                continue;
            }
            let result = w.watch(&dir, RecursiveMode::NonRecursive);
            match (result, inode(&dir)) {
                (Ok(()), Some(ino)) => {
                    added = true;
                    self.watched.insert(dir, ino);
                }
                (result, _) => {
                    if !self.unwatched.contains(&dir) {
                        let error = result
                            .err()
                            .map_or_else(|| "not found".into(), |e| e.to_string());
                        tracing::warn!(folder = %dir.display(), error = %error,
                            every = %humantime::format_duration(self.poll_every),
                            "cannot watch this folder for changes: polling");
                    }
                    unwatched.insert(dir);
                }
            }
        }
        if unwatched.is_empty() && !self.unwatched.is_empty() {
            tracing::info!("every folder is watched again: polling stopped");
        }
        self.unwatched = unwatched;
        added
    }

    /// Waits until something in a watched folder changed (and the burst settled), or, while
    /// polling, for the poll interval.
    pub async fn wait(&mut self) {
        if self.polling() {
            tokio::time::sleep(self.poll_every).await;
            let _ = self.rx.try_recv();
            return;
        }
        if self.rx.recv().await.is_none() {
            // The watcher is gone (it cannot be while `self` lives); never spin.
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(SETTLE).await;
        let _ = self.rx.try_recv();
    }
}

#[cfg(test)]
mod tests;
