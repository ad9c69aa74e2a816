//! Least privilege: once the mount is up and before the first request is served, the daemon
//! keeps only the capabilities shmfs uses ([`caps::KEPT`]), may gain no new privileges
//! (`no_new_privs`), and may make only the system calls shmfs makes ([`seccomp`]).
//!
//! The order matters: capabilities are per thread, so they are dropped while the daemon is
//! one thread, and every thread started afterwards (fuser's workers, the notice and sweep
//! threads, the signal thread) inherits the short set. The seccomp filter goes on every thread
//! at once (`SECCOMP_FILTER_FLAG_TSYNC`), so even a thread that existed before would have it.
//! Whatever the daemon needs that the filter refuses is done before: mounting, mounting
//! fusectl and opening the connection's `abort` file, entering an IPC namespace, raising the
//! descriptor limit, and, for a non-root daemon, starting the [`unmounter`] that runs
//! fusermount3 at exit. docs/sandbox.md explains it all for administrators.

pub mod caps;
pub mod seccomp;
pub mod unmounter;

/// What [`enter`] did, for the log.
#[derive(Debug)]
pub struct Entered {
    /// The capabilities left (effective = permitted = bounding), as names; empty for a daemon
    /// that held none.
    pub capabilities: Vec<&'static str>,
    /// How many system calls the filter allows.
    pub allowed_calls: usize,
}

/// Drops every capability shmfs does not use (and the inheritable and ambient sets), sets
/// `no_new_privs` and installs the seccomp filter on every thread. Call it after mounting,
/// while the daemon is still one thread, before serving. A daemon without capabilities (a
/// non-root user's) gets no_new_privs and the same filter.
pub fn enter() -> Result<Entered, String> {
    let capabilities = caps::drop_unused().map_err(|e| format!("dropping capabilities: {e}"))?;
    // The per-request switch to a caller's credentials restores the daemon's own afterwards:
    // from now on those are the short set.
    crate::kernel::creds::capabilities_changed()
        .map_err(|e| format!("reading the capabilities left: {e}"))?;
    let allowed_calls = seccomp::install()?;
    Ok(Entered {
        capabilities,
        allowed_calls,
    })
}
