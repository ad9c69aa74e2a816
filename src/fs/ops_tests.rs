//! Unit tests of the filesystem through its public operations (`ops.rs`), over the fake
//! source: what a user of the mount would check, without root, `/dev/fuse` or the machine's
//! shared memory (docs/design.md §1 is the contract they hold the core to).
//!
//! Callers have pid 0 (a request the kernel makes itself): they have no capabilities and no
//! supplementary groups whoever runs the tests, so shmfs's own checks (who may open `perm`
//! for writing, access(2)) give the same answers as root and as an ordinary user. The fake
//! checks nothing; the kernel's refusals are stood in for with `Fake::refuse`.

use std::ffi::OsStr;
use std::fmt::Debug;

use log::Level;

use super::fake::{CREATED, Fake, Op};
use super::{Attr, DirEntry, How, Kind, Options, Result, SetAttr, SetTime, ShmFs};
use crate::fs::inode;
use crate::kernel::creds::Caller;
use crate::kernel::sysv::Usage;
use crate::render::metrics;

/// `sysv/` and `posix/`: the directories of the first two kinds of the registry.
const SYSV_DIR: u64 = inode::kind_dir(0);
const POSIX_DIR: u64 = inode::kind_dir(1);

const UID: u32 = 1000;
const GID: u32 = 1000;
const KEY: u32 = 0x162e;

/// The owner of what the tests create.
fn owner() -> Caller {
    Caller::new(UID, GID, 0)
}

/// Someone else, in no group of the objects.
fn stranger() -> Caller {
    Caller::new(2000, 2000, 0)
}

fn world() -> (Fake, ShmFs) {
    let fake = Fake::new();
    let fs = fake.fs(false);
    (fake, fs)
}

fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

#[track_caller]
fn errno_of<T: Debug>(result: Result<T>) -> i32 {
    result.expect_err("should fail").errno()
}

/// Looks `path` up from the root one name at a time, as the kernel's path walk does.
fn walk(fs: &ShmFs, path: &str) -> Result<Attr> {
    let mut attr = fs.getattr(&owner(), inode::ROOT, None)?;
    for name in path.split('/').filter(|n| !n.is_empty()) {
        attr = fs.lookup(&owner(), attr.ino, os(name))?;
    }
    Ok(attr)
}

#[track_caller]
fn ino(fs: &ShmFs, path: &str) -> u64 {
    match walk(fs, path) {
        Ok(attr) => attr.ino,
        Err(e) => panic!("{path}: {e}"),
    }
}

/// The whole listing of directory `ino`.
fn list(fs: &ShmFs, ino: u64) -> Vec<DirEntry> {
    let fh = fs.opendir(&owner(), ino).expect("opendir");
    let mut entries = Vec::new();
    fs.readdir(fh, 0, |e, _| {
        entries.push(e.clone());
        false
    })
    .expect("readdir");
    fs.release(fh);
    entries
}

fn names(entries: &[DirEntry]) -> Vec<String> {
    entries
        .iter()
        .map(|e| e.name.to_string_lossy().into_owned())
        .collect()
}

/// `size` bytes at `offset` of open handle `fh`.
fn read_at(fs: &ShmFs, fh: u64, offset: u64, size: u32) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    fs.read(fh, offset, size, |b| out.extend_from_slice(b))?;
    Ok(out)
}

/// The whole file `ino`, read as `who` as `cat` would.
fn read_all(fs: &ShmFs, who: &Caller, ino: u64) -> Result<Vec<u8>> {
    let fh = fs.open(who, ino, libc::O_RDONLY)?.handle;
    let mut out = Vec::new();
    loop {
        let chunk = read_at(fs, fh, out.len() as u64, 7)?;
        if chunk.is_empty() {
            break;
        }
        out.extend(chunk);
    }
    fs.release(fh);
    Ok(out)
}

#[track_caller]
fn text(fs: &ShmFs, path: &str) -> String {
    let ino = ino(fs, path);
    String::from_utf8(read_all(fs, &owner(), ino).expect("read")).expect("text")
}

/// One write(2) of `data` at `offset`, through an open for writing by `who`.
fn write_as(fs: &ShmFs, who: &Caller, ino: u64, offset: u64, data: &[u8]) -> Result<u32> {
    let fh = fs.open(who, ino, libc::O_WRONLY)?.handle;
    let written = fs.write(ino, fh, offset, data);
    fs.release(fh);
    written
}

#[track_caller]
fn write_path(fs: &ShmFs, path: &str, data: &str) -> Result<u32> {
    write_as(fs, &owner(), ino(fs, path), 0, data.as_bytes())
}

fn chmod(mode: u32) -> SetAttr {
    SetAttr {
        mode: Some(mode),
        ..SetAttr::default()
    }
}

fn truncate(size: u64) -> SetAttr {
    SetAttr {
        size: Some(size),
        ..SetAttr::default()
    }
}

/// A segment of 4096 bytes with key 0x162e, mode 0600, owned by UID/GID.
fn segment(fake: &Fake) -> i32 {
    fake.add_segment(KEY, 4096, 0o600, UID, GID)
}

// The root and its fixed entries.

#[test]
fn the_root_lists_the_kinds_directories_and_the_four_reports() {
    let (_, fs) = world();
    let entries = list(&fs, inode::ROOT);
    assert_eq!(
        names(&entries),
        [
            ".",
            "..",
            "sysv",
            "posix",
            "sem",
            "msg",
            "mqueue",
            "by-key",
            "ns",
            "limits",
            "index",
            "index.json",
            "metrics.prom"
        ]
    );
    let kinds: Vec<(u64, Kind)> = entries.iter().map(|e| (e.ino, e.kind)).collect();
    assert_eq!(
        kinds,
        [
            (inode::ROOT, Kind::Dir),
            (inode::ROOT, Kind::Dir),
            (SYSV_DIR, Kind::Dir),
            (POSIX_DIR, Kind::Dir),
            (inode::kind_dir(2), Kind::Dir),
            (inode::kind_dir(3), Kind::Dir),
            (inode::kind_dir(4), Kind::Dir),
            (inode::BY_KEY_DIR, Kind::Dir),
            (inode::NS_DIR, Kind::Dir),
            (inode::LIMITS, Kind::File),
            (inode::INDEX, Kind::File),
            (inode::INDEX_JSON, Kind::File),
            (inode::METRICS, Kind::File),
        ]
    );
    for e in &entries[2..] {
        assert_eq!(
            fs.lookup(&owner(), inode::ROOT, &e.name)
                .expect("lookup")
                .ino,
            e.ino
        );
    }
    assert_eq!(
        errno_of(fs.lookup(&owner(), inode::ROOT, os("nothing"))),
        libc::ENOENT
    );
    assert_eq!(
        errno_of(fs.lookup(&owner(), inode::ROOT, os("Sysv"))),
        libc::ENOENT
    );
}

#[test]
fn fixed_directories_have_the_modes_of_the_attributes_table() {
    let (_, fs) = world();
    for (ino, perm) in [
        (inode::ROOT, 0o555),
        (SYSV_DIR, 0o1777),
        (POSIX_DIR, 0o1777),
        (inode::BY_KEY_DIR, 0o555),
    ] {
        let attr = fs.getattr(&owner(), ino, None).expect("getattr");
        assert_eq!(
            (attr.ino, attr.kind, attr.perm, attr.uid, attr.gid),
            (ino, Kind::Dir, perm, 0, 0),
            "inode {ino}"
        );
        assert_eq!(
            attr.mtime,
            fs.getattr(&owner(), inode::ROOT, None).unwrap().mtime
        );
    }
}

#[test]
fn reports_are_read_only_files_of_root() {
    let (fake, fs) = world();
    segment(&fake);
    for ino in [
        inode::LIMITS,
        inode::INDEX,
        inode::INDEX_JSON,
        inode::METRICS,
    ] {
        let attr = fs.getattr(&owner(), ino, None).expect("getattr");
        assert_eq!((attr.kind, attr.perm, attr.uid), (Kind::File, 0o444, 0));
        assert_eq!(
            errno_of(fs.open(&owner(), ino, libc::O_WRONLY)),
            libc::EACCES
        );
        assert_eq!(errno_of(fs.access(&owner(), ino, libc::W_OK)), libc::EACCES);
    }
    let limits = text(&fs, "limits");
    assert_eq!(
        fs.getattr(&owner(), inode::LIMITS, None).unwrap().size,
        limits.len() as u64,
        "limits' size is its text's"
    );
    assert!(limits.contains("shmmni: 4096\n"), "{limits}");
    assert!(limits.contains("segments: 1\n"), "{limits}");
    assert!(limits.contains("pages_allocated: 1\n"), "{limits}");
}

// Lookups.

#[test]
fn segments_are_found_by_their_canonical_shmid_only() {
    let (fake, fs) = world();
    let mut seg = fake.segment(KEY, 4096, 0o600, UID, GID);
    seg.shmid = 7;
    fake.insert_segment(seg);
    let dir = fs.lookup(&owner(), SYSV_DIR, os("7")).expect("sysv/7");
    assert_eq!(dir.kind, Kind::Dir);
    for name in ["007", "07", "+7", " 7", "7 ", "0x7", "-7", "7.0", "8", ""] {
        assert_eq!(
            errno_of(fs.lookup(&owner(), SYSV_DIR, os(name))),
            libc::ENOENT,
            "{name:?}"
        );
    }
}

#[test]
fn shmid_zero_is_a_segment_like_any_other() {
    let (fake, fs) = world();
    let shmid = segment(&fake);
    assert_eq!(
        shmid, 0,
        "the fake hands out shmid 0 first, as a fresh namespace does"
    );
    fake.write_segment(0, 0, b"zero");
    assert_eq!(names(&list(&fs, SYSV_DIR))[2..], ["0"]);
    let dir = walk(&fs, "sysv/0").expect("sysv/0");
    assert!(dir.ino > inode::INDEX_JSON);
    assert!(text(&fs, "sysv/0/stat").starts_with("kind: sysv\nshmid: 0\n"));
    let data = read_all(&fs, &owner(), ino(&fs, "sysv/0/data")).unwrap();
    assert_eq!(&data[..4], b"zero");
    assert_eq!(
        fs.readlink(&owner(), ino(&fs, "by-key/0x0000162e"))
            .unwrap(),
        "../sysv/0"
    );
}

#[test]
fn over_a_source_without_namespaces_ns_holds_only_its_index() {
    let (fake, fs) = world();
    segment(&fake);
    let ns = walk(&fs, "ns").expect("ns/");
    assert_eq!(
        (ns.ino, ns.kind, ns.perm),
        (inode::NS_DIR, Kind::Dir, 0o555)
    );
    let entries = list(&fs, inode::NS_DIR);
    assert_eq!(names(&entries), [".", "..", "index"]);
    assert_eq!(entries[1].ino, inode::ROOT);
    assert_eq!(
        text(&fs, "ns/index"),
        "NS  CONTAINER  HOSTNAME  PROCS  SEGMENTS  BYTES  RSS  ORPHANS  SHM_USED  SHM_SIZE\n"
    );
    for name in ["4026531839", "0", "+1", "04026531839", "x"] {
        assert_eq!(
            errno_of(fs.lookup(&owner(), inode::NS_DIR, os(name))),
            libc::ENOENT,
            "ns/{name}"
        );
    }
}

#[test]
fn by_key_links_lead_to_the_segments_directory() {
    let (fake, fs) = world();
    fake.add_segment(0, 4096, 0o600, UID, GID);
    let shmid = segment(&fake);
    let link = walk(&fs, "by-key/0x0000162e").expect("by-key link");
    assert_eq!((link.kind, link.perm), (Kind::Symlink, 0o777));
    let target = fs.readlink(&owner(), link.ino).expect("readlink");
    assert_eq!(target, format!("../sysv/{shmid}"));
    assert_eq!(link.size, target.len() as u64);
    // The key's segment, under sysv/.
    assert!(walk(&fs, &format!("sysv/{shmid}")).is_ok());
    // Only keyed segments have links.
    let entries = list(&fs, inode::BY_KEY_DIR);
    assert_eq!(names(&entries)[2..], ["0x0000162e"]);
    assert_eq!(entries[2].kind, Kind::Symlink);
    assert_eq!(errno_of(fs.readlink(&owner(), inode::ROOT)), libc::EINVAL);
}

#[test]
fn keys_are_named_only_in_their_canonical_form() {
    let (fake, fs) = world();
    fake.add_segment(0xdeadbeef, 4096, 0o600, UID, GID);
    fake.add_segment(0, 4096, 0o600, UID, GID);
    assert!(
        fs.lookup(&owner(), inode::BY_KEY_DIR, os("0xdeadbeef"))
            .is_ok()
    );
    for name in [
        "0xDEADBEEF",
        "0XDEADBEEF",
        "0Xdeadbeef",
        "deadbeef",
        "0x0deadbeef",
        "0xdeadbee",
        "3735928559",
        "0x00000000",
        "0x0000162e",
    ] {
        assert_eq!(
            errno_of(fs.lookup(&owner(), inode::BY_KEY_DIR, os(name))),
            libc::ENOENT,
            "{name:?}"
        );
    }
}

#[test]
fn posix_objects_are_found_by_their_name() {
    let (fake, fs) = world();
    fake.add_object("myobject", b"hello", 0o640, UID, GID);
    fake.add_object("sem.lock", b"", 0o600, UID, GID);
    let dir = walk(&fs, "posix/myobject").expect("posix/myobject");
    assert_eq!((dir.kind, dir.uid, dir.gid), (Kind::Dir, UID, GID));
    assert_eq!(names(&list(&fs, POSIX_DIR))[2..], ["myobject", "sem.lock"]);
    assert_eq!(errno_of(walk(&fs, "posix/MyObject")), libc::ENOENT);
    assert_eq!(errno_of(walk(&fs, "posix/other")), libc::ENOENT);
}

// An object's directory and its files.

#[test]
fn a_segments_directory_holds_data_stat_perm_and_attached() {
    let (fake, fs) = world();
    let shmid = segment(&fake);
    let dir = walk(&fs, &format!("sysv/{shmid}")).unwrap();
    let entries = list(&fs, dir.ino);
    assert_eq!(
        names(&entries),
        [".", "..", "data", "stat", "perm", "attached"]
    );
    assert_eq!((entries[0].ino, entries[1].ino), (dir.ino, SYSV_DIR));
    for e in &entries[2..] {
        assert_eq!(e.kind, Kind::File);
        assert_eq!(
            fs.lookup(&owner(), dir.ino, &e.name).unwrap().ino,
            e.ino,
            "{:?}",
            e.name
        );
    }
    assert_eq!(
        errno_of(fs.lookup(&owner(), dir.ino, os("nothing"))),
        libc::ENOENT
    );
    assert_eq!(
        errno_of(fs.lookup(&owner(), dir.ino, os("Data"))),
        libc::ENOENT
    );
    let data = entries[2].ino;
    assert_eq!(errno_of(fs.lookup(&owner(), data, os("x"))), libc::ENOTDIR);
    assert_eq!(errno_of(fs.opendir(&owner(), data)), libc::ENOTDIR);
    assert_eq!(
        errno_of(fs.open(&owner(), dir.ino, libc::O_RDONLY)),
        libc::EISDIR
    );
}

#[test]
fn a_posix_objects_directory_holds_the_same_files() {
    let (fake, fs) = world();
    fake.add_object("obj", b"", 0o600, UID, GID);
    let dir = ino(&fs, "posix/obj");
    let entries = list(&fs, dir);
    assert_eq!(
        names(&entries),
        [".", "..", "data", "stat", "perm", "attached"]
    );
    assert_eq!(entries[1].ino, POSIX_DIR);
}

#[test]
fn an_objects_directory_adds_read_and_search_for_all() {
    let (fake, fs) = world();
    let shmid = fake.add_segment(KEY, 4096, 0o600, 1234, 5678);
    fake.add_object("obj", b"", 0o620, 1234, 5678);
    for path in [format!("sysv/{shmid}"), "posix/obj".to_string()] {
        let attr = walk(&fs, &path).unwrap();
        assert_eq!(attr.kind, Kind::Dir, "{path}");
        assert_eq!((attr.uid, attr.gid), (1234, 5678), "{path}");
        assert_eq!(attr.ctime, std::time::UNIX_EPOCH + secs(CREATED), "{path}");
    }
    assert_eq!(walk(&fs, &format!("sysv/{shmid}")).unwrap().perm, 0o755);
    assert_eq!(walk(&fs, "posix/obj").unwrap().perm, 0o775);
}

fn secs(t: i64) -> std::time::Duration {
    std::time::Duration::from_secs(t as u64)
}

#[test]
fn data_has_the_objects_mode_owner_and_size() {
    let (fake, fs) = world();
    let shmid = fake.add_segment(KEY, 8192, 0o640, 1234, 5678);
    fake.add_object("obj", b"twelve bytes", 0o604, 1234, 5678);
    let sysv = walk(&fs, &format!("sysv/{shmid}/data")).unwrap();
    assert_eq!(
        (
            sysv.kind, sysv.perm, sysv.uid, sysv.gid, sysv.size, sysv.nlink
        ),
        (Kind::File, 0o640, 1234, 5678, 8192, 1)
    );
    let posix = walk(&fs, "posix/obj/data").unwrap();
    assert_eq!(
        (posix.kind, posix.perm, posix.uid, posix.gid, posix.size),
        (Kind::File, 0o604, 1234, 5678, 12)
    );
    assert_eq!(posix.mtime, std::time::UNIX_EPOCH + secs(CREATED));
}

#[test]
fn stat_and_perm_are_sized_to_their_text() {
    let (fake, fs) = world();
    let shmid = fake.add_segment(KEY, 4096, 0o600, 1234, 5678);
    fake.add_object("obj", b"", 0o600, 1234, 5678);
    for dir in [format!("sysv/{shmid}"), "posix/obj".to_string()] {
        let stat = walk(&fs, &format!("{dir}/stat")).unwrap();
        let perm = walk(&fs, &format!("{dir}/perm")).unwrap();
        assert_eq!(
            (stat.perm, stat.uid, stat.gid),
            (0o444, 1234, 5678),
            "{dir}"
        );
        assert_eq!(
            (perm.perm, perm.uid, perm.gid),
            (0o644, 1234, 5678),
            "{dir}"
        );
        assert_eq!(stat.size, text(&fs, &format!("{dir}/stat")).len() as u64);
        assert_eq!(perm.size, text(&fs, &format!("{dir}/perm")).len() as u64);
    }
    // A size that grows by digits grows the file.
    let before = walk(&fs, &format!("sysv/{shmid}/stat")).unwrap().size;
    fake.set_usage(shmid, Usage { rss: 4096, swap: 0 });
    let after = walk(&fs, &format!("sysv/{shmid}/stat")).unwrap().size;
    assert_eq!(after, before + 3, "rss 0 became rss 4096");
}

// The text files.

#[test]
fn a_segments_stat_has_the_designs_lines_in_order() {
    let (fake, fs) = world();
    let mut seg = fake.segment(KEY, 4096, 0o600, 1000, 1001);
    seg.shmid = 32769;
    seg.cuid = 1002;
    seg.cgid = 1003;
    seg.cpid = 4242;
    seg.lpid = 4250;
    seg.atime = 1_763_900_000;
    seg.dtime = 1_763_899_990;
    seg.locked = true;
    fake.insert_segment(seg);
    fake.set_usage(
        32769,
        Usage {
            rss: 4096,
            swap: 8192,
        },
    );
    let stat = text(&fs, "sysv/32769/stat");
    let lines: Vec<&str> = stat.lines().collect();
    let expected = [
        "kind: sysv",
        "shmid: 32769",
        "key: 0x0000162e",
        "size: 4096",
        "mode: 0600",
        "uid: 1000",
        "gid: 1001",
        "cuid: 1002",
        "cgid: 1003",
        "cpid: 4242",
        "lpid: 4250",
        "nattch: 0",
        "atime: 1763900000",
        "dtime: 1763899990",
        "ctime: 1763899000",
        "rss: 4096",
        "swap: 8192",
        "dest: no",
        "locked: yes",
    ];
    assert_eq!(lines[..expected.len()], expected, "{stat}");
    // Beyond docs/design.md's list: whether huge pages back it (unknown until it is opened).
    assert!(lines[expected.len()].starts_with("hugetlb: "), "{stat}");
    assert!(stat.ends_with('\n'));
}

#[test]
fn a_posix_objects_stat_has_the_designs_lines_in_order() {
    let (fake, fs) = world();
    fake.add_object("myobject", &[1; 5000], 0o600, 1000, 1001);
    fake.change_object("myobject", |o| {
        o.atime = 1_763_900_001;
        o.mtime = 1_763_900_002;
        o.ctime = 1_763_900_003;
    });
    let rss = fake.object_now("myobject").unwrap().allocated;
    assert!(rss >= 5000);
    let stat = text(&fs, "posix/myobject/stat");
    assert_eq!(
        stat,
        format!(
            "kind: posix\nname: myobject\nsize: 5000\nmode: 0600\nuid: 1000\ngid: 1001\n\
             atime: 1763900001\nmtime: 1763900002\nctime: 1763900003\nrss: {rss}\n"
        )
    );
}

#[test]
fn perm_reads_as_mode_uid_and_gid() {
    let (fake, fs) = world();
    let shmid = fake.add_segment(KEY, 4096, 0o640, 1000, 1001);
    fake.add_object("obj", b"", 0o4750, 1000, 1001);
    assert_eq!(
        text(&fs, &format!("sysv/{shmid}/perm")),
        "mode: 0640\nuid: 1000\ngid: 1001\n"
    );
    assert_eq!(
        text(&fs, "posix/obj/perm"),
        "mode: 04750\nuid: 1000\ngid: 1001\n"
    );
}

// Changing mode and owner.

#[test]
fn a_bare_octal_mode_written_to_perm_changes_only_the_mode() {
    let (fake, fs) = world();
    let shmid = segment(&fake);
    let perm = format!("sysv/{shmid}/perm");
    assert_eq!(
        write_path(&fs, &perm, "640\n").unwrap(),
        4,
        "the whole write is taken"
    );
    let seg = fake.segment_now(shmid).unwrap();
    assert_eq!((seg.mode, seg.uid, seg.gid), (0o640, UID, GID));
    write_path(&fs, &perm, "0604").unwrap();
    assert_eq!(fake.segment_now(shmid).unwrap().mode, 0o604);
    assert_eq!(text(&fs, &perm), "mode: 0604\nuid: 1000\ngid: 1000\n");
    assert_eq!(
        walk(&fs, &format!("sysv/{shmid}/data")).unwrap().perm,
        0o604
    );
}

#[test]
fn name_value_pairs_written_to_perm_change_the_fields_named() {
    let (fake, fs) = world();
    let shmid = segment(&fake);
    fake.add_object("obj", b"", 0o600, UID, GID);
    let perm = format!("sysv/{shmid}/perm");
    write_path(&fs, &perm, "uid: 1001\ngid=1002").unwrap();
    let seg = fake.segment_now(shmid).unwrap();
    assert_eq!((seg.mode, seg.uid, seg.gid), (0o600, 1001, 1002));
    // What perm reads as is a valid write, by names too (the creator may still change it).
    write_path(&fs, &perm, "mode: 0660\nuid: root\ngid: 1000\n").unwrap();
    let seg = fake.segment_now(shmid).unwrap();
    assert_eq!((seg.mode, seg.uid, seg.gid), (0o660, 0, 1000));

    write_path(&fs, "posix/obj/perm", "mode=640 gid: 1003").unwrap();
    let obj = fake.object_now("obj").unwrap();
    assert_eq!((obj.mode, obj.uid, obj.gid), (0o640, UID, 1003));
}

#[test]
fn a_bad_perm_write_fails_with_einval_and_changes_nothing() {
    let (fake, fs) = world();
    let shmid = segment(&fake);
    fake.add_object("obj", b"", 0o600, UID, GID);
    let before = fake.segment_now(shmid).unwrap();
    for bad in [
        "mode: 0640 bogus: 1",
        "mode: 0640 uid: no-such-user-shmfs-test",
        "mode: 0640 mode: 0600",
        "mode: 0640 uid:",
        "uid: 4294967295",
        "999",
        "14755",
        "rw-r-----",
        "",
        "\n",
        "mode: 0640\0",
    ] {
        for path in [format!("sysv/{shmid}/perm"), "posix/obj/perm".into()] {
            let e = write_path(&fs, &path, bad).expect_err(bad);
            assert_eq!(
                (e.errno(), e.level()),
                (libc::EINVAL, Level::Debug),
                "{bad:?}"
            );
        }
    }
    assert_eq!(fake.segment_now(shmid).unwrap(), before);
    assert_eq!(fake.object_now("obj").unwrap().mode, 0o600);
    assert_eq!(fake.calls(Op::SetSegmentPerm), 0);
    assert_eq!(fake.calls(Op::ChmodObject) + fake.calls(Op::ChownObject), 0);
}

/// The same rule for set-id and sticky bits through `chmod` and `perm`: a segment cannot hold
/// them (IPC_SET keeps 0777), so both refuse them with EINVAL instead of dropping them; a POSIX
/// object is a file, and both set them.
#[test]
fn special_bits_are_refused_for_a_segment_and_kept_for_an_object_by_chmod_and_perm_alike() {
    let (fake, fs) = world();
    let shmid = segment(&fake);
    fake.add_object("obj", b"", 0o600, UID, GID);
    for bits in [0o1000, 0o2000, 0o4000] {
        let mode = bits | 0o640;
        for path in [format!("sysv/{shmid}"), format!("sysv/{shmid}/data")] {
            assert_eq!(
                errno_of(fs.setattr(&owner(), ino(&fs, &path), chmod(mode), None)),
                libc::EINVAL,
                "chmod {mode:o} {path}"
            );
        }
        assert_eq!(
            errno_of(write_path(
                &fs,
                &format!("sysv/{shmid}/perm"),
                &format!("0{mode:o}")
            )),
            libc::EINVAL,
            "perm {mode:o}"
        );
        assert_eq!(fake.segment_now(shmid).unwrap().mode, 0o600, "unchanged");
    }
    assert_eq!(fake.calls(Op::SetSegmentPerm), 0);

    fs.setattr(&owner(), ino(&fs, "posix/obj/data"), chmod(0o1640), None)
        .unwrap();
    assert_eq!(fake.object_now("obj").unwrap().mode, 0o1640);
    write_path(&fs, "posix/obj/perm", "04750").unwrap();
    assert_eq!(fake.object_now("obj").unwrap().mode, 0o4750);
    assert!(text(&fs, "posix/obj/perm").starts_with("mode: 04750\n"));
    write_path(&fs, "posix/obj/perm", "mode: 0640").unwrap();
    assert_eq!(fake.object_now("obj").unwrap().mode, 0o640);
}

/// Every read-only file answers a write the same way, whoever asks: EACCES for an open for
/// writing, a truncate and a change of times.
#[test]
fn read_only_files_refuse_writes_truncates_and_touches_alike() {
    let (fake, fs) = world();
    let shmid = segment(&fake);
    fake.add_object("obj", b"", 0o600, UID, GID);
    let touch = SetAttr {
        atime: Some(SetTime::Now),
        mtime: Some(SetTime::Now),
        ..SetAttr::default()
    };
    let mut files = vec![
        format!("sysv/{shmid}/stat"),
        format!("sysv/{shmid}/attached"),
        "posix/obj/stat".into(),
        "posix/obj/attached".into(),
        "limits".into(),
        "index".into(),
        "index.json".into(),
    ];
    files.push(format!("by-key/0x{KEY:08x}"));
    // Root with every capability too: these are refusals of the file, not of the caller.
    let root = Caller::new(0, 0, std::process::id());
    for who in [owner(), root] {
        for path in &files {
            let ino = ino(&fs, path);
            if !path.starts_with("by-key") {
                for flags in [libc::O_WRONLY, libc::O_RDWR, libc::O_WRONLY | libc::O_TRUNC] {
                    assert_eq!(
                        errno_of(fs.open(&who, ino, flags)),
                        libc::EACCES,
                        "open {path} {flags:o}"
                    );
                }
                assert_eq!(
                    errno_of(fs.setattr(&who, ino, truncate(0), None)),
                    libc::EACCES,
                    "truncate {path}"
                );
            }
            assert_eq!(
                errno_of(fs.setattr(&who, ino, touch, None)),
                libc::EACCES,
                "touch {path}"
            );
        }
    }
    // perm is writable by who may change the object: touching it changes nothing for them,
    // and is refused to others as a write would be.
    let perm = ino(&fs, &format!("sysv/{shmid}/perm"));
    assert!(fs.setattr(&owner(), perm, touch, None).is_ok());
    assert_eq!(
        errno_of(fs.setattr(&stranger(), perm, touch, None)),
        libc::EACCES
    );
}

#[test]
fn perm_may_be_truncated_to_nothing_but_to_no_other_size() {
    let (fake, fs) = world();
    let shmid = segment(&fake);
    let perm = ino(&fs, &format!("sysv/{shmid}/perm"));
    // `echo 600 > perm`: O_TRUNC first.
    let attr = fs.setattr(&owner(), perm, truncate(0), None).unwrap();
    assert_eq!(attr.size, "mode: 0600\nuid: 1000\ngid: 1000\n".len() as u64);
    for size in [1, 5, 4096] {
        assert_eq!(
            errno_of(fs.setattr(&owner(), perm, truncate(size), None)),
            libc::EINVAL
        );
    }
    assert_eq!(
        errno_of(fs.setattr(&owner(), perm, chmod(0o600), None)),
        libc::EPERM
    );
    assert_eq!(fake.segment_now(shmid).unwrap().mode, 0o600);
}

#[test]
fn only_the_owner_or_creator_may_open_perm_for_writing() {
    let (fake, fs) = world();
    let shmid = segment(&fake);
    let perm = ino(&fs, &format!("sysv/{shmid}/perm"));
    assert_eq!(
        errno_of(fs.open(&stranger(), perm, libc::O_WRONLY)),
        libc::EPERM
    );
    // A caller without capabilities, even uid 0, is no owner.
    assert_eq!(
        errno_of(fs.open(&Caller::new(0, 0, 0), perm, libc::O_WRONLY)),
        libc::EPERM
    );
    assert!(
        read_all(&fs, &stranger(), perm).is_ok(),
        "anyone may read it"
    );
    // Given away, the segment is still its creator's to change.
    fake.change_segment(shmid, |s| s.uid = 3000);
    assert_eq!(write_as(&fs, &owner(), perm, 0, b"640").unwrap(), 3);
    assert_eq!(fake.segment_now(shmid).unwrap().mode, 0o640);
    // The new owner too.
    let new_owner = Caller::new(3000, 3000, 0);
    assert_eq!(write_as(&fs, &new_owner, perm, 0, b"600").unwrap(), 3);
}

#[test]
fn the_kernels_refusal_of_a_change_reaches_the_caller_unchanged() {
    let (fake, fs) = world();
    let shmid = segment(&fake);
    fake.add_object("obj", b"", 0o600, UID, GID);
    fake.refuse(Op::SetSegmentPerm, libc::EACCES);
    fake.refuse(Op::ChownObject, libc::EPERM);
    let perm = ino(&fs, &format!("sysv/{shmid}/perm"));
    assert_eq!(
        errno_of(write_as(&fs, &owner(), perm, 0, b"640")),
        libc::EACCES
    );
    let dir = ino(&fs, &format!("sysv/{shmid}"));
    assert_eq!(
        errno_of(fs.setattr(&owner(), dir, chmod(0o640), None)),
        libc::EACCES
    );
    let data = ino(&fs, "posix/obj/data");
    let chown = SetAttr {
        uid: Some(0),
        ..SetAttr::default()
    };
    assert_eq!(
        errno_of(fs.setattr(&owner(), data, chown, None)),
        libc::EPERM
    );
    assert_eq!(fake.segment_now(shmid).unwrap().mode, 0o600);
}

#[test]
fn chmod_and_chown_of_a_segments_directory_or_data_change_the_segment() {
    let (fake, fs) = world();
    let shmid = segment(&fake);
    let dir = ino(&fs, &format!("sysv/{shmid}"));
    let data = ino(&fs, &format!("sysv/{shmid}/data"));
    let attr = fs.setattr(&owner(), dir, chmod(0o640), None).unwrap();
    assert_eq!(attr.perm, 0o755, "the directory shows r and x for all");
    assert_eq!(fake.segment_now(shmid).unwrap().mode, 0o640);
    let attr = fs.setattr(&owner(), data, chmod(0o604), None).unwrap();
    assert_eq!(attr.perm, 0o604);
    let chown = SetAttr {
        uid: Some(1001),
        gid: Some(1002),
        ..SetAttr::default()
    };
    let attr = fs.setattr(&owner(), data, chown, None).unwrap();
    assert_eq!((attr.uid, attr.gid), (1001, 1002));
    let seg = fake.segment_now(shmid).unwrap();
    assert_eq!((seg.mode, seg.uid, seg.gid), (0o604, 1001, 1002));
    // Neither stat nor the fixed directories take a chmod.
    let stat = ino(&fs, &format!("sysv/{shmid}/stat"));
    assert_eq!(
        errno_of(fs.setattr(&owner(), stat, chmod(0o666), None)),
        libc::EPERM
    );
    assert_eq!(
        errno_of(fs.setattr(&owner(), SYSV_DIR, chmod(0o777), None)),
        libc::EPERM
    );
}

#[test]
fn chmod_and_chown_of_a_posix_object_change_the_object() {
    let (fake, fs) = world();
    fake.add_object("obj", b"", 0o600, UID, GID);
    let data = ino(&fs, "posix/obj/data");
    fs.setattr(&owner(), data, chmod(0o2640), None).unwrap();
    let chown = SetAttr {
        gid: Some(1005),
        ..SetAttr::default()
    };
    let attr = fs
        .setattr(&owner(), ino(&fs, "posix/obj"), chown, None)
        .unwrap();
    assert_eq!((attr.perm, attr.uid, attr.gid), (0o2755, UID, 1005));
    let obj = fake.object_now("obj").unwrap();
    assert_eq!((obj.mode, obj.uid, obj.gid), (0o2640, UID, 1005));
}

#[test]
fn times_of_a_posix_object_are_set_and_a_segments_only_by_who_may_write_it() {
    let (fake, fs) = world();
    let shmid = segment(&fake);
    fake.add_object("obj", b"", 0o600, UID, GID);
    let at = std::time::UNIX_EPOCH + secs(1_700_000_000);
    let touch = SetAttr {
        mtime: Some(SetTime::At(at)),
        atime: Some(SetTime::Now),
        ..SetAttr::default()
    };
    let attr = fs
        .setattr(&owner(), ino(&fs, "posix/obj/data"), touch, None)
        .unwrap();
    assert_eq!(attr.mtime, at);
    assert_eq!(fake.object_now("obj").unwrap().mtime, 1_700_000_000);
    let data = ino(&fs, &format!("sysv/{shmid}/data"));
    assert!(fs.setattr(&owner(), data, touch, None).is_ok());
    assert_eq!(
        errno_of(fs.setattr(&stranger(), data, touch, None)),
        libc::EACCES
    );
    assert_eq!(fake.segment_now(shmid).unwrap().ctime, CREATED, "unchanged");
}

// Data.

#[test]
fn a_segments_data_reads_its_current_bytes() {
    let (fake, fs) = world();
    let shmid = segment(&fake);
    let data = ino(&fs, &format!("sysv/{shmid}/data"));
    let fh = fs.open(&owner(), data, libc::O_RDONLY).unwrap().handle;
    fake.write_segment(shmid, 100, b"first");
    assert_eq!(read_at(&fs, fh, 100, 5).unwrap(), b"first");
    // Written by another process while open: the next read sees it.
    fake.write_segment(shmid, 100, b"again");
    assert_eq!(read_at(&fs, fh, 100, 5).unwrap(), b"again");
    fs.release(fh);
    let all = read_all(&fs, &owner(), data).unwrap();
    assert_eq!(all.len(), 4096);
    assert_eq!(&all[100..105], b"again");
}

#[test]
fn a_segments_reads_stop_at_its_end() {
    let (fake, fs) = world();
    let shmid = fake.add_segment(KEY, 100, 0o600, UID, GID);
    fake.write_segment(shmid, 90, b"0123456789");
    let data = ino(&fs, &format!("sysv/{shmid}/data"));
    let fh = fs.open(&owner(), data, libc::O_RDONLY).unwrap().handle;
    assert_eq!(
        read_at(&fs, fh, 95, 100).unwrap(),
        b"56789",
        "cut at the end"
    );
    assert_eq!(read_at(&fs, fh, 100, 10).unwrap(), b"", "at the end");
    assert_eq!(
        read_at(&fs, fh, 1 << 40, 10).unwrap(),
        b"",
        "far past the end"
    );
    fs.release(fh);
}

#[test]
fn a_write_crossing_a_segments_end_is_cut_and_one_at_the_end_fails_with_enospc() {
    let (fake, fs) = world();
    let shmid = fake.add_segment(KEY, 100, 0o600, UID, GID);
    let data = ino(&fs, &format!("sysv/{shmid}/data"));
    let fh = fs.open(&owner(), data, libc::O_RDWR).unwrap().handle;
    assert_eq!(fs.write(data, fh, 0, b"hi").unwrap(), 2);
    assert_eq!(
        fs.write(data, fh, 96, b"abcdefgh").unwrap(),
        4,
        "the part that fits"
    );
    let e = fs.write(data, fh, 100, b"x").expect_err("at the end");
    assert_eq!((e.errno(), e.level()), (libc::ENOSPC, Level::Debug));
    assert_eq!(errno_of(fs.write(data, fh, 200, b"x")), libc::ENOSPC);
    fs.release(fh);
    let bytes = fake.segment_bytes(shmid);
    assert_eq!(bytes.len(), 100, "a segment's size is fixed");
    assert_eq!((&bytes[..2], &bytes[96..]), (&b"hi"[..], &b"abcd"[..]));
}

#[test]
fn a_segment_takes_truncation_only_to_nothing_or_its_own_size() {
    let (fake, fs) = world();
    let shmid = segment(&fake);
    fake.write_segment(shmid, 0, b"kept");
    let data = ino(&fs, &format!("sysv/{shmid}/data"));
    // `echo hi > data`: O_TRUNC, then a write at 0.
    let fh = fs
        .open(&owner(), data, libc::O_WRONLY | libc::O_TRUNC)
        .unwrap()
        .handle;
    assert_eq!(
        fs.setattr(&owner(), data, truncate(0), Some(fh))
            .unwrap()
            .size,
        4096
    );
    assert_eq!(fs.write(data, fh, 0, b"hi").unwrap(), 2);
    assert_eq!(
        errno_of(fs.setattr(&owner(), data, truncate(10), Some(fh))),
        libc::EINVAL
    );
    fs.release(fh);
    assert_eq!(
        &fake.segment_bytes(shmid)[..4],
        b"hipt",
        "overwritten, not emptied"
    );
    // truncate(2) without an open file.
    assert!(fs.setattr(&owner(), data, truncate(4096), None).is_ok());
    assert!(fs.setattr(&owner(), data, truncate(0), None).is_ok());
    for size in [1, 4095, 4097, 8192] {
        assert_eq!(
            errno_of(fs.setattr(&owner(), data, truncate(size), None)),
            libc::EINVAL
        );
    }
    // ...and only by someone who may write it.
    assert_eq!(
        errno_of(fs.setattr(&stranger(), data, truncate(0), None)),
        libc::EACCES
    );
    assert_eq!(fake.segment_now(shmid).unwrap().size, 4096);
}

#[test]
fn a_posix_objects_data_truncates_extends_and_appends() {
    let (fake, fs) = world();
    fake.add_object("obj", b"hello world", 0o600, UID, GID);
    let data = ino(&fs, "posix/obj/data");
    assert_eq!(read_all(&fs, &owner(), data).unwrap(), b"hello world");
    assert_eq!(
        fs.setattr(&owner(), data, truncate(5), None).unwrap().size,
        5
    );
    assert_eq!(fake.object_bytes("obj"), b"hello");
    assert_eq!(
        fs.setattr(&owner(), data, truncate(8), None).unwrap().size,
        8
    );
    assert_eq!(fake.object_bytes("obj"), b"hello\0\0\0");
    assert_eq!(write_as(&fs, &owner(), data, 10, b"!!").unwrap(), 2);
    assert_eq!(fs.getattr(&owner(), data, None).unwrap().size, 12);
    assert_eq!(fake.object_bytes("obj"), b"hello\0\0\0\0\0!!");
    // ftruncate through an open handle.
    let fh = fs.open(&owner(), data, libc::O_RDWR).unwrap().handle;
    assert_eq!(
        fs.setattr(&owner(), data, truncate(0), Some(fh))
            .unwrap()
            .size,
        0
    );
    fs.release(fh);
    assert_eq!(fake.object_bytes("obj"), b"");
}

#[test]
fn data_opens_say_how_the_kernel_may_reach_the_bytes() {
    let (fake, fs) = world();
    let shmid = segment(&fake);
    fake.add_object("obj", b"", 0o600, UID, GID);
    let sysv = ino(&fs, &format!("sysv/{shmid}/data"));
    let posix = ino(&fs, "posix/obj/data");
    let stat = ino(&fs, "posix/obj/stat");
    let how = |ino, flags| {
        let opened = fs.open(&owner(), ino, flags).unwrap();
        fs.release(opened.handle);
        opened.how
    };
    assert_eq!(
        how(sysv, libc::O_RDONLY),
        How::Passthrough { served_here: false }
    );
    // Writes must be cut at the segment's end: served here.
    assert_eq!(
        how(sysv, libc::O_RDWR),
        How::Passthrough { served_here: true }
    );
    assert_eq!(
        how(posix, libc::O_RDWR),
        How::Passthrough { served_here: false }
    );
    assert_eq!(how(stat, libc::O_RDONLY), How::DirectIo);
    assert_eq!(
        errno_of(fs.open(&owner(), stat, libc::O_RDWR)),
        libc::EACCES
    );
}

// Freshness and stale numbers.

#[test]
fn segments_and_objects_made_behind_the_back_are_seen_at_once() {
    let (fake, fs) = world();
    assert_eq!(list(&fs, SYSV_DIR).len(), 2);
    assert_eq!(errno_of(walk(&fs, "sysv/0")), libc::ENOENT);
    let shmid = segment(&fake);
    fake.add_object("obj", b"", 0o600, UID, GID);
    assert!(
        walk(&fs, &format!("sysv/{shmid}")).is_ok(),
        "no negative caching"
    );
    assert!(walk(&fs, "posix/obj").is_ok());
    assert_eq!(names(&list(&fs, SYSV_DIR))[2..], [shmid.to_string()]);
    assert_eq!(names(&list(&fs, POSIX_DIR))[2..], ["obj"]);
}

#[test]
fn changes_behind_the_back_show_in_the_next_getattr() {
    let (fake, fs) = world();
    let shmid = segment(&fake);
    fake.add_object("obj", b"", 0o600, UID, GID);
    let seg_data = ino(&fs, &format!("sysv/{shmid}/data"));
    let obj_data = ino(&fs, "posix/obj/data");
    fake.change_segment(shmid, |s| {
        s.mode = 0o644;
        s.uid = 1001;
    });
    fake.write_object("obj", 0, b"grown");
    fake.change_object("obj", |o| o.mode = 0o640);
    let attr = fs.getattr(&owner(), seg_data, None).unwrap();
    assert_eq!((attr.perm, attr.uid), (0o644, 1001));
    let attr = fs.getattr(&owner(), obj_data, None).unwrap();
    assert_eq!((attr.perm, attr.size), (0o640, 5));
    assert!(text(&fs, &format!("sysv/{shmid}/stat")).contains("\nmode: 0644\nuid: 1001\n"));
}

#[test]
fn a_segment_removed_behind_the_back_is_stale_by_number_and_gone_by_name() {
    let (fake, fs) = world();
    let shmid = segment(&fake);
    let path = format!("sysv/{shmid}");
    let dir = ino(&fs, &path);
    let data = ino(&fs, &format!("{path}/data"));
    let link = ino(&fs, "by-key/0x0000162e");
    fake.drop_segment(shmid);
    for old in [dir, data, link] {
        let e = fs.getattr(&owner(), old, None).expect_err("stale");
        assert_eq!((e.errno(), e.level()), (libc::ESTALE, Level::Debug));
    }
    let e = walk(&fs, &path).expect_err("gone");
    assert_eq!((e.errno(), e.level()), (libc::ENOENT, Level::Debug));
    assert_eq!(errno_of(walk(&fs, "by-key/0x0000162e")), libc::ENOENT);
    assert_eq!(list(&fs, SYSV_DIR).len(), 2);
    assert_eq!(list(&fs, inode::BY_KEY_DIR).len(), 2);
    assert_eq!(
        errno_of(fs.open(&owner(), data, libc::O_RDONLY)),
        libc::ESTALE
    );
}

#[test]
fn a_posix_object_removed_behind_the_back_is_stale_by_number_and_gone_by_name() {
    let (fake, fs) = world();
    fake.add_object("obj", b"x", 0o600, UID, GID);
    let dir = ino(&fs, "posix/obj");
    let stat = ino(&fs, "posix/obj/stat");
    fake.drop_object("obj");
    assert_eq!(errno_of(fs.getattr(&owner(), dir, None)), libc::ESTALE);
    assert_eq!(errno_of(fs.getattr(&owner(), stat, None)), libc::ESTALE);
    assert_eq!(errno_of(fs.opendir(&owner(), dir)), libc::ESTALE);
    assert_eq!(errno_of(walk(&fs, "posix/obj")), libc::ENOENT);
    assert_eq!(list(&fs, POSIX_DIR).len(), 2);
}

#[test]
fn a_new_segment_with_an_old_shmid_gets_new_numbers() {
    let (fake, fs) = world();
    let shmid = segment(&fake);
    let old_dir = ino(&fs, &format!("sysv/{shmid}"));
    let old_data = ino(&fs, &format!("sysv/{shmid}/data"));
    // ipcrm, then a new segment that happens to get the same shmid.
    fake.drop_segment(shmid);
    let mut seg = fake.segment(KEY, 4096, 0o600, UID, GID);
    seg.shmid = shmid;
    fake.insert_segment(seg);
    let new_dir = ino(&fs, &format!("sysv/{shmid}"));
    let new_data = ino(&fs, &format!("sysv/{shmid}/data"));
    assert_ne!(new_dir, old_dir);
    assert_ne!(new_data, old_data);
    assert_eq!(errno_of(fs.getattr(&owner(), old_dir, None)), libc::ESTALE);
    assert_eq!(errno_of(fs.getattr(&owner(), old_data, None)), libc::ESTALE);
    assert!(fs.getattr(&owner(), new_data, None).is_ok());
    assert_eq!(list(&fs, SYSV_DIR)[2].ino, new_dir);
}

#[test]
fn a_new_object_with_an_old_name_gets_new_numbers() {
    let (fake, fs) = world();
    fake.add_object("obj", b"old", 0o600, UID, GID);
    let old_dir = ino(&fs, "posix/obj");
    fake.drop_object("obj");
    fake.add_object("obj", b"new", 0o600, UID, GID);
    let new_dir = ino(&fs, "posix/obj");
    assert_ne!(new_dir, old_dir);
    assert_eq!(errno_of(fs.getattr(&owner(), old_dir, None)), libc::ESTALE);
    assert_eq!(text(&fs, "posix/obj/data"), "new");
}

#[test]
fn an_open_posix_data_keeps_the_object_it_was_opened_on() {
    let (fake, fs) = world();
    fake.add_object("obj", b"old bytes", 0o600, UID, GID);
    let data = ino(&fs, "posix/obj/data");
    let fh = fs.open(&owner(), data, libc::O_RDWR).unwrap().handle;
    fake.drop_object("obj");
    fake.add_object("obj", b"new", 0o600, UID, GID);
    assert_eq!(read_at(&fs, fh, 0, 100).unwrap(), b"old bytes");
    assert_eq!(fs.write(data, fh, 0, b"OLD").unwrap(), 3);
    assert_eq!(read_at(&fs, fh, 0, 100).unwrap(), b"OLD bytes");
    // fstat of the open file still answers, with the old object's size.
    assert_eq!(fs.getattr(&owner(), data, Some(fh)).unwrap().size, 9);
    fs.release(fh);
    assert_eq!(text(&fs, "posix/obj/data"), "new");
    assert_eq!(fake.object_bytes("obj"), b"new");
}

#[test]
fn an_open_segment_data_keeps_the_segment_it_was_opened_on() {
    let (fake, fs) = world();
    let shmid = fake.add_segment(KEY, 16, 0o600, UID, GID);
    fake.write_segment(shmid, 0, b"old segment");
    let data = ino(&fs, &format!("sysv/{shmid}/data"));
    let fh = fs.open(&owner(), data, libc::O_RDWR).unwrap().handle;
    fake.drop_segment(shmid);
    let mut seg = fake.segment(KEY, 32, 0o600, UID, GID);
    seg.shmid = shmid;
    fake.insert_segment(seg);
    assert_eq!(&read_at(&fs, fh, 0, 11).unwrap(), b"old segment");
    assert_eq!(read_at(&fs, fh, 0, 100).unwrap().len(), 16, "the old size");
    assert_eq!(
        fs.write(data, fh, 12, b"abcdef").unwrap(),
        4,
        "cut at the old end"
    );
    let attr = fs.getattr(&owner(), data, Some(fh)).unwrap();
    assert_eq!(
        attr.size, 16,
        "fstat of the open file: the segment as opened"
    );
    fs.release(fh);
    assert_eq!(
        fake.segment_bytes(shmid),
        [0; 32],
        "the new segment is untouched"
    );
}

#[test]
fn inode_numbers_are_never_handed_out_twice() {
    let (fake, fs) = world();
    let mut seen = std::collections::HashSet::new();
    for round in 0..20 {
        let name = if round % 2 == 0 { "a" } else { "b" };
        fake.add_object(name, b"", 0o600, UID, GID);
        let shmid = segment(&fake);
        for path in [format!("posix/{name}"), format!("sysv/{shmid}")] {
            let attr = walk(&fs, &path).unwrap();
            let data = fs.lookup(&owner(), attr.ino, os("data")).unwrap().ino;
            for ino in [attr.ino, data] {
                assert!(seen.insert(ino), "inode {ino} handed out again ({path})");
            }
            fs.forget(data, 1);
            fs.forget(attr.ino, 1);
        }
        fake.drop_object(name);
        fake.drop_segment(shmid);
        // Listings forget what is gone.
        list(&fs, POSIX_DIR);
        list(&fs, SYSV_DIR);
    }
    assert_eq!(seen.len(), 80);
}

#[test]
fn forget_drops_numbers_the_kernel_no_longer_holds() {
    let (fake, fs) = world();
    let shmid = segment(&fake);
    let dir = fs
        .lookup(&owner(), SYSV_DIR, os(&shmid.to_string()))
        .unwrap()
        .ino;
    let again = fs
        .lookup(&owner(), SYSV_DIR, os(&shmid.to_string()))
        .unwrap()
        .ino;
    assert_eq!(again, dir, "the same object keeps its number while held");
    let data = fs.lookup(&owner(), dir, os("data")).unwrap().ino;
    fs.forget(dir, 2);
    assert!(
        fs.getattr(&owner(), dir, None).is_ok(),
        "data is still held: the block stays"
    );
    fs.forget(data, 1);
    assert_eq!(errno_of(fs.getattr(&owner(), dir, None)), libc::ESTALE);
    assert_eq!(errno_of(fs.getattr(&owner(), data, None)), libc::ESTALE);
    let fresh = fs
        .lookup(&owner(), SYSV_DIR, os(&shmid.to_string()))
        .unwrap()
        .ino;
    assert!(fresh > data, "a new block, never an old number");
    // Forgetting the fixed numbers changes nothing.
    fs.forget(inode::ROOT, 5);
    fs.forget(SYSV_DIR, 5);
    assert!(fs.getattr(&owner(), SYSV_DIR, None).is_ok());
}

// Creation and removal.

#[test]
fn mkdir_creates_an_empty_object_with_the_mode_given() {
    let (fake, fs) = world();
    fake.set_creator(UID, GID);
    let attr = fs.mkdir(&owner(), POSIX_DIR, os("fresh"), 0o640).unwrap();
    assert_eq!((attr.kind, attr.perm, attr.uid), (Kind::Dir, 0o755, UID));
    let obj = fake.object_now("fresh").expect("created");
    assert_eq!((obj.mode, obj.size), (0o640, 0));
    assert_eq!(walk(&fs, "posix/fresh").unwrap().ino, attr.ino);
    // `truncate -s` on its data sizes it.
    let data = fs.lookup(&owner(), attr.ino, os("data")).unwrap();
    assert_eq!((data.perm, data.size), (0o640, 0));
    assert_eq!(
        fs.setattr(&owner(), data.ino, truncate(4096), None)
            .unwrap()
            .size,
        4096
    );
    assert_eq!(fake.object_now("fresh").unwrap().size, 4096);
}

#[test]
fn mkdir_elsewhere_or_of_a_taken_name_is_refused() {
    let (fake, fs) = world();
    fake.add_object("taken", b"", 0o600, UID, GID);
    assert_eq!(
        errno_of(fs.mkdir(&owner(), POSIX_DIR, os("taken"), 0o600)),
        libc::EEXIST
    );
    for parent in [
        inode::ROOT,
        SYSV_DIR,
        inode::BY_KEY_DIR,
        ino(&fs, "posix/taken"),
    ] {
        assert_eq!(
            errno_of(fs.mkdir(&owner(), parent, os("new"), 0o600)),
            libc::EPERM,
            "parent {parent}"
        );
    }
    assert_eq!(
        fake.calls(Op::CreateObject),
        1,
        "only the posix/ one reached the source"
    );
    assert!(fake.object_now("new").is_none());
}

#[test]
fn rmdir_of_a_posix_object_unlinks_it() {
    let (fake, fs) = world();
    fake.add_object("obj", b"", 0o600, UID, GID);
    let dir = ino(&fs, "posix/obj");
    let removed = fs.rmdir(&owner(), POSIX_DIR, os("obj")).unwrap();
    fs.removed(removed);
    assert!(fake.object_now("obj").is_none());
    assert_eq!(errno_of(walk(&fs, "posix/obj")), libc::ENOENT);
    assert_eq!(errno_of(fs.getattr(&owner(), dir, None)), libc::ESTALE);
    assert_eq!(
        errno_of(fs.rmdir(&owner(), POSIX_DIR, os("obj")).map(drop)),
        libc::ENOENT
    );
}

#[test]
fn rmdir_of_a_segment_nobody_has_attached_removes_it() {
    let (fake, fs) = world();
    let shmid = segment(&fake);
    let name = shmid.to_string();
    let removed = fs.rmdir(&owner(), SYSV_DIR, os(&name)).unwrap();
    fs.removed(removed);
    assert!(fake.segment_now(shmid).is_none());
    assert_eq!(
        errno_of(fs.lookup(&owner(), SYSV_DIR, os(&name))),
        libc::ENOENT
    );
    assert_eq!(errno_of(walk(&fs, "by-key/0x0000162e")), libc::ENOENT);
}

#[test]
fn rmdir_of_an_attached_segment_keeps_it_marked_for_removal() {
    let (fake, fs) = world();
    let shmid = segment(&fake);
    fake.change_segment(shmid, |s| s.nattch = 1);
    let path = format!("sysv/{shmid}");
    let dir = ino(&fs, &path);
    // Opened once, so shmfs knows it is not huge-page backed and its stat below need not
    // look for attachers in /proc.
    read_all(&fs, &owner(), ino(&fs, &format!("{path}/data"))).unwrap();
    let removed = fs
        .rmdir(&owner(), SYSV_DIR, os(&shmid.to_string()))
        .unwrap();
    fs.removed(removed);
    let seg = fake.segment_now(shmid).expect("kept until the last detach");
    assert_eq!((seg.key, seg.dest), (0, true));
    assert_eq!(walk(&fs, &path).unwrap().ino, dir, "still the same segment");
    let stat = text(&fs, &format!("{path}/stat"));
    assert!(stat.contains("\nkey: 0x00000000\n"), "{stat}");
    assert!(stat.contains("\ndest: yes\n"), "{stat}");
    assert_eq!(errno_of(walk(&fs, "by-key/0x0000162e")), libc::ENOENT);
    assert_eq!(list(&fs, inode::BY_KEY_DIR).len(), 2);
    // The last detach.
    fake.drop_segment(shmid);
    assert_eq!(errno_of(fs.getattr(&owner(), dir, None)), libc::ESTALE);
}

#[test]
fn rmdir_elsewhere_or_refused_by_the_kernel_changes_nothing() {
    let (fake, fs) = world();
    let shmid = segment(&fake);
    let name = shmid.to_string();
    for (parent, name, errno) in [
        (inode::ROOT, "sysv", libc::EPERM),
        (inode::BY_KEY_DIR, "0x0000162e", libc::EPERM),
        (SYSV_DIR, "12345", libc::ENOENT),
        (SYSV_DIR, "00", libc::ENOENT),
        (ino(&fs, &format!("sysv/{name}")), "data", libc::ENOTDIR),
    ] {
        assert_eq!(
            errno_of(fs.rmdir(&owner(), parent, os(name)).map(drop)),
            errno,
            "{parent}/{name}"
        );
    }
    fake.refuse(Op::RemoveSegment, libc::EPERM);
    assert_eq!(
        errno_of(fs.rmdir(&stranger(), SYSV_DIR, os(&name)).map(drop)),
        libc::EPERM
    );
    assert!(fake.segment_now(shmid).is_some());
    assert!(walk(&fs, &format!("sysv/{name}")).is_ok());
}

#[test]
fn changes_shmfs_does_not_offer_are_eperm_or_erofs_when_read_only() {
    let fake = Fake::new();
    let e = fake.fs(false).refuse_change();
    assert_eq!((e.errno(), e.level()), (libc::EPERM, Level::Debug));
    let e = fake.fs(true).refuse_change();
    assert_eq!((e.errno(), e.level()), (libc::EROFS, Level::Debug));
}

#[test]
fn a_read_only_filesystem_refuses_every_change_with_erofs() {
    let fake = Fake::new();
    let shmid = segment(&fake);
    fake.add_object("obj", b"bytes", 0o600, UID, GID);
    let fs = fake.fs(true);
    let sysv = format!("sysv/{shmid}");
    for path in [format!("{sysv}/data"), "posix/obj/data".into()] {
        let data = ino(&fs, &path);
        for flags in [libc::O_WRONLY, libc::O_RDWR, libc::O_WRONLY | libc::O_TRUNC] {
            let e = fs.open(&owner(), data, flags).expect_err(&path);
            assert_eq!(
                (e.errno(), e.level()),
                (libc::EROFS, Level::Debug),
                "{path}"
            );
        }
        assert_eq!(
            errno_of(fs.setattr(&owner(), data, truncate(0), None)),
            libc::EROFS
        );
        assert_eq!(
            errno_of(fs.setattr(&owner(), data, chmod(0o644), None)),
            libc::EROFS
        );
        assert!(read_all(&fs, &owner(), data).is_ok(), "reading still works");
    }
    for path in [format!("{sysv}/perm"), "posix/obj/perm".into()] {
        let perm = ino(&fs, &path);
        assert_eq!(
            errno_of(fs.open(&owner(), perm, libc::O_WRONLY)),
            libc::EROFS
        );
        assert!(read_all(&fs, &owner(), perm).is_ok());
    }
    assert_eq!(
        errno_of(fs.setattr(&owner(), ino(&fs, &sysv), chmod(0o644), None)),
        libc::EROFS
    );
    assert_eq!(
        errno_of(fs.mkdir(&owner(), POSIX_DIR, os("new"), 0o600)),
        libc::EROFS
    );
    assert_eq!(
        errno_of(fs.rmdir(&owner(), POSIX_DIR, os("obj")).map(drop)),
        libc::EROFS
    );
    assert_eq!(
        errno_of(
            fs.rmdir(&owner(), SYSV_DIR, os(&shmid.to_string()))
                .map(drop)
        ),
        libc::EROFS
    );
    assert!(fake.segment_now(shmid).is_some());
    assert_eq!(fake.object_bytes("obj"), b"bytes");
    assert_eq!(
        fake.calls(Op::SetSegmentPerm) + fake.calls(Op::RemoveSegment),
        0
    );
    assert_eq!(
        fake.calls(Op::CreateObject) + fake.calls(Op::RemoveObject),
        0
    );
}

// Listings and reports.

#[test]
fn readdir_resumes_at_the_offset_it_gave() {
    let (fake, fs) = world();
    for _ in 0..10 {
        segment(&fake);
    }
    let whole = list(&fs, SYSV_DIR);
    assert_eq!(whole.len(), 12);
    let fh = fs.opendir(&owner(), SYSV_DIR).unwrap();
    let mut paged = Vec::new();
    let mut offset = 0;
    loop {
        // A reply buffer with room for 3 entries: the 4th does not fit and is not taken.
        let mut taken = 0;
        let before = paged.len();
        fs.readdir(fh, offset, |e, next| {
            if taken == 3 {
                return true;
            }
            taken += 1;
            paged.push(e.clone());
            offset = next;
            false
        })
        .unwrap();
        if paged.len() == before {
            break;
        }
    }
    fs.release(fh);
    assert_eq!(paged, whole);
    assert_eq!(
        errno_of(fs.readdir(fh, 0, |_, _| false)),
        libc::EBADF,
        "released"
    );
}

#[test]
fn index_and_index_json_list_every_segment_and_object() {
    let (fake, fs) = world();
    let a = segment(&fake);
    let b = fake.add_segment(0, 8192, 0o644, UID, GID);
    fake.add_object("obj", b"abc", 0o600, UID, GID);
    let index = text(&fs, "index");
    let lines: Vec<&str> = index.lines().collect();
    assert_eq!(lines.len(), 4, "{index}");
    assert!(lines[0].starts_with("KIND"), "{index}");
    assert!(
        lines[1].starts_with("sysv") && lines[1].contains(" 0x0000162e "),
        "{index}"
    );
    assert!(
        lines[1].split_whitespace().nth(1) == Some(&a.to_string()),
        "{index}"
    );
    assert!(
        lines[2].split_whitespace().nth(1) == Some(&b.to_string()),
        "{index}"
    );
    assert!(
        lines[3].starts_with("posix") && lines[3].contains(" obj "),
        "{index}"
    );
    let json: serde_json::Value = serde_json::from_str(&text(&fs, "index.json")).unwrap();
    let rows = json.as_array().expect("an array");
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0]["shmid"], a);
    assert_eq!(rows[0]["key"], KEY);
    assert_eq!(rows[1]["size"], 8192);
    assert_eq!(rows[2]["name"], "obj");
    assert_eq!(rows[2]["size"], 3);
    assert_eq!(rows[2]["mode_octal"], "0600");
}

/// The samples of one family in `metrics.prom`: labels text → value.
fn samples(text: &str, family: &str) -> Vec<(String, String)> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (name, labels) = series.split_once('{').unwrap_or((series, ""));
            (name == family).then(|| (labels.trim_end_matches('}').to_string(), value.to_string()))
        })
        .collect()
}

#[test]
fn metrics_prom_has_what_index_shows_and_the_totals() {
    let (fake, fs) = world();
    let a = segment(&fake);
    let b = fake.add_segment(0, 8192, 0o644, UID, GID);
    fake.add_object("obj", b"abc", 0o600, UID, GID);
    let attr = fs.getattr(&owner(), inode::METRICS, None).unwrap();
    let text = text(&fs, "metrics.prom");
    assert_eq!(
        attr.size,
        text.len() as u64,
        "its real length, as index reports"
    );
    let owner = crate::kernel::names::user_name(UID).unwrap_or_else(|| UID.to_string());
    let sizes = samples(&text, "shmfs_sysv_segment_size_bytes");
    assert_eq!(
        sizes,
        [
            (
                format!(r#"shmid="{a}",key="0x0000162e",owner="{owner}",mode="0600""#),
                "4096".to_string()
            ),
            (
                format!(r#"shmid="{b}",key="0x00000000",owner="{owner}",mode="0644""#),
                "8192".to_string()
            ),
        ],
        "{text}"
    );
    assert_eq!(
        samples(&text, "shmfs_posix_object_size_bytes"),
        [(
            format!(r#"name="obj",owner="{owner}",mode="0600""#),
            "3".to_string()
        )]
    );
    assert_eq!(samples(&text, "shmfs_sysv_segments")[0].1, "2");
    assert_eq!(samples(&text, "shmfs_sysv_segments_unattached")[0].1, "2");
    assert_eq!(
        samples(&text, "shmfs_sysv_segments_unattached_bytes")[0].1,
        "12288"
    );
    assert_eq!(samples(&text, "shmfs_posix_objects")[0].1, "1");

    let totals = fake.fs_with(Options {
        read_only: false,
        metrics: metrics::Detail::Totals,
    });
    let text = self::text(&totals, "metrics.prom");
    assert!(!text.contains('{'), "totals only:\n{text}");
    assert_eq!(samples(&text, "shmfs_sysv_segments")[0].1, "2");
    assert_eq!(samples(&text, "shmfs_posix_objects")[0].1, "1");
}

#[test]
fn looking_is_not_touching() {
    let (fake, fs) = world();
    let shmid = segment(&fake);
    fake.add_object("obj", b"", 0o600, UID, GID);
    for dir in [format!("sysv/{shmid}"), "posix/obj".into()] {
        let d = ino(&fs, &dir);
        list(&fs, d);
        for file in ["data", "stat", "perm"] {
            let attr = walk(&fs, &format!("{dir}/{file}")).unwrap();
            fs.getattr(&owner(), attr.ino, None).unwrap();
            fs.access(&owner(), attr.ino, libc::R_OK).unwrap_or(());
        }
        text(&fs, &format!("{dir}/stat"));
        text(&fs, &format!("{dir}/perm"));
    }
    text(&fs, "index");
    text(&fs, "index.json");
    text(&fs, "metrics.prom");
    assert_eq!(fake.calls(Op::AttachSegment), 0);
    let data = ino(&fs, &format!("sysv/{shmid}/data"));
    read_all(&fs, &owner(), data).unwrap();
    assert_eq!(
        fake.calls(Op::AttachSegment),
        1,
        "opening data reaches the memory"
    );
}

#[test]
fn statfs_counts_the_shm_filesystem_and_the_segments() {
    let (fake, fs) = world();
    fake.add_segment(KEY, 8192, 0o600, UID, GID);
    let shmid = fake.add_segment(0, 4096, 0o600, UID, GID);
    fake.set_usage(shmid, Usage { rss: 4096, swap: 0 });
    let usage = fs.statfs().unwrap();
    // The fake's shm filesystem: 1000 blocks of 4096, 100 used, 5000 files.
    assert_eq!(usage.block_size, 4096);
    assert_eq!(usage.blocks, 1000 + 3, "plus the segments' pages");
    assert_eq!(usage.free, 1003 - 100 - 1, "less the resident page");
    assert_eq!((usage.files, usage.files_free), (5002, 4990));
}

#[test]
fn access_follows_the_objects_mode() {
    let (fake, fs) = world();
    let shmid = fake.add_segment(KEY, 4096, 0o640, UID, GID);
    let data = ino(&fs, &format!("sysv/{shmid}/data"));
    let member = Caller::new(3000, GID, 0);
    assert!(fs.access(&owner(), data, libc::R_OK | libc::W_OK).is_ok());
    assert!(fs.access(&member, data, libc::R_OK).is_ok());
    assert_eq!(errno_of(fs.access(&member, data, libc::W_OK)), libc::EACCES);
    assert_eq!(
        errno_of(fs.access(&stranger(), data, libc::R_OK)),
        libc::EACCES
    );
    assert_eq!(
        errno_of(fs.access(&owner(), data, libc::X_OK)),
        libc::EACCES
    );
    let stat = ino(&fs, &format!("sysv/{shmid}/stat"));
    assert!(
        fs.access(&stranger(), stat, libc::R_OK).is_ok(),
        "anyone may read stat"
    );
    assert_eq!(
        errno_of(fs.access(&owner(), stat, libc::W_OK)),
        libc::EACCES
    );
    assert!(fs.access(&stranger(), SYSV_DIR, libc::W_OK).is_ok());
    assert_eq!(
        errno_of(fs.access(&owner(), inode::ROOT, libc::W_OK)),
        libc::EACCES
    );
    // `perm` is writable for whoever may open it for writing: who may change the object.
    let perm = ino(&fs, &format!("sysv/{shmid}/perm"));
    assert!(fs.access(&owner(), perm, libc::W_OK).is_ok());
    assert!(fs.access(&stranger(), perm, libc::R_OK).is_ok());
    assert_eq!(
        errno_of(fs.access(&stranger(), perm, libc::W_OK)),
        libc::EACCES
    );
}

#[test]
fn errors_carry_their_errno_and_the_level_to_log_them_at() {
    let (fake, fs) = world();
    fake.add_object("obj", b"", 0o600, UID, GID);
    let data = ino(&fs, "posix/obj/data");
    // Routine: a caller's mistake or a race, at debug.
    let e = fs.lookup(&owner(), POSIX_DIR, os("missing")).unwrap_err();
    assert_eq!((e.errno(), e.level()), (libc::ENOENT, Level::Debug));
    let e = fs.getattr(&owner(), 999_999, None).unwrap_err();
    assert_eq!((e.errno(), e.level()), (libc::ESTALE, Level::Debug));
    let e = fs.read(424_242, 0, 10, |_| {}).unwrap_err();
    assert_eq!(e.errno(), libc::EBADF);
    // The kernel refusing a caller is routine too...
    fake.refuse(Op::OpenObject, libc::EACCES);
    let e = fs.open(&stranger(), data, libc::O_RDONLY).unwrap_err();
    assert_eq!((e.errno(), e.level()), (libc::EACCES, Level::Debug));
    // ...an I/O error is not.
    fake.refuse(Op::OpenObject, libc::EIO);
    let e = fs.open(&owner(), data, libc::O_RDONLY).unwrap_err();
    assert_eq!((e.errno(), e.level()), (libc::EIO, Level::Warn));
}

#[test]
fn a_segment_someone_has_attached_is_reached_without_attaching_it() {
    let (fake, fs) = world();
    let shmid = fake.add_segment(KEY, 4096, 0o640, UID, GID);
    fake.write_segment(shmid, 0, b"hello");
    fake.change_segment(shmid, |s| s.nattch = 1);
    let data = ino(&fs, &format!("sysv/{shmid}/data"));

    assert_eq!(&read_all(&fs, &owner(), data).unwrap()[..5], b"hello");
    write_as(&fs, &owner(), data, 0, b"HE").unwrap();
    assert_eq!(&fake.segment_bytes(shmid)[..5], b"HEllo");
    assert_eq!(fake.calls(Op::AttachSegment), 0, "no shmat on this route");
    assert_eq!(fake.calls(Op::AttachedMemory), 2);

    // The caller's right is checked as shmat would: others have no right here, the group
    // only reads, and writing needs read and write.
    assert_eq!(errno_of(read_all(&fs, &stranger(), data)), libc::EACCES);
    let member = Caller::new(3000, GID, 0);
    assert_eq!(&read_all(&fs, &member, data).unwrap()[..2], b"HE");
    assert_eq!(
        errno_of(write_as(&fs, &member, data, 0, b"x")),
        libc::EACCES
    );
    fake.change_segment(shmid, |s| s.mode = 0o240);
    assert_eq!(
        errno_of(write_as(&fs, &owner(), data, 0, b"x")),
        libc::EACCES,
        "write without read is refused, as shmat refuses it"
    );
    assert_eq!(fake.calls(Op::AttachSegment), 0);

    // Nobody attached: the brief attach, as before.
    fake.change_segment(shmid, |s| {
        s.nattch = 0;
        s.mode = 0o600;
    });
    read_all(&fs, &owner(), data).unwrap();
    assert_eq!(fake.calls(Op::AttachSegment), 1);
}
