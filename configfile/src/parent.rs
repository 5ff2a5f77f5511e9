//! `GPUWARDEN_EXIT_WITH_PARENT`: a process started by `gpuwarden demo` or `gpuwarden
//! simulate` (a control plane, a fleet of simulated agents) ends with its parent, even when
//! the parent is killed with SIGKILL and cannot stop it. Not configuration: no `__`, never
//! read by the configuration loader.

/// The variable: set to the parent's process id by the program that starts the process.
pub const EXIT_WITH_PARENT: &str = "GPUWARDEN_EXIT_WITH_PARENT";

/// Under [`EXIT_WITH_PARENT`]: asks the kernel for SIGTERM to this process when its parent
/// dies (Linux's `PR_SET_PDEATHSIG`), then checks the parent is still the one named; false
/// when it is gone already (the caller exits at once). Without the variable: true, nothing
/// done.
pub fn tied_to_parent() -> bool {
    let Some(parent) = std::env::var(EXIT_WITH_PARENT)
        .ok()
        .and_then(|p| p.parse::<i32>().ok())
    else {
        return true;
    };
    let _ = rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::TERM));
    rustix::process::getppid().is_some_and(|p| p.as_raw_nonzero().get() == parent)
}
