//! POSIX shared memory objects (regular files of the shm directory) under posix/.

mod common;

use std::fs;
use std::io::Write;
use std::os::unix::fs::{FileExt, MetadataExt};

use common::*;

#[test]
fn object_is_listed() {
    require_fuse!();
    let m = Mount::new();
    create_posix(m.shm_dir(), "obj", 0o600, b"x");
    create_posix(m.shm_dir(), "sem.counter", 0o600, b"");
    let names = m.ls("posix");
    assert!(
        names.contains("obj") && names.contains("sem.counter"),
        "ls MNT/posix shows {names:?}, expected obj and sem.counter"
    );
    assert_has_entries(&m.posix_dir("obj"), &["data", "perm", "stat"]);
}

#[test]
fn new_object_shows_at_once_and_removed_one_goes() {
    require_fuse!();
    let m = Mount::new();
    m.ls("posix");
    let p = create_posix(m.shm_dir(), "fresh", 0o600, b"");
    assert!(m.ls("posix").contains("fresh"), "new object not in next ls");
    assert!(m.posix("fresh", "stat").exists());
    fs::remove_file(p).unwrap();
    assert!(
        !sh(&format!("test -e {}", q(m.posix_dir("fresh")))).ok(),
        "posix/fresh still exists right after shm_unlink"
    );
}

#[test]
fn stat_matches_fstat() {
    require_fuse!();
    let m = Mount::new();
    let p = create_posix(m.shm_dir(), "st", 0o640, &pattern(5000, 1));
    let text = read_text(&m.posix("st", "stat"));
    let md = fs::metadata(&p).unwrap();
    let want = format!(
        "kind: posix\nname: st\nsize: {}\nmode: {}\nuid: {}\ngid: {}\natime: {}\nmtime: {}\n\
         ctime: {}\nrss: {}\n",
        md.size(),
        fmt_mode(md.mode()),
        md.uid(),
        md.gid(),
        md.atime(),
        md.mtime(),
        md.ctime(),
        md.blocks() * 512
    );
    assert_eq!(text, want, "`cat posix/st/stat` (left) vs fstat (right)");
    assert_eq!(Fields::parse(&text).num("size"), 5000);
    assert_eq!(Fields::parse(&text).get("mode"), "0640");
}

#[test]
fn stat_of_sparse_object_shows_allocated_rss() {
    require_fuse!();
    let m = Mount::new();
    let p = create_posix(m.shm_dir(), "sparse", 0o600, b"");
    let f = fs::OpenOptions::new().write(true).open(&p).unwrap();
    f.set_len(1 << 20).unwrap();
    f.write_at(b"x", 0).unwrap();
    let st = read_fields(&m.posix("sparse", "stat"));
    let md = fs::metadata(&p).unwrap();
    assert_eq!(st.num("size"), 1 << 20);
    assert_eq!(st.num("rss"), md.blocks() * 512, "rss = st_blocks * 512");
    assert!(st.num("rss") < 1 << 20, "rss of a sparse object");
}

#[test]
fn data_reads_what_was_written_to_the_object() {
    require_fuse!();
    let m = Mount::new();
    let pat = pattern(9000, 2);
    let p = create_posix(m.shm_dir(), "rd", 0o600, &pat);
    let data = m.posix("rd", "data");
    assert!(fs::read(&data).unwrap() == pat, "cat posix/rd/data");
    assert_eq!(fs::metadata(&data).unwrap().len(), 9000, "size of data");
    let f = fs::File::open(&data).unwrap();
    let mut buf = [0u8; 7];
    f.read_exact_at(&mut buf, 4093).unwrap();
    assert!(buf == pat[4093..4100]);

    // changed by the owner meanwhile: the next read sees it
    fs::OpenOptions::new()
        .write(true)
        .open(&p)
        .unwrap()
        .write_at(b"CHANGED", 4093)
        .unwrap();
    f.read_exact_at(&mut buf, 4093).unwrap();
    assert_eq!(&buf, b"CHANGED", "stale read from posix data");
}

#[test]
fn writes_to_data_reach_the_object() {
    require_fuse!();
    let m = Mount::new();
    let p = create_posix(m.shm_dir(), "wr", 0o600, &[0u8; 100]);
    let data = m.posix("wr", "data");
    sh_ok(&format!(
        "printf hello | dd of={} bs=1 seek=10 conv=notrunc status=none",
        q(&data)
    ));
    let content = fs::read(&p).unwrap();
    assert_eq!(&content[10..15], b"hello");
    assert_eq!(content.len(), 100);

    // a regular file: writing past the end extends it, append appends
    let f = fs::OpenOptions::new().write(true).open(&data).unwrap();
    assert_eq!(f.write_at(b"tail", 200).unwrap(), 4);
    assert_eq!(
        fs::metadata(&p).unwrap().len(),
        204,
        "write past end extends"
    );
    let mut a = fs::OpenOptions::new().append(true).open(&data).unwrap();
    a.write_all(b"++").unwrap();
    let content = fs::read(&p).unwrap();
    assert_eq!(content.len(), 206);
    assert_eq!(&content[200..], b"tail++");
}

#[test]
fn truncate_extends_and_shrinks() {
    require_fuse!();
    let m = Mount::new();
    let p = create_posix(m.shm_dir(), "tr", 0o600, b"0123456789");
    let data = m.posix("tr", "data");
    sh_ok(&format!("truncate -s 10000 {}", q(&data)));
    assert_eq!(
        fs::metadata(&p).unwrap().len(),
        10000,
        "object after truncate -s 10000"
    );
    assert_eq!(fs::metadata(&data).unwrap().len(), 10000, "`ls -l data`");
    assert_eq!(read_fields(&m.posix("tr", "stat")).num("size"), 10000);
    sh_ok(&format!("truncate -s 4 {}", q(&data)));
    assert_eq!(fs::read(&p).unwrap(), b"0123", "object after truncate -s 4");
    assert_eq!(fs::metadata(&data).unwrap().len(), 4);
    sh_ok(&format!("echo hi > {}", q(&data)));
    assert_eq!(fs::read(&p).unwrap(), b"hi\n", "`echo hi > data` on posix");
}

#[test]
fn resize_by_owner_shows_at_once() {
    require_fuse!();
    let m = Mount::new();
    let p = create_posix(m.shm_dir(), "rs", 0o600, b"abc");
    let data = m.posix("rs", "data");
    assert_eq!(fs::metadata(&data).unwrap().len(), 3);
    fs::OpenOptions::new()
        .write(true)
        .open(&p)
        .unwrap()
        .set_len(8192)
        .unwrap();
    assert_eq!(
        fs::metadata(&data).unwrap().len(),
        8192,
        "size right after resize"
    );
    assert_eq!(fs::read(&data).unwrap().len(), 8192, "cat after resize");
}

#[test]
fn non_regular_entries_are_not_listed_nor_found() {
    require_fuse!();
    let m = Mount::new();
    let dir = m.shm_dir();
    create_posix(dir, "real", 0o600, b"r");
    std::os::unix::fs::symlink("/etc/shadow", dir.join("evil")).unwrap();
    mkfifo(&dir.join("pipe"), 0o600);
    fs::create_dir(dir.join("sub")).unwrap();
    fs::write(dir.join("sub").join("inner"), b"i").unwrap();
    let _sock = std::os::unix::net::UnixListener::bind(dir.join("sock")).unwrap();

    let names = m.ls("posix");
    assert_eq!(
        names,
        ["real".to_string()].into(),
        "only regular files of the shm dir may be listed"
    );
    for name in ["evil", "pipe", "sub", "sock", "sub/inner"] {
        for p in [
            m.posix_dir(name),
            m.posix(name, "data"),
            m.posix(name, "stat"),
        ] {
            assert_errno(
                fs::symlink_metadata(&p),
                libc::ENOENT,
                &format!("lookup of {}", p.display()),
            );
        }
    }
    let r = sh(&format!("cat {}", q(m.posix("evil", "data"))));
    assert!(!r.ok() && r.stdout.is_empty(), "cat posix/evil/data: {r:?}");
}

#[test]
fn open_data_keeps_referring_to_its_object() {
    require_fuse!();
    let m = Mount::new();
    let p = create_posix(m.shm_dir(), "keep", 0o600, b"old contents");
    let f = fs::File::open(m.posix("keep", "data")).unwrap();
    fs::remove_file(&p).unwrap();
    create_posix(m.shm_dir(), "keep", 0o600, b"NEW CONTENTS");
    let mut buf = [0u8; 12];
    f.read_exact_at(&mut buf, 0)
        .expect("read from data opened before the object was replaced");
    assert_eq!(
        &buf, b"old contents",
        "an open data fd switched to the new object of the same name"
    );
    assert_eq!(fs::read(m.posix("keep", "data")).unwrap(), b"NEW CONTENTS");
}

#[test]
fn mkdir_creates_and_rmdir_unlinks() {
    require_fuse!();
    let m = Mount::new();
    let r = sh(&format!("mkdir -m 640 {}", q(m.posix_dir("made"))));
    assert!(r.ok(), "mkdir posix/made: {r:?}");
    let md = fs::symlink_metadata(m.shm_dir().join("made")).expect("object created by mkdir");
    assert!(md.file_type().is_file(), "mkdir must create a regular file");
    assert_eq!(md.len(), 0);
    assert_eq!(md.mode() & 0o777, 0o640, "mode given to mkdir");
    sh_ok(&format!("truncate -s 4096 {}", q(m.posix("made", "data"))));
    assert_eq!(fs::metadata(m.shm_dir().join("made")).unwrap().len(), 4096);

    let r = sh(&format!("mkdir {}", q(m.posix_dir("made"))));
    assert!(
        !r.ok() && r.stderr.contains("File exists"),
        "mkdir of an existing object: {r:?}"
    );

    let r = sh(&format!("rmdir {}", q(m.posix_dir("made"))));
    assert!(r.ok(), "rmdir posix/made: {r:?}");
    assert!(
        !m.shm_dir().join("made").exists(),
        "rmdir posix/made did not unlink the object"
    );
}

#[test]
fn rm_of_a_file_fails_and_changes_nothing() {
    require_fuse!();
    let m = Mount::new();
    let p = create_posix(m.shm_dir(), "stay", 0o600, b"content");
    for f in ["data", "stat", "perm"] {
        let r = sh(&format!("rm -f {}", q(m.posix("stay", f))));
        assert!(!r.ok(), "rm posix/stay/{f} should fail: {r:?}");
    }
    assert_eq!(fs::read(&p).unwrap(), b"content");
    assert!(m.ls("posix").contains("stay"));
}

/// A user who may write a set-user-ID or set-group-ID object owned by someone else may write
/// and truncate it, and the kernel clears the bits as it does so: the same through the mount
/// as directly on /dev/shm.
#[test]
fn writers_of_setid_objects_write_and_clear_the_bits_as_on_tmpfs() {
    require_fuse!();
    let m = Mount::builder().option("allow_other").mount();
    const WRITER: u32 = 4321;
    for mode in [0o4777, 0o2777, 0o6777] {
        let mut after = Vec::new();
        for (route, name) in [("mount", "sm"), ("direct", "sd")] {
            let file = create_posix(m.shm_dir(), name, 0o600, b"");
            std::os::unix::fs::chown(&file, Some(2001), Some(2001)).unwrap();
            fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
            let target = if route == "mount" {
                m.posix(name, "data")
            } else {
                file.clone()
            };
            let r = sh_as(
                WRITER,
                &format!("printf abc >> {0} && truncate -s 2 {0}", q(&target)),
            );
            let md = fs::metadata(&file).unwrap();
            after.push((route, r.ok(), md.mode() & 0o7777, md.len()));
            assert!(
                r.ok(),
                "{route}: uid {WRITER} writing a {mode:o} object: {r:?}"
            );
            fs::remove_file(&file).unwrap();
        }
        assert_eq!(
            (after[0].1, after[0].2, after[0].3),
            (after[1].1, after[1].2, after[1].3),
            "mode {mode:o}: through the mount vs directly: {after:?}"
        );
        assert_eq!(
            after[0].2, 0o777,
            "mode {mode:o}: the set-id bits are cleared"
        );
    }
}
