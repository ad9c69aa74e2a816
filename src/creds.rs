//! Acting as the caller: the kernel, not shmfs, decides who may touch what.
//!
//! When the daemon runs as root, each operation that the kernel permission-checks
//! (shmat, IPC_SET, open, chmod, chown, truncate) runs with the calling process's uid, gid
//! and supplementary groups, switched on the worker thread alone with the raw system calls
//! (glibc's wrappers would switch every thread of the process). The real and saved uid stay
//! 0, so switching back always works.

use std::io;
use std::sync::OnceLock;

/// Who sent a FUSE request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caller {
    pub uid: u32,
    pub gid: u32,
    pub pid: u32,
}

struct DaemonIds {
    is_root: bool,
    gid: u32,
    groups: Vec<libc::gid_t>,
}

fn daemon_ids() -> &'static DaemonIds {
    static IDS: OnceLock<DaemonIds> = OnceLock::new();
    IDS.get_or_init(|| {
        // SAFETY: plain system calls with a correctly sized buffer.
        unsafe {
            let n = libc::getgroups(0, std::ptr::null_mut());
            let mut groups = vec![0; n.max(0) as usize];
            let n = libc::getgroups(groups.len() as i32, groups.as_mut_ptr());
            groups.truncate(n.max(0) as usize);
            DaemonIds {
                is_root: libc::geteuid() == 0,
                gid: libc::getegid(),
                groups,
            }
        }
    })
}

/// True when the daemon runs as root and so must act as its callers.
pub fn daemon_is_root() -> bool {
    daemon_ids().is_root
}

/// The supplementary groups of a process, from `/proc/PID/status`; empty if it is gone.
pub fn groups_of(pid: u32) -> Vec<libc::gid_t> {
    let pid = i32::try_from(pid).unwrap_or(0);
    procfs::process::Process::new(pid)
        .and_then(|p| p.status())
        .map(|status| status.groups)
        .unwrap_or_default()
}

fn check(rc: libc::c_long) -> io::Result<()> {
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

// SAFETY (all three): raw system calls that change only the calling thread's credentials.
fn set_thread_groups(groups: &[libc::gid_t]) -> io::Result<()> {
    check(unsafe { libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) })
}
fn set_thread_egid(gid: u32) -> io::Result<()> {
    check(unsafe { libc::syscall(libc::SYS_setresgid, -1i32, gid, -1i32) })
}
fn set_thread_euid(uid: u32) -> io::Result<()> {
    check(unsafe { libc::syscall(libc::SYS_setresuid, -1i32, uid, -1i32) })
}

fn restore_daemon() {
    let ids = daemon_ids();
    let restored = set_thread_euid(0)
        .and_then(|_| set_thread_egid(ids.gid))
        .and_then(|_| set_thread_groups(&ids.groups));
    if let Err(e) = restored {
        // A worker thread left with a user's credentials would act wrongly for everyone
        // after; this cannot happen with saved uid 0, and if it did, stopping is safest.
        log::error!("cannot restore the daemon's credentials: {e}; aborting");
        std::process::abort();
    }
}

/// Runs `f` with the caller's credentials when the daemon is root and the caller is not;
/// otherwise runs it as it is (a root caller, or a daemon that is the only allowed user).
pub fn as_caller<T>(caller: &Caller, f: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
    if !daemon_is_root() || caller.uid == 0 {
        return f();
    }
    let groups = groups_of(caller.pid);
    let switched = set_thread_groups(&groups)
        .and_then(|_| set_thread_egid(caller.gid))
        .and_then(|_| set_thread_euid(caller.uid));
    let result = match switched {
        Ok(()) => f(),
        Err(e) => Err(e),
    };
    restore_daemon();
    result
}
