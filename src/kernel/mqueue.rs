//! POSIX message queues of an IPC namespace, reached through an mqueue filesystem of it.
//!
//! The queues of a namespace are the files of its mqueue filesystem, which is not mounted by
//! default. [`MqueueDir::open`] takes one that is mounted; [`MqueueDir::of_thread_namespace`]
//! makes a detached mount of the calling thread's namespace with the new mount API (`fsopen`,
//! `fsconfig`, `fsmount`): a descriptor that no path leads to, no mount point, nothing to
//! unmount.
//!
//! Looking is not touching: a queue's attributes come from `mq_getattr` on a descriptor from
//! `open(2)` of its file, and its mode, owner and times from `fstat`; neither moves anything
//! the kernel records. Reading the file (its `QSIZE:…` line) would move its atime and ctime,
//! so it is never read. Messages cannot be read without being received: only attributes are
//! shown.

use std::ffi::{CStr, CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// `f_type` of an mqueue filesystem (`MQUEUE_MAGIC`).
pub const MQUEUE_MAGIC: i64 = 0x1980_0202;

/// The filesystem type [`MqueueDir::of_thread_namespace`] passes to `fsopen`: one static, so
/// that its address is always the same and the seccomp filter can admit `fsopen` of this very
/// string and of no other (see [`fsopen_name_address`]).
static MQUEUE_FS_NAME: &CStr = c"mqueue";

/// `fsopen` flag: the filesystem context's descriptor is close-on-exec (linux/mount.h).
pub const FSOPEN_CLOEXEC: u32 = 0x1;
/// `fsconfig` command: create (or, for mqueue, find) the superblock (linux/mount.h).
pub const FSCONFIG_CMD_CREATE: u32 = 6;
/// `fsmount` flag: the mount's descriptor is close-on-exec (linux/mount.h).
pub const FSMOUNT_CLOEXEC: u32 = 0x1;
/// The attributes of the detached mount (`MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV |
/// MOUNT_ATTR_NOEXEC`), as `mount -t mqueue -o nosuid,nodev,noexec` gives.
pub const MQUEUE_MOUNT_ATTRS: u64 = 0x2 | 0x4 | 0x8;

/// The address of the `"mqueue"` string that [`MqueueDir::of_thread_namespace`] hands to
/// `fsopen`: the only first argument the daemon's seccomp filter admits for `fsopen`, so that
/// the filter, which cannot read strings, still allows a context of no other filesystem.
pub fn fsopen_name_address() -> u64 {
    MQUEUE_FS_NAME.as_ptr() as u64
}

/// One queue: its name in the filesystem (without the leading `/` of `mq_open`), what `fstat`
/// tells of its file, and what `mq_getattr` tells of the queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MqInfo {
    pub name: OsString,
    /// Its inode number: another queue made later under the same name has another.
    pub ino: u64,
    /// Permission bits (0o7777).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Seconds since the epoch. atime moves when a message is received (or the file read),
    /// mtime and ctime when one is sent; ctime also on a change of mode or owner.
    pub atime: i64,
    pub mtime: i64,
    pub ctime: i64,
    /// Most messages the queue holds.
    pub maxmsg: i64,
    /// Largest message, in bytes.
    pub msgsize: i64,
    /// Messages in the queue now.
    pub curmsgs: i64,
}

/// The root directory of an mqueue filesystem, kept open.
///
/// Keeping it keeps that filesystem and so its IPC namespace alive (the superblock holds the
/// namespace): a namespace whose last process has exited keeps its queues while this is held.
/// Drop it when done with a namespace that is not the daemon's own.
#[derive(Debug)]
pub struct MqueueDir {
    dir: OwnedFd,
}

fn errno(code: i32) -> io::Error {
    io::Error::from_raw_os_error(code)
}

fn cstring(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| errno(libc::EINVAL))
}

/// A name that can be a queue: one path component.
fn valid_name(name: &OsStr) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty() && bytes != b"." && bytes != b".." && !bytes.contains(&b'/')
}

fn fstat(fd: i32) -> io::Result<libc::stat> {
    // SAFETY: stat is plain old data.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid fd and out-pointer.
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st)
}

/// Opens a directory for reading (following symlinks, as a mount would), checked to be the
/// root of an mqueue filesystem: `ENOTDIR`/`ENOENT` as open gives them, `EINVAL` for another
/// filesystem.
fn open_mqueue_root(path: &CString) -> io::Result<OwnedFd> {
    // SAFETY: valid C string.
    let fd = unsafe {
        libc::open(
            path.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just opened and is owned here.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    check_mqueue(&fd)?;
    Ok(fd)
}

/// Checks that `fd` is (the root of) an mqueue filesystem: `EINVAL` for another one.
fn check_mqueue(fd: &OwnedFd) -> io::Result<()> {
    // SAFETY: statfs is plain old data.
    let mut sf: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: valid fd (O_PATH is enough for fstatfs) and out-pointer.
    if unsafe { libc::fstatfs(fd.as_raw_fd(), &mut sf) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if sf.f_type as i64 != MQUEUE_MAGIC {
        return Err(errno(libc::EINVAL));
    }
    Ok(())
}

/// A descriptor that a system call returned (or its error).
fn owned(rc: libc::c_long) -> io::Result<OwnedFd> {
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = i32::try_from(rc).map_err(|_| errno(libc::EBADF))?;
    // SAFETY: the kernel just returned this descriptor, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

impl MqueueDir {
    /// The mqueue filesystem mounted at `path` (whichever IPC namespace it was mounted
    /// from), kept open; `EINVAL` if `path` is not the root of one.
    pub fn open(path: &Path) -> io::Result<MqueueDir> {
        Ok(MqueueDir {
            dir: open_mqueue_root(&cstring(path.as_os_str().as_bytes())?)?,
        })
    }

    /// The mqueue filesystem of the calling thread's IPC namespace (a thread that entered
    /// another namespace gets that one's), reached by a descriptor alone: a detached mount
    /// made with the new mount API, never attached anywhere.
    ///
    /// `fsopen("mqueue")` makes a filesystem context that takes the calling thread's IPC
    /// namespace (`mqueue_init_fs_context` in `ipc/mqueue.c`), `fsconfig(FSCONFIG_CMD_CREATE)`
    /// finds that namespace's superblock (`mqueue_get_tree` keys it on the namespace: the one
    /// the kernel made with the namespace, with all its queues, never a new empty one), and
    /// `fsmount` gives a detached mount of it (`nosuid,nodev,noexec`) as a descriptor. No
    /// directory is made, no mount table of any mount namespace ever shows it, and nothing
    /// lingers if the process is killed: closing the descriptor (dropping this) frees the
    /// mount. The result is checked to be mqueue (`MQUEUE_MAGIC`).
    ///
    /// It needs `CAP_SYS_ADMIN` over the calling thread's mount namespace (`fsopen`,
    /// `fsmount`) and over the IPC namespace's user namespace (the superblock's), Linux ≥ 5.2,
    /// and `fsopen`, `fsconfig` and `fsmount` allowed by any seccomp filter (the daemon's
    /// admits exactly these calls; `mount` and `move_mount` stay refused).
    pub fn of_thread_namespace() -> io::Result<MqueueDir> {
        // SAFETY: a NUL-terminated static string and integer flags.
        let context = owned(unsafe {
            libc::syscall(
                libc::SYS_fsopen,
                MQUEUE_FS_NAME.as_ptr(),
                FSOPEN_CLOEXEC as libc::c_uint,
            )
        })?;
        // SAFETY: a filesystem context's descriptor; CMD_CREATE takes no key, value or aux.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                context.as_raw_fd(),
                FSCONFIG_CMD_CREATE as libc::c_uint,
                std::ptr::null::<libc::c_char>(),
                std::ptr::null::<libc::c_void>(),
                0 as libc::c_int,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a created filesystem context's descriptor and integer flags.
        let mount = owned(unsafe {
            libc::syscall(
                libc::SYS_fsmount,
                context.as_raw_fd(),
                FSMOUNT_CLOEXEC as libc::c_uint,
                MQUEUE_MOUNT_ATTRS as libc::c_uint,
            )
        })?;
        check_mqueue(&mount)?;
        Ok(MqueueDir { dir: mount })
    }

    /// Every queue, with its attributes. A queue removed meanwhile, or that the calling
    /// thread may not open for reading, is left out.
    pub fn list(&self) -> io::Result<Vec<MqInfo>> {
        let mut queues = Vec::new();
        for name in self.names()? {
            match self.get(&name) {
                Ok(info) => queues.push(info),
                // Removed meanwhile, or not the calling thread's to open.
                Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::EACCES)) => {}
                Err(e) => log::warn!("POSIX message queue {name:?} left out: {e}"),
            }
        }
        Ok(queues)
    }

    /// The names of the queues, from the directory alone.
    pub fn names(&self) -> io::Result<Vec<OsString>> {
        let path = format!("/proc/self/fd/{}", self.dir.as_raw_fd());
        let mut names = Vec::new();
        for entry in std::fs::read_dir(path)? {
            let Ok(entry) = entry else { continue };
            names.push(entry.file_name());
        }
        Ok(names)
    }

    /// The queue `name` (without a leading `/`), opened for reading with the calling thread's
    /// credentials (`EACCES` without read permission), or `ENOENT`.
    ///
    /// The descriptor is closed before returning. Closing a queue's descriptor removes a
    /// notification (`mq_notify`) only if this very process registered it.
    pub fn get(&self, name: &OsStr) -> io::Result<MqInfo> {
        if !valid_name(name) {
            return Err(errno(libc::ENOENT));
        }
        let c = cstring(name.as_bytes())?;
        // SAFETY: valid dir fd and C string.
        let fd = unsafe {
            libc::openat(
                self.dir.as_raw_fd(),
                c.as_ptr(),
                libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd was just opened and is owned here.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let st = fstat(fd.as_raw_fd())?;
        if st.st_mode & libc::S_IFMT != libc::S_IFREG {
            return Err(errno(libc::ENOENT));
        }
        // SAFETY: mq_attr is plain old data.
        let mut attr: libc::mq_attr = unsafe { std::mem::zeroed() };
        // SAFETY: fd is a descriptor of a queue (mq_getattr only reads it) and a valid
        // out-pointer.
        if unsafe { libc::mq_getattr(fd.as_raw_fd(), &mut attr) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(MqInfo {
            name: name.to_owned(),
            ino: st.st_ino,
            mode: st.st_mode & 0o7777,
            uid: st.st_uid,
            gid: st.st_gid,
            atime: st.st_atime,
            mtime: st.st_mtime,
            ctime: st.st_ctime,
            maxmsg: attr.mq_maxmsg,
            msgsize: attr.mq_msgsize,
            curmsgs: attr.mq_curmsgs,
        })
    }

    /// Changes the mode and owner of queue `name` (`None` keeps one), with the calling
    /// thread's credentials: the kernel's rules for chmod and chown of a file (its owner or
    /// CAP_FOWNER; chown needs CAP_CHOWN, or a group of the caller's own).
    pub fn set_perm(
        &self,
        name: &OsStr,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
    ) -> io::Result<()> {
        if !valid_name(name) {
            return Err(errno(libc::ENOENT));
        }
        let c = cstring(name.as_bytes())?;
        if uid.is_some() || gid.is_some() {
            let keep = u32::MAX;
            // SAFETY: valid dir fd and C string; -1 keeps an id.
            let rc = unsafe {
                libc::fchownat(
                    self.dir.as_raw_fd(),
                    c.as_ptr(),
                    uid.unwrap_or(keep),
                    gid.unwrap_or(keep),
                    libc::AT_SYMLINK_NOFOLLOW,
                )
            };
            if rc != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        if let Some(mode) = mode {
            // An mqueue filesystem holds no symlinks, so the name is the queue itself.
            // SAFETY: valid dir fd and C string.
            if unsafe { libc::fchmodat(self.dir.as_raw_fd(), c.as_ptr(), mode & 0o7777, 0) } != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(())
    }

    /// Removes the queue `name` (as `mq_unlink`: `unlinkat` in the directory), with the
    /// calling thread's credentials (the kernel checks write permission on the directory,
    /// 01777 by default, and its sticky rule). Processes that have it open keep it until they
    /// close it.
    pub fn unlink(&self, name: &OsStr) -> io::Result<()> {
        if !valid_name(name) {
            return Err(errno(libc::ENOENT));
        }
        let c = cstring(name.as_bytes())?;
        // SAFETY: valid dir fd and C string.
        if unsafe { libc::unlinkat(self.dir.as_raw_fd(), c.as_ptr(), 0) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

/// The limits of POSIX message queues of the calling thread's IPC namespace
/// (`/proc/sys/fs/mqueue/*`, which show the reader's namespace).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MqLimits {
    /// Most queues (for users without CAP_SYS_RESOURCE).
    pub queues_max: u64,
    /// Most messages of a queue.
    pub msg_max: u64,
    /// Largest message.
    pub msgsize_max: u64,
}

/// The namespace's limits of POSIX message queues.
pub fn limits() -> io::Result<MqLimits> {
    let read = |name: &str| -> io::Result<u64> {
        let path = format!("/proc/sys/fs/mqueue/{name}");
        let text = std::fs::read_to_string(&path)?;
        text.trim()
            .parse()
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, format!("{path}: {text:?}")))
    };
    Ok(MqLimits {
        queues_max: read("queues_max")?,
        msg_max: read("msg_max")?,
        msgsize_max: read("msgsize_max")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn is_root() -> bool {
        // SAFETY: geteuid has no preconditions.
        unsafe { libc::geteuid() == 0 }
    }

    /// A queue made with `mq_open` under a unique name, unlinked when dropped.
    struct Queue {
        name: String,
        mqd: libc::mqd_t,
    }

    impl Queue {
        fn new(maxmsg: i64, msgsize: i64) -> Queue {
            static N: AtomicU32 = AtomicU32::new(0);
            let name = format!(
                "shmfs-unit-mq-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            );
            let c = CString::new(format!("/{name}")).unwrap();
            // SAFETY: mq_attr is plain old data.
            let mut attr: libc::mq_attr = unsafe { std::mem::zeroed() };
            attr.mq_maxmsg = maxmsg;
            attr.mq_msgsize = msgsize;
            // SAFETY: valid C string and attributes.
            let mqd = unsafe {
                libc::mq_open(
                    c.as_ptr(),
                    libc::O_CREAT | libc::O_EXCL | libc::O_RDWR,
                    0o640 as libc::mode_t,
                    &attr as *const libc::mq_attr,
                )
            };
            assert!(mqd >= 0, "mq_open: {}", io::Error::last_os_error());
            Queue { name, mqd }
        }

        fn send(&self, msg: &[u8]) {
            // SAFETY: valid queue descriptor and buffer.
            let rc = unsafe { libc::mq_send(self.mqd, msg.as_ptr().cast(), msg.len(), 0) };
            assert_eq!(rc, 0, "mq_send: {}", io::Error::last_os_error());
        }

        fn os_name(&self) -> &OsStr {
            OsStr::new(&self.name)
        }
    }

    impl Drop for Queue {
        fn drop(&mut self) {
            let c = CString::new(format!("/{}", self.name)).unwrap();
            // SAFETY: valid descriptor and C string.
            unsafe {
                libc::mq_close(self.mqd);
                libc::mq_unlink(c.as_ptr());
            }
        }
    }

    /// The times of the queue's file, to the nanosecond, by a stat through the dir.
    fn times(dir: &MqueueDir, name: &OsStr) -> [(i64, i64); 3] {
        let path = Path::new(&format!("/proc/self/fd/{}", dir.dir.as_raw_fd())).join(name);
        let m = std::fs::metadata(path).unwrap();
        [
            (m.atime(), m.atime_nsec()),
            (m.mtime(), m.mtime_nsec()),
            (m.ctime(), m.ctime_nsec()),
        ]
    }

    /// The lines of this process's mountinfo that are mounts of an mqueue filesystem.
    fn mqueue_mounts() -> Vec<String> {
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .filter(|l| {
                l.split(" - ")
                    .nth(1)
                    .is_some_and(|f| f.starts_with("mqueue "))
            })
            .map(str::to_string)
            .collect()
    }

    fn names_of(dir: &MqueueDir) -> Vec<OsString> {
        dir.list().unwrap().into_iter().map(|i| i.name).collect()
    }

    #[test]
    fn the_threads_namespace_shows_its_queues_through_a_descriptor_alone() {
        if !is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let mounts_before = mqueue_mounts();
        // Made before the mount: the namespace's existing superblock is what is shown.
        let early = Queue::new(4, 64);
        early.send(b"one");
        early.send(b"two");
        let dir = MqueueDir::of_thread_namespace().expect("of_thread_namespace");
        assert_eq!(mqueue_mounts(), mounts_before, "no mount table shows it");
        let late = Queue::new(2, 16);
        let listed = dir.list().unwrap();
        let info = listed
            .iter()
            .find(|i| i.name == early.os_name())
            .expect("queue made before listed");
        assert!(
            listed.iter().any(|i| i.name == late.os_name()),
            "made after"
        );
        assert_eq!((info.maxmsg, info.msgsize, info.curmsgs), (4, 64, 2));
        assert_eq!(info.mode, 0o640);
        // SAFETY: geteuid/getegid have no preconditions.
        let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
        assert_eq!((info.uid, info.gid), (uid, gid));
        assert_eq!(dir.get(early.os_name()).unwrap(), *info);
        // Closing the descriptor frees the detached mount, not the queues.
        drop(dir);
        let c = CString::new(format!("/{}", early.name)).unwrap();
        // SAFETY: valid C string.
        let mqd = unsafe { libc::mq_open(c.as_ptr(), libc::O_RDONLY) };
        assert!(mqd >= 0, "the queue outlives the descriptor");
        // SAFETY: a descriptor just opened.
        unsafe { libc::mq_close(mqd) };
        assert_eq!(mqueue_mounts(), mounts_before);
    }

    #[test]
    fn another_namespace_shows_its_own_queues_and_not_ours() {
        if !is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let ours = Queue::new(2, 16);
        let our_dir = MqueueDir::of_thread_namespace().unwrap();
        let our_name = ours.name.clone();
        // A thread in a new IPC namespace of its own (a thread's namespaces are its own):
        // its queue and its directory die with it, even if an assertion fails there.
        let (theirs, seen_there) = std::thread::spawn(move || {
            // SAFETY: unshare of the calling thread's IPC namespace only.
            let rc = unsafe { libc::unshare(libc::CLONE_NEWIPC) };
            assert_eq!(rc, 0, "unshare: {}", io::Error::last_os_error());
            let theirs = Queue::new(3, 32);
            let dir = MqueueDir::of_thread_namespace().unwrap();
            let seen = names_of(&dir);
            assert!(!seen.iter().any(|n| n == OsStr::new(&our_name)));
            (theirs.name.clone(), seen)
        })
        .join()
        .expect("the thread in the new namespace");
        assert_eq!(seen_there, [OsString::from(&theirs)], "only its own queue");
        let seen_here = names_of(&our_dir);
        assert!(seen_here.iter().any(|n| n == ours.os_name()));
        assert!(!seen_here.iter().any(|n| *n == *theirs), "{seen_here:?}");
    }

    #[test]
    fn looking_is_not_touching() {
        if !is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let dir = MqueueDir::of_thread_namespace().unwrap();
        let q = Queue::new(8, 128);
        q.send(b"a");
        q.send(b"b");
        let before = times(&dir, q.os_name());
        // The queue's times are kept in whole seconds: past the next one, so that a change
        // would show.
        std::thread::sleep(std::time::Duration::from_millis(1100));
        for _ in 0..3 {
            dir.list().unwrap();
            assert_eq!(dir.get(q.os_name()).unwrap().curmsgs, 2);
        }
        assert_eq!(times(&dir, q.os_name()), before);
        // The check can see a change: reading the file moves atime and ctime.
        let path = Path::new(&format!("/proc/self/fd/{}", dir.dir.as_raw_fd())).join(q.os_name());
        let text = std::fs::read_to_string(path).unwrap();
        assert!(text.starts_with("QSIZE:"), "{text}");
        let after = times(&dir, q.os_name());
        assert_ne!(after[0], before[0]);
        assert_ne!(after[2], before[2]);
        assert_eq!(dir.get(q.os_name()).unwrap().curmsgs, 2);
    }

    #[test]
    fn unlink_removes_the_queue() {
        if !is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let dir = MqueueDir::of_thread_namespace().unwrap();
        let q = Queue::new(2, 16);
        assert!(dir.get(q.os_name()).is_ok());
        dir.unlink(q.os_name()).unwrap();
        let enoent = Some(libc::ENOENT);
        assert_eq!(dir.get(q.os_name()).unwrap_err().raw_os_error(), enoent);
        assert!(!dir.names().unwrap().iter().any(|n| n == q.os_name()));
        assert_eq!(dir.unlink(q.os_name()).unwrap_err().raw_os_error(), enoent);
        let c = CString::new(format!("/{}", q.name)).unwrap();
        // SAFETY: valid C string.
        let rc = unsafe { libc::mq_open(c.as_ptr(), libc::O_RDONLY) };
        assert_eq!(rc, -1, "mq_open still finds the queue");
    }

    #[test]
    fn open_takes_only_an_mqueue_filesystem() {
        let e = MqueueDir::open(Path::new("/proc")).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EINVAL));
        if !is_root() {
            return;
        }
        // An mqueue mount reached by a path (on a fresh temporary directory): the same
        // queues as the thread's namespace has.
        let dir = tempfile::tempdir().unwrap();
        let c = CString::new(dir.path().as_os_str().as_bytes()).unwrap();
        // SAFETY: valid C strings.
        let rc = unsafe {
            libc::mount(
                c"mqueue".as_ptr(),
                c.as_ptr(),
                c"mqueue".as_ptr(),
                0,
                std::ptr::null(),
            )
        };
        assert_eq!(rc, 0, "mount: {}", io::Error::last_os_error());
        let opened = MqueueDir::open(dir.path());
        // SAFETY: valid C string.
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        let opened = opened.unwrap();
        let q = Queue::new(3, 32);
        assert_eq!(opened.get(q.os_name()).unwrap().maxmsg, 3);
        // Also valid for names with a slash or none.
        assert!(!valid_name(OsStr::new("a/b")));
        assert_eq!(
            opened.get(OsStr::new("")).unwrap_err().raw_os_error(),
            Some(libc::ENOENT)
        );
    }
}
