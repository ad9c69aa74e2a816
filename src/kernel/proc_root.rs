//! Paths as another process sees them: opened inside its root (`/proc/PID/root`), never
//! leaving it, and only while the process named by a pidfd is the one that pid names.
//!
//! A plain `open("/proc/PID/root/some/path")` follows an absolute symlink met on the way from
//! the machine's root, out of the process's (a container's `/dev/shm -> /etc` would lead to
//! the host's `/etc`). Here the root is opened first, and the path resolved inside it with
//! `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`: every symlink, absolute or `..`,
//! resolves within the root, and none of `/proc`'s magic links is followed. Used for a
//! container's `/dev/shm` (`kernel::posix`) and for an nsfs bind mount that keeps an IPC
//! namespace alive (`kernel::enter`).
//!
//! Following `/proc/PID/root` takes ptrace read access to the process: call with the daemon's
//! credentials.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use crate::kernel::pidfd::Pidfd;

/// An `O_PATH` handle on the root directory of `process`, now: `ESRCH` once the process has
/// exited (or was never the one `process` holds). The pidfd is asked after the root is
/// opened: still running then means the pid named that process when its root was opened, so
/// a pid reused by a later process never gives that one's root.
pub fn open_root(process: &Pidfd) -> io::Result<OwnedFd> {
    let gone = || io::Error::from_raw_os_error(libc::ESRCH);
    if !process.is_running() {
        return Err(gone());
    }
    // A formatted number never contains a NUL byte.
    let path = CString::new(format!("/proc/{}/root", process.pid())).unwrap_or_default();
    // SAFETY: valid C string; it returns a new descriptor or -1.
    let fd = unsafe {
        libc::open(
            path.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    let root = if fd < 0 {
        Err(io::Error::last_os_error())
    } else {
        // SAFETY: fd was just opened and is owned here.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    };
    // (A process that has exited, even one not yet reaped, has no root to open.)
    if !process.is_running() {
        return Err(gone());
    }
    root
}

/// Opens `path` inside the directory `root` as if `root` were `/` (an absolute `path` too):
/// every symlink met on the way resolves within `root` (`RESOLVE_IN_ROOT`), and no magic link
/// of `/proc` is followed (`RESOLVE_NO_MAGICLINKS`). `flags` are `open`'s (`O_CLOEXEC` is
/// added).
pub fn open_in_root(root: BorrowedFd<'_>, path: &CStr, flags: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: open_how is plain old data; unset fields must be zero.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_CLOEXEC) as u64;
    how.resolve = libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS;
    // SAFETY: valid dir fd, C string and open_how of the size passed.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            root.as_raw_fd(),
            path.as_ptr(),
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
    use std::os::fd::AsFd;

    #[test]
    fn an_absolute_path_and_symlinks_stay_inside_the_root() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("etc")).unwrap();
        std::fs::write(root.path().join("etc/marker"), "inside").unwrap();
        std::os::unix::fs::symlink("/etc", root.path().join("link")).unwrap();
        let me = Pidfd::open(std::process::id()).unwrap();
        // This process's root is the machine's: a path there is found.
        let own = open_root(&me).unwrap();
        let dir = CString::new(root.path().as_os_str().as_encoded_bytes()).unwrap();
        let inner = open_in_root(own.as_fd(), &dir, libc::O_PATH | libc::O_DIRECTORY).unwrap();
        for path in [c"/link/marker", c"link/marker", c"../../etc/marker"] {
            let fd = open_in_root(inner.as_fd(), path, libc::O_RDONLY).unwrap();
            let text = std::fs::read_to_string(format!("/proc/self/fd/{}", fd.as_raw_fd()));
            assert_eq!(text.unwrap(), "inside", "{path:?}");
        }
        let e = open_in_root(inner.as_fd(), c"/proc/self/root", libc::O_PATH).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOENT), "{e}");
    }

    #[test]
    fn a_process_that_exited_has_no_root() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let held = Pidfd::open(child.id()).unwrap();
        child.wait().unwrap();
        let e = open_root(&held).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ESRCH), "{e}");
        // Its pid now naming this process changes nothing.
        let e = open_root(&held.renumbered(std::process::id())).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ESRCH), "{e}");
    }
}
