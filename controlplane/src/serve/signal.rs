//! Graceful stop on SIGINT and SIGTERM.

use tracing::warn;

/// SIGINT and SIGTERM, watched from the moment it is installed: install it before starting,
/// so a signal that arrives while the control plane starts (a supervisor stopping it at once)
/// is a graceful stop rather than the default action, which kills the process.
#[derive(Debug)]
pub struct ShutdownSignal {
    term: Option<tokio::signal::unix::Signal>,
    int: Option<tokio::signal::unix::Signal>,
}

impl ShutdownSignal {
    /// Starts watching (inside the runtime).
    pub fn install() -> Self {
        use tokio::signal::unix::{signal, SignalKind};
        let watch = |kind, name: &str| match signal(kind) {
            Ok(s) => Some(s),
            Err(e) => {
                warn!(error = %e, "cannot watch {name}");
                None
            }
        };
        ShutdownSignal {
            term: watch(SignalKind::terminate(), "SIGTERM"),
            int: watch(SignalKind::interrupt(), "SIGINT"),
        }
    }

    /// Waits for either signal.
    pub async fn wait(mut self) {
        async fn recv(s: Option<&mut tokio::signal::unix::Signal>) {
            match s {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending().await,
            }
        }
        tokio::select! {
            _ = recv(self.term.as_mut()) => {}
            _ = recv(self.int.as_mut()) => {}
        }
    }
}
