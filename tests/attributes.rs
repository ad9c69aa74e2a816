//! File attributes as in docs/design.md §1 "Files' attributes".

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use common::*;

const S_IFDIR: u32 = libc::S_IFDIR;
const S_IFREG: u32 = libc::S_IFREG;
const S_IFLNK: u32 = libc::S_IFLNK;

/// (st_mode with type bits, uid, gid) of a path, not following symlinks.
fn attrs(p: &Path) -> (u32, u32, u32) {
    let md = fs::symlink_metadata(p).unwrap_or_else(|e| panic!("stat {}: {e}", p.display()));
    (md.mode(), md.uid(), md.gid())
}

#[track_caller]
fn assert_attrs(p: &Path, want: (u32, u32, u32), what: &str) {
    let got = attrs(p);
    assert_eq!(
        got,
        want,
        "{what} ({}): got mode {:o} owner {}:{}, want mode {:o} owner {}:{}",
        p.display(),
        got.0,
        got.1,
        got.2,
        want.0,
        want.1,
        want.2
    );
}

#[test]
fn top_level_directories() {
    require_fuse!();
    let m = Mount::new();
    assert_attrs(m.path(), (S_IFDIR | 0o555, 0, 0), "mount root");
    assert_attrs(&m.p("by-key"), (S_IFDIR | 0o555, 0, 0), "by-key/");
    assert_attrs(&m.p("sysv"), (S_IFDIR | 0o1777, 0, 0), "sysv/");
    assert_attrs(&m.p("posix"), (S_IFDIR | 0o1777, 0, 0), "posix/");
    let limits = m.p("limits");
    let md = fs::metadata(&limits).unwrap();
    assert!(md.file_type().is_file(), "limits is a regular file");
    assert_eq!(
        md.len(),
        read_text(&limits).len() as u64,
        "size of limits = length of its text"
    );
}

#[test]
fn sysv_segment_files() {
    require_fuse!();
    let m = Mount::new();
    let seg = SysvSeg::keyed(12345, 0o640);
    seg.set(None, Some(12345), Some(23456));
    let (u, g) = (12345, 23456);

    assert_attrs(
        &m.sysv_dir(seg.id),
        (S_IFDIR | 0o755, u, g),
        "sysv/ID: object's mode | 0555, object's owner",
    );
    let data = m.sysv(seg.id, "data");
    assert_attrs(
        &data,
        (S_IFREG | 0o640, u, g),
        "data: object's mode and owner",
    );
    assert_eq!(
        fs::metadata(&data).unwrap().len(),
        12345,
        "data size = shm_segsz"
    );
    for (file, mode) in [("stat", 0o444), ("perm", 0o644)] {
        let p = m.sysv(seg.id, file);
        assert_attrs(&p, (S_IFREG | mode, u, g), file);
        assert_eq!(
            fs::metadata(&p).unwrap().len(),
            read_text(&p).len() as u64,
            "size of {file} = length of its text"
        );
    }

    let link = m.p("by-key").join(format!("0x{:08x}", seg.key as u32));
    let (mode, ..) = attrs(&link);
    assert_eq!(mode & libc::S_IFMT, S_IFLNK, "by-key entry is a symlink");

    seg.set(Some(0o604), None, None);
    assert_attrs(
        &m.sysv_dir(seg.id),
        (S_IFDIR | 0o755, u, g),
        "sysv/ID after mode 0604",
    );
    assert_attrs(&data, (S_IFREG | 0o604, u, g), "data after mode 0604");
    seg.set(Some(0o000), None, None);
    assert_attrs(
        &m.sysv_dir(seg.id),
        (S_IFDIR | 0o555, u, g),
        "sysv/ID after mode 0000",
    );
}

#[test]
fn posix_object_files() {
    require_fuse!();
    let m = Mount::new();
    let p = create_posix(m.shm_dir(), "attr", 0o620, &[7u8; 3000]);
    std::os::unix::fs::chown(&p, Some(12345), Some(23456)).unwrap();
    let (u, g) = (12345, 23456);
    let obj = fs::metadata(&p).unwrap();

    assert_attrs(
        &m.posix_dir("attr"),
        (S_IFDIR | 0o775, u, g),
        "posix/NAME: object's mode | 0555, object's owner",
    );
    let data = m.posix("attr", "data");
    assert_attrs(&data, (S_IFREG | 0o620, u, g), "posix data");
    let dmd = fs::metadata(&data).unwrap();
    assert_eq!(dmd.len(), 3000, "posix data size");
    assert_eq!(
        (dmd.mtime(), dmd.ctime()),
        (obj.mtime(), obj.ctime()),
        "posix data times come from the object"
    );
    for (file, mode) in [("stat", 0o444), ("perm", 0o644)] {
        let f = m.posix("attr", file);
        assert_attrs(&f, (S_IFREG | mode, u, g), file);
        assert_eq!(
            fs::metadata(&f).unwrap().len(),
            read_text(&f).len() as u64,
            "size of posix {file} = length of its text"
        );
    }
}
