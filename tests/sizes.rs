//! Every generated file reports its real length: what `ls -l` and `stat` show as the size of
//! `index`, `index.json`, `limits`, `metrics.prom`, `stat`, `perm` and a SysV `attached` is the number of bytes
//! a read of it gives, for each reader, so that tools that copy as many bytes as the size says
//! (a file manager's copy, `tar`) get all of it. A POSIX `attached` is the documented exception:
//! size 0, read to its end.

mod common;

use std::fs;

use common::*;

/// Two ordinary users: ALICE holds, BOB only looks.
const ALICE: u32 = 2111;
const BOB: u32 = 2112;

/// The size `stat -c %s` shows to uid `id`, then the bytes `cat` gives to the same uid.
fn size_and_length_as(id: u32, path: &std::path::Path) -> (u64, usize) {
    let r = sh_as(id, &format!("stat -c %s {p}; cat {p} | wc -c", p = q(path)));
    assert!(
        r.ok(),
        "stat and cat of {} as uid {id}: {r:?}",
        path.display()
    );
    let out = r.stdout_str();
    let mut lines = out.lines().map(|l| l.trim().parse::<u64>().unwrap());
    let size = lines.next().unwrap();
    let len = lines.next().unwrap() as usize;
    (size, len)
}

/// The root's reports and a segment's and an object's files, in a private IPC namespace and a
/// private shm dir (nothing else changes them meanwhile): size first, as a file manager asks,
/// then the read.
#[test]
fn reports_and_object_files_report_the_length_they_read() {
    require_fuse!();
    // A fresh IPC namespace holding two segments of the test's own.
    let ns = Helper::start(&["newns", "0x5a1e0001:4096", "0x5a1e0002:8192"]);
    let m = Mount::with_args(
        &[],
        &["--ipc-ns".into(), format!("/proc/{}/ns/ipc", ns.pid())],
        true,
    );
    fs::write(m.shm_dir().join("sized"), b"0123456789").unwrap();
    let mut paths = vec![
        m.path().join("index"),
        m.path().join("index.json"),
        m.path().join("limits"),
        m.path().join("metrics.prom"),
    ];
    for file in ["stat", "perm", "attached"] {
        paths.push(m.sysv(0, file));
        paths.push(m.sysv(1, file));
    }
    for file in ["stat", "perm"] {
        paths.push(m.posix("sized", file));
    }
    for path in &paths {
        let size = fs::metadata(path).unwrap().len();
        let text = fs::read(path).unwrap();
        assert!(
            !text.is_empty() || path.ends_with("attached"),
            "{} should not be empty",
            path.display()
        );
        assert_eq!(
            size,
            text.len() as u64,
            "the size of {} must be the length of what reading it gives: {:?}",
            path.display(),
            String::from_utf8_lossy(&text)
        );
    }
    // A copy guided by the size (as GIO's splice copy is) gets the whole index.
    let copy = tempfile::NamedTempFile::new().unwrap();
    let index = m.path().join("index");
    let r = sh(&format!(
        "head -c \"$(stat -c %s {i})\" {i} > {c}",
        i = q(&index),
        c = q(copy.path())
    ));
    assert!(r.ok(), "{r:?}");
    assert_eq!(fs::read(copy.path()).unwrap(), fs::read(&index).unwrap());
}

/// A SysV `attached` differs by reader (each sees the holders it may trace): each reader's
/// size is the length of its own text, and follows an attach and a detach.
#[test]
fn sysv_attached_size_is_each_readers_length_and_follows_attachments() {
    require_fuse!();
    let m = Mount::builder().option("allow_other").mount();
    let seg = SysvSeg::private(16384, 0o666);
    let id = seg.id.to_string();
    let path = m.sysv(seg.id, "attached");
    let readers = [0, ALICE, BOB];

    for reader in readers {
        assert_eq!(
            size_and_length_as(reader, &path),
            (0, 0),
            "uid {reader}: nobody attached, so attached is empty and its size 0"
        );
    }
    let alices = Helper::start_as(ALICE, &["sysv-attach", &id, "rw"]);
    let roots = Helper::start(&["sysv-attach", &id, "r"]);
    for reader in readers {
        let (size, len) = size_and_length_as(reader, &path);
        assert!(len > 0, "uid {reader} reads a line or a hidden count");
        assert_eq!(
            size as usize, len,
            "uid {reader}: size and length of attached"
        );
    }
    let (root_size, _) = size_and_length_as(0, &path);
    let (bob_size, _) = size_and_length_as(BOB, &path);
    assert_eq!(bob_size, "+2 hidden\n".len() as u64);
    assert!(root_size > bob_size, "root sees two whole lines");

    roots.finish();
    for reader in readers {
        let (size, len) = size_and_length_as(reader, &path);
        assert_eq!(
            size as usize, len,
            "uid {reader}: after root's helper detached, the size follows"
        );
    }
    assert_eq!(size_and_length_as(BOB, &path).0, "+1 hidden\n".len() as u64);
    alices.finish();
    assert_eq!(size_and_length_as(BOB, &path), (0, 0));
}

/// POSIX objects have no public count of holders, so their `attached` shows size 0 (a scan of
/// every process per `stat` would make walks cost objects × processes) and is read to its end.
#[test]
fn posix_attached_has_size_zero_and_is_read_to_its_end() {
    require_fuse!();
    let m = Mount::new();
    let name = "held";
    fs::write(m.shm_dir().join(name), vec![0u8; 4096]).unwrap();
    let holder = Helper::start(&["posix-mmap", m.shm_dir().join(name).to_str().unwrap(), "r"]);
    let path = m.posix(name, "attached");
    assert_eq!(fs::metadata(&path).unwrap().len(), 0);
    let text = read_text(&path);
    assert!(
        text.contains(&format!("{} ", holder.pid())),
        "attached lists the mapping process: {text:?}"
    );
    holder.finish();
}
