//! Faults (docs/security.md "Under faults"): objects that shrink, vanish or are replaced while they
//! are open; segments beyond 4 GiB, on huge pages or locked in memory; the daemon stopped with
//! SIGTERM in the middle of a large read or killed with SIGKILL; one stuck request beside
//! others.
//!
//! Every wait is bounded: a hang fails the test (and kills what it started) instead of
//! blocking the run.

mod common;

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;

const GIB: u64 = 1 << 30;
/// How long a test may run before its daemon is killed (see `KillOnHang`).
const HANG_LIMIT: Duration = Duration::from_secs(300);
const MIB: usize = 1 << 20;

/// Reads up to `len` bytes at `offset` (several reads if the file gives less, until EOF).
fn read_at(f: &File, offset: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    let mut got = 0;
    while got < len {
        let n = f.read_at(&mut buf[got..], offset + got as u64)?;
        if n == 0 {
            break;
        }
        got += n;
    }
    buf.truncate(got);
    Ok(buf)
}

fn open_rw(p: &Path) -> File {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(p)
        .unwrap_or_else(|e| panic!("open {} O_RDWR: {e}", p.display()))
}

fn open_ro(p: &Path) -> File {
    File::open(p).unwrap_or_else(|e| panic!("open {} O_RDONLY: {e}", p.display()))
}

fn read_all(f: &mut File) -> Vec<u8> {
    let mut v = Vec::new();
    f.read_to_end(&mut v).expect("read to end");
    v
}

/// Asserts that `p` does not exist (ENOENT), as after its object was removed.
#[track_caller]
fn assert_gone(p: &Path) {
    assert_errno(
        fs::metadata(p),
        libc::ENOENT,
        &format!("stat {}", p.display()),
    );
}

// ---------------------------------------------------------------------------------------------
// Shrunk while being read
// ---------------------------------------------------------------------------------------------

/// A POSIX object shrunk (and grown back) by another process while readers read it through
/// the mount: every read succeeds, possibly short (EOF moved) and every byte is the object's
/// byte at that offset or zero, as on tmpfs itself. The daemon lives on.
#[test]
fn posix_object_shrunk_while_being_read_gives_short_reads_or_zeros() {
    require_fuse!();
    let m = Mount::new();
    let _hang = KillOnHang::new(&m, HANG_LIMIT);
    const SIZE: usize = 8 * MIB;
    let content = Arc::new(
        pattern(SIZE, 0x5a)
            .iter()
            .map(|b| b | 1)
            .collect::<Vec<u8>>(),
    );
    let direct = create_posix(m.shm_dir(), "shrinking", 0o600, &content);
    let data = m.posix("shrinking", "data");
    let deadline = Instant::now() + Duration::from_secs(4);
    let stop = Arc::new(AtomicBool::new(false));

    // The other process: shrinks to a random size, grows back (zeros), rewrites the bytes.
    let shrinker = {
        let stop = stop.clone();
        let content = content.clone();
        std::thread::spawn(move || {
            let f = OpenOptions::new().write(true).open(&direct).unwrap();
            let mut cycles = 0u64;
            let mut x = 12345u64;
            while !stop.load(Ordering::Relaxed) {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let small = (x >> 33) % SIZE as u64;
                f.set_len(small).unwrap();
                f.set_len(if cycles.is_multiple_of(3) {
                    0
                } else {
                    small / 2
                })
                .unwrap();
                f.set_len(SIZE as u64).unwrap();
                f.write_all_at(&content, 0).unwrap();
                cycles += 1;
            }
            cycles
        })
    };

    // Readers through the mount: read-only and read-write opens, whole-file passes.
    let readers: Vec<_> = [false, true]
        .into_iter()
        .map(|writable| {
            let data = data.clone();
            let content = content.clone();
            std::thread::spawn(move || -> Result<(u64, u64), String> {
                let (mut passes, mut short) = (0u64, 0u64);
                while Instant::now() < deadline {
                    let f = OpenOptions::new()
                        .read(true)
                        .write(writable)
                        .open(&data)
                        .map_err(|e| format!("open data (writable {writable}): {e}"))?;
                    let mut buf = vec![0u8; 256 * 1024];
                    let mut off = 0usize;
                    loop {
                        let n = f
                            .read_at(&mut buf, off as u64)
                            .map_err(|e| format!("read at {off} (writable {writable}): {e}"))?;
                        if n == 0 {
                            break;
                        }
                        if off + n > SIZE {
                            return Err(format!("read {n} bytes at {off}, past {SIZE}"));
                        }
                        if let Some(i) = (0..n).find(|&i| buf[i] != 0 && buf[i] != content[off + i])
                        {
                            return Err(format!(
                                "byte at {} is {:#x}: neither the object's byte {:#x} nor 0",
                                off + i,
                                buf[i],
                                content[off + i]
                            ));
                        }
                        off += n;
                    }
                    if off < SIZE {
                        short += 1;
                    }
                    passes += 1;
                }
                Ok((passes, short))
            })
        })
        .collect();

    // And a user's `cat`: no message at all.
    let mut cat_runs = 0;
    while Instant::now() < deadline {
        let r = sh(&format!("cat {} > /dev/null", q(&data)));
        assert!(
            r.ok() && r.stderr.is_empty(),
            "cat data while it shrinks: {r:?}"
        );
        cat_runs += 1;
    }
    let results: Vec<_> = readers.into_iter().map(|t| t.join().unwrap()).collect();
    stop.store(true, Ordering::Relaxed);
    let cycles = shrinker.join().unwrap();
    for r in &results {
        if let Err(e) = r {
            panic!("reader through the mount: {e}");
        }
    }
    eprintln!("shrink cycles {cycles}, cat runs {cat_runs}, readers (passes, short) {results:?}");
    assert!(cycles > 0, "the object was never shrunk");

    assert!(daemon_alive(&m), "the daemon died; log:\n{}", m.log());
    let f = read_fields(&m.posix("shrinking", "stat"));
    assert_eq!(
        f.num("size"),
        SIZE as u64,
        "stat after the shrinking stopped"
    );
    assert_eq!(
        fs::read(&data).unwrap(),
        *content,
        "data after the shrinking stopped"
    );
    assert!(!m.log().contains("panicked"), "daemon log:\n{}", m.log());
}

// ---------------------------------------------------------------------------------------------
// Removed while open, replaced by a new object
// ---------------------------------------------------------------------------------------------

/// `ipcrm` of a segment whose `data` is open: the open file keeps reading and writing the old
/// bytes; a new segment with the same key is a new directory with its own bytes, untouched by
/// writes through the old file.
#[test]
fn sysv_segment_removed_while_open_keeps_working_and_its_key_successor_is_separate() {
    require_fuse!();
    let m = Mount::new();
    let _hang = KillOnHang::new(&m, HANG_LIMIT);
    const SIZE: usize = 3 * 4096 + 100;
    let mut old = SysvSeg::keyed(SIZE, 0o600);
    let old_bytes = pattern(SIZE, 1);
    old.attach().write(0, &old_bytes);
    let path = m.sysv(old.id, "data");
    let ro = open_ro(&path);
    let rw = open_rw(&path);

    sh_ok(&format!("ipcrm -m {}", old.id));
    old.forget();
    assert!(
        ipc_stat(old.id).is_err(),
        "ipcrm did not remove the segment"
    );
    assert_gone(&m.sysv_dir(old.id));

    assert_eq!(
        read_at(&ro, 0, SIZE + 10).unwrap(),
        old_bytes,
        "old bytes (read-only open)"
    );
    assert_eq!(
        read_at(&rw, 0, SIZE + 10).unwrap(),
        old_bytes,
        "old bytes (read-write open)"
    );
    assert_eq!(
        rw.write_at(b"after ipcrm", 100).unwrap(),
        11,
        "write after ipcrm"
    );
    assert_eq!(
        read_at(&ro, 100, 11).unwrap(),
        b"after ipcrm",
        "read-only open sees it"
    );
    assert_eq!(
        rw.write_at(b"0123456789", SIZE as u64 - 4).unwrap(),
        4,
        "a write crossing the end of the removed segment writes what fits"
    );

    // A new segment takes the key.
    let new = SysvSeg::create_with_key(old.key, SIZE, 0o600);
    assert_ne!(new.id, old.id);
    let new_bytes = pattern(SIZE, 2);
    let att = new.attach();
    att.write(0, &new_bytes);
    let link = fs::read_link(m.p(&format!("by-key/0x{:08x}", old.key as u32))).unwrap();
    assert_eq!(
        link,
        PathBuf::from(format!("../sysv/{}", new.id)),
        "by-key link"
    );
    assert_eq!(
        fs::read(m.sysv(new.id, "data")).unwrap(),
        new_bytes,
        "the new segment's data"
    );

    rw.write_at(b"still the old one", 0).unwrap();
    assert_eq!(
        att.all(),
        new_bytes,
        "a write through the old file reached the new segment"
    );
    assert_eq!(read_at(&ro, 0, 17).unwrap(), b"still the old one");
    assert_eq!(fs::read(m.sysv(new.id, "data")).unwrap(), new_bytes);

    // fstat, and O_TRUNC-style truncation (accepted, changes nothing), of the open file.
    assert_eq!(
        rw.metadata().map(|md| md.len()).map_err(|e| e.to_string()),
        Ok(SIZE as u64),
        "fstat of the open data of the removed segment"
    );
    rw.set_len(SIZE as u64)
        .expect("ftruncate to its own size of the removed segment's open data");
    assert_eq!(read_at(&ro, 0, 17).unwrap(), b"still the old one");
    assert_eq!(att.all(), new_bytes);
    assert!(daemon_alive(&m));
}

/// The same for a POSIX object: unlinked while open, then a new object with the same name.
#[test]
fn posix_object_unlinked_while_open_keeps_working_and_its_name_successor_is_separate() {
    require_fuse!();
    let m = Mount::new();
    let _hang = KillOnHang::new(&m, HANG_LIMIT);
    const SIZE: usize = 2 * 4096 + 7;
    let old_bytes = pattern(SIZE, 3);
    let direct = create_posix(m.shm_dir(), "reborn", 0o600, &old_bytes);
    let path = m.posix("reborn", "data");
    let ro = open_ro(&path);
    let rw = open_rw(&path);

    fs::remove_file(&direct).unwrap(); // what shm_unlink does
    assert_gone(&m.posix_dir("reborn"));
    assert_eq!(
        read_at(&ro, 0, SIZE + 10).unwrap(),
        old_bytes,
        "old bytes after unlink"
    );
    assert_eq!(rw.write_at(b"after unlink", 10).unwrap(), 12);
    assert_eq!(read_at(&ro, 10, 12).unwrap(), b"after unlink");

    let new_bytes = pattern(SIZE, 4);
    create_posix(m.shm_dir(), "reborn", 0o600, &new_bytes);
    assert_eq!(fs::read(&path).unwrap(), new_bytes, "the new object's data");
    rw.write_at(b"still the old one", 0).unwrap();
    assert_eq!(
        fs::read(&direct).unwrap(),
        new_bytes,
        "the new object was touched"
    );
    assert_eq!(read_at(&ro, 0, 17).unwrap(), b"still the old one");

    // fstat and ftruncate of the open file work on the old object, as on tmpfs.
    assert_eq!(
        rw.metadata().map(|md| md.len()).map_err(|e| e.to_string()),
        Ok(SIZE as u64),
        "fstat of the open data of the unlinked object"
    );
    rw.set_len(SIZE as u64 + 4096)
        .expect("ftruncate (extend) of the open data of the unlinked object");
    assert_eq!(
        read_at(&ro, SIZE as u64, 5000).unwrap(),
        vec![0u8; 4096],
        "the unlinked object grew by 4096 zero bytes"
    );
    rw.set_len(5)
        .expect("ftruncate (shrink) of the unlinked object");
    assert_eq!(
        read_at(&ro, 0, 100).unwrap(),
        b"still",
        "the old object, cut to 5 bytes"
    );
    assert_eq!(
        fs::read(&direct).unwrap(),
        new_bytes,
        "the new object was touched"
    );
    assert_eq!(fs::read(&path).unwrap(), new_bytes);
    assert!(daemon_alive(&m));
}

/// A new object that takes a removed one's name (POSIX) or key (`by-key/`) is reachable by
/// that path at once, also right after `ls` listed the directory (docs/design.md "Freshness": what
/// any process creates or removes is visible to the very next `ls`, `stat`, `test -e` or
/// `cat`).
#[test]
fn a_name_or_key_taken_by_a_new_object_is_reachable_at_once_after_ls() {
    require_fuse!();
    let m = Mount::new();
    let _hang = KillOnHang::new(&m, HANG_LIMIT);
    let direct = create_posix(m.shm_dir(), "again", 0o600, b"one");
    let data = m.posix("again", "data");
    assert_eq!(fs::read(&data).unwrap(), b"one");
    assert!(m.ls("posix").contains("again"));
    fs::remove_file(&direct).unwrap();
    create_posix(m.shm_dir(), "again", 0o600, b"two");
    assert!(
        m.ls("posix").contains("again"),
        "ls posix after the new object came"
    );
    assert_eq!(
        fs::read(&data).map_err(|e| e.to_string()),
        Ok(b"two".to_vec()),
        "cat posix/again/data of the new object, right after ls posix"
    );

    let mut old = SysvSeg::keyed(4096, 0o600);
    let link = m.p(&format!("by-key/0x{:08x}", old.key as u32));
    assert_eq!(read_fields(&link.join("stat")).num("shmid"), old.id as u64);
    assert!(!m.ls("by-key").is_empty());
    old.remove();
    let new = SysvSeg::create_with_key(old.key, 8192, 0o600);
    assert!(
        m.ls("by-key")
            .contains(&format!("0x{:08x}", old.key as u32))
    );
    assert_eq!(
        fs::read_to_string(link.join("stat"))
            .map_err(|e| e.to_string())
            .map(|t| { Fields::parse(&t).num("shmid") }),
        Ok(new.id as u64),
        "cat by-key/KEY/stat of the new segment with that key, right after ls by-key"
    );
}

/// A new segment that gets the very shmid of a removed one whose `data` is still open (the
/// kernel hands out a chosen id through /proc/sys/kernel/shm_next_id, as CRIU does when it
/// restores) is read as itself: its directory shows its bytes, not the old segment's; the
/// old open file still shows the old bytes. Runs in an IPC namespace of its own.
#[test]
fn a_new_segment_that_takes_an_open_segments_shmid_is_read_as_itself() {
    require_fuse!();
    in_private_ipc_namespace(|| {
        let m = Mount::new(); // started from this thread: in its IPC namespace
        let _hang = KillOnHang::new(&m, HANG_LIMIT);
        const SIZE: usize = 2 * 4096;
        let mut old = SysvSeg::private(SIZE, 0o600);
        let old_bytes = pattern(SIZE, 5);
        old.attach().write(0, &old_bytes);
        let path = m.sysv(old.id, "data");
        let mut old_ro = open_ro(&path);
        let old_rw = open_rw(&path);
        assert_eq!(read_all(&mut old_ro), old_bytes);
        old.remove();

        fs::write("/proc/sys/kernel/shm_next_id", old.id.to_string())
            .expect("write /proc/sys/kernel/shm_next_id");
        let new = SysvSeg::private(SIZE, 0o600);
        assert_eq!(new.id, old.id, "the kernel did not reuse the shmid");
        let new_bytes = pattern(SIZE, 6);
        new.attach().write(0, &new_bytes);

        assert_eq!(
            read_fields(&m.sysv(new.id, "stat")).num("size"),
            SIZE as u64
        );
        let got = fs::read(&path).unwrap();
        assert!(
            got == new_bytes,
            "reading sysv/{}/data of the new segment returned {}",
            new.id,
            if got == old_bytes {
                "the bytes of the removed segment that had that shmid before".to_string()
            } else {
                format!("neither segment's bytes ({} bytes)", got.len())
            }
        );
        let got = read_at(&open_rw(&path), 0, SIZE).unwrap();
        assert!(
            got == new_bytes,
            "a read-write open of the new segment's data reads other bytes"
        );
        assert_eq!(
            read_at(&old_rw, 0, SIZE).unwrap(),
            old_bytes,
            "the old open file"
        );
    });
}

/// Runs `f` on a thread that has unshared its IPC namespace (the rest of the test process,
/// and other tests, stay where they are); processes it starts inherit the namespace, which
/// goes away with its last member.
fn in_private_ipc_namespace(f: impl FnOnce() + Send + 'static) {
    let t = std::thread::spawn(move || {
        let r = unsafe { libc::unshare(libc::CLONE_NEWIPC) };
        assert_eq!(
            r,
            0,
            "unshare(CLONE_NEWIPC): {}",
            io::Error::last_os_error()
        );
        f();
    });
    if let Err(e) = t.join() {
        std::panic::resume_unwind(e);
    }
}

trait CreateWithKey {
    fn create_with_key(key: i32, size: usize, mode: u32) -> SysvSeg;
}

impl CreateWithKey for SysvSeg {
    /// `shmget(key, size, IPC_CREAT|IPC_EXCL|mode)`, adopted so it is removed on drop.
    fn create_with_key(key: i32, size: usize, mode: u32) -> SysvSeg {
        let id = unsafe { libc::shmget(key, size, libc::IPC_CREAT | libc::IPC_EXCL | mode as i32) };
        assert!(id >= 0, "shmget({key:#x}): {}", io::Error::last_os_error());
        SysvSeg::adopt(id)
    }
}

// ---------------------------------------------------------------------------------------------
// Large, huge-page and locked segments
// ---------------------------------------------------------------------------------------------

/// A 5 GiB segment: reads and writes through `data` beyond 4 GiB land where they should
/// (checked through the test's own attachment), across the 4 GiB line too; the end behaves
/// as documented (short write, ENOSPC, EOF).
#[test]
fn five_gib_segment_is_read_and_written_beyond_4_gib() {
    require_fuse!();
    let m = Mount::new();
    let _hang = KillOnHang::new(&m, HANG_LIMIT);
    let size = 5 * GIB;
    let seg = SysvSeg::private(size as usize, 0o600);
    let att = seg.attach();
    let path = m.sysv(seg.id, "data");
    let rw = open_rw(&path);
    let ro = open_ro(&path);

    let chunk = pattern(64 * 1024 + 3, 7);
    for off in [GIB * 9 / 2, 4 * GIB - 5, 4 * GIB, size - chunk.len() as u64] {
        assert_eq!(
            rw.write_at(&chunk, off).unwrap(),
            chunk.len(),
            "pwrite at {off}"
        );
        assert_eq!(
            att.read(off as usize, chunk.len()),
            chunk,
            "attachment after pwrite at {off}"
        );
        for (f, how) in [(&ro, "read-only"), (&rw, "read-write")] {
            assert_eq!(
                read_at(f, off, chunk.len()).unwrap(),
                chunk,
                "pread at {off} ({how} open)"
            );
        }
    }
    let other = pattern(100_000, 8);
    let off = 4 * GIB + 12_345;
    att.write(off as usize, &other);
    assert_eq!(
        read_at(&ro, off, other.len()).unwrap(),
        other,
        "read-only open at {off}"
    );
    assert_eq!(
        read_at(&rw, off, other.len()).unwrap(),
        other,
        "read-write open at {off}"
    );
    let r = sh_ok(&format!(
        "dd if={} bs=4096 skip={} count=1 status=none | od -An -tx1 | head -1",
        q(&path),
        off / 4096 + 1
    ));
    let want: Vec<String> = att
        .read(((off / 4096 + 1) * 4096) as usize, 16)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        r.split_whitespace().collect::<Vec<_>>(),
        want,
        "dd skip= beyond 4 GiB"
    );

    // The end.
    assert_eq!(
        rw.write_at(&[1u8; 100], size - 40).unwrap(),
        40,
        "write crossing the end"
    );
    assert_errno(rw.write_at(b"x", size), libc::ENOSPC, "write at the end");
    assert_errno(
        rw.write_at(b"x", size + GIB),
        libc::ENOSPC,
        "write past the end",
    );
    assert_eq!(
        read_at(&ro, size - 10, 100).unwrap().len(),
        10,
        "read crossing the end"
    );
    assert_eq!(read_at(&ro, size, 100).unwrap().len(), 0, "read at the end");
    assert_eq!(
        read_at(&rw, size + GIB, 100).unwrap().len(),
        0,
        "read past the end"
    );
    assert_eq!(fs::metadata(&path).unwrap().len(), size);
    let rss = read_fields(&m.sysv(seg.id, "stat")).num("rss");
    assert!(rss < 64 << 20, "a few touched pages, yet rss is {rss}");
}

/// A 5 GiB POSIX object (sparse): sized through the mount, written and read beyond 4 GiB.
#[test]
fn five_gib_posix_object_is_read_and_written_beyond_4_gib() {
    require_fuse!();
    let m = Mount::new();
    let _hang = KillOnHang::new(&m, HANG_LIMIT);
    let size = 5 * GIB;
    let direct = create_posix(m.shm_dir(), "big", 0o600, b"");
    let path = m.posix("big", "data");
    truncate(&path, size as i64).expect("truncate data to 5 GiB through the mount");
    assert_eq!(fs::metadata(&direct).unwrap().len(), size);
    let rw = open_rw(&path);
    let chunk = pattern(70_000, 9);
    for off in [GIB * 9 / 2, 4 * GIB - 7, size - chunk.len() as u64] {
        assert_eq!(rw.write_at(&chunk, off).unwrap(), chunk.len());
        assert_eq!(read_at(&open_ro(&direct), off, chunk.len()).unwrap(), chunk);
        assert_eq!(read_at(&open_ro(&path), off, chunk.len()).unwrap(), chunk);
    }
    let f = read_fields(&m.posix("big", "stat"));
    assert_eq!(f.num("size"), size);
    assert!(
        f.num("rss") < 64 << 20,
        "sparse object, rss {}",
        f.num("rss")
    );
}

/// A SHM_HUGETLB segment: `data` reads and writes it (across a huge-page boundary and at the
/// end) and `stat` says `hugetlb: yes` once it has been opened. The test reserves the huge
/// pages it needs (`HugePages`, tests/common/hugepages.rs) and gives them back; if the kernel
/// cannot give them, it fails under CI and otherwise says `skipping:`.
#[test]
fn hugetlb_segment_is_read_and_written_and_says_so() {
    require_fuse!();
    let Some((_pages, huge)) = huge_pages_for_test(8) else {
        return;
    };
    let m = Mount::new();
    let _hang = KillOnHang::new(&m, HANG_LIMIT);
    let size = 2 * huge;
    let seg = SysvSeg::private(size, 0o600 | libc::SHM_HUGETLB as u32);
    let att = seg.attach();
    let before = read_fields(&m.sysv(seg.id, "stat"));
    assert!(
        ["yes", "unknown"].contains(&before.get("hugetlb")),
        "hugetlb before any open: {:?}",
        before.get("hugetlb")
    );

    let path = m.sysv(seg.id, "data");
    let rw = open_rw(&path);
    let chunk = pattern(10_000, 10);
    for off in [0, huge - 5_000, size - chunk.len()] {
        assert_eq!(
            rw.write_at(&chunk, off as u64).unwrap(),
            chunk.len(),
            "pwrite at {off}"
        );
        assert_eq!(
            att.read(off, chunk.len()),
            chunk,
            "attachment after pwrite at {off}"
        );
    }
    assert_eq!(
        rw.write_at(&chunk, size as u64 - 10).unwrap(),
        10,
        "write crossing the end"
    );
    assert_errno(
        rw.write_at(b"x", size as u64),
        libc::ENOSPC,
        "write at the end",
    );

    let all = pattern(size, 11);
    att.write(0, &all);
    assert_eq!(
        fs::read(&path).unwrap(),
        all,
        "cat data after writes through the attachment"
    );
    assert_eq!(
        read_at(&rw, huge as u64 - 3, 6).unwrap(),
        all[huge - 3..huge + 3]
    );

    let after = read_fields(&m.sysv(seg.id, "stat"));
    assert_eq!(
        after.get("hugetlb"),
        "yes",
        "stat of an opened SHM_HUGETLB segment"
    );
    assert_eq!(after.num("size"), size as u64);
}

/// A huge-page segment is read and written through its memory file (a hugetlbfs file refuses
/// write(2), so shmfs maps the file itself, never the segment), reached by a brief attach even
/// when another process has it attached (no proof that another mapping is this segment exists
/// for huge pages): the daemon is left with no mapping of it and nattch comes back.
#[test]
fn hugetlb_segments_are_served_without_keeping_an_attachment() {
    require_fuse!();
    let Some((_pages, huge)) = huge_pages_for_test(4) else {
        return;
    };
    let m = Mount::new();
    let _hang = KillOnHang::new(&m, HANG_LIMIT);
    // Not a multiple of the huge page: the file behind it is, `data` must not be.
    let size = 2 * huge - 4096;
    let seg = SysvSeg::private(size, 0o600 | libc::SHM_HUGETLB as u32);
    let id = seg.id.to_string();
    let evidence = || seg.attach_evidence();
    let daemon_maps_it = || {
        fs::read_to_string(format!("/proc/{}/maps", m.pid()))
            .unwrap()
            .lines()
            .any(|l| l.contains("/SYSV") && l.split_whitespace().nth(4) == Some(id.as_str()))
    };
    let holder = Helper::start(&["sysv-attach", &id, "rw"]);
    // Times are in seconds: a touch in the second of the helper's attach would not show.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let before = evidence();
    assert_eq!(before.3, 1, "the helper has it attached");

    let path = m.sysv(seg.id, "data");
    let rw = open_rw(&path);
    let chunk = pattern(10_000, 21);
    for off in [0, huge - 5_000, size - chunk.len()] {
        assert_eq!(
            rw.write_at(&chunk, off as u64).unwrap(),
            chunk.len(),
            "pwrite at {off}"
        );
        assert_eq!(
            read_at(&rw, off as u64, chunk.len()).unwrap(),
            chunk,
            "pread at {off}"
        );
    }
    assert_errno(
        rw.write_at(b"x", size as u64),
        libc::ENOSPC,
        "write at the end",
    );
    drop(rw);
    let all = fs::read(&path).unwrap();
    assert_eq!(
        all.len(),
        size,
        "cat data reads the segment's size, not the huge pages'"
    );
    assert_eq!(all[huge - 5_000..huge + 5_000], chunk[..]);
    // No proof that another process's mapping is this segment exists for huge pages (hugetlbfs
    // gives no file handle with a generation): every open attaches briefly, and detaches.
    let after = evidence();
    assert_eq!(
        (after.0, after.3),
        (m.pid() as i32, before.3),
        "(lpid, nattch) after reads and writes of an attached huge-page segment: the daemon \
         (pid {}) attached briefly",
        m.pid()
    );
    assert!(
        !daemon_maps_it(),
        "the daemon keeps no mapping of the segment"
    );
    assert_eq!(
        read_fields(&m.sysv(seg.id, "stat")).get("hugetlb"),
        "yes",
        "stat of an opened SHM_HUGETLB segment"
    );

    holder.finish();
    let data = fs::File::open(&path).unwrap();
    assert_eq!(
        read_at(&data, (huge - 5_000) as u64, 10).unwrap(),
        chunk[..10]
    );
    assert_eq!(
        seg.stat().shm_nattch,
        0,
        "nobody attached: the brief attach is gone again while data is open"
    );
    assert!(
        !daemon_maps_it(),
        "the daemon keeps no mapping while data is open"
    );
}

/// A SHM_LOCKed segment shows `locked: yes`, and its `data` reads and writes.
#[test]
fn locked_segment_says_so_and_data_works() {
    require_fuse!();
    let m = Mount::new();
    let _hang = KillOnHang::new(&m, HANG_LIMIT);
    const SIZE: usize = MIB + 5;
    let seg = SysvSeg::private(SIZE, 0o600);
    seg.lock();
    let att = seg.attach();
    assert_eq!(read_fields(&m.sysv(seg.id, "stat")).get("locked"), "yes");

    let path = m.sysv(seg.id, "data");
    let bytes = pattern(SIZE, 12);
    fs::write(&path, &bytes).expect("write the whole locked segment through data");
    assert_eq!(att.all(), bytes);
    let other = pattern(5000, 13);
    att.write(SIZE - 5000, &other);
    assert_eq!(
        read_at(&open_ro(&path), SIZE as u64 - 5000, 6000).unwrap(),
        other
    );
    assert_eq!(
        read_at(&open_rw(&path), SIZE as u64 - 5000, 6000).unwrap(),
        other
    );
    let f = read_fields(&m.sysv(seg.id, "stat"));
    assert_eq!((f.get("locked"), f.get("dest")), ("yes", "no"));
    assert_eq!(seg.stat().shm_perm.mode as u32 & SHM_LOCKED, SHM_LOCKED);
}

// ---------------------------------------------------------------------------------------------
// Signals
// ---------------------------------------------------------------------------------------------

/// `pos:` of a process's file descriptor (how far it has read).
fn fd_pos(pid: i32, fd: i32) -> Option<u64> {
    fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("pos:"))
        .and_then(|v| v.trim().parse().ok())
}

/// SIGTERM while readers are in the middle of a 1 GiB `data`: each reader ends with all its
/// bytes or with an error (never a silent short read), the daemon unmounts (lazily, as the
/// file is busy) and exits 0, and nothing hangs.
#[test]
fn sigterm_during_large_reads_unmounts_and_nothing_hangs() {
    require_fuse!();
    let mut m = Mount::new();
    let _hang = KillOnHang::new(&m, HANG_LIMIT);
    let size = GIB;
    let seg = SysvSeg::private(size as usize, 0o600);
    let path = m.sysv(seg.id, "data");
    let mnt = m.path().to_path_buf();
    let logs = tempfile::tempdir().unwrap();

    // A read-only `dd` (passthrough: straight to the memory), and a `dd` reading a
    // read-write open (served by the daemon, 4 KiB per request: slow enough to be caught
    // in the middle).
    let readers: Vec<(&str, &str)> = [
        ("dd if=data bs=1M", "exec dd if={d} of=/dev/null bs=1M"),
        ("dd bs=4k <>data", "exec dd of=/dev/null bs=4k 0<> {d}"),
    ]
    .into();
    let mut procs: Vec<(String, Reaped, PathBuf)> = readers
        .iter()
        .map(|(name, script)| {
            let err = logs.path().join(name.replace(['<', '>', ' ', '='], "_"));
            let p = Reaped::spawn(
                Command::new("sh")
                    .arg("-c")
                    .arg(script.replace("{d}", &q(&path)))
                    .env("LC_ALL", "C")
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(File::create(&err).unwrap()),
            );
            (name.to_string(), p, err)
        })
        .collect();

    // Wait until the slow reader is well into the file.
    let slow = procs[1].1.pid();
    let start = Instant::now();
    loop {
        let pos = fd_pos(slow, 0).unwrap_or(0);
        if pos >= 16 << 20 {
            assert!(
                pos < size,
                "the slow reader finished before SIGTERM could be sent"
            );
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the slow reader did not get going (pos {pos}): {}",
            fs::read_to_string(&procs[1].2).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    unsafe { libc::kill(m.pid() as i32, libc::SIGTERM) };
    let signalled = Instant::now();

    for (name, p, err) in &mut procs {
        let status = p.wait(Duration::from_secs(120), &format!("`{name}` after SIGTERM"));
        let err = fs::read_to_string(err).unwrap_or_default();
        if status.success() {
            assert!(
                err.contains(&format!("{size} bytes")),
                "`{name}` exited 0 without copying all {size} bytes (a silent short read): {err}"
            );
        } else {
            assert!(
                err.contains("dd: "),
                "`{name}` failed ({status}) without saying why: {err:?}"
            );
        }
        eprintln!("{name}: {status}: {}", err.lines().last().unwrap_or(""));
    }
    let status = m
        .signal_and_wait(libc::SIGTERM)
        .expect("the daemon did not exit after SIGTERM once the readers were done");
    assert_eq!(
        status.code(),
        Some(0),
        "daemon exit status; log:\n{}",
        m.log()
    );
    assert!(
        !is_listed_in_mountinfo(&mnt),
        "still mounted {:?} after SIGTERM",
        signalled.elapsed()
    );
    assert!(
        !st_dev_differs_from_parent(&mnt),
        "the mount point still shows FUSE"
    );
}

/// What the fusermount3 processes (the auto-unmount helpers) are doing, for a failure message.
fn fusermount_state() -> String {
    let ps = Command::new("ps")
        .args(["-eo", "pid,ppid,stat,wchan:32,etime,args"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let mut out = String::from("fusermount3 processes:\n");
    for line in ps.lines().filter(|l| l.contains("fusermount")) {
        out.push_str(line);
        out.push('\n');
        if let Some(pid) = line.split_whitespace().next() {
            let stack = fs::read_to_string(format!("/proc/{pid}/stack")).unwrap_or_default();
            out.push_str(&stack);
        }
    }
    out
}

/// SIGKILL of the daemon: with fusermount3 installed (auto_unmount, the default for root),
/// the mount goes away by itself and nothing is left running for it.
#[test]
fn sigkill_of_the_daemon_leaves_no_dead_mount() {
    require_fuse!();
    require_tools!("fusermount3" => "Debian package fuse3");
    let mut m = Mount::new();
    let _hang = KillOnHang::new(&m, HANG_LIMIT);
    let mnt = m.path().to_path_buf();
    let status = m.signal_and_wait(libc::SIGKILL).expect("daemon reaped");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGKILL)
    );
    let start = Instant::now();
    while is_listed_in_mountinfo(&mnt) {
        assert!(
            start.elapsed() < MOUNT_TIMEOUT,
            "the mount of a daemon killed with SIGKILL is still there after {MOUNT_TIMEOUT:?}\n{}",
            fusermount_state()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let (entries, _) = within(Duration::from_secs(5), "ls of the mount point", {
        let mnt = mnt.clone();
        move || fs::read_dir(&mnt).map(|d| d.count())
    });
    assert_eq!(
        entries.expect("ls of the mount point"),
        0,
        "an empty directory again"
    );
    // fusermount3's watchdog exits once it has unmounted.
    while !processes_naming(&mnt).is_empty() {
        assert!(
            start.elapsed() < MOUNT_TIMEOUT,
            "processes still name the mount point: {:?}",
            processes_naming(&mnt)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Live processes (not zombies) with `p` as one of their arguments.
fn processes_naming(p: &Path) -> Vec<(i32, String)> {
    use std::os::unix::ffi::OsStrExt;
    let want = p.as_os_str().as_bytes();
    fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let pid: i32 = e.file_name().to_str()?.parse().ok()?;
            let cmdline = fs::read(e.path().join("cmdline")).ok()?;
            (cmdline.split(|b| *b == 0).any(|a| a == want) && !is_zombie(pid))
                .then(|| (pid, String::from_utf8_lossy(&cmdline).replace('\0', " ")))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// One stuck request does not stop the others
// ---------------------------------------------------------------------------------------------

/// Requests that block inside a handler do not hold up other requests. The mount's
/// `--shm-dir` is the root of a second shmfs whose daemon is stopped (SIGSTOP): every
/// request that touches `posix/` then blocks in the first daemon, inside the handler. With
/// three such requests stuck (of four workers), `cat limits`, `ls sysv` and `cat stat` of a
/// segment still answer within a second each.
#[test]
fn requests_stuck_in_handlers_do_not_block_others() {
    require_fuse!();
    let inner = Mount::new();
    let outer = Mount::with_args(
        &[],
        &["--shm-dir".to_string(), inner.path().display().to_string()],
        false,
    );
    let _hang = (
        KillOnHang::new(&inner, HANG_LIMIT),
        KillOnHang::new(&outer, HANG_LIMIT),
    );
    assert!(
        outer.ls("posix").contains("limits"),
        "the outer mount's posix/ shows the inner mount's files: {:?}",
        outer.ls("posix")
    );
    let seg = SysvSeg::private(4096, 0o600);

    let _resume = Stopped::stop(inner.pid());
    let mut stuck: Vec<(String, Reaped)> = [
        format!("ls -l {} > /dev/null", q(outer.p("posix"))),
        format!("cat {} > /dev/null", q(outer.posix("limits", "stat"))),
        format!("ls {} > /dev/null", q(outer.posix_dir("index"))),
    ]
    .into_iter()
    .map(|script| {
        let p = Reaped::spawn(
            Command::new("sh")
                .arg("-c")
                .arg(&script)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        );
        (script, p)
    })
    .collect();
    std::thread::sleep(Duration::from_millis(500));
    for (script, p) in &mut stuck {
        assert!(
            p.running(),
            "`{script}` did not block on the stopped inner daemon"
        );
    }

    let limit = Duration::from_secs(1);
    for _ in 0..3 {
        let limits = outer.p("limits");
        let (text, took) = within(Duration::from_secs(30), "cat limits", move || {
            fs::read_to_string(limits)
        });
        let text = text.expect("cat limits");
        assert!(text.starts_with("shmmax: "), "limits: {text:?}");
        assert!(
            took < limit,
            "cat limits took {took:?} beside stuck requests"
        );

        let sysv = outer.p("sysv");
        let (ids, took) = within(Duration::from_secs(30), "ls sysv", move || {
            fs::read_dir(sysv).map(|d| d.count())
        });
        assert!(ids.expect("ls sysv") > 0);
        assert!(took < limit, "ls sysv took {took:?} beside stuck requests");

        let stat = outer.sysv(seg.id, "stat");
        let (text, took) = within(Duration::from_secs(30), "cat stat", move || {
            fs::read_to_string(stat)
        });
        assert!(text.expect("cat sysv/ID/stat").starts_with("kind: sysv\n"));
        assert!(
            took < limit,
            "cat sysv/ID/stat took {took:?} beside stuck requests"
        );
    }
    for (script, p) in &mut stuck {
        assert!(
            p.running(),
            "`{script}` finished while the inner daemon was stopped"
        );
    }

    drop(_resume);
    for (script, p) in &mut stuck {
        let status = p.wait(
            Duration::from_secs(30),
            &format!("`{script}` after SIGCONT"),
        );
        assert!(status.success(), "`{script}` after SIGCONT: {status}");
    }
    assert!(daemon_alive(&outer) && daemon_alive(&inner));
}
