//! Acting as the caller: the kernel, not shmfs, decides who may touch what.
//!
//! When the daemon runs as root, each operation that the kernel permission-checks
//! (shmat, IPC_SET, IPC_RMID, open, chmod, chown, truncate) runs with the calling process's
//! uid, gid, supplementary groups *and effective capabilities*, switched on the worker thread
//! alone with the raw system calls (glibc's wrappers would switch every thread of the
//! process). Capabilities matter as much as the uid: a uid-0 process without capabilities (an
//! empty `CapabilityBoundingSet=`, a container with every capability dropped) is refused by the
//! kernel, and a non-root process holding CAP_IPC_OWNER or CAP_DAC_OVERRIDE is let in. The
//! real and saved uid stay 0 and the permitted set is kept, so switching back always works.
//!
//! A caller's groups and capabilities come from one read of `/proc/PID/status`, made only
//! when a decision needs them and shared by the rest of the request.

use std::cell::RefCell;
use std::io;
use std::sync::{OnceLock, RwLock};

/// Capability numbers (linux/capability.h) that shmfs's own checks consult.
pub mod cap {
    /// Overrides read, write and search permission checks of files.
    pub const DAC_OVERRIDE: u32 = 1;
    /// Overrides read permission checks of files.
    pub const DAC_READ_SEARCH: u32 = 2;
    /// Overrides the owner checks of chmod, utimensat and the like.
    pub const FOWNER: u32 = 3;
    /// Overrides the System V IPC permission checks (`ipcperms`).
    pub const IPC_OWNER: u32 = 15;
    /// Lets a process change any file's owner.
    pub const CHOWN: u32 = 0;
    /// Lets a process change or remove any System V segment (IPC_SET, IPC_RMID).
    pub const SYS_ADMIN: u32 = 21;
    /// Lets a process read any other process's maps (ptrace read access).
    pub const SYS_PTRACE: u32 = 19;
}

/// Who sent a FUSE request. Its capabilities and groups are read on first use.
#[derive(Clone, Debug)]
pub struct Caller {
    pub uid: u32,
    pub gid: u32,
    /// The requesting thread (FUSE reports the thread, whose capabilities are its own).
    pub pid: u32,
    /// The capabilities that count for this request, one bit each.
    caps: OnceLock<u64>,
    groups: OnceLock<Vec<libc::gid_t>>,
    /// Whether the request is an access(2) check, which the kernel makes with the
    /// capabilities of the real uid: the permitted set for root, none for anyone else.
    access_check: bool,
}

impl Caller {
    /// A caller known by its uid, gid and thread id.
    pub fn new(uid: u32, gid: u32, pid: u32) -> Caller {
        Caller {
            uid,
            gid,
            pid,
            caps: OnceLock::new(),
            groups: OnceLock::new(),
            access_check: false,
        }
    }

    /// The caller of an access(2) check (FUSE_ACCESS). The kernel sends it with the real uid
    /// and gid and, unless the real uid is 0, without capabilities; with real uid 0, the
    /// permitted set counts (`access_override_creds` in fs/open.c).
    pub fn for_access(uid: u32, gid: u32, pid: u32) -> Caller {
        Caller {
            access_check: true,
            ..Caller::new(uid, gid, pid)
        }
    }

    /// The thread's pid as the kernel takes it, if it names one (requests the kernel makes
    /// itself carry pid 0).
    fn thread(&self) -> Option<libc::pid_t> {
        libc::pid_t::try_from(self.pid).ok().filter(|&pid| pid > 0)
    }

    /// The capabilities that count, from one `capget` of the calling thread. A thread that is
    /// gone has none: refusing is the safe answer. So has a thread of another user namespace
    /// (a rootless container's root holds every capability, but only over what its own
    /// namespace owns; the daemon acts in its own), which is conservative where the objects
    /// shown belong to that namespace.
    pub fn caps(&self) -> u64 {
        *self.caps.get_or_init(|| {
            let Some(pid) = self.thread() else {
                return 0;
            };
            let sets = match thread_caps_of(pid) {
                Ok(sets) if sets.effective | sets.permitted == 0 => return 0,
                Ok(sets) => sets,
                Err(e) => {
                    log::debug!("capabilities of caller pid {}: {e}; none", self.pid);
                    return 0;
                }
            };
            if !in_daemon_user_ns(pid) {
                log::debug!(
                    "caller pid {} is in another user namespace: no capabilities",
                    self.pid
                );
                return 0;
            }
            match (self.access_check, self.uid) {
                (false, _) => sets.effective,
                (true, 0) => sets.permitted,
                (true, _) => 0,
            }
        })
    }

    /// The supplementary groups, from `/proc/PID/status`; none if the thread is gone.
    fn groups(&self) -> &[libc::gid_t] {
        self.groups.get_or_init(|| {
            let status = self
                .thread()
                .ok_or(procfs::ProcError::NotFound(None))
                .and_then(procfs::process::Process::new)
                .and_then(|p| p.status());
            match status {
                Ok(status) => status.groups,
                Err(e) => {
                    log::debug!("status of caller pid {}: {e}; no groups", self.pid);
                    Vec::new()
                }
            }
        })
    }

    /// The same caller with its groups and capabilities read now, for a decision made
    /// later on its behalf (when the thread may be gone or its pid reused).
    pub fn resolved(&self) -> Caller {
        self.caps();
        self.groups();
        self.clone()
    }

    /// True if the caller's primary gid or one of its supplementary groups is `gid`.
    pub fn in_group(&self, gid: u32) -> bool {
        self.gid == gid || self.groups().contains(&gid)
    }

    /// True if `capability` (see [`cap`]) is in the caller's effective set.
    pub fn has_cap(&self, capability: u32) -> bool {
        capability < 64 && self.caps() & (1u64 << capability) != 0
    }

    /// True for root holding every capability the daemon has: acting as it would change
    /// nothing the kernel checks, so the daemon acts as itself (no switch, no /proc read).
    fn is_all_powerful(&self, daemon: &DaemonIds) -> bool {
        let permitted = daemon.caps().permitted;
        self.uid == 0 && self.caps() & permitted == permitted
    }
}

/// What the daemon switches back to after acting for a caller.
struct DaemonIds {
    is_root: bool,
    gid: u32,
    groups: Vec<libc::gid_t>,
    /// The daemon's permitted and inheritable capability sets (its effective set, restored
    /// after each switch, is the permitted one). Read again by [`capabilities_changed`] once
    /// the sandbox has dropped what the daemon does not need, before any request is served.
    caps: RwLock<CapSets>,
}

impl DaemonIds {
    fn caps(&self) -> CapSets {
        *self.caps.read().unwrap_or_else(|p| p.into_inner())
    }
}

fn daemon_ids() -> &'static DaemonIds {
    static IDS: OnceLock<DaemonIds> = OnceLock::new();
    IDS.get_or_init(|| {
        // SAFETY: plain system calls with a correctly sized buffer.
        let (is_root, gid, groups) = unsafe {
            let n = libc::getgroups(0, std::ptr::null_mut());
            let mut groups = vec![0; n.max(0) as usize];
            let n = libc::getgroups(groups.len() as i32, groups.as_mut_ptr());
            groups.truncate(n.max(0) as usize);
            (libc::geteuid() == 0, libc::getegid(), groups)
        };
        let caps = thread_caps().unwrap_or_else(|e| {
            log::warn!("capget: {e}; acting for root callers without capabilities");
            CapSets::default()
        });
        DaemonIds {
            is_root,
            gid,
            groups,
            caps: RwLock::new(caps),
        }
    })
}

/// Reads the daemon's capability sets again, after they were changed for the whole process
/// (the sandbox's drop): switching back after a request restores these.
pub fn capabilities_changed() -> io::Result<()> {
    let caps = thread_caps()?;
    *daemon_ids().caps.write().unwrap_or_else(|p| p.into_inner()) = caps;
    Ok(())
}

/// Whether thread `pid` is in the daemon's user namespace; anything unreadable means no.
fn in_daemon_user_ns(pid: libc::pid_t) -> bool {
    static OWN: OnceLock<Option<std::path::PathBuf>> = OnceLock::new();
    let own = OWN.get_or_init(|| std::fs::read_link("/proc/self/ns/user").ok());
    let theirs = std::fs::read_link(format!("/proc/{pid}/ns/user")).ok();
    own.is_some() && *own == theirs
}

/// True when the daemon runs as root and so must act as its callers.
pub fn daemon_is_root() -> bool {
    daemon_ids().is_root
}

/// A thread's three capability sets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct CapSets {
    pub(crate) effective: u64,
    pub(crate) permitted: u64,
    pub(crate) inheritable: u64,
}

/// `_LINUX_CAPABILITY_VERSION_3`: 64-bit sets, split in two 32-bit halves.
const CAPABILITY_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

fn join(low: u32, high: u32) -> u64 {
    u64::from(low) | (u64::from(high) << 32)
}

/// The calling thread's capability sets (capget with pid 0 reads this thread's own).
pub(crate) fn thread_caps() -> io::Result<CapSets> {
    thread_caps_of(0)
}

/// The capability sets of thread `pid` (any thread may be asked; no permission needed).
fn thread_caps_of(pid: libc::pid_t) -> io::Result<CapSets> {
    let mut header = CapHeader {
        version: CAPABILITY_VERSION_3,
        pid,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: a version-3 header and the two data structs it asks for.
    check(unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) })?;
    Ok(CapSets {
        effective: join(data[0].effective, data[1].effective),
        permitted: join(data[0].permitted, data[1].permitted),
        inheritable: join(data[0].inheritable, data[1].inheritable),
    })
}

/// Sets the calling thread's capability sets. The raw capset system call with pid 0 acts on
/// this thread alone, which is what a per-request switch needs.
pub(crate) fn set_thread_caps(sets: CapSets) -> io::Result<()> {
    let mut header = CapHeader {
        version: CAPABILITY_VERSION_3,
        pid: 0,
    };
    let half = |shift: u32| CapData {
        effective: (sets.effective >> shift) as u32,
        permitted: (sets.permitted >> shift) as u32,
        inheritable: (sets.inheritable >> shift) as u32,
    };
    let data = [half(0), half(32)];
    // SAFETY: a version-3 header and two data structs, only read by the kernel.
    check(unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) })
}

fn check(rc: libc::c_long) -> io::Result<()> {
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

// Raw system calls, not the C library's wrappers, which would change every thread's ids.
fn set_thread_groups(groups: &[libc::gid_t]) -> io::Result<()> {
    // SAFETY: changes only the calling thread's groups; the kernel reads `groups.len()` ids
    // from a slice that lives through the call.
    check(unsafe { libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) })
}
fn set_thread_egid(gid: u32) -> io::Result<()> {
    // SAFETY: plain integers; changes only the calling thread's effective gid.
    check(unsafe { libc::syscall(libc::SYS_setresgid, -1i32, gid, -1i32) })
}
fn set_thread_euid(uid: u32) -> io::Result<()> {
    // SAFETY: plain integers; changes only the calling thread's effective uid.
    check(unsafe { libc::syscall(libc::SYS_setresuid, -1i32, uid, -1i32) })
}

/// Takes on the caller's groups, gid, uid and effective capabilities (as far as the daemon
/// holds them). Changing the euid away from 0 clears the effective set, so the caller's is
/// set last.
fn become_caller(caller: &Caller, daemon: &DaemonIds) -> io::Result<()> {
    // Read while still the daemon: the caller's /proc entries may not be readable as it.
    let (groups, caps) = (caller.groups(), caller.caps());
    set_thread_groups(groups)?;
    set_thread_egid(caller.gid)?;
    set_thread_euid(caller.uid)?;
    let own = daemon.caps();
    set_thread_caps(CapSets {
        effective: caps & own.permitted,
        ..own
    })
}

/// Back to the daemon's own credentials: the effective set first (setgroups and setresgid
/// need CAP_SETGID), then the ids.
fn restore_daemon() {
    let ids = daemon_ids();
    let own = ids.caps();
    let restored = set_thread_caps(CapSets {
        effective: own.permitted,
        ..own
    })
    .and_then(|_| set_thread_euid(0))
    .and_then(|_| set_thread_egid(ids.gid))
    .and_then(|_| set_thread_groups(&ids.groups));
    if let Err(e) = restored {
        // A worker thread left with a user's credentials would act wrongly for everyone
        // after; this cannot happen with saved uid 0 and an unchanged permitted set, and if it
        // did, stopping is safest.
        log::error!("cannot restore the daemon's credentials: {e}; aborting");
        std::process::abort();
    }
}

/// Runs `f` with the caller's uid, gid, groups and effective capabilities when the daemon is
/// root; otherwise runs it as it is (a daemon whose only allowed user is its owner). Root
/// callers are switched too, unless they hold every capability the daemon has: their
/// capabilities, not their uid, decide.
pub fn as_caller<T>(caller: &Caller, f: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
    let daemon = daemon_ids();
    if !daemon.is_root || caller.is_all_powerful(daemon) {
        return f();
    }
    // Restores the daemon's credentials when dropped: after `f`, and also when `f` panics and
    // the panic is caught further up, so that no worker goes on with a caller's credentials.
    let _restore = RestoreDaemon;
    match become_caller(caller, daemon) {
        Ok(()) => {
            let _acting = Acting::begin(caller);
            f()
        }
        Err(e) => {
            log::warn!("cannot act as uid {} (pid {}): {e}", caller.uid, caller.pid);
            Err(e)
        }
    }
}

/// Gives the thread back the daemon's credentials when dropped (see [`as_caller`]).
struct RestoreDaemon;

impl Drop for RestoreDaemon {
    fn drop(&mut self) {
        restore_daemon();
    }
}

thread_local! {
    /// The caller this thread acts as now, inside [`as_caller`]; `None` when it has the
    /// daemon's own credentials.
    static ACTING_AS: RefCell<Option<Caller>> = const { RefCell::new(None) };
}

/// The thread's note of whom it acts as, for as long as it is held.
struct Acting;

impl Acting {
    fn begin(caller: &Caller) -> Acting {
        ACTING_AS.set(Some(caller.clone()));
        Acting
    }
}

impl Drop for Acting {
    fn drop(&mut self) {
        ACTING_AS.set(None);
    }
}

/// Runs `f` with the daemon's own credentials, also in the middle of [`as_caller`], after which
/// the thread acts as the caller again. For what the daemon does on its own account so that a
/// caller's operation can be made, never for the operation itself: today, reaching a process's
/// root through `/proc/PID/root` (`--pid`), which the kernel lets only the process's owner or a
/// tracer follow, before the caller acts, as itself, in the shm dir found there; and making the
/// detached mount of a namespace's mqueue filesystem, in which the caller then acts. Outside
/// `as_caller` (or where it switched nothing) `f` just runs.
pub fn as_daemon<T>(f: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
    let Some(caller) = ACTING_AS.with_borrow(Clone::clone) else {
        return f();
    };
    restore_daemon();
    let result = f();
    if let Err(e) = become_caller(&caller, daemon_ids()) {
        // Going on would make the caller's operation with the daemon's rights; this cannot
        // happen with the same ids and sets that worked a moment ago.
        log::error!(
            "cannot act as uid {} (pid {}) again: {e}; aborting",
            caller.uid,
            caller.pid
        );
        std::process::abort();
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_of_a_thread_are_its_own() {
        let caller = Caller::new(0, 0, std::process::id());
        let status = procfs::process::Process::myself()
            .and_then(|p| p.status())
            .map(|s| s.capeff);
        assert_eq!(
            caller.has_cap(cap::IPC_OWNER),
            status.is_ok_and(|c| c & (1 << 15) != 0)
        );
        assert!(!caller.has_cap(99), "no capability beyond the 64 bits");
    }

    #[test]
    fn a_vanished_caller_has_no_groups_and_no_capabilities() {
        let caller = Caller::new(0, 7, 0);
        assert!(!caller.has_cap(cap::DAC_OVERRIDE));
        assert!(caller.in_group(7), "the primary gid needs no lookup");
        assert!(!caller.in_group(8));
    }

    #[test]
    fn access_checks_weigh_no_capabilities_for_others() {
        let me = std::process::id();
        assert!(!Caller::for_access(1000, 1000, me).has_cap(cap::DAC_OVERRIDE));
        let sets = thread_caps_of(me as libc::pid_t).expect("capget of this process");
        assert_eq!(
            Caller::for_access(0, 0, me).has_cap(cap::DAC_OVERRIDE),
            sets.permitted & (1 << cap::DAC_OVERRIDE) != 0,
            "root's access(2) counts its permitted set"
        );
    }

    /// The thread's effective uid (the raw call: per thread).
    fn thread_euid() -> u32 {
        // SAFETY: plain system call.
        unsafe { libc::syscall(libc::SYS_geteuid) as u32 }
    }

    #[test]
    fn a_panic_inside_as_caller_leaves_the_thread_with_the_daemons_credentials() {
        // A caller with no thread: no capabilities, no groups.
        let caller = Caller::new(54321, 54321, 0);
        let me = thread_euid();
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            as_caller(&caller, || -> io::Result<()> {
                if daemon_ids().is_root {
                    assert_eq!(thread_euid(), 54321, "acting as the caller inside");
                }
                panic!("a panic inside as_caller (expected by this test)")
            })
        }));
        assert!(caught.is_err());
        assert_eq!(thread_euid(), me, "the daemon's uid again after the panic");
        assert!(ACTING_AS.with_borrow(Option::is_none));
        // And the thread still works as anyone's.
        let again = as_caller(&caller, || Ok(thread_euid())).unwrap();
        if daemon_ids().is_root {
            assert_eq!(again, 54321);
        }
        assert_eq!(thread_euid(), me);
    }

    #[test]
    fn as_daemon_inside_as_caller_is_the_daemon_and_then_the_caller_again() {
        // A caller with no thread: no capabilities, no groups.
        let caller = Caller::new(54321, 54321, 0);
        let me = thread_euid();
        let seen = as_caller(&caller, || {
            let before = thread_euid();
            let daemon = as_daemon(|| Ok(thread_euid()))?;
            Ok((before, daemon, thread_euid()))
        })
        .unwrap();
        if daemon_is_root() {
            assert_eq!(
                seen,
                (54321, 0, 54321),
                "as the caller, the daemon, the caller"
            );
        } else {
            assert_eq!(seen, (me, me, me), "a non-root daemon switches nothing");
        }
        assert_eq!(thread_euid(), me);
        assert_eq!(
            as_daemon(|| Ok(thread_euid())).unwrap(),
            me,
            "outside as_caller"
        );
    }

    #[test]
    fn capability_sets_split_into_halves_and_back() {
        let sets = thread_caps().expect("capget of this thread");
        assert_eq!(
            sets.effective & !sets.permitted,
            0,
            "effective within permitted"
        );
        assert_eq!(join(0xffff_ffff, 1), 0x1_ffff_ffff);
    }
}
