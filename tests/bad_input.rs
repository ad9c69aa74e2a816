//! Hostile and absurd input through the mount: `perm` writes of every malformed kind, data
//! writes and reads at absurd offsets and sizes, and many writers at once. Each is refused with
//! a clear errno (or done exactly as the kernel would), changes nothing when refused, and leaves
//! the daemon answering.

mod common;

use std::fs;
use std::io::{self, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::{Arc, Barrier};

use common::*;

/// A user with no rights on anything the tests make.
const OTHER: u32 = 12345;

/// (mode, uid, gid) of a segment per IPC_STAT.
fn sysv_perm(seg: &SysvSeg) -> (u32, u32, u32) {
    let ds = seg.stat();
    (
        u32::from(ds.shm_perm.mode) & 0o777,
        ds.shm_perm.uid,
        ds.shm_perm.gid,
    )
}

/// (mode, uid, gid) of a file per stat(2).
fn file_perm(p: &Path) -> (u32, u32, u32) {
    let md = fs::metadata(p).unwrap();
    (md.mode() & 0o7777, md.uid(), md.gid())
}

/// `0640 2001:3001`.
fn show((mode, uid, gid): (u32, u32, u32)) -> String {
    format!("{mode:04o} {uid}:{gid}")
}

/// Asserts the daemon still answers: the mount lists, and a `stat` file reads.
#[track_caller]
fn assert_alive(m: &Mount, seg: &SysvSeg) {
    assert!(
        m.ls_sysv().contains(&seg.id),
        "the mount no longer lists the segment"
    );
    read_fields(&m.sysv(seg.id, "stat"));
}

// ---------------------------------------------------------------------------------------------
// perm
// ---------------------------------------------------------------------------------------------

/// Every class of malformed `perm` write: each must fail with EINVAL in one write(2) call.
fn malformed_perm_writes() -> Vec<(&'static str, Vec<u8>)> {
    let mut v: Vec<(&str, Vec<u8>)> = vec![
        ("empty line", b"\n".to_vec()),
        ("blank lines", b"\n\n \t\n".to_vec()),
        ("1 MiB of digits", vec![b'6'; 1 << 20]),
        ("a valid pair padded past 4 KiB", {
            let mut b = b"mode: 0600".to_vec();
            b.resize(5000, b' ');
            b
        }),
        ("binary bytes", b"\x00\xff\x01\x80\xfe binary".to_vec()),
        ("all 256 byte values", (0..=255u8).collect()),
        (
            "invalid UTF-8 after a valid pair",
            b"mode: 600 \xff".to_vec(),
        ),
        ("NUL after a valid mode", b"mode: 600\0".to_vec()),
        ("NUL before a valid mode", b"\x00600".to_vec()),
        ("a name alone", b"mode".to_vec()),
        ("a name and colon", b"mode:".to_vec()),
        ("a name, colon and space", b"mode: ".to_vec()),
        ("a name and equals", b"uid=".to_vec()),
        ("second line cut", b"mode: 0640\nuid:".to_vec()),
        ("colon spaced from its name", b"mode : 600".to_vec()),
        ("mode with an 8", b"mode: 0680".to_vec()),
        ("mode of five digits not led by 0", b"mode: 10600".to_vec()),
        ("mode of six digits", b"mode: 000600".to_vec()),
        ("negative mode", b"mode: -1".to_vec()),
        ("hex mode", b"mode: 0x1ff".to_vec()),
        ("symbolic mode", b"mode: u+rw".to_vec()),
        ("uid -1 as unsigned", b"uid: 4294967295".to_vec()),
        ("gid -1 as unsigned", b"gid: 4294967295".to_vec()),
        ("uid above 32 bits", b"uid: 99999999999".to_vec()),
        ("gid 2^32", b"gid: 4294967296".to_vec()),
        (
            "uid of 40 digits",
            format!("uid: {}", "9".repeat(40)).into_bytes(),
        ),
        ("negative uid", b"uid: -1".to_vec()),
        ("signed uid", b"uid: +5".to_vec()),
        ("hex uid", b"uid: 0x10".to_vec()),
        ("unknown field", b"bogus: 1".to_vec()),
        ("field in capitals", b"Mode: 600".to_vec()),
        ("size field", b"size: 0".to_vec()),
        ("key field", b"key: 5".to_vec()),
        ("cuid field", b"cuid: 0".to_vec()),
        ("unknown user", b"uid: no-such-user".to_vec()),
        ("unknown group", b"gid: no-such-group-shmfs".to_vec()),
        (
            "very long user name",
            format!("uid: {}", "u".repeat(4000)).into_bytes(),
        ),
        ("valid then unknown field", b"mode: 600 bogus: 1".to_vec()),
        (
            "valid then unknown user",
            b"mode: 600\nuid: no-such-user\n".to_vec(),
        ),
        ("valid then junk word", b"mode: 0600 junk".to_vec()),
        (
            "unknown user then valid",
            b"uid: no-such-user mode: 600".to_vec(),
        ),
        ("field given twice", b"uid: 0 uid: 0".to_vec()),
        ("mode given twice", b"mode: 600 mode: 600".to_vec()),
        ("bare mode then a pair", b"600 uid: 0".to_vec()),
        ("two bare modes", b"600 644".to_vec()),
    ];
    v.push((
        "the perm text repeated",
        b"mode: 0600\nuid: 0\ngid: 0\n".repeat(2),
    ));
    v
}

/// Writes each malformed input to `perm` in one write(2) and checks the errno and that
/// `state` did not change; returns the list of failures.
fn refuse_all(perm: &Path, state: &dyn Fn() -> (u32, u32, u32)) -> Vec<String> {
    let before = state();
    let mut wrong = Vec::new();
    for (what, input) in malformed_perm_writes() {
        match write_once(perm, &input) {
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
            other => wrong.push(format!("{what}: expected EINVAL, got {other:?}")),
        }
        if state() != before {
            wrong.push(format!(
                "{what}: changed mode/uid/gid from {} to {}",
                show(before),
                show(state())
            ));
        }
    }
    wrong
}

#[test]
fn malformed_sysv_perm_writes_fail_einval_and_change_nothing() {
    require_fuse!();
    let m = Mount::new();
    let seg = SysvSeg::private(4096, 0o640);
    seg.set(None, Some(2001), Some(3001));
    let wrong = refuse_all(&m.sysv(seg.id, "perm"), &|| sysv_perm(&seg));
    assert!(
        wrong.is_empty(),
        "malformed perm writes:\n  {}",
        wrong.join("\n  ")
    );
    assert_alive(&m, &seg);
}

#[test]
fn malformed_posix_perm_writes_fail_einval_and_change_nothing() {
    require_fuse!();
    let m = Mount::new();
    let p = create_posix(m.shm_dir(), "obj", 0o640, b"x");
    std::os::unix::fs::chown(&p, Some(2001), Some(3001)).unwrap();
    let wrong = refuse_all(&m.posix("obj", "perm"), &|| file_perm(&p));
    assert!(
        wrong.is_empty(),
        "malformed perm writes:\n  {}",
        wrong.join("\n  ")
    );
}

/// A user who may change nothing cannot open `perm` for writing (EPERM, the kernel's answer
/// to IPC_SET), so whatever it would write, malformed or well-formed, is refused the same way;
/// nothing changes either way.
#[test]
fn perm_writes_by_a_stranger_are_refused_at_open() {
    require_fuse!();
    let m = Mount::builder().option("allow_other").mount();
    let seg = SysvSeg::private(4096, 0o644);
    let before = sysv_perm(&seg);
    let perm = m.sysv(seg.id, "perm");
    let dd = |text: &str| {
        sh_as(
            OTHER,
            &format!(
                "printf '{text}' | dd of={} conv=notrunc status=none",
                q(&perm)
            ),
        )
    };
    let r = dd("mode: 1777");
    assert!(
        !r.ok() && r.stderr.contains("Operation not permitted"),
        "malformed by uid {OTHER}: {r:?}"
    );
    let r = dd("mode: 0666 uid: 12345");
    assert!(
        !r.ok() && r.stderr.contains("Operation not permitted"),
        "well-formed by uid {OTHER}: {r:?}"
    );
    assert_eq!(sysv_perm(&seg), before);
}

/// `mode: 06` may be a line cut short, but it is also a complete, valid write: mode 0006.
/// docs/design.md §1 makes each write(2) all or nothing on its own, so shmfs cannot tell and
/// applies it. A writer must send the whole text in one write(2).
#[test]
fn short_mode_is_a_valid_mode_not_a_partial_line() {
    require_fuse!();
    let m = Mount::new();
    let seg = SysvSeg::private(4096, 0o640);
    write_once(&m.sysv(seg.id, "perm"), b"mode: 06").expect("write `mode: 06`");
    assert_eq!(sysv_perm(&seg), (0o006, 0, 0));
}

/// Eight threads write whole, valid `perm` texts (and some malformed ones) at once: the final
/// mode/uid/gid is exactly one of the texts written, never a mix, and the daemon lives.
fn concurrent_perm_writers(perm: &Path, state: &dyn Fn() -> (u32, u32, u32)) {
    const THREADS: u32 = 8;
    const ROUNDS: u32 = 200;
    let value = |t: u32| (0o600 | (t & 0o77), 20_000 + t, 30_000 + t);
    let barrier = Arc::new(Barrier::new(THREADS as usize));
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let perm = perm.to_path_buf();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let (mode, uid, gid) = value(t);
                let text = format!("mode: 0{mode:o}\nuid: {uid}\ngid: {gid}\n");
                let mut f = fs::OpenOptions::new().write(true).open(&perm).unwrap();
                barrier.wait();
                for round in 0..ROUNDS {
                    if t % 2 == 1 && round % 3 == 0 {
                        let bad = f.write(format!("mode: 0{mode:o} bogus: {round}").as_bytes());
                        assert_eq!(bad.map_err(|e| e.raw_os_error()), Err(Some(libc::EINVAL)));
                    }
                    assert_eq!(f.write(text.as_bytes()).unwrap(), text.len());
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("writer thread");
    }
    let written: Vec<(u32, u32, u32)> = (0..THREADS).map(value).collect();
    let now = state();
    assert!(
        written.contains(&now),
        "after concurrent writes the state {} is none of those written: {:?}",
        show(now),
        written.into_iter().map(show).collect::<Vec<_>>()
    );
}

#[test]
fn concurrent_sysv_perm_writers_leave_one_written_value() {
    require_fuse!();
    let m = Mount::new();
    let seg = SysvSeg::private(4096, 0o600);
    concurrent_perm_writers(&m.sysv(seg.id, "perm"), &|| sysv_perm(&seg));
    assert_alive(&m, &seg);
}

#[test]
fn concurrent_posix_perm_writers_leave_one_written_value() {
    require_fuse!();
    let m = Mount::new();
    let p = create_posix(m.shm_dir(), "obj", 0o600, b"x");
    concurrent_perm_writers(&m.posix("obj", "perm"), &|| file_perm(&p));
    read_fields(&m.posix("obj", "stat"));
}

// ---------------------------------------------------------------------------------------------
// data
// ---------------------------------------------------------------------------------------------

fn errno_of<T>(r: &io::Result<T>) -> Option<i32> {
    r.as_ref().err().and_then(|e| e.raw_os_error())
}

/// Writes and reads at absurd offsets of a 4 KiB segment: refused (ENOSPC past the end, or the
/// kernel's EFBIG/EINVAL before shmfs sees them), reads give 0 bytes, nothing changes.
#[test]
fn sysv_data_at_absurd_offsets() {
    require_fuse!();
    let m = Mount::new();
    let seg = SysvSeg::private(4096, 0o600);
    let att = seg.attach();
    let pattern = pattern(4096, 7);
    att.write(0, &pattern);
    let f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(m.sysv(seg.id, "data"))
        .unwrap();

    // Where offset + length still fits in an off_t, shmfs gets the write and refuses it with
    // ENOSPC (it starts past the end); beyond, the kernel refuses it with EINVAL first.
    for (offset, want) in [
        (4096u64, libc::ENOSPC),
        (1 << 32, libc::ENOSPC),
        (1 << 62, libc::ENOSPC),
        ((i64::MAX - 2) as u64, libc::ENOSPC),
        ((i64::MAX - 1) as u64, libc::EINVAL),
        (i64::MAX as u64, libc::EINVAL),
    ] {
        let r = f.write_at(b"xx", offset);
        assert_eq!(
            errno_of(&r),
            Some(want),
            "pwrite of 2 bytes at {offset:#x}: {r:?}"
        );
        // Reads there find nothing, or are refused by the kernel alike.
        let mut buf = [0u8; 2];
        let r = f.read_at(&mut buf, offset).map_err(|e| e.raw_os_error());
        let want = if want == libc::ENOSPC {
            Ok(0)
        } else {
            Err(Some(want))
        };
        assert_eq!(r, want, "pread of 2 bytes at {offset:#x}");
    }
    // Offsets beyond i64 are negative to the kernel.
    let r = f.write_at(b"x", u64::MAX);
    assert_eq!(
        errno_of(&r),
        Some(libc::EINVAL),
        "pwrite at u64::MAX: {r:?}"
    );
    let mut buf = [0u8; 1];
    let r = f.read_at(&mut buf, u64::MAX);
    assert_eq!(errno_of(&r), Some(libc::EINVAL), "pread at u64::MAX: {r:?}");

    // lseek far away, then write(2) and read(2) there.
    let mut g = f.try_clone().unwrap();
    for (offset, want) in [(1u64 << 62, libc::ENOSPC), (i64::MAX as u64, libc::EINVAL)] {
        assert_eq!(g.seek(SeekFrom::Start(offset)).unwrap(), offset, "lseek");
        let r = g.write(b"x");
        assert_eq!(
            errno_of(&r),
            Some(want),
            "write after lseek to {offset:#x}: {r:?}"
        );
        let r = std::io::Read::read(&mut g, &mut buf).map_err(|e| e.raw_os_error());
        let want = if want == libc::ENOSPC {
            Ok(0)
        } else {
            Err(Some(want))
        };
        assert_eq!(r, want, "read after lseek to {offset:#x}");
    }
    assert_eq!(att.all(), pattern, "the segment changed");
    assert_alive(&m, &seg);
}

/// Zero-length writes and reads succeed with 0 at any offset and change nothing.
#[test]
fn zero_length_writes_and_reads_do_nothing() {
    require_fuse!();
    let m = Mount::new();
    let seg = SysvSeg::private(4096, 0o600);
    let att = seg.attach();
    att.write(0, &pattern(4096, 3));
    let p = create_posix(m.shm_dir(), "obj", 0o600, b"object bytes");
    for data in [m.sysv(seg.id, "data"), m.posix("obj", "data")] {
        let f = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&data)
            .unwrap();
        for offset in [0u64, 12, 4096, 1 << 40, 1 << 62] {
            assert_eq!(
                f.write_at(&[], offset).unwrap(),
                0,
                "empty pwrite at {offset:#x} of {}",
                data.display()
            );
            assert_eq!(
                f.read_at(&mut [], offset).unwrap(),
                0,
                "empty pread at {offset:#x}"
            );
        }
    }
    assert_eq!(att.all(), pattern(4096, 3));
    assert_eq!(fs::read(&p).unwrap(), b"object bytes");
    assert_eq!(
        fs::metadata(&p).unwrap().len(),
        12,
        "an empty write extended the object"
    );
    assert_alive(&m, &seg);
}

/// One 16 MiB write(2) to a 4 KiB segment writes the 4 KiB that fit and returns that count;
/// the next write fails with ENOSPC; `write_all` reports ENOSPC.
#[test]
fn huge_write_to_small_segment_is_short() {
    require_fuse!();
    let m = Mount::new();
    let seg = SysvSeg::private(4096, 0o600);
    let att = seg.attach();
    let big = pattern(16 << 20, 9);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .open(m.sysv(seg.id, "data"))
        .unwrap();
    assert_eq!(
        f.write(&big).unwrap(),
        4096,
        "short count of a 16 MiB write"
    );
    assert_eq!(att.all(), big[..4096], "the bytes that fit");
    let r = f.write(&big);
    assert_eq!(errno_of(&r), Some(libc::ENOSPC), "the next write: {r:?}");

    let mut f = fs::OpenOptions::new()
        .write(true)
        .open(m.sysv(seg.id, "data"))
        .unwrap();
    let r = f.write_all(&big);
    assert_eq!(
        errno_of(&r),
        Some(libc::ENOSPC),
        "write_all of 16 MiB: {r:?}"
    );
    // From the middle: only the rest fits.
    assert_eq!(f.write_at(&big, 4000).unwrap(), 96);
    assert_alive(&m, &seg);
}

/// POSIX `data` is a regular file: absurd offsets and huge writes get exactly what the same
/// calls get on the object directly, and leave it the same size.
#[test]
fn posix_data_at_absurd_offsets_matches_the_object() {
    require_fuse!();
    let m = Mount::new();
    let dir = m.shm_dir().to_path_buf();
    // Objects in a world-readable directory, so that both are checked the same way.
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o1777)).unwrap();
    let via_mount = create_posix(&dir, "via-mount", 0o600, b"0123456789");
    let direct = create_posix(&dir, "direct", 0o600, b"0123456789");
    let open = |p: &Path| {
        fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(p)
            .unwrap()
    };
    let (a, b) = (open(&m.posix("via-mount", "data")), open(&direct));
    let mut differences = Vec::new();
    for offset in [
        1u64 << 32,
        1 << 44,
        1 << 62,
        (i64::MAX - 1) as u64,
        i64::MAX as u64,
        u64::MAX,
    ] {
        let ra = a.write_at(b"xy", offset).map_err(|e| e.raw_os_error());
        let rb = b.write_at(b"xy", offset).map_err(|e| e.raw_os_error());
        let mut ba = [0u8; 4];
        let mut bb = [0u8; 4];
        let reads = (
            a.read_at(&mut ba, offset).map_err(|e| e.raw_os_error()),
            b.read_at(&mut bb, offset).map_err(|e| e.raw_os_error()),
        );
        let sizes = (
            fs::metadata(&via_mount).unwrap().len(),
            fs::metadata(&direct).unwrap().len(),
        );
        if ra != rb || reads.0 != reads.1 || ba != bb || sizes.0 != sizes.1 {
            differences.push(format!(
                "at {offset:#x}: pwrite {ra:?} / {rb:?}, pread {reads:?} {ba:?}/{bb:?}, \
                 sizes {sizes:?}"
            ));
        }
        // Back to the original size for the next offset.
        a.set_len(10).unwrap();
        b.set_len(10).unwrap();
    }
    // One 16 MiB write, then back.
    let big = pattern(16 << 20, 5);
    let r = (a.write_at(&big, 0).unwrap(), b.write_at(&big, 0).unwrap());
    if r.0 != r.1 || fs::read(&via_mount).unwrap() != fs::read(&direct).unwrap() {
        differences.push(format!(
            "16 MiB write: {r:?}, contents differ or sizes differ"
        ));
    }
    assert!(
        differences.is_empty(),
        "through the mount / directly:\n  {}",
        differences.join("\n  ")
    );
    let seg = SysvSeg::private(4096, 0o600);
    assert_alive(&m, &seg);
}

/// Writing to the read-only files fails the same way for each of them, even as root: EACCES
/// for an open for writing, a truncate and a change of times (`touch`); and leaves the daemon
/// answering.
#[test]
fn writes_to_read_only_files_are_refused() {
    require_fuse!();
    let m = Mount::new();
    let seg = SysvSeg::private(4096, 0o600);
    create_posix(m.shm_dir(), "obj", 0o600, b"");
    let files = [
        m.sysv(seg.id, "stat"),
        m.sysv(seg.id, "attached"),
        m.posix("obj", "stat"),
        m.posix("obj", "attached"),
        m.p("limits"),
        m.p("index"),
        m.p("index.json"),
        m.p("metrics.prom"),
    ];
    for p in &files {
        let shown = p.display();
        assert_errno(
            fs::OpenOptions::new().write(true).open(p),
            libc::EACCES,
            &format!("open {shown} for writing"),
        );
        assert_errno(truncate(p, 0), libc::EACCES, &format!("truncate {shown}"));
        let r = sh(&format!("touch {}", q(p)));
        assert!(
            !r.ok() && r.stderr.contains("Permission denied"),
            "`touch {shown}` as root must fail with Permission denied: {r:?}"
        );
        let r = sh(&format!("touch -c -d @0 {}", q(p)));
        assert!(
            !r.ok() && r.stderr.contains("Permission denied"),
            "`touch -c -d @0 {shown}` (utimensat alone) must fail with Permission denied: {r:?}"
        );
    }
    assert_alive(&m, &seg);
}
