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

/// Takes SIGHUP, whose default action ends a process without a word: operators send it to
/// ask for a reload, and a closed terminal or session sends it too. The agent reloads its
/// configuration by itself when the file changes, so a SIGHUP is logged and the agent runs
/// on. Call from within the async runtime; without it (the signal cannot be watched) a
/// warning says so.
pub(crate) fn keep_running_on_sighup() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::hangup()) {
        Ok(mut hup) => {
            tokio::spawn(async move {
                while hup.recv().await.is_some() {
                    tracing::info!(
                        "SIGHUP received: the agent keeps running; it reloads the configuration file by itself \
                         when it changes (the plugins; other settings apply at restart)"
                    );
                }
            });
        }
        Err(e) => tracing::warn!(error = %e, "cannot watch SIGHUP: a SIGHUP would end the agent"),
    }
}

/// Logs every panic through `tracing` (thread, location, message) before the default hook
/// prints it, so a panic in any thread shows in the agent's log as an error line of its
/// format, with the thread that panicked (a panic in a worker thread does not end the
/// process; without this line it would stop a part of the agent unseen by log readers).
pub fn log_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let thread = std::thread::current();
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(no message)".into());
        tracing::error!(
            thread = thread.name().unwrap_or("unnamed"),
            location = %info.location().map_or_else(String::new, |l| l.to_string()),
            message = %message,
            "panic"
        );
        default(info);
    }));
}
