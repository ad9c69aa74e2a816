//! Traps planted in the shm dir are never followed or exposed; a read-only open never gets
//! write access; a read-only mount refuses every change.
//!
//! The daemon runs as root, so anything it followed or opened carelessly would hand root's
//! reach to whoever asks through the mount: a symlink to /etc/shadow, a hard link to a root-only
//! file, a fifo that blocks whoever opens it, a directory that looks like an object.

mod common;

use std::collections::BTreeSet;
use std::ffi::{CString, OsStr, OsString};
use std::fs;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use common::*;

/// A user with no rights on anything the tests make.
const OTHER: u32 = 12345;
/// What the root-only file holds: must never come out of the mount to OTHER.
const SECRET: &[u8] = b"TOP SECRET: root only\n";

fn cpath(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap()
}

fn check(rc: i32) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// openat(dir, name, O_RDONLY): opens a file of a directory the caller holds open.
fn open_in(dir: &fs::File, name: &std::ffi::CStr) -> io::Result<fs::File> {
    // SAFETY: a valid directory descriptor and C string.
    let fd = unsafe { libc::openat(dir.as_raw_fd(), name.as_ptr(), libc::O_RDONLY) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just opened and is owned by the File.
    Ok(unsafe { fs::File::from_raw_fd(fd) })
}

/// Asserts that `r` failed because the object the caller's inode stood for is gone: ENOENT, or
/// ESTALE for a caller who holds the object's directory open (shmfs(5) FRESHNESS).
#[track_caller]
fn assert_gone<T: std::fmt::Debug>(r: io::Result<T>, what: &str) {
    match r {
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ESTALE)) => {}
        other => panic!("{what}: expected ENOENT or ESTALE, got {other:?}"),
    }
}

/// Every name in a directory, as bytes (names need not be UTF-8).
fn ls_raw(dir: &Path) -> BTreeSet<OsString> {
    fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("ls {}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name())
        .collect()
}

/// A root-only 0600 file in its own 0700 directory on the same tmpfs as the shm dir.
struct Secret {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

fn secret() -> Secret {
    let dir = tempfile::Builder::new()
        .prefix("shmfs-secret-")
        .tempdir_in("/dev/shm")
        .unwrap();
    let path = create_posix(dir.path(), "secret", 0o600, SECRET);
    Secret { _dir: dir, path }
}

/// Runs `f` on another thread and waits at most `limit` for it; None if it is still running
/// (the thread is then left behind, blocked, and the test fails on the None).
fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit).ok()
}

/// `ls -l MNT/posix` as a separate process; asserts it answers within a second.
#[track_caller]
fn assert_ls_answers_within_a_second(m: &Mount, when: &str) {
    let r = run_with_timeout(
        Command::new("ls").arg("-l").arg(m.p("posix")),
        Duration::from_secs(5),
    );
    assert!(r.ok(), "ls -l posix {when}: {r:?}");
    assert!(
        r.elapsed < Duration::from_secs(1),
        "ls -l posix took {:?} {when}",
        r.elapsed
    );
}

// ---------------------------------------------------------------------------------------------
// Planted entries that are not regular files
// ---------------------------------------------------------------------------------------------

#[test]
fn planted_non_regular_entries_never_appear_and_are_never_followed() {
    require_fuse!();
    let m = Mount::builder().option("allow_other").mount();
    let dir = m.shm_dir();
    fs::set_permissions(dir, fs::Permissions::from_mode(0o1777)).unwrap();
    let secret = secret();
    create_posix(dir, "real", 0o644, b"real object");

    use std::os::unix::fs::symlink;
    symlink("/etc/shadow", dir.join("shadow")).unwrap();
    symlink(&secret.path, dir.join("secret-link")).unwrap();
    symlink("real", dir.join("alias-of-real")).unwrap();
    symlink("/nonexistent/shmfs-dangling", dir.join("dangling")).unwrap();
    mkfifo(&dir.join("fifo"), 0o666);
    let _socket = std::os::unix::net::UnixListener::bind(dir.join("socket")).unwrap();
    // A directory dressed as an object.
    fs::create_dir(dir.join("fake-object")).unwrap();
    for f in ["data", "stat", "perm"] {
        fs::write(dir.join("fake-object").join(f), b"not an object").unwrap();
    }
    // A character device (the same as /dev/null).
    let dev = cpath(&dir.join("device"));
    // SAFETY: a valid C string.
    check(unsafe { libc::mknod(dev.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(1, 3)) })
        .expect("mknod");
    let shadow_before = fs::metadata("/etc/shadow").ok().map(|md| md.mode());
    let traps = [
        "shadow",
        "secret-link",
        "alias-of-real",
        "dangling",
        "fifo",
        "socket",
        "fake-object",
        "device",
    ];

    assert_eq!(
        ls_raw(&m.p("posix")),
        [OsString::from("real")].into(),
        "only regular files may appear under posix/"
    );
    for name in traps {
        for p in [
            m.posix_dir(name),
            m.posix(name, "data"),
            m.posix(name, "stat"),
            m.posix(name, "perm"),
            m.posix(name, "attached"),
        ] {
            assert_errno(
                fs::symlink_metadata(&p),
                libc::ENOENT,
                &format!("lookup of {}", p.display()),
            );
            assert_errno(
                fs::File::open(&p),
                libc::ENOENT,
                &format!("open of {}", p.display()),
            );
        }
        // Changes through a trap's name must not reach what it points to.
        assert_errno(
            fs::remove_dir(m.posix_dir(name)),
            libc::ENOENT,
            &format!("rmdir posix/{name}"),
        );
        assert_errno(
            fs::set_permissions(m.posix_dir(name), fs::Permissions::from_mode(0o777)),
            libc::ENOENT,
            &format!("chmod posix/{name}"),
        );
        assert_errno(
            fs::create_dir(m.posix_dir(name)),
            libc::EEXIST,
            &format!("mkdir posix/{name} over the planted entry"),
        );
        // Other users get no further.
        let r = sh_as(OTHER, &format!("cat {}", q(m.posix(name, "data"))));
        assert!(
            !r.ok() && r.stdout.is_empty() && r.stderr.contains("No such file"),
            "cat posix/{name}/data as uid {OTHER}: {r:?}"
        );
    }
    // Everything planted is still there, untouched.
    for name in traps {
        assert!(
            fs::symlink_metadata(dir.join(name)).is_ok(),
            "{name} was removed"
        );
    }
    assert!(!Path::new("/nonexistent/shmfs-dangling").exists());
    assert_eq!(
        fs::metadata("/etc/shadow").ok().map(|md| md.mode()),
        shadow_before,
        "/etc/shadow's mode changed"
    );
    assert_eq!(fs::read(&secret.path).unwrap(), SECRET);
    let md = fs::metadata(&secret.path).unwrap();
    assert_eq!((md.mode() & 0o7777, md.uid()), (0o600, 0));
    // The listing files are built from the same scan.
    let index = read_text(&m.p("index"));
    let posix_rows: Vec<&str> = index.lines().filter(|l| l.starts_with("posix")).collect();
    assert_eq!(posix_rows.len(), 1, "posix rows of index: {posix_rows:?}");
    assert!(posix_rows[0].split_whitespace().nth(1) == Some("real"));
}

/// An open that goes through FUSE to a fifo with no writer would block a worker forever: the
/// daemon must never open one, even when a regular object is replaced by a fifo between the
/// lookup and the open.
#[test]
fn fifo_never_blocks_the_daemon() {
    require_fuse!();
    let m = Mount::new();
    let dir = m.shm_dir().to_path_buf();
    mkfifo(&dir.join("fifo"), 0o666);
    create_posix(&dir, "swapped", 0o644, b"regular for now");

    // Opens of the fifo's name answer at once.
    let data = m.posix("fifo", "data");
    let r = within(Duration::from_secs(1), move || {
        fs::File::open(&data).map(drop)
    });
    match r {
        Some(r) => assert_errno(r, libc::ENOENT, "open posix/fifo/data"),
        None => panic!("open of posix/fifo/data did not return within a second"),
    }
    assert_ls_answers_within_a_second(&m, "with a fifo planted");

    // Look up the regular object, then put a fifo in its place and open its data through the
    // inode found before.
    let obj_dir = fs::File::open(m.posix_dir("swapped")).expect("open posix/swapped");
    fs::remove_file(dir.join("swapped")).unwrap();
    mkfifo(&dir.join("swapped"), 0o666);
    let r = within(Duration::from_secs(1), move || {
        open_in(&obj_dir, c"data").map(drop)
    });
    match r {
        Some(r) => assert_gone(r, "open data of an object replaced by a fifo"),
        None => panic!("open of data of an object replaced by a fifo did not return in 1 s"),
    }
    assert_ls_answers_within_a_second(&m, "after an object was replaced by a fifo");
    let r = run_with_timeout(
        Command::new("cat").arg(m.p("index")),
        Duration::from_secs(5),
    );
    assert!(
        r.ok() && r.elapsed < Duration::from_secs(1),
        "cat index: {r:?}"
    );
}

/// A hard link is a regular file and appears, but its data is guarded by its own mode: another
/// user reads it through the mount no more than directly.
#[test]
fn hard_link_to_root_only_file_is_not_readable_by_others() {
    require_fuse!();
    let m = Mount::builder().option("allow_other").mount();
    let dir = m.shm_dir();
    fs::set_permissions(dir, fs::Permissions::from_mode(0o1777)).unwrap();
    let secret = secret();
    let link = dir.join("innocent");
    fs::hard_link(&secret.path, &link).unwrap();
    let probe = Probe::build();
    let other = Ids {
        uid: OTHER,
        gid: OTHER,
        groups: &[],
        caps: None,
    };

    assert!(m.ls("posix").contains("innocent"));
    let stat = read_fields(&m.posix("innocent", "stat"));
    assert_eq!(
        (stat.get("mode"), stat.get("uid")),
        ("0600", "0"),
        "stat of the hard link"
    );
    let data = m.posix("innocent", "data").display().to_string();
    let direct = link.display().to_string();
    for (what, via_mount, directly) in [
        ("read data", vec!["read", &data], vec!["read", &direct]),
        ("write data", vec!["write", &data], vec!["write", &direct]),
        (
            "access(R_OK)",
            vec!["access", &data, "r"],
            vec!["access", &direct, "r"],
        ),
    ] {
        assert_eq!(
            (
                probe.run_as(other, &via_mount),
                probe.run_as(other, &directly)
            ),
            ("EACCES".to_string(), "EACCES".to_string()),
            "{what} of a root-only hard link as uid {OTHER}: through the mount, directly"
        );
    }
    let r = sh_as(OTHER, &format!("cat {}", q(m.posix("innocent", "data"))));
    assert!(
        !r.ok() && r.stdout.is_empty() && r.stderr.contains("Permission denied"),
        "cat of the hard link as uid {OTHER}: {r:?}"
    );
    for (what, via_mount, directly) in [
        (
            "chmod",
            probe.run_as(
                other,
                &[
                    "chmod",
                    &m.posix_dir("innocent").display().to_string(),
                    "644",
                ],
            ),
            probe.run_as(other, &["chmod", &direct, "644"]),
        ),
        (
            "remove",
            probe.run_as(
                other,
                &["rmdir", &m.posix_dir("innocent").display().to_string()],
            ),
            probe.run_as(other, &["unlink", &direct]),
        ),
    ] {
        assert_eq!(
            via_mount, directly,
            "{what} of the hard link as uid {OTHER}"
        );
        assert_ne!(via_mount, "ok", "{what} of the hard link as uid {OTHER}");
    }
    assert_eq!(fs::read(&secret.path).unwrap(), SECRET);
    assert_eq!(fs::metadata(&secret.path).unwrap().mode() & 0o7777, 0o600);
}

/// An object replaced, after its directory was looked up, by a symlink or a hard link to a
/// root-only file: the inode the caller holds no longer has a live object, and nothing is
/// followed, even for root.
#[test]
fn object_replaced_after_lookup_is_not_followed() {
    require_fuse!();
    let m = Mount::new();
    let dir = m.shm_dir().to_path_buf();
    let secret = secret();
    type Replace<'a> = Box<dyn Fn(&Path) + 'a>;
    let replacements: [(&str, Replace); 3] = [
        (
            "a symlink to a root-only file",
            Box::new(|p| std::os::unix::fs::symlink(&secret.path, p).unwrap()),
        ),
        (
            "a hard link to a root-only file",
            Box::new(|p| fs::hard_link(&secret.path, p).unwrap()),
        ),
        (
            "a new regular file",
            Box::new(|p| {
                create_posix(p.parent().unwrap(), "swap", 0o644, b"newcomer");
            }),
        ),
    ];
    for (what, replace) in replacements {
        create_posix(&dir, "swap", 0o644, b"original");
        let obj_dir = fs::File::open(m.posix_dir("swap")).unwrap();
        fs::remove_file(dir.join("swap")).unwrap();
        replace(&dir.join("swap"));
        for file in [c"data", c"stat", c"perm"] {
            let r = open_in(&obj_dir, file).map(|f| io::read_to_string(f).unwrap_or_default());
            assert_gone(r, &format!("open {file:?} of an object replaced by {what}"));
        }
        fs::remove_file(dir.join("swap")).unwrap();
    }
    assert_eq!(fs::read(&secret.path).unwrap(), SECRET);
}

// ---------------------------------------------------------------------------------------------
// Odd names
// ---------------------------------------------------------------------------------------------

/// Regular objects with names that break naive code: each is listed once, under its exact
/// bytes, and its data, stat and perm work.
#[test]
fn objects_with_odd_names_are_listed_and_work() {
    require_fuse!();
    let m = Mount::new();
    let dir = m.shm_dir().to_path_buf();
    let names: Vec<OsString> = [
        b"with space".to_vec(),
        b" leading and trailing ".to_vec(),
        b"new\nline".to_vec(),
        b"\nstarts-with-newline".to_vec(),
        b"tab\there".to_vec(),
        b"not-utf8-\xff\xfe\x80".to_vec(),
        b"-looks-like-an-option".to_vec(),
        b"glob*?[x]".to_vec(),
        b"quotes'\"\\".to_vec(),
        b"\xc3\xbcnicode-\xe2\x9c\x93".to_vec(),
        b".hidden".to_vec(),
        b"...".to_vec(),
        vec![b'n'; 255],
    ]
    .into_iter()
    .map(OsString::from_vec)
    .collect();
    for (i, name) in names.iter().enumerate() {
        let content = [name.as_bytes(), format!("#{i}").as_bytes()].concat();
        let p = dir.join(name);
        fs::write(&p, &content).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o640)).unwrap();
    }

    let listed = ls_raw(&m.p("posix"));
    let want: BTreeSet<OsString> = names.iter().cloned().collect();
    assert_eq!(listed, want, "posix/ lists exactly the planted names");

    for (i, name) in names.iter().enumerate() {
        let content = [name.as_bytes(), format!("#{i}").as_bytes()].concat();
        let shown = format!("{:?}", name);
        let data = m.posix_dir("").join(name).join("data");
        assert_eq!(fs::read(&data).unwrap(), content, "data of {shown}");
        assert_eq!(fs::metadata(&data).unwrap().len(), content.len() as u64);
        let stat = read_fields(&m.posix_dir("").join(name).join("stat"));
        assert_eq!(
            stat.names(),
            [
                "kind", "name", "size", "mode", "uid", "gid", "atime", "mtime", "ctime", "rss"
            ],
            "stat of {shown} keeps one field per line"
        );
        assert_eq!(
            stat.get("name"),
            name.to_string_lossy().escape_debug().to_string(),
            "name in the stat of {shown}"
        );
        assert_eq!(stat.num("size"), content.len() as u64);
        let perm = m.posix_dir("").join(name).join("perm");
        assert_eq!(read_text(&perm), "mode: 0640\nuid: 0\ngid: 0\n");
        write_once(&perm, b"600").unwrap_or_else(|e| panic!("write perm of {shown}: {e}"));
        assert_eq!(
            fs::metadata(dir.join(name)).unwrap().mode() & 0o777,
            0o600,
            "mode of {shown} after writing its perm"
        );
    }

    // The index shows each on one line; index.json is valid JSON with one entry each.
    let index = read_text(&m.p("index"));
    let rows = index.lines().filter(|l| l.starts_with("posix ")).count();
    assert_eq!(rows, names.len(), "posix rows of index:\n{index}");
    let json: serde_json::Value =
        serde_json::from_slice(&fs::read(m.p("index.json")).unwrap()).expect("index.json is JSON");
    let entries = json
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "posix")
        .count();
    assert_eq!(entries, names.len());

    // One byte longer than any name can be: the kernel refuses it before shmfs sees it.
    let too_long = m.posix_dir(&"n".repeat(256));
    assert_errno(
        fs::symlink_metadata(&too_long),
        libc::ENAMETOOLONG,
        "lookup of a 256-byte name",
    );
    // A name that is a prefix of a real one, or one with a slash's escape, is not found.
    assert_errno(
        fs::symlink_metadata(m.posix_dir(&"n".repeat(254))),
        libc::ENOENT,
        "lookup of a 254-byte prefix",
    );
    assert_errno(
        fs::symlink_metadata(m.posix_dir("new")),
        libc::ENOENT,
        "lookup of the part before a newline",
    );
}

/// `mkdir` through the mount with the same odd names creates exactly those names.
#[test]
fn mkdir_with_odd_names_creates_exactly_that_name() {
    require_fuse!();
    let m = Mount::new();
    for name in [
        OsStr::from_bytes(b"made with space"),
        OsStr::from_bytes(b"made\nnewline"),
        OsStr::from_bytes(b"made-\xff"),
        OsStr::from_bytes(&[b'm'; 255]),
    ] {
        fs::create_dir(m.posix_dir("").join(name))
            .unwrap_or_else(|e| panic!("mkdir posix/{name:?}: {e}"));
        assert!(
            m.shm_dir().join(name).is_file(),
            "{name:?} not created as a regular file in the shm dir"
        );
        fs::remove_dir(m.posix_dir("").join(name)).unwrap();
        assert!(fs::symlink_metadata(m.shm_dir().join(name)).is_err());
    }
}

// ---------------------------------------------------------------------------------------------
// Read-only opens
// ---------------------------------------------------------------------------------------------

/// How the daemon holds a SysV segment: the access modes of its descriptors on the segment's
/// memory file (named `/SYSV<key>`, with the shmid as inode), and whether each of its mappings
/// of the segment is writable.
fn daemon_hold_on(pid: u32, seg: &SysvSeg) -> (Vec<i32>, Vec<bool>) {
    let name = format!("/SYSV{:08x}", seg.key as u32);
    let mut fd_modes = Vec::new();
    for entry in fs::read_dir(format!("/proc/{pid}/fd")).unwrap().flatten() {
        let Ok(link) = fs::read_link(entry.path()) else {
            continue;
        };
        let same_ino = fs::metadata(entry.path()).is_ok_and(|md| md.ino() == seg.id as u64);
        if !link.to_string_lossy().starts_with(&name) || !same_ino {
            continue;
        }
        let info =
            fs::read_to_string(Path::new(&format!("/proc/{pid}/fdinfo")).join(entry.file_name()))
                .unwrap_or_default();
        let flags = info
            .lines()
            .find_map(|l| l.strip_prefix("flags:"))
            .and_then(|f| i32::from_str_radix(f.trim(), 8).ok())
            .expect("flags in fdinfo");
        fd_modes.push(flags & libc::O_ACCMODE);
    }
    let maps = fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    let mappings = maps
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<&str>>())
        .filter(|f| f.len() >= 6 && f[5].starts_with(&name) && f[4] == seg.id.to_string())
        .map(|f| f[1].contains('w'))
        .collect();
    (fd_modes, mappings)
}

#[test]
fn read_only_open_of_sysv_data_never_holds_write_access() {
    require_fuse!();
    let m = Mount::new();
    let seg = SysvSeg::keyed(8192, 0o666);
    seg.attach().write(0, b"bytes");
    let pid = m.pid();

    let reader = fs::File::open(m.sysv(seg.id, "data")).unwrap();
    let mut buf = [0u8; 5];
    std::os::unix::fs::FileExt::read_exact_at(&reader, &mut buf, 0).unwrap();
    assert_eq!(&buf, b"bytes");
    let (fd_modes, mappings) = daemon_hold_on(pid, &seg);
    assert!(
        !fd_modes.is_empty() || !mappings.is_empty(),
        "the daemon holds the open segment neither by descriptor nor by mapping"
    );
    assert!(
        fd_modes.iter().all(|&a| a == libc::O_RDONLY) && !mappings.contains(&true),
        "a read-only open left the daemon with descriptors of access modes {fd_modes:?} \
         (0 = O_RDONLY) and mappings writable: {mappings:?}"
    );
    let attached = read_text(&m.sysv(seg.id, "attached"));
    assert!(
        !attached
            .lines()
            .any(|l| l.contains(&pid.to_string()) && l.contains("rw")),
        "attached shows the daemon with write access: {attached:?}"
    );
    assert_eq!(seg.stat().shm_nattch, 0, "the daemon keeps no attachment");

    // The check can see write access: a writable open does hold it.
    let writer = fs::OpenOptions::new()
        .write(true)
        .open(m.sysv(seg.id, "data"))
        .unwrap();
    let (fd_modes, mappings) = daemon_hold_on(pid, &seg);
    assert!(
        fd_modes.contains(&libc::O_RDWR) || mappings.contains(&true),
        "a writable open should show as such: {fd_modes:?}, {mappings:?}"
    );
    drop(writer);
    drop(reader);
}

/// For a caller whom the kernel allows only reading, a read-only open works and a writable one
/// is refused, as a read-only and a read-write shmat are.
#[test]
fn read_only_segment_opens_read_only_and_refuses_write() {
    require_fuse!();
    let m = Mount::builder().option("allow_other").mount();
    let probe = Probe::build();
    let seg = SysvSeg::private(4096, 0o444);
    seg.attach().write(0, b"ro");
    let other = Ids {
        uid: OTHER,
        gid: OTHER,
        groups: &[],
        caps: None,
    };
    let data = m.sysv(seg.id, "data").display().to_string();
    let id = seg.id.to_string();
    assert_eq!(probe.run_as(other, &["read", &data]), "ok");
    assert_eq!(probe.run_as(other, &["shm-read", &id]), "ok");
    assert_eq!(probe.run_as(other, &["write", &data]), "EACCES");
    assert_eq!(probe.run_as(other, &["shm-attach", &id]), "EACCES");
    let r = sh_as(OTHER, &format!("head -c 2 {}", q(m.sysv(seg.id, "data"))));
    assert!(
        r.ok() && r.stdout == b"ro",
        "head -c 2 data as uid {OTHER}: {r:?}"
    );
    assert_eq!(seg.attach().read(0, 2), b"ro");
}

#[test]
fn read_only_open_of_posix_data_never_holds_write_access() {
    require_fuse!();
    let m = Mount::new();
    let p = create_posix(m.shm_dir(), "obj", 0o666, b"contents");
    let ino = fs::metadata(&p).unwrap().ino();
    let pid = m.pid();
    let _reader = fs::File::open(m.posix("obj", "data")).unwrap();
    let mut modes = Vec::new();
    for entry in fs::read_dir(format!("/proc/{pid}/fd")).unwrap().flatten() {
        if !fs::metadata(entry.path()).is_ok_and(|md| md.ino() == ino && md.is_file()) {
            continue;
        }
        let info =
            fs::read_to_string(Path::new(&format!("/proc/{pid}/fdinfo")).join(entry.file_name()))
                .unwrap_or_default();
        let flags = info
            .lines()
            .find_map(|l| l.strip_prefix("flags:"))
            .and_then(|f| i32::from_str_radix(f.trim(), 8).ok())
            .unwrap_or(-1);
        modes.push(flags & libc::O_ACCMODE);
    }
    assert!(
        !modes.is_empty(),
        "the daemon holds no descriptor on the open object"
    );
    assert!(
        modes.iter().all(|&a| a == libc::O_RDONLY),
        "a read-only open left the daemon with access modes {modes:?} (0 = O_RDONLY)"
    );
}

// ---------------------------------------------------------------------------------------------
// -o ro
// ---------------------------------------------------------------------------------------------

/// Every change through a read-only mount fails with EROFS, for root and for the owner, and
/// nothing changes.
#[test]
fn read_only_mount_refuses_every_change_with_erofs() {
    require_fuse!();
    let m = Mount::builder().option("ro").option("allow_other").mount();
    let dir = m.shm_dir().to_path_buf();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o1777)).unwrap();
    let seg = SysvSeg::private(4096, 0o666);
    seg.set(None, Some(OTHER), Some(OTHER));
    let att = seg.attach();
    att.write(0, b"segment");
    let obj = create_posix(&dir, "obj", 0o666, b"object");
    std::os::unix::fs::chown(&obj, Some(OTHER), Some(OTHER)).unwrap();
    let probe = Probe::build();

    let sysv_state = || {
        let ds = seg.stat();
        (
            ds.shm_perm.mode & 0o777,
            ds.shm_perm.uid,
            ds.shm_perm.gid,
            att.read(0, 7),
        )
    };
    let posix_state = || {
        let md = fs::metadata(&obj).unwrap();
        (
            md.mode() & 0o7777,
            md.uid(),
            md.gid(),
            fs::read(&obj).unwrap(),
        )
    };
    let (sysv_before, posix_before) = (sysv_state(), posix_state());
    let shm_before = ls_raw(&dir);

    let s = |p: PathBuf| p.display().to_string();
    let sdir = s(m.sysv_dir(seg.id));
    let sdata = s(m.sysv(seg.id, "data"));
    let sperm = s(m.sysv(seg.id, "perm"));
    let pdir = s(m.posix_dir("obj"));
    let pdata = s(m.posix("obj", "data"));
    let pperm = s(m.posix("obj", "perm"));
    let new_obj = s(m.posix_dir("new"));
    let cases: Vec<Vec<&str>> = vec![
        vec!["write", &sdata],
        vec!["write", &pdata],
        vec!["write-text", &sperm, "600"],
        vec!["write-text", &pperm, "600"],
        vec!["write-text", &sperm, "uid: 0"],
        vec!["chmod", &sdir, "600"],
        vec!["chmod", &sdata, "600"],
        vec!["chmod", &pdir, "600"],
        vec!["chmod", &pdata, "600"],
        vec!["chown", &sdir, "4001", "-1"],
        vec!["chown", &pdir, "-1", "4001"],
        vec!["chown", &sdata, "12345", "12345"],
        vec!["truncate", &sdata, "0"],
        vec!["truncate", &pdata, "0"],
        vec!["truncate", &pdata, "100"],
        vec!["rmdir", &sdir],
        vec!["rmdir", &pdir],
        vec!["unlink", &pdata],
    ];
    let root = Ids {
        uid: 0,
        gid: 0,
        groups: &[],
        caps: None,
    };
    let owner = Ids {
        uid: OTHER,
        gid: OTHER,
        groups: &[],
        caps: None,
    };
    let mut wrong = Vec::new();
    for who in [root, owner] {
        for case in &cases {
            let answer = probe.run_as(who, case);
            if answer != "EROFS" {
                wrong.push(format!("{case:?} as {who:?}: {answer}"));
            }
        }
    }
    // Creating anything anywhere.
    let tries: Vec<(&str, io::Result<()>)> = vec![
        ("mkdir posix/new", fs::create_dir(&new_obj)),
        ("mkdir sysv/1", fs::create_dir(m.p("sysv/1"))),
        (
            "create posix/obj/x",
            fs::File::create(m.posix("obj", "x")).map(drop),
        ),
        (
            "symlink posix/link",
            std::os::unix::fs::symlink("obj", m.p("posix/link")),
        ),
        (
            "link posix/obj/data posix/obj/copy",
            fs::hard_link(m.posix("obj", "data"), m.posix("obj", "copy")),
        ),
        (
            "rename posix/obj posix/moved",
            fs::rename(m.posix_dir("obj"), m.p("posix/moved")),
        ),
        (
            "touch posix/obj/data",
            fs::File::open(m.posix("obj", "data")).and_then(|f| {
                f.set_times(fs::FileTimes::new().set_modified(std::time::SystemTime::now()))
            }),
        ),
    ];
    for (what, r) in tries {
        match r {
            Err(e) if e.raw_os_error() == Some(libc::EROFS) => {}
            other => wrong.push(format!("{what} as root: {other:?}")),
        }
    }
    let fifo = cpath(&m.p("posix/fifo"));
    // SAFETY: a valid C string.
    if let Err(e) = check(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }) {
        if e.raw_os_error() != Some(libc::EROFS) {
            wrong.push(format!("mkfifo posix/fifo as root: {e}"));
        }
    } else {
        wrong.push("mkfifo posix/fifo as root succeeded".into());
    }
    assert!(
        wrong.is_empty(),
        "changes through a read-only mount that did not fail with EROFS:\n  {}",
        wrong.join("\n  ")
    );
    assert_eq!(sysv_state(), sysv_before, "the segment changed");
    assert_eq!(posix_state(), posix_before, "the object changed");
    assert_eq!(ls_raw(&dir), shm_before, "the shm dir changed");
    // Reading still works.
    assert_eq!(&fs::read(m.sysv(seg.id, "data")).unwrap()[..7], b"segment");
    assert_eq!(fs::read(m.posix("obj", "data")).unwrap(), b"object");
}
