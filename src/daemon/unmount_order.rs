//! Makes fusermount3's auto_unmount work when the daemon is killed.
//!
//! With auto_unmount, fusermount3 stays behind holding one end of a socket; the daemon (fuser)
//! holds the other. When the daemon dies, fusermount3 sees the socket close, opens the mount
//! point, and unmounts only if that fails with ENOTCONN: the FUSE connection is gone. But a
//! dying process releases its descriptors from the highest number down, and fuser's socket has
//! a higher number than the `/dev/fuse` descriptor (which takes the number the socket's other
//! end freed). So fusermount3 can wake while the connection still lives: its open then waits as
//! a request, the connection ends under it with ECONNABORTED, not ENOTCONN, and fusermount3
//! leaves the dead mount in place. Under load this happened about one time in three.
//!
//! The cure is in the numbers: a descriptor number below every `/dev/fuse` descriptor is
//! reserved before the mount, and once mounted a second reference to fusermount3's socket is
//! put there. The socket then closes only after the connection has ended.

use std::collections::BTreeSet;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, IntoRawFd, RawFd};

/// The descriptors open now, by number.
pub fn open_fds() -> BTreeSet<RawFd> {
    std::fs::read_dir("/proc/self/fd")
        .map(|dir| {
            dir.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// A descriptor number reserved before the mount (it holds /dev/null until used).
pub struct Slot(File);

impl Slot {
    /// Reserves the lowest free number; call it before mounting.
    pub fn reserve() -> io::Result<Slot> {
        File::open("/dev/null").map(Slot)
    }

    /// Puts a reference to fusermount3's auto_unmount socket in the slot, if the mount made one
    /// (a stream socket among the descriptors not in `before`) and the slot is below every
    /// `/dev/fuse` descriptor. The slot then stays open for the life of the process. Returns
    /// whether it did.
    pub fn hold_auto_unmount_socket(self, before: &BTreeSet<RawFd>) -> bool {
        let slot = self.0.as_raw_fd();
        let new: Vec<RawFd> = open_fds().difference(before).copied().collect();
        let lowest_fuse = new
            .iter()
            .copied()
            .filter(|&fd| is_fuse_device(fd))
            .min()
            .unwrap_or(RawFd::MAX);
        let Some(socket) = new.iter().copied().find(|&fd| is_unix_stream(fd)) else {
            return false;
        };
        if slot >= lowest_fuse {
            log::warn!(
                "descriptor {slot} is not below /dev/fuse ({lowest_fuse}): after a SIGKILL, \
                 fusermount3 may leave the mount behind"
            );
            return false;
        }
        // SAFETY: both are open descriptors of this process; dup3 replaces the slot's
        // /dev/null with the socket, keeping close-on-exec.
        if unsafe { libc::dup3(socket, slot, libc::O_CLOEXEC) } < 0 {
            log::warn!(
                "cannot keep fusermount3's socket on descriptor {slot}: {}",
                io::Error::last_os_error()
            );
            return false;
        }
        // Kept open on purpose until the process ends.
        let _ = self.0.into_raw_fd();
        true
    }
}

fn is_fuse_device(fd: RawFd) -> bool {
    std::fs::read_link(format!("/proc/self/fd/{fd}")).is_ok_and(|p| p.as_os_str() == "/dev/fuse")
}

fn is_unix_stream(fd: RawFd) -> bool {
    let int_option = |option: libc::c_int| {
        let mut value: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: valid out-pointers of the right size; a descriptor that is not a socket
        // just fails.
        let rc = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                option,
                (&mut value as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        (rc == 0).then_some(value)
    };
    int_option(libc::SO_DOMAIN) == Some(libc::AF_UNIX)
        && int_option(libc::SO_TYPE) == Some(libc::SOCK_STREAM)
}
