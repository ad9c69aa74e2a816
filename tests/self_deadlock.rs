//! No user can make the daemon wait on itself, and SIGTERM always ends it.
//!
//! Reading `attached` of a POSIX object scans every process's descriptors. A descriptor on a
//! file of the mount itself must be recognised without a request to the mount (a `stat`
//! through `/proc/PID/fd/N` would be one, served by the very worker that is waiting for it).
//! And SIGTERM unmounts and ends the daemon within seconds, even when every worker is stuck
//! and while some process still holds a file of the mount open (which then gets ENOTCONN).
//!
//! Every wait is bounded: on a daemon that deadlocks these tests fail, they never hang.

mod common;

use std::fs::{self, File};
use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// The unprivileged user that holds files open and reads `attached`.
const OTHER: u32 = 12345;
/// How long a test may run before its daemon is killed (see `KillOnHang`).
const HANG_LIMIT: Duration = Duration::from_secs(90);
/// How long one `cat attached` or root `ls` may take, even on a loaded machine.
const ANSWER_LIMIT: Duration = Duration::from_secs(15);
/// How soon after SIGTERM the daemon must have unmounted and exited.
const STOP_LIMIT: Duration = Duration::from_secs(5);
/// More concurrent readers of `attached` than the daemon has workers.
const READERS: usize = 8;

/// `sh -c SCRIPT` as the unprivileged user, output discarded.
fn spawn_as_other(script: &str) -> Reaped {
    Reaped::spawn(
        Command::new("setpriv")
            .arg(format!("--reuid={OTHER}"))
            .arg(format!("--regid={OTHER}"))
            .arg("--clear-groups")
            .arg("sh")
            .arg("-c")
            .arg(script)
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
}

/// The unprivileged user keeps `file` (of the mount) open as descriptor 3 of a `sleep`, as an
/// attacker would; returns once the descriptor is open.
fn hold_open(file: &Path) -> Reaped {
    let mut holder = spawn_as_other(&format!("exec sleep 1000 3< {}", q(file)));
    let start = Instant::now();
    let fd3 = format!("/proc/{}/fd/3", holder.pid());
    while fs::read_link(&fd3).map_or(true, |l| l != file) {
        assert!(
            holder.running(),
            "the holder of {} exited (could it not open it?)",
            file.display()
        );
        assert!(
            start.elapsed() < ANSWER_LIMIT,
            "the holder did not open {} within {ANSWER_LIMIT:?}",
            file.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    holder
}

/// Root's `ls MNT` answers within ANSWER_LIMIT and lists the top level.
#[track_caller]
fn assert_root_ls_answers(m: &Mount, when: &str) {
    let root = m.path().to_path_buf();
    let (names, took) = within(
        ANSWER_LIMIT,
        &format!("root's `ls MNT` {when}"),
        move || {
            fs::read_dir(root).map(|d| {
                d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                    .collect::<Vec<_>>()
            })
        },
    );
    let names = names.unwrap_or_else(|e| panic!("root's `ls MNT` {when}: {e}"));
    assert!(
        names.iter().any(|n| n == "posix") && names.iter().any(|n| n == "sysv"),
        "root's `ls MNT` {when} lists {names:?}"
    );
    eprintln!("root's ls {when}: {took:?}");
}

/// The scenario: one user holds a file of the mount open, another runs more
/// concurrent `cat posix/obj/attached` than there are workers. Every reader finishes, a root
/// `ls` answers while they run and after, and `attached` still names a real holder.
fn readers_of_attached_finish_beside_a_holder_of_a_mount_file(threads: Option<usize>) {
    require_fuse!();
    let mut builder = Mount::builder().option("allow_other");
    if let Some(n) = threads {
        builder = builder.args(&["--threads".to_string(), n.to_string()]);
    }
    let m = builder.mount();
    let _hang = KillOnHang::new(&m, HANG_LIMIT);
    let obj = create_posix(m.shm_dir(), "obj", 0o644, b"hello");
    // A real holder of the object, so that the readers have something to find.
    let opener = Helper::start(&["posix-open", obj.to_str().unwrap()]);

    let held = hold_open(&m.posix("obj", "stat"));
    let attached = m.posix("obj", "attached");
    let mut readers: Vec<Reaped> = (0..READERS)
        .map(|_| spawn_as_other(&format!("exec cat {} > /dev/null", q(&attached))))
        .collect();
    assert_root_ls_answers(&m, "while the readers of `attached` run");

    let deadline = Instant::now() + ANSWER_LIMIT;
    for (i, reader) in readers.iter_mut().enumerate() {
        let status = reader.wait_until(deadline).unwrap_or_else(|| {
            panic!(
                "`cat posix/obj/attached` #{i} (of {READERS}, {} workers) still runs after \
                 {ANSWER_LIMIT:?}: the daemon waits on its own mount",
                threads.map_or("default".to_string(), |n| n.to_string())
            )
        });
        assert!(
            status.success(),
            "`cat attached` #{i} as uid {OTHER}: {status}"
        );
    }
    assert_root_ls_answers(&m, "after the readers of `attached`");

    let text = read_text(&attached);
    assert!(
        text.lines()
            .any(|l| l.starts_with(&format!("{} fd:", opener.pid()))),
        "`attached` names the process that holds the object open ({}): {text:?}",
        opener.pid()
    );
    assert!(
        !text.contains(&format!("{} ", held.pid())),
        "the holder of a file of the mount does not hold the object: {text:?}"
    );
    assert!(daemon_alive(&m), "the daemon died; log:\n{}", m.log());
    drop(held);
    assert_root_ls_answers(&m, "after the holder let go");
}

#[test]
fn readers_of_attached_finish_beside_a_holder_of_a_mount_file_with_one_thread() {
    readers_of_attached_finish_beside_a_holder_of_a_mount_file(Some(1));
}

#[test]
fn readers_of_attached_finish_beside_a_holder_of_a_mount_file_with_default_threads() {
    readers_of_attached_finish_beside_a_holder_of_a_mount_file(None);
}

/// A file of the mount held open across the daemon's end reads ENOTCONN, as with sshfs.
fn assert_held_file_is_disconnected(held: File) {
    let (read, _) = within(
        ANSWER_LIMIT,
        "read of the held file after SIGTERM",
        move || {
            let mut buf = [0u8; 64];
            std::os::unix::fs::FileExt::read_at(&held, &mut buf, 0)
        },
    );
    assert_errno(
        read,
        libc::ENOTCONN,
        "read of a held file after the daemon ended",
    );
}

/// Sends SIGTERM and asserts that the daemon unmounted and exited 0 within STOP_LIMIT.
fn sigterm_stops_within_limit(m: &mut Mount) {
    let mnt = m.path().to_path_buf();
    let start = Instant::now();
    let status = m.signal_and_wait(libc::SIGTERM);
    let took = start.elapsed();
    let log = m.log();
    eprintln!("the daemon exited {took:?} after SIGTERM");
    let status = status.unwrap_or_else(|| {
        panic!("the daemon did not exit within {MOUNT_TIMEOUT:?} of SIGTERM; log:\n{log}")
    });
    assert!(
        took < STOP_LIMIT,
        "the daemon took {took:?} to exit after SIGTERM; log:\n{log}"
    );
    assert_eq!(status.code(), Some(0), "exit status; log:\n{log}");
    assert!(
        !is_listed_in_mountinfo(&mnt),
        "still mounted after the daemon exited; log:\n{log}"
    );
}

/// A file of the mount held open does not keep the daemon alive after SIGTERM: it unmounts and
/// exits within seconds, and the holder's next read fails with ENOTCONN.
#[test]
fn sigterm_ends_the_daemon_while_a_file_is_held_open() {
    require_fuse!();
    let mut m = Mount::new();
    let _hang = KillOnHang::new(&m, HANG_LIMIT);
    let mut held = File::open(m.p("limits")).expect("open MNT/limits");
    let mut text = String::new();
    held.read_to_string(&mut text).expect("read MNT/limits");
    assert!(text.starts_with("shmmax: "), "limits: {text:?}");

    sigterm_stops_within_limit(&mut m);

    assert_held_file_is_disconnected(held);
}

/// Every worker stuck in a handler (its `--shm-dir` is another shmfs whose daemon is
/// stopped), and a file held open: SIGTERM still unmounts and ends the daemon within seconds,
/// and the stuck request ends with an error instead of waiting.
#[test]
fn sigterm_ends_the_daemon_when_every_worker_is_stuck() {
    require_fuse!();
    let inner = Mount::new();
    let mut outer = Mount::builder()
        .system_shm_dir()
        .args(&[
            "--threads".to_string(),
            "1".to_string(),
            "--shm-dir".to_string(),
            inner.path().display().to_string(),
        ])
        .mount();
    let _hang = (
        KillOnHang::new(&inner, HANG_LIMIT),
        KillOnHang::new(&outer, HANG_LIMIT),
    );
    let held = File::open(outer.p("limits")).expect("open MNT/limits");

    let _resume = Stopped::stop(inner.pid());
    let mut stuck = Reaped::spawn(
        Command::new("ls")
            .arg(outer.p("posix"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        stuck.running(),
        "`ls posix` did not block on the stopped inner daemon"
    );

    sigterm_stops_within_limit(&mut outer);
    let status = stuck.wait_until(Instant::now() + ANSWER_LIMIT);
    assert!(
        matches!(status, Some(s) if !s.success()),
        "the request stuck in the stopped daemon's handler: {status:?} (it should have failed \
         when the daemon ended, with the inner daemon still stopped)"
    );
    assert_held_file_is_disconnected(held);
    drop(_resume);
    assert!(daemon_alive(&inner), "the inner daemon lives on");
}

/// A daemon started by hand on a mount point of the test's choosing; SIGTERM, reaped and
/// unmounted when dropped.
struct Daemon {
    child: Option<Child>,
    mnt: std::path::PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            if wait_timeout(&mut child, MOUNT_TIMEOUT).is_none() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        force_unmount(&self.mnt);
    }
}

/// The mount point is a directory inside the shm dir (`shmfs --shm-dir D D/view`): listing
/// `posix/` or looking up `posix/view` must not follow the mount point into the mount itself
/// (a request from the daemon to itself, which with one worker never ends). `view` is not an
/// object; the objects beside it are listed.
#[test]
fn a_mount_point_inside_the_shm_dir_is_not_followed() {
    require_fuse!();
    let shm = tempfile::Builder::new()
        .prefix("shmfs-test-")
        .tempdir_in("/dev/shm")
        .expect("create private directory under /dev/shm");
    let mnt = shm.path().join("view");
    fs::create_dir(&mnt).unwrap();
    create_posix(shm.path(), "obj", 0o600, b"hello");
    let log = tempfile::NamedTempFile::new().unwrap();
    let child = Command::new(BIN)
        .args(["-f", "--threads", "1", "--shm-dir"])
        .arg(shm.path())
        .arg(&mnt)
        .stdin(Stdio::null())
        .stdout(log.reopen().unwrap())
        .stderr(log.reopen().unwrap())
        .spawn()
        .expect("start shmfs");
    let mut daemon = Daemon {
        child: Some(child),
        mnt: mnt.clone(),
    };
    let start = Instant::now();
    while !st_dev_differs_from_parent(&mnt) {
        let exited = daemon
            .child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten());
        assert!(
            exited.is_none() && start.elapsed() < MOUNT_TIMEOUT,
            "shmfs did not mount ({exited:?}): {}",
            fs::read_to_string(log.path()).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    let posix = mnt.join("posix");
    let (names, _) = within(ANSWER_LIMIT, "ls MNT/posix", move || {
        fs::read_dir(posix).map(|d| {
            d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect::<Vec<_>>()
        })
    });
    assert_eq!(
        names.expect("ls MNT/posix"),
        ["obj"],
        "posix/ lists the object only"
    );
    let view = mnt.join("posix/view");
    let (meta, _) = within(ANSWER_LIMIT, "stat MNT/posix/view", move || {
        fs::metadata(view)
    });
    assert_errno(meta, libc::ENOENT, "stat posix/view (the mount point)");
    let root = mnt.clone();
    let (ls, _) = within(ANSWER_LIMIT, "ls MNT", move || {
        fs::read_dir(root).map(|d| d.count())
    });
    assert!(ls.expect("ls MNT") > 0);
    drop(daemon);
}
