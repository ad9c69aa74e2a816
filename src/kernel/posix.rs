//! POSIX shared memory: the regular files of a tmpfs directory (`/dev/shm` by default).
//!
//! Nothing here follows a symlink or opens a non-regular file: every open starts with an
//! `O_PATH|O_NOFOLLOW` handle whose type and inode are checked before the file is reopened.
//!
//! The directory itself is either opened once and kept (the daemon's own `/dev/shm`, or one the
//! administrator named), or, for a process's view (`--pid`), found again for each operation
//! inside that process's root and closed after it: see [`ShmDir::in_root`].

use std::ffi::{CStr, CString, OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::kernel::creds;
use crate::kernel::pidfd::Pidfd;
use crate::kernel::proc_root;

/// What `fstat` tells of one object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Object {
    pub name: OsString,
    pub size: u64,
    /// Permission bits (0o7777).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub atime: i64,
    pub mtime: i64,
    pub ctime: i64,
    /// Bytes allocated (st_blocks × 512).
    pub allocated: u64,
    /// Inode number in the shm dir: tells an object from a later one of the same name.
    pub ino: u64,
}

impl Object {
    /// Its mode, owner, size and times.
    pub fn meta(&self) -> crate::kernel::object::Meta {
        crate::kernel::object::Meta {
            mode: self.mode,
            uid: self.uid,
            gid: self.gid,
            size: self.size,
            atime: self.atime,
            mtime: self.mtime,
            ctime: self.ctime,
        }
    }

    fn from_stat(name: &OsStr, st: &libc::stat) -> Object {
        Object {
            name: name.to_owned(),
            size: st.st_size as u64,
            mode: st.st_mode & 0o7777,
            uid: st.st_uid,
            gid: st.st_gid,
            atime: st.st_atime,
            mtime: st.st_mtime,
            ctime: st.st_ctime,
            allocated: st.st_blocks as u64 * 512,
            ino: st.st_ino,
        }
    }
}

impl Object {
    /// The object an open file refers to, named `name` (even after it was unlinked).
    pub fn of_file(name: &OsStr, file: &File) -> io::Result<Object> {
        Ok(Object::from_stat(name, &fstat(file.as_raw_fd())?))
    }
}

/// The directory that holds the objects. Every operation reaches it through [`ShmDir::dir`].
#[derive(Debug)]
pub struct ShmDir {
    /// Its path, as the log names it.
    path: PathBuf,
    place: Where,
}

/// Where the shm dir is, and whether a descriptor of it is kept.
#[derive(Debug)]
enum Where {
    /// Opened once at start and kept for the daemon's life: the daemon's own `/dev/shm`, or a
    /// directory the administrator named (`--shm-dir`).
    Kept(OwnedFd),
    /// `dev/shm` inside the root of a process (`--pid`), resolved for each operation and
    /// closed after it (see [`ShmDir::in_root`]).
    InRoot {
        process: Pidfd,
        /// Whether the log has said that the process is gone.
        gone_told: AtomicBool,
    },
    /// No directory: an IPC namespace that no process is in has no `/dev/shm` to show.
    Nowhere,
}

/// The shm dir for one operation: the kept descriptor, or one resolved for this operation
/// alone, closed when it is dropped.
enum Dir<'a> {
    Kept(BorrowedFd<'a>),
    Resolved(OwnedFd),
}

impl AsFd for Dir<'_> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Dir::Kept(fd) => *fd,
            Dir::Resolved(fd) => fd.as_fd(),
        }
    }
}

impl Dir<'_> {
    fn raw(&self) -> i32 {
        self.as_fd().as_raw_fd()
    }

    /// Its path through `/proc/self/fd`, for `read_dir`.
    fn path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", self.raw()))
    }
}

fn errno(code: i32) -> io::Error {
    io::Error::from_raw_os_error(code)
}

fn cstring(name: &OsStr) -> io::Result<CString> {
    CString::new(name.as_bytes()).map_err(|_| errno(libc::EINVAL))
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

fn is_regular(st: &libc::stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFREG
}

/// A name that can be an object: one path component.
fn valid_name(name: &OsStr) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty() && bytes != b"." && bytes != b".." && !bytes.contains(&b'/')
}

/// An `O_PATH` handle on the directory at `path`, following symlinks (and `/proc`'s magic
/// links) as any open does.
fn open_dir(path: &CStr) -> io::Result<OwnedFd> {
    // SAFETY: valid C string.
    let fd = unsafe {
        libc::open(
            path.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just opened and is owned here.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The shm dir a process sees, `dev/shm` in its root, now: `ESRCH` once the process has
/// exited (or was never the one `process` holds). See [`proc_root`].
fn resolve_in_root(process: &Pidfd) -> io::Result<OwnedFd> {
    let root = proc_root::open_root(process)?;
    proc_root::open_in_root(root.as_fd(), c"dev/shm", libc::O_PATH | libc::O_DIRECTORY)
}

impl ShmDir {
    /// Opens the directory (following a symlink only here, at start, as a mount would) and
    /// keeps it open.
    pub fn open(path: &Path) -> io::Result<ShmDir> {
        Ok(ShmDir {
            path: path.to_owned(),
            place: Where::Kept(open_dir(&cstring(path.as_os_str())?)?),
        })
    }

    /// The shm dir process `process` sees: `dev/shm` resolved inside its root
    /// (`/proc/PID/root`) as the process itself would resolve `/dev/shm`, so that a symlink
    /// there (`/dev/shm -> /run/shm`, or `-> /etc`) leads where it leads in the process's root,
    /// never out of it to the machine's own files. It is resolved again for each operation, and
    /// closed after it: nothing is kept between operations, since a kept descriptor would keep a
    /// container's tmpfs, and its memory, after the container ended (and make its `umount`
    /// busy). The process is held by a pidfd, which pins nothing, and checked to still run
    /// after its root is opened, so a pid reused by another process never shows that one's
    /// `/dev/shm`. Once the process has exited, the directory is as one that is not there:
    /// listed empty, every name `ENOENT`, no space.
    ///
    /// Resolved once here, so that a shm dir that cannot be reached is reported at start.
    pub fn in_root(process: Pidfd) -> io::Result<ShmDir> {
        let path = PathBuf::from(format!("/proc/{}/root/dev/shm", process.pid()));
        drop(resolve_in_root(&process)?);
        Ok(ShmDir {
            path,
            place: Where::InRoot {
                process,
                gone_told: AtomicBool::new(false),
            },
        })
    }

    /// [`ShmDir::in_root`] without resolving it first: for a view made inside a request,
    /// where a process without a `/dev/shm` (or one that exits meanwhile) shows an empty one.
    pub fn in_root_lazily(process: Pidfd) -> ShmDir {
        ShmDir {
            path: PathBuf::from(format!("/proc/{}/root/dev/shm", process.pid())),
            place: Where::InRoot {
                process,
                gone_told: AtomicBool::new(true),
            },
        }
    }

    /// A shm dir that is not there: listed empty, every name `ENOENT`, no space.
    pub fn nowhere() -> ShmDir {
        ShmDir {
            path: PathBuf::new(),
            place: Where::Nowhere,
        }
    }

    /// The directory, for one operation. For a process's view, resolved now with the daemon's
    /// own credentials (following `/proc/PID/root` takes the right to trace the process, which
    /// the caller may not have; the caller then acts in the directory as itself, as with a
    /// kept one); `ENOENT` once the process has exited, or if it has no `/dev/shm`.
    fn dir(&self) -> io::Result<Dir<'_>> {
        let (process, gone_told) = match &self.place {
            Where::Kept(fd) => return Ok(Dir::Kept(fd.as_fd())),
            Where::InRoot { process, gone_told } => (process, gone_told),
            Where::Nowhere => return Err(errno(libc::ENOENT)),
        };
        match creds::as_daemon(|| resolve_in_root(process)) {
            Ok(fd) => Ok(Dir::Resolved(fd)),
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {
                if !gone_told.swap(true, Ordering::Relaxed) {
                    log::info!(
                        "process {} has exited: its shm dir is shown empty from now on",
                        process.pid()
                    );
                }
                Err(errno(libc::ENOENT))
            }
            Err(e) => {
                log::debug!("{}: {e}", self.path.display());
                Err(e)
            }
        }
    }

    /// The directory for one operation, or `None` where [`Self::dir`] finds none (`ENOENT`):
    /// what lists as empty.
    fn dir_if_there(&self) -> io::Result<Option<Dir<'_>>> {
        match self.dir() {
            Ok(dir) => Ok(Some(dir)),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The device of the directory's filesystem (what its objects' st_dev is); 0 if it is not
    /// there.
    pub fn dev(&self) -> u64 {
        self.dir()
            .and_then(|dir| fstat(dir.raw()))
            .map(|st| st.st_dev)
            .unwrap_or(0)
    }

    /// The directory's path as given.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The name and inode number of each regular file, from the directory itself (no stat of
    /// each entry): cheap, for telling which objects are gone.
    pub fn regular_entries(&self) -> io::Result<Vec<(OsString, u64)>> {
        use std::os::unix::fs::DirEntryExt;
        let mut keys = Vec::new();
        let Some(dir) = self.dir_if_there()? else {
            return Ok(keys);
        };
        for entry in std::fs::read_dir(dir.path())? {
            let Ok(entry) = entry else { continue };
            if entry.file_type().is_ok_and(|t| t.is_file()) {
                keys.push((entry.file_name(), entry.ino()));
            }
        }
        Ok(keys)
    }

    /// Every regular file of the directory; anything else is left out.
    pub fn list(&self) -> io::Result<Vec<Object>> {
        let mut objects = Vec::new();
        let Some(dir) = self.dir_if_there()? else {
            return Ok(objects);
        };
        for entry in std::fs::read_dir(dir.path())? {
            let Ok(entry) = entry else { continue };
            let name = entry.file_name();
            // Gone since the listing, or not a regular file: not shown.
            if let Ok(object) = self.lookup_in(&dir, &name) {
                objects.push(object);
            }
        }
        Ok(objects)
    }

    /// Runs `f` on a descriptor of the shm dir (the kept one, or one resolved for this call
    /// and closed after it).
    pub fn with_fd<T>(&self, f: impl FnOnce(BorrowedFd<'_>) -> io::Result<T>) -> io::Result<T> {
        let dir = self.dir()?;
        f(dir.as_fd())
    }

    /// The regular file of that name, or `ENOENT` (also for symlinks, fifos, directories…).
    pub fn lookup(&self, name: &OsStr) -> io::Result<Object> {
        self.lookup_in(&self.dir()?, name)
    }

    fn lookup_in(&self, dir: &Dir<'_>, name: &OsStr) -> io::Result<Object> {
        let fd = self.open_path(dir, name)?;
        let st = fstat(fd.as_raw_fd())?;
        if !is_regular(&st) {
            return Err(errno(libc::ENOENT));
        }
        Ok(Object::from_stat(name, &st))
    }

    /// An `O_PATH` handle on the entry `name` itself (a symlink is not followed), or `ENOENT`.
    ///
    /// A mount point in the directory (the shmfs mount itself may be one, as in
    /// `shmfs --shm-dir D D/view`) is never crossed: a stat of what is mounted there would be
    /// a request to that filesystem, and to this very daemon if it is its own mount. Opening
    /// with `O_PATH` sends no request; `RESOLVE_NO_XDEV` refuses the crossing (EXDEV).
    fn open_path(&self, dir: &Dir<'_>, name: &OsStr) -> io::Result<OwnedFd> {
        if !valid_name(name) {
            return Err(errno(libc::ENOENT));
        }
        let c = cstring(name)?;
        open_beneath(dir.as_fd(), &c).map_err(|e| match e.raw_os_error() {
            Some(libc::EXDEV) => {
                log::debug!(
                    "{}/{}: a mount point, not an object",
                    self.path.display(),
                    name.to_string_lossy()
                );
                errno(libc::ENOENT)
            }
            Some(libc::ENOSYS) => {
                log::error!("openat2: {e} (shmfs needs Linux 5.6 or later)");
                errno(libc::ENOSYS)
            }
            _ => e,
        })
    }

    /// An `O_PATH` handle on the object, checked to be the regular file with inode `ino`.
    fn pin(&self, dir: &Dir<'_>, name: &OsStr, ino: u64) -> io::Result<OwnedFd> {
        let fd = self.open_path(dir, name)?;
        let st = fstat(fd.as_raw_fd())?;
        if !is_regular(&st) || st.st_ino != ino {
            return Err(errno(libc::ENOENT));
        }
        Ok(fd)
    }

    fn proc_path(fd: &OwnedFd) -> CString {
        // A formatted number never contains a NUL byte.
        CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap_or_default()
    }

    /// Opens the object for I/O with the calling thread's credentials (the kernel checks
    /// the file's mode). `flags` are the caller's access mode and `O_APPEND`.
    pub fn open_object(&self, name: &OsStr, ino: u64, flags: i32) -> io::Result<File> {
        let pinned = self.pin(&self.dir()?, name, ino)?;
        let path = Self::proc_path(&pinned);
        let flags = (flags & (libc::O_ACCMODE | libc::O_APPEND))
            | libc::O_CLOEXEC
            | libc::O_NOCTTY
            | libc::O_NONBLOCK;
        // SAFETY: valid C string; reopening through /proc/self/fd reaches exactly the
        // pinned inode, never a path someone could swap meanwhile.
        let fd = unsafe { libc::open(path.as_ptr(), flags) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd was just opened and is owned by the File.
        Ok(unsafe { File::from_raw_fd(fd) })
    }

    /// `chmod` of the object (the kernel allows its owner or CAP_FOWNER).
    pub fn chmod(&self, name: &OsStr, ino: u64, mode: u32) -> io::Result<()> {
        let pinned = self.pin(&self.dir()?, name, ino)?;
        let path = Self::proc_path(&pinned);
        // SAFETY: valid C string.
        if unsafe { libc::chmod(path.as_ptr(), mode & 0o7777) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// `chown` of the object; `None` keeps that id.
    pub fn chown(
        &self,
        name: &OsStr,
        ino: u64,
        uid: Option<u32>,
        gid: Option<u32>,
    ) -> io::Result<()> {
        let pinned = self.pin(&self.dir()?, name, ino)?;
        let uid = uid.unwrap_or(u32::MAX);
        let gid = gid.unwrap_or(u32::MAX);
        let empty = c"";
        // SAFETY: valid fd; AT_EMPTY_PATH acts on the O_PATH handle itself.
        let rc = unsafe {
            libc::fchownat(
                pinned.as_raw_fd(),
                empty.as_ptr(),
                uid,
                gid,
                libc::AT_EMPTY_PATH,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Creates an empty object (`O_CREAT|O_EXCL`, as `shm_open` does) with exactly `mode`
    /// (the daemon's umask is 0; the kernel already applied the caller's).
    pub fn create(&self, name: &OsStr, mode: u32) -> io::Result<Object> {
        if !valid_name(name) {
            return Err(errno(libc::EINVAL));
        }
        let c = cstring(name)?;
        let dir = self.dir()?;
        // SAFETY: valid dir fd and C string.
        let fd = unsafe {
            libc::openat(
                dir.raw(),
                c.as_ptr(),
                libc::O_CREAT | libc::O_EXCL | libc::O_RDWR | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                (mode & 0o777) as libc::c_uint,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd was just opened and is owned here.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Object::from_stat(name, &fstat(fd.as_raw_fd())?))
    }

    /// Unlinks the object (`shm_unlink`), if it is still the one with inode `ino`. The kernel
    /// applies the sticky rule of the shm dir to the calling thread.
    pub fn remove(&self, name: &OsStr, ino: u64) -> io::Result<()> {
        let dir = self.dir()?;
        self.pin(&dir, name, ino)?;
        let c = cstring(name)?;
        // SAFETY: valid dir fd and C string.
        if unsafe { libc::unlinkat(dir.raw(), c.as_ptr(), 0) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Sets access and modification times (`utimensat`); the kernel checks the calling
    /// thread's right to.
    pub fn set_times(
        &self,
        name: &OsStr,
        ino: u64,
        atime: FileTime,
        mtime: FileTime,
    ) -> io::Result<()> {
        let pinned = self.pin(&self.dir()?, name, ino)?;
        let path = Self::proc_path(&pinned);
        let times = [atime.timespec(), mtime.timespec()];
        // SAFETY: valid C string and a two-element timespec array.
        if unsafe { libc::utimensat(libc::AT_FDCWD, path.as_ptr(), times.as_ptr(), 0) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Truncates or extends the object, opening it for writing as the caller.
    pub fn truncate(&self, name: &OsStr, ino: u64, size: u64) -> io::Result<()> {
        let file = self.open_object(name, ino, libc::O_WRONLY)?;
        file.set_len(size)
    }
}

/// What tells one memory file from another even when their inode numbers agree (a SysV
/// memory file's is its shmid): the kernel's file handle, which carries a generation.
pub fn file_identity(file: &File) -> Option<Vec<u8>> {
    use std::os::fd::AsRawFd;
    const MAX_HANDLE: usize = 128;
    // struct file_handle: u32 handle_bytes, i32 handle_type, then the handle.
    let mut buf = vec![0u8; 8 + MAX_HANDLE];
    buf[..4].copy_from_slice(&(MAX_HANDLE as u32).to_ne_bytes());
    let mut mount_id: libc::c_int = 0;
    // SAFETY: buf is a file_handle with room for MAX_HANDLE bytes; AT_EMPTY_PATH names the
    // fd itself.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_name_to_handle_at,
            file.as_raw_fd(),
            c"".as_ptr(),
            buf.as_mut_ptr(),
            &mut mount_id,
            libc::AT_EMPTY_PATH,
        )
    };
    if rc != 0 {
        return None;
    }
    let len = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    buf.truncate(8 + len.min(MAX_HANDLE));
    Some(buf)
}

/// A time to give a file: left as it is, the present, or a given time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileTime {
    Keep,
    Now,
    At(std::time::SystemTime),
}

impl FileTime {
    /// As utimensat takes it.
    fn timespec(self) -> libc::timespec {
        let (tv_sec, tv_nsec) = match self {
            FileTime::Keep => (0, libc::UTIME_OMIT),
            FileTime::Now => (0, libc::UTIME_NOW),
            FileTime::At(t) => match t.duration_since(std::time::UNIX_EPOCH) {
                Ok(d) => (d.as_secs() as libc::time_t, i64::from(d.subsec_nanos())),
                Err(before) => (-(before.duration().as_secs() as libc::time_t), 0),
            },
        };
        libc::timespec { tv_sec, tv_nsec }
    }
}

/// Size and usage of the filesystem holding the directory, for `statfs`: all zero if it is
/// not there.
pub fn fstatvfs(shm: &ShmDir) -> io::Result<libc::statvfs> {
    // SAFETY: statvfs is plain old data.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    let Some(dir) = shm.dir_if_there()? else {
        return Ok(st);
    };
    // SAFETY: valid fd and out-pointer.
    if unsafe { libc::fstatvfs(dir.raw(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st)
}

/// An `O_PATH` handle on `name` in `dir` itself (`openat2` with `RESOLVE_BENEATH` and
/// `RESOLVE_NO_XDEV`): a symlink is not followed, the directory is not left, and a mount point
/// is not crossed (`EXDEV`). Opening with `O_PATH` sends no request to any filesystem.
pub(in crate::kernel) fn open_beneath(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<OwnedFd> {
    // SAFETY: open_how is plain old data; unset fields must be zero.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC) as u64;
    how.resolve = libc::RESOLVE_NO_XDEV | libc::RESOLVE_BENEATH;
    // SAFETY: valid dir fd, C string and open_how of the size passed.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir.as_raw_fd(),
            name.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just opened and is owned here; a file descriptor fits in i32.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory tree for a root: `dev/shm` a symlink to `target`, `etc/marker`.
    fn root_with_shm_symlink(target: &str) -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("dev")).unwrap();
        std::fs::create_dir_all(root.path().join("etc")).unwrap();
        std::fs::write(root.path().join("etc/marker"), "in the root\n").unwrap();
        std::os::unix::fs::symlink(target, root.path().join("dev/shm")).unwrap();
        root
    }

    fn names_in(fd: &OwnedFd) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(format!("/proc/self/fd/{}", fd.as_raw_fd()))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn symlinks_resolve_inside_the_root() {
        for target in ["/etc", "../etc", "../../../../../etc"] {
            let root = root_with_shm_symlink(target);
            let c = cstring(root.path().as_os_str()).unwrap();
            let fd = open_dir(&c).unwrap();
            let shm =
                proc_root::open_in_root(fd.as_fd(), c"dev/shm", libc::O_PATH | libc::O_DIRECTORY)
                    .unwrap();
            assert_eq!(names_in(&shm), ["marker"], "dev/shm -> {target}");
        }
    }

    /// A child process that sleeps, killed and reaped when dropped.
    struct Sleeper(std::process::Child);

    impl Sleeper {
        fn start() -> Sleeper {
            Sleeper(
                std::process::Command::new("sleep")
                    .arg("60")
                    .spawn()
                    .unwrap(),
            )
        }

        fn end(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    impl Drop for Sleeper {
        fn drop(&mut self) {
            self.end();
        }
    }

    #[test]
    fn a_process_view_shows_its_dev_shm_until_it_exits_then_nothing() {
        if !Path::new("/dev/shm").is_dir() {
            eprintln!("skipped: no /dev/shm");
            return;
        }
        let mut child = Sleeper::start();
        let shm = ShmDir::in_root(Pidfd::open(child.0.id()).unwrap()).unwrap();
        assert_eq!(
            shm.path(),
            Path::new(&format!("/proc/{}/root/dev/shm", child.0.id()))
        );
        shm.list().expect("list of the child's /dev/shm");
        assert_ne!(shm.dev(), 0);
        assert_ne!(fstatvfs(&shm).unwrap().f_blocks, 0);
        child.end();
        assert_eq!(shm.list().unwrap(), []);
        assert_eq!(shm.regular_entries().unwrap(), []);
        let enoent = Some(libc::ENOENT);
        assert_eq!(
            shm.lookup(OsStr::new("x")).unwrap_err().raw_os_error(),
            enoent
        );
        let created = shm.create(OsStr::new("shmfs-unit-test-x"), 0o600);
        assert_eq!(created.unwrap_err().raw_os_error(), enoent);
        assert_eq!(shm.dev(), 0);
        assert_eq!(fstatvfs(&shm).unwrap().f_blocks, 0);
    }

    #[test]
    fn a_pid_reused_by_another_process_shows_nothing() {
        let mut child = Sleeper::start();
        let held = Pidfd::open(child.0.id()).unwrap();
        child.end();
        // The pid now names a process that runs (this one), with a /dev/shm of its own.
        let shm = ShmDir {
            path: PathBuf::from("reused"),
            place: Where::InRoot {
                process: held.renumbered(std::process::id()),
                gone_told: AtomicBool::new(false),
            },
        };
        assert_eq!(shm.list().unwrap(), []);
        assert_eq!(shm.dev(), 0);
    }

    #[test]
    fn names_are_single_components() {
        assert!(valid_name(OsStr::new("obj")));
        assert!(valid_name(OsStr::from_bytes(b"a\nb \xff")));
        assert!(!valid_name(OsStr::new("")));
        assert!(!valid_name(OsStr::new("..")));
        assert!(!valid_name(OsStr::new("a/b")));
    }
}
