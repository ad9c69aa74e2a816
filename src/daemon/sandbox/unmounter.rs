//! Unmounting a non-root daemon's mount from inside the sandbox.
//!
//! A non-root daemon unmounts through fusermount3, a set-user-ID program: with no_new_privs it
//! would run without its privilege, and the seccomp filter refuses `execve` anyway. So before
//! the sandbox goes on, the daemon forks a helper (`shmfs-unmount`) that stays outside it. The
//! helper waits on a socket: asked, it runs `fusermount3 -u -z -- MOUNTPOINT` and answers;
//! when the daemon is gone (the socket closes) it exits. It holds no descriptor but its
//! socket and standard streams, so the FUSE connection and fusermount3's auto_unmount socket
//! end with the daemon as before.

use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};

/// The daemon's end of the helper's socket.
#[derive(Debug)]
pub struct Unmounter {
    socket: UnixStream,
}

impl Unmounter {
    /// Forks the helper for `mount_point`, to run `fusermount`. Call it while the process has
    /// one thread (fork copies only the calling one). `keep_stderr`: the helper writes
    /// fusermount3's complaints where the daemon logs (foreground); otherwise to /dev/null.
    pub fn start(
        mount_point: &Path,
        fusermount: &Path,
        keep_stderr: bool,
    ) -> io::Result<Unmounter> {
        let (ours, theirs) = UnixStream::pair()?;
        // SAFETY: the caller guarantees a single thread; the child only runs `serve`, which
        // makes system calls and a Command, and exits without returning.
        match unsafe { libc::fork() } {
            -1 => Err(io::Error::last_os_error()),
            0 => {
                drop(ours);
                let code = serve(theirs, mount_point, fusermount, keep_stderr);
                // SAFETY: ends the helper without running the daemon's atexit handlers.
                unsafe { libc::_exit(code) }
            }
            _ => Ok(Unmounter { socket: ours }),
        }
    }

    /// Asks the helper to unmount, and waits for its answer: true if fusermount3 succeeded.
    pub fn unmount(&self) -> bool {
        let mut socket = &self.socket;
        let mut answer = [1u8];
        socket.write_all(b"u").is_ok() && socket.read_exact(&mut answer).is_ok() && answer[0] == 0
    }
}

/// The helper: one unmount on request, then exit; or exit when the daemon is gone.
fn serve(socket: UnixStream, mount_point: &Path, fusermount: &Path, keep_stderr: bool) -> i32 {
    // SAFETY: prctl with a valid C string; it names this process for ps and top.
    unsafe { libc::prctl(libc::PR_SET_NAME, c"shmfs-unmount".as_ptr(), 0, 0, 0) };
    let Ok(socket) = keep_only(socket, keep_stderr) else {
        return 1;
    };
    let mut socket = socket;
    let mut asked = [0u8];
    if socket.read_exact(&mut asked).is_err() {
        return 0;
    }
    let status = Command::new(fusermount)
        .args(["-u", "-z", "--"])
        .arg(mount_point)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status();
    let ok = matches!(status, Ok(s) if s.success());
    let _ = socket.write_all(&[u8::from(!ok)]);
    0
}

/// Closes every descriptor of the helper but `socket` (moved to 3) and the standard streams
/// (pointed at /dev/null, stderr too unless `keep_stderr`).
fn keep_only(socket: UnixStream, keep_stderr: bool) -> io::Result<UnixStream> {
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    let streams = if keep_stderr { 0..2 } else { 0..3 };
    for fd in streams {
        // SAFETY: dup2 onto a standard stream.
        unsafe { libc::dup2(null.as_raw_fd(), fd) };
    }
    drop(null);
    // SAFETY: dup2 onto 3, which is then owned here (whatever was there is replaced).
    let moved = unsafe {
        if libc::dup2(socket.as_raw_fd(), 3) < 0 {
            return Err(io::Error::last_os_error());
        }
        OwnedFd::from_raw_fd(3)
    };
    if socket.as_raw_fd() != 3 {
        drop(socket);
    } else {
        std::mem::forget(socket);
    }
    // SAFETY: closes descriptors this process no longer uses; none is owned by live Rust
    // objects but `moved` (3) and the standard streams.
    if unsafe { libc::syscall(libc::SYS_close_range, 4u32, u32::MAX, 0u32) } != 0 {
        for fd in crate::daemon::unmount_order::open_fds()
            .into_iter()
            .filter(|&fd| fd > 3)
        {
            // SAFETY: as above.
            unsafe { libc::close(fd) };
        }
    }
    Ok(UnixStream::from(moved))
}
