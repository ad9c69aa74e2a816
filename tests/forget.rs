//! The daemon forgets what the kernel forgot, and nothing the kernel still holds
//! (docs/performance.md, "Memory").
//!
//! - An open `data` of a removed object keeps working (fstat, ftruncate) after someone lists
//!   the directory: a listing must not forget numbers the kernel still holds.
//! - 200,000 create → stat → remove cycles of each kind leave the daemon's memory where it was
//!   after the first 20,000 (within 4 MiB), and under 32 MiB. The cycles run in this process,
//!   one system call at a time on the mount's paths, no process per cycle.

mod common;

use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::time::Instant;

use common::*;

fn ls_both(m: &Mount) {
    let run = sh(&format!(
        "ls {} {} >/dev/null",
        q(m.p("posix")),
        q(m.p("sysv"))
    ));
    assert!(run.ok(), "ls posix sysv: {run:?}");
}

#[test]
fn open_posix_data_survives_removal_and_listing() {
    require_fuse!();
    let m = Mount::new();
    fs::write(m.shm_dir().join("kept"), vec![7u8; 4096]).unwrap();
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(m.posix("kept", "data"))
        .unwrap();
    // shm_unlink, done as the kernel does it: unlink of the file in the shm directory.
    fs::remove_file(m.shm_dir().join("kept")).unwrap();
    ls_both(&m);
    ls_both(&m);

    let md = f
        .metadata()
        .expect("fstat of an open data after removal and ls");
    assert_eq!(md.len(), 4096);
    f.set_len(10_000)
        .expect("ftruncate of an open data after removal and ls");
    assert_eq!(f.metadata().expect("fstat after ftruncate").len(), 10_000);
    assert!(!m.ls("posix").contains("kept"));
}

#[test]
fn open_sysv_data_survives_removal_and_listing() {
    require_fuse!();
    let m = Mount::new();
    let mut seg = SysvSeg::private(12_288, 0o600);
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(m.sysv(seg.id, "data"))
        .unwrap();
    let ino = f.metadata().unwrap().ino();
    seg.remove();
    ls_both(&m);
    ls_both(&m);

    let md = f
        .metadata()
        .expect("fstat of an open data after ipcrm and ls");
    assert_eq!(md.len(), 12_288, "size of the removed segment");
    assert_eq!(md.ino(), ino);
    // A segment's size is fixed: truncation to its own size or to 0 is accepted.
    f.set_len(12_288)
        .expect("ftruncate to the same size after ipcrm and ls");
    assert!(!m.ls_sysv().contains(&seg.id));
}

/// The daemon's resident memory in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in /proc/{pid}/status"))
}

const CYCLES: usize = 200_000;
const FIRST: usize = 20_000;
const SLACK_KIB: u64 = 4 * 1024;
const CEILING_KIB: u64 = 32 * 1024;

/// Runs `cycle` CYCLES times and checks that the daemon's memory levels off.
fn assert_memory_levels_off(m: &Mount, kind: &str, cycle: impl FnMut(usize)) {
    assert_memory_bounded(m, kind, CYCLES, Some(SLACK_KIB), cycle)
}

/// Runs `cycle` `cycles` times; the daemon's RSS must end under CEILING_KIB and, with
/// `slack`, within `slack` of what it was after the first FIRST cycles.
fn assert_memory_bounded(
    m: &Mount,
    kind: &str,
    cycles: usize,
    slack: Option<u64>,
    mut cycle: impl FnMut(usize),
) {
    let start = Instant::now();
    let before = rss_kib(m.pid());
    let mut after_first = 0;
    for i in 0..cycles {
        cycle(i);
        if i + 1 == FIRST {
            after_first = rss_kib(m.pid());
        }
    }
    let after_all = rss_kib(m.pid());
    let elapsed = start.elapsed();
    eprintln!(
        "{kind}: {cycles} cycles in {elapsed:.1?} ({:.0}/s); daemon RSS {before} KiB at start, \
         {after_first} KiB after {FIRST}, {after_all} KiB after all",
        cycles as f64 / elapsed.as_secs_f64()
    );
    assert!(
        slack.is_none_or(|slack| after_all <= after_first + slack),
        "{kind}: RSS grew from {after_first} KiB after {FIRST} cycles to {after_all} KiB after \
         {cycles}"
    );
    assert!(
        after_all < CEILING_KIB,
        "{kind}: RSS {after_all} KiB after {cycles} cycles"
    );
}

#[test]
fn posix_churn_memory_levels_off() {
    require_fuse!();
    let m = Mount::new();
    let posix = m.p("posix");
    assert_memory_levels_off(&m, "posix", |i| {
        let dir = posix.join(format!("o{i}"));
        fs::create_dir(&dir).unwrap_or_else(|e| panic!("mkdir {dir:?}: {e}"));
        let data = dir.join("data");
        fs::metadata(&data).unwrap_or_else(|e| panic!("stat {data:?}: {e}"));
        fs::remove_dir(&dir).unwrap_or_else(|e| panic!("rmdir {dir:?}: {e}"));
    });
}

#[test]
fn sysv_churn_memory_levels_off() {
    require_fuse!();
    let m = Mount::new();
    let mut buf = vec![0u8; 4096];
    assert_memory_levels_off(&m, "sysv", |i| {
        let mut seg = SysvSeg::private(4096, 0o600);
        let stat = m.sysv(seg.id, "stat");
        fs::metadata(&stat).unwrap_or_else(|e| panic!("stat {stat:?}: {e}"));
        if i % 2 == 0 {
            let data = m.sysv(seg.id, "data");
            let n = File::open(&data)
                .and_then(|mut f| f.read(&mut buf))
                .unwrap_or_else(|e| panic!("read {data:?}: {e}"));
            assert_eq!(n, 4096);
        }
        seg.remove();
    });
}

/// 100,000 distinct names looked up through the mount, each of an object that another
/// process creates and removes behind the mount's back (the kernel keeps the entries, and
/// only the daemon's sweep tells it they are gone, once a second): the daemon's RSS stays
/// under 32 MiB. It rises with how many objects go between two sweeps, so only the ceiling is
/// asserted here.
#[test]
fn distinct_names_looked_up_leave_memory_bounded() {
    require_fuse!();
    let m = Mount::new();
    let shm = m.shm_dir().to_path_buf();
    let posix = m.p("posix");
    assert_memory_bounded(&m, "looked-up names", 100_000, None, |i| {
        let name = format!("n{i}");
        let file = shm.join(&name);
        fs::write(&file, b"x").unwrap_or_else(|e| panic!("create {file:?}: {e}"));
        let dir = posix.join(&name);
        fs::metadata(&dir).unwrap_or_else(|e| panic!("stat {dir:?}: {e}"));
        fs::remove_file(&file).unwrap_or_else(|e| panic!("remove {file:?}: {e}"));
    });
}
