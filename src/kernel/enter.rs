//! A worker thread enters another IPC namespace for one request, and always comes back: the
//! ground of `ns/` (issue 23), not yet used by the mount. The same for a UTS namespace, for
//! the time of one `uname` (see `kernel::hostname`).
//!
//! `setns(fd, CLONE_NEWIPC)` moves the calling thread alone (every other thread stays where it
//! is), after which its System V calls (`shmget`, `shmctl`, `shmat`, `IPC_RMID`) and the
//! `/proc/sysvipc/shm` and `/proc/sys/kernel/shm*` it opens act in the joined namespace. Coming
//! back is `setns` on a descriptor of the thread's home namespace, opened from
//! `/proc/thread-self/ns/ipc` the first time the thread enters and kept for its life: it pins
//! only the daemon's own namespace. A round trip costs about 1.5 µs. A UTS namespace is
//! visited the same way, with a home of its own (`/proc/thread-self/ns/uts`) and a state of
//! its own: a thread entered into an IPC namespace may visit a UTS namespace and come back
//! from it without leaving the IPC namespace, and the other way round.
//!
//! Nothing of the other namespace is kept (issue 23, "Nothing pinned"): the target is named by
//! a [`Pidfd`], which pins no namespace; its namespace's descriptor is got from the pidfd
//! (`PIDFD_GET_IPC_NAMESPACE`, without the race of a reused pid) for one [`enter`] and closed
//! before `enter` returns. Its `NS_GET_ID`, a 64-bit id the kernel never reuses, must be the
//! one the caller expects, so a namespace that ended and whose inode number went to a new
//! one is never entered for it (`ESTALE`). What the work inside makes must not outlive it
//! either: an attachment, or an open `/proc/sysvipc/shm` of that namespace, pins it.
//!
//! A namespace that has no process left, kept alive by an nsfs bind mount (`unshare
//! --ipc=FILE`, `ip netns`-style tools), is named instead by the mount point and a process of
//! the mount namespace that has the mount (see `ipc_namespaces::pinned`): [`enter_pinned`]
//! opens the mount point inside that process's root (`kernel::proc_root`), checks that it is
//! nsfs, of an IPC namespace, with the expected id, enters and closes it.
//!
//! Credentials: `setns` needs CAP_SYS_ADMIN in the thread's effective set, both to enter and to
//! come back. Enter with the daemon's credentials and act as the caller inside:
//! `in_namespace(target, id, || creds::as_caller(caller, || …))`, never the other way round
//! (inside [`crate::kernel::creds::as_caller`] an ordinary caller's `setns` is refused, and a
//! guard dropped there could not come back). Which namespaces a caller may see is decided
//! apart, with the caller's credentials, before entering.
//!
//! One level only: a thread that is entered is refused another [`enter`] (`EBUSY`) until it
//! has come back, so that no inner return home leaves an outer request running at home while
//! it believes it is elsewhere. The guard, [`Entered`], is neither `Send` nor `Sync`: it can
//! only bring back the thread that entered.
//!
//! If coming back fails (it cannot with the daemon's CAP_SYS_ADMIN and a descriptor of a
//! namespace it is a member of), the process aborts after an error log line: a worker left in
//! another namespace would answer every later request with that namespace's objects, and
//! might remove or change them; a crashed mount is the lesser harm.
//!
//! Side effect worth knowing: joining an IPC namespace detaches the thread from its System V
//! semaphores' undo list (`exit_sem`), which shmfs does not use.

use std::cell::{Cell, RefCell};
use std::ffi::CString;
use std::fs::File;
use std::io;
use std::marker::PhantomData;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::kernel::namespace::{self, IpcNs};
use crate::kernel::pidfd::Pidfd;
use crate::kernel::proc_root;

/// `PIDFD_GET_IPC_NAMESPACE` of linux/pidfd.h (Linux 6.11): `_IO(PIDFS_IOCTL_MAGIC, 2)`, with
/// `PIDFS_IOCTL_MAGIC` 0xFF. (5 is `PIDFD_GET_PID_NAMESPACE`.)
pub const PIDFD_GET_IPC_NAMESPACE: u64 = (0xFF << 8) | 2;
/// `PIDFD_GET_UTS_NAMESPACE` of linux/pidfd.h (Linux 6.11): `_IO(PIDFS_IOCTL_MAGIC, 10)`.
pub const PIDFD_GET_UTS_NAMESPACE: u64 = (0xFF << 8) | 10;
/// `NS_GET_NSTYPE` of linux/nsfs.h: `_IO(0xb7, 0x3)`, the `CLONE_NEW*` type of a namespace.
pub const NS_GET_NSTYPE: u64 = (0xb7 << 8) | 0x3;
/// `NSFS_MAGIC` of linux/magic.h: what `fstatfs` of a namespace's file says.
const NSFS_MAGIC: i64 = 0x6e73_6673;

/// The kinds of namespace a thread visits here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Ipc,
    Uts,
}

impl Kind {
    /// Its index in the thread's [`HOME`] and [`ENTERED`].
    const fn index(self) -> usize {
        match self {
            Kind::Ipc => 0,
            Kind::Uts => 1,
        }
    }

    /// Its `CLONE_NEW*` flag: what `setns` is given (and the seccomp filter admits).
    const fn flag(self) -> libc::c_int {
        match self {
            Kind::Ipc => libc::CLONE_NEWIPC,
            Kind::Uts => libc::CLONE_NEWUTS,
        }
    }

    /// Its name in `/proc/PID/ns/`.
    const fn name(self) -> &'static str {
        match self {
            Kind::Ipc => "ipc",
            Kind::Uts => "uts",
        }
    }

    /// The pidfd's `ioctl` that gives a descriptor of a process's namespace of this kind.
    const fn pidfd_ioctl(self) -> u64 {
        match self {
            Kind::Ipc => PIDFD_GET_IPC_NAMESPACE,
            Kind::Uts => PIDFD_GET_UTS_NAMESPACE,
        }
    }
}

thread_local! {
    /// The thread's home namespaces (by [`Kind::index`]), each opened at its first visit of
    /// that kind (when the thread is at home in it).
    static HOME: RefCell<[Option<File>; 2]> = const { RefCell::new([None, None]) };
    /// Whether the thread is in another namespace of each kind now, between entering and the
    /// guard's drop.
    static ENTERED: Cell<[bool; 2]> = const { Cell::new([false, false]) };
}

fn is_in(kind: Kind) -> bool {
    ENTERED.get()[kind.index()]
}

fn set_in(kind: Kind, entered: bool) {
    let mut now = ENTERED.get();
    now[kind.index()] = entered;
    ENTERED.set(now);
}

/// The calling thread is in another IPC namespace for as long as this is held; dropping it
/// brings the thread home (or aborts the process, see the module's comment).
#[derive(Debug)]
#[must_use = "the thread comes home as soon as the guard is dropped"]
pub struct Entered {
    _visit: Visit,
}

/// The calling thread is in another namespace of one kind; dropping it brings the thread home
/// in that kind, or aborts the process. The one copy of coming back.
#[derive(Debug)]
struct Visit {
    kind: Kind,
    /// Neither `Send` nor `Sync`: only the thread that entered may come back.
    _this_thread: PhantomData<*const ()>,
}

/// The IPC namespace of `target` now, and its 64-bit id (`NS_GET_ID`): what a later [`enter`]
/// expects. Nothing is kept open. `ESRCH` if the process has exited, `EACCES` if the daemon may
/// not look at it (ptrace read access), `ENOTTY` on a kernel without `NS_GET_ID`.
pub fn namespace_of(target: &Pidfd) -> io::Result<(IpcNs, u64)> {
    let file = open_namespace(target, Kind::Ipc)?;
    Ok((IpcNs::of_file(&file)?, namespace::id_of(&file)?))
}

/// Moves the calling thread into the IPC namespace of `target`, if its id is `expect_id`
/// (else `ESTALE`: the namespace the caller meant has ended). Call it with the daemon's
/// credentials, outside `as_caller` (see the module's comment). `EBUSY` if the thread is
/// already entered; `ESRCH` if the process has exited; `EPERM` without CAP_SYS_ADMIN. On every
/// error the thread is where it was, and nothing is kept.
pub fn enter(target: &Pidfd, expect_id: u64) -> io::Result<Entered> {
    if is_in(Kind::Ipc) {
        return Err(io::Error::from_raw_os_error(libc::EBUSY));
    }
    let ns = open_namespace(target, Kind::Ipc)?;
    enter_file(ns, expect_id)
}

/// Runs `f` in the IPC namespace of `target` (see [`enter`]), and brings the thread home
/// afterwards on every path: an error, and a panic unwinding out of `f` (the guard is dropped
/// while unwinding). What `f` returns must hold nothing of the namespace (no attachment).
pub fn in_namespace<T>(
    target: &Pidfd,
    expect_id: u64,
    f: impl FnOnce() -> io::Result<T>,
) -> io::Result<T> {
    let _entered = enter(target, expect_id)?;
    f()
}

/// The IPC namespace an nsfs bind mount at `mount_point` keeps alive, and its id: what a
/// later [`enter_pinned`] expects. `mount_point` is as the mount namespace of `holder` sees it
/// (its `/proc/PID/mountinfo`), and is opened inside `holder`'s root (see
/// `kernel::proc_root`); nothing is kept open. `ESRCH` if `holder` has exited, `ESTALE` if
/// what is there now is not an IPC namespace (the bind mount went, or something else was
/// mounted over it), `ENOENT` if nothing is. Call with the daemon's credentials (following
/// `/proc/PID/root` takes ptrace read access to `holder`).
pub fn pinned_namespace(holder: &Pidfd, mount_point: &Path) -> io::Result<(IpcNs, u64)> {
    let file = open_pinned(holder, mount_point)?;
    Ok((IpcNs::of_file(&file)?, namespace::id_of(&file)?))
}

/// Moves the calling thread into the IPC namespace an nsfs bind mount at `mount_point` keeps
/// alive (see [`pinned_namespace`]), if its id is `expect_id` (else `ESTALE`). As [`enter`]
/// otherwise: the same guard, the same errors, nothing kept.
pub fn enter_pinned(holder: &Pidfd, mount_point: &Path, expect_id: u64) -> io::Result<Entered> {
    if is_in(Kind::Ipc) {
        return Err(io::Error::from_raw_os_error(libc::EBUSY));
    }
    let ns = open_pinned(holder, mount_point)?;
    enter_file(ns, expect_id)
}

/// Runs `f` in the IPC namespace an nsfs bind mount keeps alive (see [`enter_pinned`]), and
/// brings the thread home afterwards on every path, as [`in_namespace`] does.
pub fn in_pinned_namespace<T>(
    holder: &Pidfd,
    mount_point: &Path,
    expect_id: u64,
    f: impl FnOnce() -> io::Result<T>,
) -> io::Result<T> {
    let _entered = enter_pinned(holder, mount_point, expect_id)?;
    f()
}

/// Runs `f` in the UTS namespace of `target` (hostname and domain name: what `uname` tells),
/// and brings the thread back to its own UTS namespace afterwards on every path (or aborts,
/// as for IPC). Independent of [`enter`]: a thread entered into an IPC namespace stays in it.
/// `EBUSY` if the thread is in another UTS namespace already; `ESRCH` if the process has
/// exited; `EPERM` without CAP_SYS_ADMIN. Call with the daemon's credentials.
pub fn in_uts_namespace<T>(target: &Pidfd, f: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
    if is_in(Kind::Uts) {
        return Err(io::Error::from_raw_os_error(libc::EBUSY));
    }
    let ns = open_namespace(target, Kind::Uts)?;
    let _visit = visit(Kind::Uts, ns)?;
    f()
}

/// Whether the calling thread is in another IPC namespace now (inside [`in_namespace`]).
pub fn is_entered() -> bool {
    is_in(Kind::Ipc)
}

/// Enters the IPC namespace `ns` names if its id is `expect_id`, closing `ns`.
fn enter_file(ns: File, expect_id: u64) -> io::Result<Entered> {
    if namespace::id_of(&ns)? != expect_id {
        return Err(io::Error::from_raw_os_error(libc::ESTALE));
    }
    Ok(Entered {
        _visit: visit(Kind::Ipc, ns)?,
    })
}

/// Moves the calling thread into the namespace `ns` names, of kind `kind`, and closes `ns`.
/// `EBUSY` if the thread is elsewhere in that kind already.
fn visit(kind: Kind, ns: File) -> io::Result<Visit> {
    if is_in(kind) {
        return Err(io::Error::from_raw_os_error(libc::EBUSY));
    }
    open_home(kind)?;
    setns(&ns, kind)?;
    drop(ns);
    set_in(kind, true);
    Ok(Visit {
        kind,
        _this_thread: PhantomData,
    })
}

impl Drop for Visit {
    fn drop(&mut self) {
        let kind = self.kind;
        let back = HOME
            .try_with(|home| match &home.borrow()[kind.index()] {
                Some(home) => setns(home, kind),
                None => Err(io::Error::other("no home namespace")),
            })
            .unwrap_or_else(|_| Err(io::Error::other("thread-local home gone")));
        if let Err(e) = back {
            log::error!(
                "a worker cannot return to its own {} namespace: {e}; aborting rather than \
                 answering for another namespace",
                kind.name()
            );
            std::process::abort();
        }
        set_in(kind, false);
    }
}

/// Opens the thread's home namespace of `kind` if it has not yet (the thread is at home in
/// that kind: not entered).
fn open_home(kind: Kind) -> io::Result<()> {
    HOME.with_borrow_mut(|home| {
        let home = &mut home[kind.index()];
        if home.is_none() {
            *home = Some(File::open(format!("/proc/thread-self/ns/{}", kind.name()))?);
        }
        Ok(())
    })
}

/// A descriptor of the namespace of `target` of `kind`, from the pidfd; where the kernel lacks
/// `PIDFD_GET_*_NAMESPACE` (before 6.11), from `/proc/PID/ns/KIND` if the process still runs
/// after it was opened (so the pid named it, not a later process).
fn open_namespace(target: &Pidfd, kind: Kind) -> io::Result<File> {
    // SAFETY: an ioctl on a valid descriptor, whose argument must be 0 (the kernel refuses
    // any other with EINVAL: leaving it out would pass a stray register); it returns a new
    // descriptor (close-on-exec) or -1.
    let fd = unsafe {
        libc::ioctl(
            target.as_fd().as_raw_fd(),
            kind.pidfd_ioctl() as _,
            0 as libc::c_ulong,
        )
    };
    if fd >= 0 {
        // SAFETY: fd was just made by the kernel for this call and is owned here.
        return Ok(File::from(unsafe { OwnedFd::from_raw_fd(fd) }));
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() != Some(libc::ENOTTY) {
        return Err(e);
    }
    open_namespace_in_proc(target, kind)
}

/// [`open_namespace`] through `/proc/PID/ns/KIND`, for kernels without the pidfd's `ioctl`.
fn open_namespace_in_proc(target: &Pidfd, kind: Kind) -> io::Result<File> {
    let file = File::open(format!("/proc/{}/ns/{}", target.pid(), kind.name()))?;
    if !target.is_running() {
        return Err(io::Error::from_raw_os_error(libc::ESRCH));
    }
    Ok(file)
}

/// The IPC namespace's file mounted at `mount_point` in the root of `holder` (see
/// [`pinned_namespace`]). It is first opened `O_PATH` (which opens nothing: no device, no
/// FIFO is ever opened for reading on a path a mount table named), checked to be nsfs, then
/// opened for `setns` through the descriptor, and checked to be of an IPC namespace.
fn open_pinned(holder: &Pidfd, mount_point: &Path) -> io::Result<File> {
    let stale = || io::Error::from_raw_os_error(libc::ESTALE);
    let path = CString::new(mount_point.as_os_str().as_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let root = proc_root::open_root(holder)?;
    let handle = proc_root::open_in_root(root.as_fd(), &path, libc::O_PATH | libc::O_NOFOLLOW)?;
    drop(root);
    // SAFETY: statfs is plain old data.
    let mut fs: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid descriptor (O_PATH is enough for fstatfs) and out-pointer.
    if unsafe { libc::fstatfs(handle.as_raw_fd(), &mut fs) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if fs.f_type as i64 != NSFS_MAGIC {
        return Err(stale());
    }
    // An O_PATH descriptor serves neither ioctl nor setns: open the file it holds.
    let file = File::open(format!("/proc/thread-self/fd/{}", handle.as_raw_fd()))?;
    drop(handle);
    // SAFETY: an ioctl without argument on a valid descriptor; it returns the type or -1.
    let kind = unsafe { libc::ioctl(file.as_raw_fd(), NS_GET_NSTYPE as _) };
    if kind < 0 {
        return Err(io::Error::last_os_error());
    }
    if kind != libc::CLONE_NEWIPC {
        return Err(stale());
    }
    Ok(file)
}

/// Moves the calling thread into the namespace `ns` names, which must be of `kind`.
fn setns(ns: &File, kind: Kind) -> io::Result<()> {
    // SAFETY: plain system call on a valid descriptor; it affects the calling thread only.
    if unsafe { libc::setns(ns.as_raw_fd(), kind.flag()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Child, Command};

    fn is_root() -> bool {
        // SAFETY: plain system call without arguments.
        unsafe { libc::geteuid() == 0 }
    }

    fn me() -> Pidfd {
        Pidfd::open(std::process::id()).unwrap()
    }

    /// The calling thread's namespace, from `/proc/thread-self`.
    fn here() -> IpcNs {
        IpcNs::of_thread().unwrap().0
    }

    /// A process in an IPC namespace of its own (`unshare --ipc sleep 60`), killed on drop.
    struct Other(Child);

    impl Other {
        fn start() -> Option<Other> {
            let child = Command::new("unshare")
                .args(["--ipc", "sleep", "60"])
                .spawn()
                .map_err(|e| eprintln!("skipped: unshare: {e}"))
                .ok()?;
            let other = Other(child);
            let ours = IpcNs::of_process(std::process::id()).unwrap();
            // Until unshare has made the namespace and exec'd sleep.
            for _ in 0..500 {
                if IpcNs::of_process(other.0.id()).is_ok_and(|ns| ns != ours) {
                    return Some(other);
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            panic!("unshare --ipc made no namespace within 5 s");
        }
    }

    impl Drop for Other {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    #[test]
    fn the_namespace_of_a_pidfd_is_its_processs_and_nothing_stays_open() {
        let (ours, id) = IpcNs::of_thread().unwrap();
        let Some(id) = id else {
            eprintln!("skipped: this kernel does not tell NS_GET_ID");
            return;
        };
        assert_eq!(namespace_of(&me()).unwrap(), (ours, id));
        let file = open_namespace(&me(), Kind::Ipc).unwrap();
        // SAFETY: plain fcntl on a valid descriptor.
        let flags = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETFD) };
        assert_eq!(flags & libc::FD_CLOEXEC, libc::FD_CLOEXEC, "close-on-exec");
    }

    #[test]
    fn without_the_pidfds_ioctl_proc_names_the_same_namespace_unless_the_pid_was_reused() {
        let by_ioctl = IpcNs::of_file(&open_namespace(&me(), Kind::Ipc).unwrap()).unwrap();
        let by_proc = IpcNs::of_file(&open_namespace_in_proc(&me(), Kind::Ipc).unwrap()).unwrap();
        assert_eq!(by_ioctl, by_proc);
        // A pidfd of a process that exited, whose pid now names another (this one).
        let mut child = Command::new("true").spawn().unwrap();
        let held = Pidfd::open(child.id()).unwrap();
        child.wait().unwrap();
        let reused = held.renumbered(std::process::id());
        let e = open_namespace_in_proc(&reused, Kind::Ipc).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ESRCH), "{e}");
    }

    #[test]
    fn a_wrong_id_is_estale_and_the_thread_stays_home() {
        let Ok((ns, id)) = namespace_of(&me()) else {
            eprintln!("skipped: this kernel does not tell NS_GET_ID");
            return;
        };
        let e = enter(&me(), id ^ 1).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ESTALE), "{e}");
        assert!(!is_entered());
        assert_eq!(here(), ns);
    }

    #[test]
    fn a_process_that_exited_has_no_namespace_to_enter() {
        let mut child = Command::new("true").spawn().unwrap();
        let held = Pidfd::open(child.id()).unwrap();
        child.wait().unwrap();
        let e = enter(&held, 1).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ESRCH), "{e}");
        assert!(!is_entered());
    }

    #[test]
    fn entering_needs_cap_sys_admin() {
        let Ok((ns, id)) = namespace_of(&me()) else {
            eprintln!("skipped: this kernel does not tell NS_GET_ID");
            return;
        };
        if is_root() {
            eprintln!("skipped: root may enter; the root tests below enter");
            return;
        }
        let e = enter(&me(), id).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EPERM), "{e}");
        assert!(!is_entered());
        assert_eq!(here(), ns);
    }

    #[test]
    fn a_thread_enters_another_namespace_once_and_comes_back() {
        if !is_root() {
            eprintln!("skipped: setns needs CAP_SYS_ADMIN (run as root)");
            return;
        }
        let Some(other) = Other::start() else { return };
        let target = Pidfd::open(other.0.id()).unwrap();
        let (theirs, id) = namespace_of(&target).unwrap();
        let home = here();
        assert_ne!(theirs, home);
        std::thread::spawn(move || {
            let entered = enter(&target, id).unwrap();
            assert!(is_entered());
            assert_eq!(here(), theirs);
            assert_eq!(
                IpcNs::of_process(std::process::id()).unwrap(),
                home,
                "the other threads stay home"
            );
            let nested = enter(&target, id).unwrap_err();
            assert_eq!(nested.raw_os_error(), Some(libc::EBUSY), "{nested}");
            assert_eq!(here(), theirs, "a refused enter changes nothing");
            drop(entered);
            assert!(!is_entered());
            assert_eq!(here(), home);
            // Again, through in_namespace: an error inside comes back too.
            let e = in_namespace(&target, id, || -> io::Result<()> {
                assert_eq!(here(), theirs);
                Err(io::Error::from_raw_os_error(libc::EIO))
            })
            .unwrap_err();
            assert_eq!(e.raw_os_error(), Some(libc::EIO));
            assert_eq!(here(), home);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_panic_inside_comes_back_home() {
        if !is_root() {
            eprintln!("skipped: setns needs CAP_SYS_ADMIN (run as root)");
            return;
        }
        let Some(other) = Other::start() else { return };
        let target = Pidfd::open(other.0.id()).unwrap();
        let (theirs, id) = namespace_of(&target).unwrap();
        let home = here();
        let caught = std::panic::catch_unwind(|| {
            in_namespace(&target, id, || -> io::Result<()> {
                assert_eq!(here(), theirs);
                panic!("inside");
            })
        });
        assert!(caught.is_err());
        assert!(!is_entered());
        assert_eq!(here(), home);
        // And may enter again.
        assert_eq!(in_namespace(&target, id, || Ok(here())).unwrap(), theirs);
    }

    /// `Entered` is not `Send`: a guard dropped on another thread would move that thread.
    /// (Ambiguous, so not compiling, if `Entered` were `Send`: the trick of
    /// `static_assertions::assert_not_impl_any!`.)
    #[test]
    fn the_guard_stays_on_its_thread() {
        trait AmbiguousIfSend<A> {
            fn check() {}
        }
        impl<T: ?Sized> AmbiguousIfSend<()> for T {}
        #[allow(dead_code)]
        struct IsSend;
        impl<T: ?Sized + Send> AmbiguousIfSend<IsSend> for T {}
        <Entered as AmbiguousIfSend<_>>::check();
    }
}
