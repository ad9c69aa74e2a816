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

/// What an ordinary user can make the daemon log: uid 12345 writes a 4 KiB non-mode to the
/// `perm` of its own segment 500 times (text with an escape sequence, the kind that retitles a
/// terminal reading the log). The log gets at most its share of lines
/// (`shmfs::fs::refusals`: PER_USER, then one notice), each quoting no more than the
/// first QUOTE_LIMIT characters of the text, escaped; root's refusals are still logged.
#[test]
fn a_flood_of_refused_perm_writes_logs_a_few_short_lines() {
    use shmfs::fs::refusals::{PER_USER, QUOTE_LIMIT};
    require_fuse!();
    let m = Mount::builder().option("allow_other").mount();
    let seg = SysvSeg::private(4096, 0o600);
    seg.set(None, Some(12345), Some(12345));
    let perm = m.sysv(seg.id, "perm");
    // No whitespace, ':' or '=': read as one mode, quoted whole in the reason before.
    let payload = format!("\\033]0;owned\\007{}", "Y".repeat(4000));
    let r = sh_as(
        12345,
        &format!(
            "n=0; for i in $(seq 500); do printf '{payload}' > {} 2>/dev/null || n=$((n+1)); \
             done; echo $n",
            q(&perm)
        ),
    );
    assert_eq!(r.stdout_str().trim(), "500", "every write refused: {r:?}");
    assert_errno(write_once(&perm, b"99\n"), libc::EINVAL, "root writes 99");
    let log = m.log();

    let refused: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("refused for uid 12345"))
        .collect();
    assert_eq!(
        refused.len(),
        PER_USER as usize,
        "refusal lines of uid 12345:\n{log}"
    );
    let notices = log
        .lines()
        .filter(|l| l.contains("uid 12345 had") && l.contains("not logged"))
        .count();
    assert_eq!(notices, 1, "one notice that the rest is not logged:\n{log}");
    // As Rust quotes it: the two control characters take 6 and 5 characters, `]0;owned` 8.
    let quoted = format!(
        "\\u{{1b}}]0;owned\\u{{7}}{}…\"",
        "Y".repeat(QUOTE_LIMIT - 19)
    );
    for line in &refused {
        assert!(line.contains(&quoted), "{line:?} does not quote {quoted:?}");
        assert!(line.len() < 300, "a long line: {line:?}");
    }
    assert!(
        !log.contains('\u{1b}'),
        "a raw escape character in the log:\n{log}"
    );
    assert!(
        log.len() < 8192,
        "{} bytes of log after the flood:\n{log}",
        log.len()
    );
    assert!(
        log.contains(&format!(
            "perm write refused for uid 0 on sysv/{}: mode \"99\" is not an octal mode",
            seg.id
        )),
        "root's refusal is logged beside the flood:\n{log}"
    );
    assert_eq!(seg.stat().shm_perm.mode & 0o777, 0o600, "nothing changed");
}

fn syscall_result(r: libc::c_long) -> std::io::Result<libc::c_long> {
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Operations shmfs does not offer answer as the kernel answers for a filesystem without them,
/// without a line in the log however often they are asked: fallocate and setxattr fail with
/// EOPNOTSUPP, SEEK_DATA and SEEK_HOLE see one extent of data, copy_file_range and poll work
/// by the kernel's fallback. On a SysV segment's `data` (direct I/O) and a POSIX object's
/// (passthrough, when root's kernel offers it).
#[test]
fn unoffered_operations_give_their_errno_and_log_nothing() {
    use std::os::fd::AsRawFd;
    require_fuse!();
    let m = Mount::new();
    let seg = SysvSeg::private(8192, 0o600);
    create_posix(m.shm_dir(), "logging-src", 0o600, &[7u8; 5000]);
    create_posix(m.shm_dir(), "logging-dst", 0o600, &[0u8; 5000]);
    let open = |p: PathBuf| {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&p)
            .unwrap_or_else(|e| panic!("open {}: {e}", p.display()))
    };
    let files = [
        (m.sysv(seg.id, "data"), 8192),
        (m.posix("logging-src", "data"), 5000),
    ];
    for _round in 0..3 {
        for (path, size) in &files {
            let f = open(path.clone());
            let fd = f.as_raw_fd();
            let what = path.display();
            // SAFETY (all below): plain system calls on our own descriptor and buffers.
            assert_errno(
                syscall_result(unsafe { libc::fallocate(fd, 0, 0, 4096) }.into()),
                libc::EOPNOTSUPP,
                &format!("fallocate {what}"),
            );
            assert_eq!(
                syscall_result(unsafe { libc::lseek(fd, 0, libc::SEEK_DATA) }).unwrap(),
                0,
                "SEEK_DATA {what}"
            );
            assert_eq!(
                syscall_result(unsafe { libc::lseek(fd, 0, libc::SEEK_HOLE) }).unwrap(),
                *size,
                "SEEK_HOLE {what}"
            );
            let name = c"user.shmfs";
            assert_errno(
                syscall_result(
                    unsafe { libc::fsetxattr(fd, name.as_ptr(), b"x".as_ptr().cast(), 1, 0) }
                        .into(),
                ),
                libc::EOPNOTSUPP,
                &format!("setxattr {what}"),
            );
            assert_errno(
                syscall_result(unsafe { libc::fremovexattr(fd, name.as_ptr()) }.into()),
                libc::EOPNOTSUPP,
                &format!("removexattr {what}"),
            );
            let mut pfd = libc::pollfd {
                fd,
                events: libc::POLLIN | libc::POLLOUT,
                revents: 0,
            };
            assert_eq!(
                syscall_result(unsafe { libc::poll(&mut pfd, 1, 1000) }.into()).unwrap(),
                1,
                "poll {what}"
            );
        }
        let (src, dst) = (
            open(m.posix("logging-src", "data")),
            open(m.posix("logging-dst", "data")),
        );
        let copied = unsafe {
            libc::copy_file_range(
                src.as_raw_fd(),
                std::ptr::null_mut(),
                dst.as_raw_fd(),
                std::ptr::null_mut(),
                5000,
                0,
            )
        };
        assert_eq!(
            syscall_result(copied as libc::c_long).unwrap(),
            5000,
            "copy_file_range"
        );
        assert_eq!(
            std::fs::read(m.posix("logging-dst", "data")).unwrap(),
            [7u8; 5000]
        );
    }
    let log = m.log();
    assert!(
        !log.contains("WARN") && !log.contains("Not Implemented"),
        "the daemon logged:\n{log}"
    );
}
