//! The process around the agent: the plugin runtime's owner and the shutdown signals.

/// Owns the plugin runtime and shuts it down without blocking when dropped, so that an
/// error on the way out of the async `run` (a port in use, say) is reported instead of
/// panicking on the runtime's drop.
pub(crate) struct RuntimeGuard(pub(crate) Option<tokio::runtime::Runtime>);

impl RuntimeGuard {
    pub(crate) fn handle(&self) -> tokio::runtime::Handle {
        match &self.0 {
            Some(rt) => rt.handle().clone(),
            None => tokio::runtime::Handle::current(),
        }
    }
}

impl Drop for RuntimeGuard {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// SIGINT and SIGTERM, watched from the moment it is installed.
pub(crate) struct ShutdownSignal {
    term: Option<tokio::signal::unix::Signal>,
    int: Option<tokio::signal::unix::Signal>,
}

impl ShutdownSignal {
    pub(crate) fn install() -> Self {
        use tokio::signal::unix::{signal, SignalKind};
        let watch = |kind, name: &str| match signal(kind) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch {name}");
                None
            }
        };
        ShutdownSignal {
            term: watch(SignalKind::terminate(), "SIGTERM"),
            int: watch(SignalKind::interrupt(), "SIGINT"),
        }
    }

    pub(crate) async fn wait(mut self) {
        let term = async {
            match self.term.as_mut() {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending().await,
            }
        };
        let int = async {
            match self.int.as_mut() {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = term => {}
            _ = int => {}
        }
    }
}
