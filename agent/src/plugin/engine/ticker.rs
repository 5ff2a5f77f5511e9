//! The epoch ticker: advances the engine's epoch every [`EPOCH_TICK`] while at least one
//! plugin run is in progress, so a running guest yields and meets its deadline, and sleeps
//! on a condition variable while none is: an idle agent has no thread waking up with nothing
//! to do. It is an OS thread so that a guest spinning on an async worker cannot starve it.
//!
//! The first tick comes one [`EPOCH_TICK`] after a run starts, not at once: a run shorter
//! than a tick (a health check takes ~10 µs) never sees the epoch move, so it never yields
//! to the runtime halfway. A run wakes the thread only when it is parked; runs that follow
//! each other within a tick cost no system call.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use wasmtime::{Engine, EngineWeak};

/// How often the epoch advances: a running guest gives its thread back to the plugin
/// runtime this often, and its deadline is checked this often.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

#[derive(Debug, Default)]
struct State {
    /// Runs in progress.
    runs: usize,
    /// The engine is being dropped: the thread ends.
    stop: bool,
    /// Epochs advanced (for tests).
    ticks: u64,
    /// The thread waits on the condition variable (a run must wake it).
    parked: bool,
}

/// The ticker shared by the engine and its thread.
#[derive(Debug, Default)]
pub struct Ticker {
    state: Mutex<State>,
    wake: Condvar,
}

/// Held while a plugin runs: the epoch advances as long as one is held.
#[derive(Debug)]
pub struct Running(Arc<Ticker>);

impl Drop for Running {
    fn drop(&mut self) {
        let mut s = self.0.lock();
        s.runs = s.runs.saturating_sub(1);
    }
}

impl Ticker {
    /// Starts the ticker thread for `engine`; it ends when [`Ticker::stop`] is called or the
    /// engine is gone. Errors: the thread cannot be started.
    pub fn start(engine: &Engine) -> std::io::Result<Arc<Ticker>> {
        let ticker = Arc::new(Ticker::default());
        let (me, weak) = (Arc::clone(&ticker), engine.weak());
        std::thread::Builder::new()
            .name("wasm-epoch".into())
            .spawn(move || me.run(&weak))?;
        Ok(ticker)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn run(&self, weak: &EngineWeak) {
        loop {
            {
                let mut s = self.lock();
                while s.runs == 0 && !s.stop {
                    s.parked = true;
                    s = self.wake.wait(s).unwrap_or_else(|p| p.into_inner());
                    s.parked = false;
                }
                if s.stop {
                    return;
                }
            }
            std::thread::sleep(EPOCH_TICK);
            let mut s = self.lock();
            if s.runs == 0 {
                continue;
            }
            let Some(engine) = weak.upgrade() else { return };
            engine.increment_epoch();
            drop(engine);
            s.ticks += 1;
        }
    }

    /// A run starts: the epoch advances every tick until the returned guard is dropped.
    pub fn running(self: &Arc<Self>) -> Running {
        let parked = {
            let mut s = self.lock();
            s.runs += 1;
            s.parked
        };
        if parked {
            self.wake.notify_one();
        }
        Running(Arc::clone(self))
    }

    /// Ends the thread (the engine is being dropped).
    pub fn stop(&self) {
        self.lock().stop = true;
        self.wake.notify_one();
    }

    /// Epochs advanced so far (the tests read it).
    #[cfg(test)]
    fn ticks(&self) -> u64 {
        self.lock().ticks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_epoch_advances_only_while_a_run_is_in_progress() {
        let engine = Engine::default();
        let t = Ticker::start(&engine).unwrap();
        std::thread::sleep(EPOCH_TICK * 5);
        assert_eq!(t.ticks(), 0, "idle: no wake-ups");
        let started = std::time::Instant::now();
        let run = t.running();
        std::thread::sleep(EPOCH_TICK / 5);
        let early = t.ticks();
        if started.elapsed() < EPOCH_TICK {
            assert_eq!(early, 0, "a run shorter than a tick saw the epoch move");
        }
        std::thread::sleep(EPOCH_TICK * 5);
        let during = t.ticks();
        assert!(during >= 2, "{during}");
        drop(run);
        std::thread::sleep(EPOCH_TICK * 3);
        let after = t.ticks();
        std::thread::sleep(EPOCH_TICK * 5);
        assert_eq!(t.ticks(), after, "idle again");
        t.stop();
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(
            Arc::strong_count(&t),
            1,
            "the thread ended and let go of the ticker"
        );
    }
}
