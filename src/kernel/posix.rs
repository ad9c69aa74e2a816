//! POSIX shared memory: the regular files of a tmpfs directory (`/dev/shm` by default).
//!
//! Nothing here follows a symlink or opens a non-regular file: every open starts with an
//! `O_PATH|O_NOFOLLOW` handle whose type and inode are checked before the file is reopened.

use std::ffi::{CString, OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

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

/// The directory that holds the objects, opened once at start.
#[derive(Debug)]
pub struct ShmDir {
    path: PathBuf,
    dir: OwnedFd,
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

impl ShmDir {
    /// Opens the directory (following a symlink only here, at start, as a mount would).
    pub fn open(path: &Path) -> io::Result<ShmDir> {
        let c = cstring(path.as_os_str())?;
        // SAFETY: valid C string.
        let fd = unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(ShmDir {
            path: path.to_owned(),
            // SAFETY: fd was just opened and is owned here.
            dir: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// The device of the directory's filesystem (what its objects' st_dev is).
    pub fn dev(&self) -> u64 {
        fstat(self.dir.as_raw_fd()).map(|st| st.st_dev).unwrap_or(0)
    }

    /// The directory's path as given.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn dir_path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", self.dir.as_raw_fd()))
    }

    /// The name and inode number of each regular file, from the directory itself (no stat of
    /// each entry): cheap, for telling which objects are gone.
    pub fn regular_entries(&self) -> io::Result<Vec<(OsString, u64)>> {
        use std::os::unix::fs::DirEntryExt;
        let mut keys = Vec::new();
        for entry in std::fs::read_dir(self.dir_path())? {
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
        for entry in std::fs::read_dir(self.dir_path())? {
            let Ok(entry) = entry else { continue };
            let name = entry.file_name();
            // Gone since the listing, or not a regular file: not shown.
            if let Ok(object) = self.lookup(&name) {
                objects.push(object);
            }
        }
        Ok(objects)
    }

    /// The regular file of that name, or `ENOENT` (also for symlinks, fifos, directories…).
    pub fn lookup(&self, name: &OsStr) -> io::Result<Object> {
        let fd = self.open_path(name)?;
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
    fn open_path(&self, name: &OsStr) -> io::Result<OwnedFd> {
        if !valid_name(name) {
            return Err(errno(libc::ENOENT));
        }
        let c = cstring(name)?;
        // SAFETY: open_how is plain old data; unset fields must be zero.
        let mut how: libc::open_how = unsafe { std::mem::zeroed() };
        how.flags = (libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC) as u64;
        how.resolve = libc::RESOLVE_NO_XDEV | libc::RESOLVE_BENEATH;
        // SAFETY: valid dir fd, C string and open_how of the size passed.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                self.dir.as_raw_fd(),
                c.as_ptr(),
                &how as *const libc::open_how,
                std::mem::size_of::<libc::open_how>(),
            )
        };
        if fd < 0 {
            let e = io::Error::last_os_error();
            return Err(match e.raw_os_error() {
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
            });
        }
        // SAFETY: fd was just opened and is owned here; a file descriptor fits in i32.
        Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
    }

    /// An `O_PATH` handle on the object, checked to be the regular file with inode `ino`.
    fn pin(&self, name: &OsStr, ino: u64) -> io::Result<OwnedFd> {
        let fd = self.open_path(name)?;
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
        let pinned = self.pin(name, ino)?;
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
        let pinned = self.pin(name, ino)?;
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
        let pinned = self.pin(name, ino)?;
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
        // SAFETY: valid dir fd and C string.
        let fd = unsafe {
            libc::openat(
                self.dir.as_raw_fd(),
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
        self.pin(name, ino)?;
        let c = cstring(name)?;
        // SAFETY: valid dir fd and C string.
        if unsafe { libc::unlinkat(self.dir.as_raw_fd(), c.as_ptr(), 0) } != 0 {
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
        let pinned = self.pin(name, ino)?;
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

/// Size and usage of the filesystem holding the directory, for `statfs`.
pub fn fstatvfs(dir: &ShmDir) -> io::Result<libc::statvfs> {
    // SAFETY: statvfs is plain old data.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: valid fd and out-pointer.
    if unsafe { libc::fstatvfs(dir.dir.as_raw_fd(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_single_components() {
        assert!(valid_name(OsStr::new("obj")));
        assert!(valid_name(OsStr::from_bytes(b"a\nb \xff")));
        assert!(!valid_name(OsStr::new("")));
        assert!(!valid_name(OsStr::new("..")));
        assert!(!valid_name(OsStr::new("a/b")));
    }
}
