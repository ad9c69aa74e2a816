//! Looking without touching (shmfs(5) "What touches a segment"): once the daemon has attached a
//! segment itself (the first open of its `data`, which fingerprints its memory: `prime` below),
//! reading or writing `data` of a SysV segment that some process has attached goes through that
//! process's mapping (read-only ones too), with no `shmat`, so that nothing `ipcs` shows moves
//! (`lpid`, `atime`, `dtime`, `nattch`, `ctime`) and the daemon maps nothing; the caller's right
//! is still the kernel's. Reading a fresh segment allocates nothing, an attacher exiting while
//! `data` is open changes no byte, and metadata tools never open the memory. A segment nobody has
//! attached is attached briefly, as before.

mod common;

use std::fs;
use std::os::fd::AsRawFd;
use std::time::Duration;

use common::*;

const SIZE: usize = 16384;
const OTHER: u32 = 12345;

/// What `ipcs -m -i` shows that an attach would move.
fn evidence(seg: &SysvSeg) -> (i32, i64, i64, u64, i64) {
    seg.attach_evidence()
}

/// Bytes that differ from page to page and from offset to offset.
fn pattern() -> Vec<u8> {
    (0..SIZE).map(|i| (i * 7 + i / 4096) as u8).collect()
}

/// A segment holding `pattern()`, written through an attachment of this test that is gone
/// again when this returns.
fn filled_segment(mode: u32) -> SysvSeg {
    let seg = SysvSeg::keyed(SIZE, mode);
    seg.attach().write(0, &pattern());
    seg
}

/// The first open of a segment's `data` after the daemon started, made before a test looks at
/// what later opens move: it attaches briefly and fingerprints the segment's memory, the proof
/// without which no other process's mapping is used (shmfs(5) "What touches a segment").
fn prime(m: &Mount, seg: &SysvSeg) {
    let _ = fs::read(m.sysv(seg.id, "data")).unwrap();
}

/// The daemon's mappings of segment `shmid` (its /proc/PID/maps lines for it).
fn daemon_mappings(m: &Mount, shmid: i32) -> Vec<String> {
    let maps = fs::read_to_string(format!("/proc/{}/maps", m.pid())).unwrap();
    maps.lines()
        .filter(|l| l.contains("/SYSV") && l.split_whitespace().nth(4) == Some(&shmid.to_string()))
        .map(str::to_string)
        .collect()
}

/// Every byte of `data` read through a shared read-only mapping of it.
fn read_through_mmap(path: &std::path::Path) -> Vec<u8> {
    let file = fs::File::open(path).unwrap();
    // SAFETY: a fresh read-only shared mapping of SIZE bytes, unmapped below.
    let addr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            SIZE,
            libc::PROT_READ,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            0,
        )
    };
    assert!(
        addr != libc::MAP_FAILED,
        "mmap of {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
    // SAFETY: SIZE readable bytes at addr, copied before the unmap.
    let bytes = unsafe { std::slice::from_raw_parts(addr as *const u8, SIZE) }.to_vec();
    // SAFETY: the mapping made above.
    unsafe { libc::munmap(addr, SIZE) };
    bytes
}

#[test]
fn reading_and_writing_an_attached_segment_moves_nothing_ipcs_shows() {
    require_fuse!();
    let m = Mount::new();
    let seg = filled_segment(0o600);
    prime(&m, &seg);
    let id = seg.id.to_string();
    let reader = Helper::start(&["sysv-attach", &id, "r"]);
    let writer = Helper::start(&["sysv-attach", &id, "rw"]);
    // Times are in seconds: a touch in the second of the helpers' attach would not show.
    std::thread::sleep(Duration::from_millis(1100));
    let before = evidence(&seg);
    assert_eq!(before.3, 2, "two helpers attached");
    let ipcs = || sh_ok(&format!("ipcs -m -i {id}"));
    let ipcs_before = ipcs();

    let data = m.sysv(seg.id, "data");
    let expected = tempfile::NamedTempFile::new().unwrap();
    fs::write(expected.path(), pattern()).unwrap();
    let copy = tempfile::NamedTempFile::new().unwrap();
    sh_ok(&format!("cat {} > {}", q(&data), q(copy.path())));
    assert_eq!(fs::read(copy.path()).unwrap(), pattern(), "cat data");
    sh_ok(&format!("cmp {} {}", q(&data), q(expected.path())));
    let dump = sh_ok(&format!("hexdump -C {} | head -2", q(&data)));
    let want = sh_ok(&format!("hexdump -C {} | head -2", q(expected.path())));
    assert_eq!(dump, want, "hexdump -C data");
    assert_eq!(read_through_mmap(&data), pattern(), "mmap of data");
    sh_ok(&format!(
        "printf LOOKED | dd of={} bs=1 seek=100 conv=notrunc status=none",
        q(&data)
    ));
    let mut written = pattern();
    written[100..106].copy_from_slice(b"LOOKED");
    assert_eq!(fs::read(&data).unwrap(), written, "data after dd");
    assert!(
        daemon_mappings(&m, seg.id).is_empty(),
        "the daemon maps nothing of the segment"
    );

    let after = evidence(&seg);
    assert_eq!(
        after,
        before,
        "(lpid, atime, dtime, nattch, ctime) after cat, cmp, hexdump, mmap and dd of data \
         (left) vs before (right); the helpers are pids {} and {}, the daemon {}",
        reader.pid(),
        writer.pid(),
        m.pid()
    );
    assert_eq!(ipcs(), ipcs_before, "`ipcs -m -i {id}` after vs before");
    // What was written through the mount is in the memory the attachers see.
    assert_eq!(seg.attach().read(100, 6), b"LOOKED");
    drop((reader, writer));
}

/// A read-only attachment serves writes too: root opens `map_files` of a read-only mapping
/// read-write, so the owner's write through `data` moves nothing either.
#[test]
fn a_read_only_attachment_serves_reads_and_writes() {
    require_fuse!();
    let m = Mount::new();
    let seg = filled_segment(0o600);
    prime(&m, &seg);
    let id = seg.id.to_string();
    let reader = Helper::start(&["sysv-attach", &id, "r"]);
    std::thread::sleep(Duration::from_millis(1100));
    let before = evidence(&seg);
    let data = m.sysv(seg.id, "data");
    assert_eq!(fs::read(&data).unwrap(), pattern(), "read of data");
    assert_eq!(
        evidence(&seg),
        before,
        "reading through the read-only mapping"
    );
    sh_ok(&format!(
        "printf W | dd of={} bs=1 conv=notrunc status=none",
        q(&data)
    ));
    assert_eq!(
        evidence(&seg),
        before,
        "writing through the read-only mapping"
    );
    assert_eq!(seg.attach().read(0, 1), b"W");
    drop(reader);
}

#[test]
fn a_segment_nobody_attached_is_still_read_by_a_brief_attach() {
    require_fuse!();
    let m = Mount::new();
    let seg = filled_segment(0o600);
    assert_eq!(evidence(&seg).3, 0);
    let out = sh(&format!("cat {}", q(m.sysv(seg.id, "data"))));
    assert!(out.ok(), "cat data: {out:?}");
    assert_eq!(out.stdout, pattern(), "cat data");
    let after = evidence(&seg);
    assert_eq!(
        (after.0, after.3),
        (m.pid() as i32, 0),
        "(lpid, nattch): the daemon attached and detached"
    );
}

/// With no shmat as the caller on the attached route, shmfs checks the caller's right itself:
/// the answers must still be the kernel's (shmat through the probe).
#[test]
fn the_attached_route_refuses_whom_shmat_refuses() {
    require_fuse!();
    let m = Mount::builder().option("allow_other").mount();
    let probe = Probe::build();
    let other = Ids {
        uid: OTHER,
        gid: OTHER,
        groups: &[],
        caps: None,
    };
    for (mode, read, write) in [
        (0o600, "EACCES", "EACCES"),
        (0o604, "ok", "EACCES"),
        (0o602, "EACCES", "EACCES"),
        (0o606, "ok", "ok"),
    ] {
        let seg = filled_segment(mode);
        prime(&m, &seg);
        let id = seg.id.to_string();
        let holder = Helper::start(&["sysv-attach", &id, "rw"]);
        std::thread::sleep(Duration::from_millis(1100));
        let before = evidence(&seg);
        let data = m.sysv(seg.id, "data").display().to_string();
        let through_mount = (
            probe.run_as(other, &["read", &data]),
            probe.run_as(other, &["write", &data]),
        );
        assert_eq!(
            evidence(&seg),
            before,
            "mode {mode:o}: the probe's opens through the mount moved nothing"
        );
        let kernel = (
            probe.run_as(other, &["shm-read", &id]),
            probe.run_as(other, &["shm-write", &id]),
        );
        assert_eq!(
            through_mount, kernel,
            "mode {mode:o}, uid {OTHER}: (read, write) through the mount (left) vs shmat (right)"
        );
        assert_eq!(
            through_mount,
            (read.to_string(), write.to_string()),
            "mode {mode:o}"
        );
        drop(holder);
    }
}

#[test]
fn reading_a_fresh_attached_segment_allocates_nothing() {
    require_fuse!();
    let m = Mount::new();
    let seg = SysvSeg::keyed(SIZE, 0o600);
    // The brief attach of the first open reads through the memory file too: it allocates
    // nothing either.
    prime(&m, &seg);
    let holder = Helper::start(&["sysv-attach", &seg.id.to_string(), "rw"]);
    let before = evidence(&seg);
    let bytes = fs::read(m.sysv(seg.id, "data")).unwrap();
    assert_eq!(bytes, vec![0; SIZE]);
    assert_eq!(
        read_fields(&m.sysv(seg.id, "stat")).num("rss"),
        0,
        "rss after reading"
    );
    assert_eq!(evidence(&seg), before);
    drop(holder);
}

/// The attacher whose mapping an open `data` came through exits while it is open: the open
/// file still reads the segment's own bytes; the next open, with nobody attached, attaches
/// briefly.
#[test]
fn the_attacher_exiting_while_data_is_open_changes_no_byte() {
    use std::io::Read;
    require_fuse!();
    let m = Mount::new();
    let seg = filled_segment(0o600);
    prime(&m, &seg);
    let holder = Helper::start(&["sysv-attach", &seg.id.to_string(), "r"]);
    let data = m.sysv(seg.id, "data");
    let mut file = fs::File::open(&data).unwrap();
    let mut got = vec![0; 4096];
    file.read_exact(&mut got).unwrap();
    assert_eq!(
        evidence(&seg).0,
        holder.pid(),
        "the open went through the holder"
    );
    holder.finish();
    assert_eq!(evidence(&seg).3, 0, "nattch once the holder is gone");
    file.read_to_end(&mut got).unwrap();
    assert_eq!(
        got,
        pattern(),
        "bytes read before and after the attacher exited"
    );
    drop(file);

    assert_eq!(fs::read(&data).unwrap(), pattern(), "a new open");
    assert_eq!(
        evidence(&seg).0,
        m.pid() as i32,
        "the new open attached briefly"
    );
    assert!(daemon_alive(&m));
}

/// Metadata tools never open `data`: the segment (attached by nobody, where an open would
/// attach it) keeps its lpid and nattch.
#[test]
fn metadata_tools_never_open_the_memory() {
    require_fuse!();
    let m = Mount::new();
    let seg = filled_segment(0o600);
    let before = evidence(&seg);
    let dir = m.sysv_dir(seg.id);
    for cmd in [
        format!("ls -la {}", q(&dir)),
        format!("stat {}/*", q(&dir)),
        format!("find {} -ls", q(m.path())),
        format!("du -a {}", q(m.path())),
        format!("cat {d}/stat {d}/perm {d}/attached", d = q(&dir)),
        format!("tar cf /dev/null --exclude=data {}", q(&dir)),
    ] {
        sh_ok(&format!("{cmd} >/dev/null"));
        assert_eq!(evidence(&seg), before, "after `{cmd}`");
    }
}

/// A process in a user namespace of its own can hold a mapping of another IPC namespace's
/// segment made to look like ours (same shmid and size; see `sysv-impostor` in shmholder.c).
/// It is never taken for the segment: what is read is the segment's own bytes.
#[test]
fn a_look_alike_mapping_from_another_namespace_is_not_used() {
    require_fuse!();
    let m = Mount::new();
    let seg = filled_segment(0o600);
    prime(&m, &seg);
    let id = seg.id.to_string();
    // Started first, so that a scan by pid meets it before the real attacher.
    // pid_max may be as low as 32768: should pids wrap between the two, both start again.
    let (impostor, holder) = (0..5)
        .map(|_| {
            let impostor = Helper::start(&["sysv-impostor", &id, &SIZE.to_string()]);
            let holder = Helper::start(&["sysv-attach", &id, "r"]);
            (impostor, holder)
        })
        .find(|(impostor, holder)| holder.pid() > impostor.pid())
        .expect("five pairs of processes, each with pids wrapping between them");
    // The last pid is then one that is gone, and the creator (this test) maps nothing: the
    // mapping is looked for in every process.
    assert!(run_helper(&["sysv-attach-exit", &id]).ok());
    let before = evidence(&seg);
    assert_eq!(before.3, 1, "the impostor's mapping does not count here");
    assert_eq!(fs::read(m.sysv(seg.id, "data")).unwrap(), pattern());
    assert_eq!(
        evidence(&seg),
        before,
        "read through the real attacher's mapping"
    );
    drop((impostor, holder));
}
