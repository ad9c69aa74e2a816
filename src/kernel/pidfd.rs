//! A process held by a pidfd, which pins nothing of it (no memory, no namespace, no file
//! system: only the kernel's small `struct pid`), and tells whether the process still runs. A
//! pid number is reused once its process is reaped; what is read through `/proc/PID` while
//! the pidfd's process still runs is that process's, never a later one's.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// One process, as `pidfd_open` named it.
#[derive(Debug)]
pub struct Pidfd {
    pid: u32,
    fd: OwnedFd,
}

impl Pidfd {
    /// The process `pid` is now: `ESRCH` if there is none, `EINVAL` if `pid` names a thread
    /// other than its process's first (Linux 5.3 or later; no permission is needed).
    pub fn open(pid: u32) -> io::Result<Pidfd> {
        let raw =
            libc::pid_t::try_from(pid).map_err(|_| io::Error::from_raw_os_error(libc::ESRCH))?;
        // SAFETY: plain system call on integers; it returns a new descriptor or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, raw, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Pidfd {
            pid,
            // SAFETY: fd was just opened and is owned here; a descriptor fits in i32.
            fd: unsafe { OwnedFd::from_raw_fd(fd as i32) },
        })
    }

    /// Another descriptor of the same process.
    pub fn try_clone(&self) -> io::Result<Pidfd> {
        Ok(Pidfd {
            pid: self.pid,
            fd: self.fd.try_clone()?,
        })
    }

    /// Its pid, as the daemon's pid namespace numbers it (what `/proc` shows it as).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The same pidfd, as if its pid now named another process: for tests of pid reuse.
    #[cfg(test)]
    pub(crate) fn renumbered(self, pid: u32) -> Pidfd {
        Pidfd { pid, ..self }
    }

    /// Whether the process has not exited. A pidfd polls readable once its process has exited
    /// (a zombie included), so `true` means its pid still named it at every moment before this
    /// call since [`Pidfd::open`]. An error of `poll` counts as exited: the safe answer.
    pub fn is_running(&self) -> bool {
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        loop {
            // SAFETY: one valid pollfd; a timeout of 0 never blocks.
            let n = unsafe { libc::poll(&mut pfd, 1, 0) };
            match n {
                0 => return true,
                n if n > 0 => return false,
                _ if io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) => continue,
                _ => return false,
            }
        }
    }
}

impl AsFd for Pidfd {
    /// The pidfd itself, for the kernel's calls on it (its `ioctl`s).
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pidfd_tells_a_running_process_from_one_that_exited() {
        let me = Pidfd::open(std::process::id()).expect("pidfd_open of this process");
        assert!(me.is_running());
        let mut child = std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .expect("start sleep");
        let held = Pidfd::open(child.id()).unwrap();
        assert!(held.is_running());
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(!held.is_running(), "reaped, yet running");
        assert_eq!(held.pid(), child.id());
    }

    #[test]
    fn no_pidfd_of_a_process_that_is_not_there() {
        // Above the largest pid the kernel hands out (2^22).
        let e = Pidfd::open(99_999_999).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ESRCH));
    }
}
