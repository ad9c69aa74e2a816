//! POSIX message queues as `mqueue/NAME/` (issue 24): `stat` shows mode, owner, maxmsg,
//! msgsize, curmsgs and times as `mq_getattr` and `fstat` of the queue give them, and reading
//! it (or anything else of the mount) moves none of the queue's times nor takes its message;
//! `perm` changes its mode; `rmdir` is `mq_unlink` for whom the kernel lets unlink it (owner
//! or root; another user is refused as in a sticky directory); a daemon given `--pid` of a
//! process in another IPC namespace shows that namespace's queues and not its own.
//!
//! Needs root, /dev/fuse, util-linux (`setpriv`, `unshare`, `nsenter`) and `cc` (for `ipcq`,
//! tests/common/c/ipcq.c); without them skipped, or failed when `CI` is set. Queues are named
//! `shmfs-t-XXXX` by the test and unlinked even when it fails.

mod common;

use std::fs;
use std::path::PathBuf;
use std::time::Duration;

use common::msg::*;
use common::*;

const OWNER: u32 = 54321;
const OTHER: u32 = 54322;

fn mount() -> Mount {
    Mount::builder().option("allow_other").mount()
}

/// `MNT/mqueue/NAME/<rel>` (`rel` may be empty).
fn mp(m: &Mount, name: &str, rel: &str) -> PathBuf {
    let d = m.p("mqueue").join(name);
    if rel.is_empty() { d } else { d.join(rel) }
}

macro_rules! require_mq_tools {
    () => {
        require_tools!(
            "setpriv" => "Debian package util-linux",
            "cc" => "Debian package gcc",
        );
    };
}

/// Asserts that a shell command failed with one of `errnos` (as `strerror` says it).
#[track_caller]
fn assert_failed_with(r: &Run, errnos: &[i32], what: &str) {
    let said = |e: i32| {
        std::io::Error::from_raw_os_error(e)
            .to_string()
            .split(" (os error")
            .next()
            .unwrap()
            .to_string()
    };
    let names: Vec<String> = errnos.iter().map(|e| errno_name(*e)).collect();
    assert!(
        !r.ok() && errnos.iter().any(|e| r.stderr.contains(&said(*e))),
        "{what}: expected {}, got {r:?}",
        names.join(" or ")
    );
}

#[test]
fn stat_shows_the_attributes_and_looking_changes_nothing() {
    require_fuse!();
    require_mq_tools!();
    let m = mount();
    let mq = PosixMq::create(0o640, 5, 64);
    mq.send(b"the one message", 3);
    // Any touch now would show in the times (nanoseconds, but the clock is coarse).
    std::thread::sleep(Duration::from_millis(50));
    let before = mq.times();
    let st = mq.fstat();
    let name = mq.name.clone();

    assert!(
        m.ls("mqueue").contains(&name),
        "ls mqueue/ lacks {name}: {:?}",
        m.ls("mqueue")
    );
    let stat = read_fields(&mp(&m, &name, "stat"));
    assert_eq!(
        stat.names(),
        [
            "kind", "name", "mode", "uid", "gid", "maxmsg", "msgsize", "curmsgs", "atime", "mtime",
            "ctime"
        ],
        "the fields of mqueue/{name}/stat"
    );
    assert_eq!(stat.get("kind"), "mqueue");
    assert_eq!(stat.get("name"), name);
    assert_eq!(stat.get("mode"), "0640");
    assert_eq!((stat.num("uid"), stat.num("gid")), (0, 0));
    assert_eq!(
        (stat.num("maxmsg"), stat.num("msgsize"), stat.num("curmsgs")),
        (5, 64, 1),
        "mqueue/{name}/stat: {:?}",
        stat
    );
    assert_eq!(stat.get("atime"), st.st_atime.to_string(), "atime as fstat");
    assert_eq!(stat.get("mtime"), st.st_mtime.to_string(), "mtime as fstat");
    assert_eq!(stat.get("ctime"), st.st_ctime.to_string(), "ctime as fstat");
    let perm = read_fields(&mp(&m, &name, "perm"));
    assert_eq!(perm.names(), ["mode", "uid", "gid"], "mqueue/{name}/perm");
    assert_eq!(perm.get("mode"), "0640");

    // Read everything, several times, as root and as someone else.
    let dir = mp(&m, &name, "");
    for _ in 0..3 {
        read_text(&dir.join("stat"));
        read_text(&dir.join("perm"));
        fs::metadata(&dir).unwrap();
        for script in [
            format!("ls -l {} {}", q(m.p("mqueue")), q(&dir)),
            format!("stat {}/*", q(&dir)),
        ] {
            sh_ok(&script);
        }
        for report in ["index", "index.json", "limits", "metrics.prom"] {
            read_text(&m.p(report));
        }
        let r = sh_as(OTHER, &format!("cat {}/stat; ls -l {}", q(&dir), q(&dir)));
        assert!(r.ok(), "uid {OTHER} reading mqueue/{name}: {r:?}");
    }
    assert_eq!(
        mq.times(),
        before,
        "(atime, mtime, ctime) of fstat of the queue after reading mqueue/{name}"
    );
    assert_eq!(mq.attr(), (5, 64, 1), "mq_getattr after reading");
    assert_eq!(
        mq.receive().unwrap(),
        b"the one message",
        "the message is still there"
    );
    assert_eq!(read_fields(&mp(&m, &name, "stat")).num("curmsgs"), 0);
}

/// `printf 'TEXT\n' | dd of=PERM` as `uid` (dd says the errno of a refused write).
fn write_perm_as(uid: u32, perm: &std::path::Path, text: &str) -> Run {
    sh_as(
        uid,
        &format!(
            "printf '{text}\\n' | dd of={} conv=notrunc status=none",
            q(perm)
        ),
    )
}

#[test]
fn perm_write_changes_the_mode() {
    require_fuse!();
    require_mq_tools!();
    let m = mount();
    let mq = PosixMq::create(0o640, 4, 32);
    let perm = mp(&m, &mq.name, "perm");
    write_once(&perm, b"mode: 0600\n").expect("root writes mode: 0600 to perm");
    assert_eq!(
        mq.fstat().st_mode & 0o7777,
        0o600,
        "the queue's mode (fstat)"
    );
    assert_eq!(read_fields(&mp(&m, &mq.name, "stat")).get("mode"), "0600");
    assert_eq!(read_fields(&perm).get("mode"), "0600");

    // Another user may not; the owner may.
    let r = write_perm_as(OTHER, &perm, "mode: 0666");
    assert_failed_with(&r, &[libc::EPERM], "another user's mode: 0666");
    assert_eq!(mq.fstat().st_mode & 0o7777, 0o600);
    let r = unsafe { libc::fchown(mq.fd, OWNER, OWNER) };
    assert_eq!(r, 0, "fchown of the queue");
    let r = write_perm_as(OWNER, &perm, "mode: 0604");
    assert!(r.ok(), "the owner's mode: 0604: {r:?}");
    assert_eq!(mq.fstat().st_mode & 0o7777, 0o604);
    let stat = read_fields(&mp(&m, &mq.name, "stat"));
    assert_eq!(
        (stat.get("mode"), stat.num("uid"), stat.num("gid")),
        ("0604", u64::from(OWNER), u64::from(OWNER))
    );
}

#[test]
fn rmdir_is_mq_unlink_for_whom_the_kernel_allows() {
    require_fuse!();
    require_mq_tools!();
    let m = mount();
    let mut mq = PosixMq::create(0o666, 4, 32);
    let r = unsafe { libc::fchown(mq.fd, OWNER, OWNER) };
    assert_eq!(r, 0, "fchown of the queue");
    let name = mq.name.clone();
    let dir = mp(&m, &name, "");

    // Someone else: refused, as unlink in the sticky mqueue root is.
    let r = sh_as(OTHER, &format!("rmdir {}", q(&dir)));
    assert_failed_with(
        &r,
        &[libc::EPERM, libc::EACCES],
        "rmdir mqueue/NAME by another user",
    );
    mq_exists(&name).expect("the queue is still there after another user's rmdir");
    assert!(m.ls("mqueue").contains(&name));

    // Its owner: mq_unlink.
    let r = sh_as(OWNER, &format!("rmdir {}", q(&dir)));
    assert!(r.ok(), "rmdir mqueue/NAME by its owner: {r:?}");
    mq.forget();
    assert_errno(
        mq_exists(&name),
        libc::ENOENT,
        "mq_open without O_CREAT after rmdir",
    );
    assert!(!m.ls("mqueue").contains(&name), "ls mqueue/ after rmdir");
    assert_errno(
        fs::metadata(&dir),
        libc::ENOENT,
        "stat mqueue/NAME after rmdir",
    );

    // Root removes anyone's.
    let mut other = PosixMq::create(0o600, 2, 16);
    let r = unsafe { libc::fchown(other.fd, OWNER, OWNER) };
    assert_eq!(r, 0);
    fs::remove_dir(mp(&m, &other.name, "")).expect("root's rmdir of OWNER's queue");
    other.forget();
    assert_errno(mq_exists(&other.name), libc::ENOENT, "after root's rmdir");
}

#[test]
fn a_daemon_for_another_ipc_namespace_shows_its_queues() {
    require_fuse!();
    require_mq_tools!();
    require_tools!(
        "unshare" => "Debian package util-linux",
        "nsenter" => "Debian package util-linux",
    );
    let host = PosixMq::create(0o600, 3, 16);
    let world = World::new();
    let inner = unique_mq_name();
    let r = run_with_timeout(
        world.command(ipcq_bin().to_str().unwrap()).args([
            "mqmk",
            &format!("/{inner}"),
            "0640",
            "4",
            "32",
            "inside",
        ]),
        COMMAND_TIMEOUT,
    );
    assert!(
        r.ok() && r.stdout_str().trim() == "made",
        "ipcq mqmk in the world: {r:?}"
    );
    assert_errno(
        mq_exists(&inner),
        libc::ENOENT,
        "the world's queue is not the host's",
    );

    let m = Mount::with_args(&[], &["--pid".into(), world.pid().to_string()], false);
    let listed = m.ls("mqueue");
    assert!(
        listed.contains(&inner) && !listed.contains(&host.name),
        "`ls mqueue/` of a daemon with --pid of the world: {listed:?} \
         (want {inner}, not the host's {})",
        host.name
    );
    let stat = read_fields(&mp(&m, &inner, "stat"));
    assert_eq!(
        (stat.num("maxmsg"), stat.num("msgsize"), stat.num("curmsgs")),
        (4, 32, 1),
        "mqueue/{inner}/stat: {stat:?}"
    );
    assert_eq!(stat.get("mode"), "0640");
    assert_errno(
        fs::metadata(mp(&m, &host.name, "")),
        libc::ENOENT,
        "the host's queue through the world's mount",
    );

    // And the host's own daemon shows the host's, not the world's.
    let own = mount();
    let listed = own.ls("mqueue");
    assert!(
        listed.contains(&host.name) && !listed.contains(&inner),
        "`ls mqueue/` of the host's daemon: {listed:?}"
    );

    // rmdir through the world's mount unlinks it there.
    fs::remove_dir(mp(&m, &inner, "")).expect("rmdir of the world's queue");
    let r = run_with_timeout(
        world
            .command(ipcq_bin().to_str().unwrap())
            .args(["mqunlink", &format!("/{inner}")]),
        COMMAND_TIMEOUT,
    );
    assert!(
        !r.ok() && r.stdout_str().trim() == format!("error {}", libc::ENOENT),
        "mq_unlink in the world after rmdir: {r:?}"
    );
}
