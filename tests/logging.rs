//! The log an operator can read: a daemon in the background (started without `-f`, as `mount
//! -t`, fstab and systemd start it) logs to syslog when there is no journal, under the tag
//! `shmfs`, and at the default level (no `RUST_LOG`) a refused `perm` write shows there with its
//! reason. The test binds its own syslog socket and points the daemon at it with
//! `SHMFS_SYSLOG_SOCKET`, so that it reads exactly what the daemon sent.

mod common;

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// Unmounts (which ends the background daemon) however the test ends.
struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        force_unmount(&self.0);
    }
}

/// Every datagram that arrives on `socket` until `done` holds for one of them or `limit` passes.
fn receive_until(
    socket: &UnixDatagram,
    limit: Duration,
    done: impl Fn(&str) -> bool,
) -> Vec<String> {
    let deadline = Instant::now() + limit;
    let mut lines = Vec::new();
    let mut buf = vec![0u8; 65536];
    while Instant::now() < deadline {
        match socket.recv(&mut buf) {
            Ok(n) => {
                let line = String::from_utf8_lossy(&buf[..n]).into_owned();
                let finished = done(&line);
                lines.push(line);
                if finished {
                    break;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("reading the test's syslog socket: {e}"),
        }
    }
    lines
}

#[test]
fn a_background_daemon_logs_a_refused_perm_write_with_its_reason_to_syslog() {
    require_fuse!();
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("log");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mnt = tempfile::Builder::new()
        .prefix("shmfs-mnt-")
        .tempdir()
        .unwrap();
    let shm = tempfile::Builder::new()
        .prefix("shmfs-test-")
        .tempdir_in("/dev/shm")
        .unwrap();
    let seg = SysvSeg::private(4096, 0o600);

    let r = run_with_timeout(
        Command::new(BIN)
            .arg("--shm-dir")
            .arg(shm.path())
            .arg(mnt.path())
            .env("SHMFS_SYSLOG_SOCKET", &socket_path)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null()),
        MOUNT_TIMEOUT,
    );
    let _unmount = Unmount(mnt.path().to_path_buf());
    assert!(r.ok(), "shmfs in the background: {r:?}");
    assert!(
        r.stderr.is_empty(),
        "nothing on the terminal once the log goes to syslog: {r:?}"
    );

    let perm = mnt.path().join(format!("sysv/{}/perm", seg.id));
    assert_errno(write_once(&perm, b"99\n"), libc::EINVAL, "write 99 to perm");
    let want = format!(
        "perm write refused for uid 0 on sysv/{}: mode \"99\" is not an octal mode",
        seg.id
    );
    let lines = receive_until(&socket, Duration::from_secs(5), |l| l.contains(&want));
    let line = lines
        .iter()
        .find(|l| l.contains(&want))
        .unwrap_or_else(|| panic!("no line {want:?} among what the daemon sent: {lines:#?}"));
    // <30>: facility daemon (3), severity info (6); then the tag and the daemon's pid.
    assert!(line.starts_with("<30>"), "priority of {line:?}");
    assert!(line.contains(" shmfs["), "tag of {line:?}");
    assert!(
        lines.iter().any(|l| l.contains("mounted on ")),
        "the mount itself is logged too: {lines:#?}"
    );
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("DEBUG") || l.starts_with("<31>")),
        "debug lines at the default level: {lines:#?}"
    );
    assert_eq!(
        seg.stat().shm_perm.mode & 0o777,
        0o600,
        "the mode did not change"
    );

    drop(_unmount);
    assert!(
        !is_listed_in_mountinfo(Path::new(mnt.path())),
        "still mounted"
    );
}
