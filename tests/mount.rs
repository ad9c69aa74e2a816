//! Mount lifecycle: foreground and background start, clean stop on signals, start errors,
//! read-only mounts.

mod common;

use std::fs;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

#[test]
fn mount_shows_the_top_level_entries() {
    require_fuse!();
    let m = Mount::new();
    assert_has_entries(m.path(), &["by-key", "limits", "posix", "sysv"]);
    assert!(is_listed_in_mountinfo(m.path()), "mount not in mountinfo");
}

fn assert_signal_unmounts(sig: i32, name: &str) {
    let mut m = Mount::new();
    let path = m.path().to_path_buf();
    let start = Instant::now();
    let status = m.signal_and_wait(sig);
    let status = status
        .unwrap_or_else(|| panic!("shmfs -f did not exit within {MOUNT_TIMEOUT:?} of {name}"));
    assert_eq!(
        status.code(),
        Some(0),
        "shmfs -f should exit 0 on {name}, exited with {status} after {:?}; log:\n{}",
        start.elapsed(),
        m.log()
    );
    assert!(
        !is_listed_in_mountinfo(&path),
        "after {name} and exit, {} is still mounted",
        path.display()
    );
    assert!(
        !st_dev_differs_from_parent(&path),
        "after {name}, the mount point still shows another filesystem"
    );
}

#[test]
fn sigterm_unmounts_and_exits_zero() {
    require_fuse!();
    assert_signal_unmounts(libc::SIGTERM, "SIGTERM");
}

#[test]
fn sigint_unmounts_and_exits_zero() {
    require_fuse!();
    assert_signal_unmounts(libc::SIGINT, "SIGINT");
}

/// Cleans up after a background daemon whatever happens in the test.
struct BackgroundGuard {
    mnt: PathBuf,
}

impl Drop for BackgroundGuard {
    fn drop(&mut self) {
        force_unmount(&self.mnt);
        for pid in pids_with_arg(&self.mnt) {
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}

#[test]
fn background_mode_returns_zero_with_mount_up_and_umount_stops_daemon() {
    require_fuse!();
    let mnt_dir = tempfile::Builder::new()
        .prefix("shmfs-mnt-")
        .tempdir()
        .unwrap();
    let shm = tempfile::Builder::new()
        .prefix("shmfs-test-")
        .tempdir_in("/dev/shm")
        .unwrap();
    let mnt = mnt_dir.path().to_path_buf();
    let guard = BackgroundGuard { mnt: mnt.clone() };

    let r = run_with_timeout(
        Command::new(BIN).arg("--shm-dir").arg(shm.path()).arg(&mnt),
        Duration::from_secs(15),
    );
    assert!(r.ok(), "`shmfs MNT` (background) should exit 0: {r:?}");
    // "goes to the background once the mount is ready": usable the moment the parent returns.
    assert!(
        st_dev_differs_from_parent(&mnt),
        "`shmfs MNT` returned but MNT is not mounted yet"
    );
    let names = ls(&mnt);
    assert!(
        names.contains("sysv") && names.contains("posix"),
        "ls MNT right after start: {names:?}"
    );

    let daemons = pids_with_arg(&mnt);
    assert_eq!(
        daemons.len(),
        1,
        "expected exactly one background shmfs process for {}, found {daemons:?}",
        mnt.display()
    );
    let pid = daemons[0];

    let r = run_with_timeout(Command::new("umount").arg(&mnt), COMMAND_TIMEOUT);
    assert!(r.ok(), "umount MNT failed: {r:?}");
    let start = Instant::now();
    while !is_zombie(pid) {
        assert!(
            start.elapsed() < MOUNT_TIMEOUT,
            "background shmfs (pid {pid}) still running {MOUNT_TIMEOUT:?} after umount"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(guard);
}

/// Runs shmfs (with `-f` or not) expecting it to refuse to start: non-zero exit, exactly one
/// line on stderr, quickly.
fn assert_start_fails(mountpoint: &Path, foreground: bool, why: &str) {
    let shm = tempfile::Builder::new()
        .prefix("shmfs-test-")
        .tempdir_in("/dev/shm")
        .unwrap();
    let mut cmd = Command::new(BIN);
    if foreground {
        cmd.arg("-f");
    }
    cmd.arg("--shm-dir").arg(shm.path()).arg(mountpoint);
    let mode = if foreground { "shmfs -f" } else { "shmfs" };
    let r = run_with_timeout(&mut cmd, Duration::from_secs(15));
    assert!(
        !r.ok() && r.status.code().is_some(),
        "`{mode} MNT` with {why} should exit non-zero: {r:?}"
    );
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert!(
        lines.len() == 1 && !lines[0].trim().is_empty(),
        "`{mode} MNT` with {why} should print exactly one line on stderr, printed {:?}",
        r.stderr
    );
    assert!(
        r.elapsed < Duration::from_secs(5),
        "`{mode} MNT` with {why} took {:?} to fail",
        r.elapsed
    );
}

#[test]
fn start_fails_when_mount_point_is_missing() {
    require_fuse!();
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("does-not-exist");
    assert_start_fails(&missing, true, "a missing mount point");
    assert_start_fails(&missing, false, "a missing mount point");
    assert!(!missing.exists(), "shmfs created the missing mount point");
}

#[test]
fn start_fails_when_mount_point_is_a_file() {
    require_fuse!();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    fs::write(&file, b"x").unwrap();
    let _guard = BackgroundGuard { mnt: file.clone() };
    assert_start_fails(&file, true, "a regular file as mount point");
    assert_start_fails(&file, false, "a regular file as mount point");
    assert!(!is_listed_in_mountinfo(&file));
}

#[test]
fn start_fails_when_already_mounted() {
    require_fuse!();
    let m = Mount::new();
    let first = m.pid();
    assert_start_fails(m.path(), true, "an already mounted mount point");
    assert_start_fails(m.path(), false, "an already mounted mount point");
    let daemons = pids_with_arg(m.path());
    assert_eq!(
        daemons,
        vec![first as i32],
        "only the first shmfs should be running on the mount point"
    );
    assert!(
        m.ls("").contains("sysv"),
        "the first mount no longer works after the refused second start"
    );
}

#[test]
fn start_fails_without_permission() {
    require_fuse!();
    // A plain user may not open /dev/fuse here (and there is no fusermount3 route).
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::chown(&mnt, Some(12345), Some(12345)).unwrap();
    let _guard = BackgroundGuard { mnt: mnt.clone() };
    for fg in [true, false] {
        let flag = if fg { "-f " } else { "" };
        let r = sh_as(12345, &format!("exec {} {flag}{}", q(BIN), q(&mnt)));
        assert!(
            !r.ok(),
            "`shmfs {flag}MNT` as uid 12345 should fail to mount: {r:?}"
        );
        let lines: Vec<&str> = r.stderr.lines().collect();
        assert!(
            lines.len() == 1 && !lines[0].trim().is_empty(),
            "`shmfs {flag}MNT` as uid 12345 should print one line on stderr, printed {:?}",
            r.stderr
        );
        assert!(r.elapsed < Duration::from_secs(5), "took {:?}", r.elapsed);
        assert!(!is_listed_in_mountinfo(&mnt));
    }
}

#[test]
fn failed_background_start_leaves_no_process() {
    // A failing start in background mode must not leave a forked child behind.
    require_fuse!();
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let r = run_with_timeout(Command::new(BIN).arg(&missing), Duration::from_secs(15));
    assert!(!r.ok(), "shmfs on a missing mount point succeeded: {r:?}");
    assert!(
        pids_with_arg(&missing).is_empty(),
        "a shmfs process for the missing mount point is still running"
    );
}

#[test]
fn read_only_mount_refuses_writes_with_erofs() {
    require_fuse!();
    let m = Mount::builder().option("ro").mount();
    let seg = SysvSeg::private(4096, 0o600);
    let att = seg.attach();
    att.write(0, b"original");
    let obj = "ro-object";
    create_posix(m.shm_dir(), obj, 0o600, b"posix original");

    // Reading still works.
    let data = fs::read(m.sysv(seg.id, "data")).expect("read data on a ro mount");
    assert_eq!(&data[..8], b"original");
    read_fields(&m.sysv(seg.id, "stat"));

    let open_rw = |p: &Path| fs::OpenOptions::new().write(true).open(p);
    assert_errno(
        open_rw(&m.sysv(seg.id, "data")),
        libc::EROFS,
        "open sysv data for writing on a ro mount",
    );
    assert_errno(
        open_rw(&m.sysv(seg.id, "perm")),
        libc::EROFS,
        "open sysv perm for writing on a ro mount",
    );
    assert_errno(
        open_rw(&m.posix(obj, "data")),
        libc::EROFS,
        "open posix data for writing on a ro mount",
    );
    assert_errno(
        open_rw(&m.posix(obj, "perm")),
        libc::EROFS,
        "open posix perm for writing on a ro mount",
    );
    let r = sh(&format!("chmod 644 {}", q(m.sysv_dir(seg.id))));
    assert!(
        !r.ok() && r.stderr.contains("Read-only file system"),
        "chmod on a ro mount: {r:?}"
    );
    let r = sh(&format!("echo 644 > {}", q(m.sysv(seg.id, "perm"))));
    assert!(
        !r.ok() && r.stderr.contains("Read-only file system"),
        "echo 644 > perm on a ro mount: {r:?}"
    );

    assert_eq!(seg.mode(), 0o600, "segment mode changed on a ro mount");
    assert_eq!(att.read(0, 8), b"original");
    let f = fs::File::open(m.posix(obj, "data")).unwrap();
    let mut buf = [0u8; 14];
    f.read_exact_at(&mut buf, 0).unwrap();
    assert_eq!(&buf, b"posix original");
}
