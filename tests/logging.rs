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

/// The fields of one message of the journal's native protocol (`NAME=value` lines; a value with
/// a newline is sent as `NAME\n`, its length as 8 bytes little-endian, the bytes, `\n`).
fn journal_fields(mut datagram: &[u8]) -> Vec<(String, String)> {
    let mut fields = Vec::new();
    while let Some(end) = datagram.iter().position(|&b| b == b'\n') {
        let line = &datagram[..end];
        if let Some(eq) = line.iter().position(|&b| b == b'=') {
            fields.push((
                String::from_utf8_lossy(&line[..eq]).into_owned(),
                String::from_utf8_lossy(&line[eq + 1..]).into_owned(),
            ));
            datagram = &datagram[end + 1..];
        } else {
            let name = String::from_utf8_lossy(line).into_owned();
            let rest = &datagram[end + 1..];
            let len = u64::from_le_bytes(rest[..8].try_into().unwrap()) as usize;
            fields.push((
                name,
                String::from_utf8_lossy(&rest[8..8 + len]).into_owned(),
            ));
            datagram = &rest[8 + len + 1..];
        }
    }
    fields
}

/// As an operator would do it: `mount -t fuse.shmfs` (so mount.fuse3 starts the daemon in the
/// background) on a machine with a journal, then `echo 99 > perm`. The journal's socket is the
/// test's own, put at /run/systemd/journal/socket inside a private mount namespace (a `World`),
/// so that nothing outside sees it. The message carries the identifier `shmfs`, priority notice
/// and the reason.
#[test]
fn mount_t_logs_a_refused_perm_write_with_its_reason_to_the_journal() {
    require_fuse!();
    require_tools!("mount.fuse3" => "Debian package fuse3");
    let w = World::new();
    let socket_path = w.dir().join("journal.socket");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    w.sh_ok(&format!(
        "mount -t tmpfs -o size=1m,mode=0755 shmfs-test-run /run && mkdir -p /run/systemd/journal \
         && touch /run/systemd/journal/socket && mount --bind {} /run/systemd/journal/socket",
        q(&socket_path)
    ));
    let mnt = w.mkdir("mnt");
    let r = w.sh(&format!(
        "env -u RUST_LOG mount -t fuse.shmfs shmfs {} -o allow_other",
        q(&mnt)
    ));
    assert!(r.ok(), "mount -t fuse.shmfs: {r:?}");
    assert!(r.stderr.is_empty(), "mount printed to stderr: {r:?}");
    let id = parse_ipcmk(&w.sh_ok("ipcmk -M 4096 -p 0600"));
    let perm = mnt.join(format!("sysv/{id}/perm"));
    let r = w.sh(&format!("echo 99 > {}", q(&perm)));
    assert!(!r.ok(), "echo 99 > perm succeeded: {r:?}");

    let want =
        format!("perm write refused for uid 0 on sysv/{id}: mode \"99\" is not an octal mode");
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut seen = Vec::new();
    let mut buf = vec![0u8; 65536];
    let found = loop {
        assert!(
            Instant::now() < deadline,
            "no journal message {want:?}; the daemon sent: {seen:#?}"
        );
        let n = match socket.recv(&mut buf) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(e) => panic!("reading the test's journal socket: {e}"),
        };
        let fields = journal_fields(&buf[..n]);
        if fields.iter().any(|(k, v)| k == "MESSAGE" && *v == want) {
            break fields;
        }
        seen.push(fields);
    };
    let field = |name: &str| {
        found
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(field("SYSLOG_IDENTIFIER"), Some("shmfs"), "{found:?}");
    // systemd-journal-logger sends log's info as notice (5): shown by journalctl at any level.
    assert_eq!(field("PRIORITY"), Some("5"), "info: {found:?}");
    let r = w.sh(&format!("umount {}", q(&mnt)));
    assert!(r.ok(), "umount: {r:?}");
    let r = w.sh(&format!("ipcrm -m {id}"));
    assert!(r.ok(), "ipcrm: {r:?}");
}
