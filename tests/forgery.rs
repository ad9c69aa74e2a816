//! A forged segment behind the `map_files` route (issue 21): an ordinary user's process holds,
//! through a `CLONE_VM` sibling born in a user and IPC namespace of its own, a mapping of a
//! segment made there with the victim's shmid and size (`sysv-forge` in shmholder.c). Every value
//! a mapping shows (device, inode number = shmid, size, the holder's namespaces) is the real
//! segment's. shmfs must never serve the forged bytes nor write into them: root and the owner
//! read and write the real segment, whether the attacker is the segment's `lpid` (a 0644 segment
//! it may attach read-only) or merely sorts first among the holders (a 0600 one).
//!
//! Also here: after the first open (which attaches briefly and fingerprints the segment), opens of
//! an attached segment move nothing `ipcs` shows, also for a write when every holder attached it
//! read-only.

mod common;

use std::fs;
use std::time::Duration;

use common::*;

const SIZE: usize = 16384;
const ATTACKER: u32 = 12345;
const VICTIM: u32 = 12346;

/// The victim's bytes.
fn real_bytes() -> Vec<u8> {
    (0..SIZE).map(|i| b'a' + (i % 26) as u8).collect()
}

/// Whether `bytes` are the victim's real bytes; on a mismatch, the start of what was read
/// (`FFFF…`: the forged memory).
#[track_caller]
fn assert_real(bytes: &[u8], what: &str) {
    assert!(
        bytes == real_bytes(),
        "{what}: {} bytes starting {:?}, not the real segment's",
        bytes.len(),
        String::from_utf8_lossy(&bytes[..bytes.len().min(16)])
    );
}

/// A segment of the victim's with mode `mode`, holding `real_bytes()`.
fn victim_segment(mode: u32) -> SysvSeg {
    let seg = SysvSeg::keyed(SIZE, 0o600);
    seg.attach().write(0, &real_bytes());
    seg.set(Some(mode), Some(VICTIM), Some(VICTIM));
    seg
}

/// The `/SYSV` mappings with inode number `shmid` in process `pid`'s maps:
/// (range, permissions, device, length).
fn sysv_mappings(pid: i32, shmid: i32) -> Vec<(String, String, String, u64)> {
    let maps = fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    maps.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 6 && f[5].starts_with("/SYSV") && f[4] == shmid.to_string()).then(|| {
                let (a, b) = f[0].split_once('-').unwrap();
                let len = u64::from_str_radix(b, 16).unwrap() - u64::from_str_radix(a, 16).unwrap();
                (f[0].to_string(), f[1].to_string(), f[3].to_string(), len)
            })
        })
        .collect()
}

/// The forger holds a mapping that passes every check of what a mapping shows: a shared
/// `/SYSV` mapping with the shmid as inode, the segment's size and the device of real segments
/// (as this test's own attachment shows them), in a process whose only thread is in our IPC
/// namespace; and it holds the forged bytes.
fn assert_forgery_in_place(forger: &mut Helper, seg: &SysvSeg) {
    let real_dev = {
        let _attached = seg.attach();
        sysv_mappings(std::process::id() as i32, seg.id)[0]
            .2
            .clone()
    };
    let forged = sysv_mappings(forger.pid(), seg.id);
    let low = format!("{}-", forger.ready);
    let first = forged
        .first()
        .unwrap_or_else(|| panic!("the forger maps nothing with inode {}", seg.id));
    assert!(
        first.0.starts_with(&low),
        "forged mapping first: {forged:?}"
    );
    assert_eq!(
        (&first.2, first.3),
        (&real_dev, SIZE as u64),
        "device and size"
    );
    assert!(first.1.ends_with('s'), "shared: {first:?}");
    let tasks = fs::read_dir(format!("/proc/{}/task", forger.pid()))
        .unwrap()
        .count();
    assert_eq!(tasks, 1, "the forger is one thread");
    assert_eq!(
        fs::read_link(format!("/proc/{}/ns/ipc", forger.pid())).unwrap(),
        fs::read_link("/proc/self/ns/ipc").unwrap(),
        "the forger is in our IPC namespace"
    );
    assert_eq!(forger.step("peek"), "F".repeat(16), "the forged memory");
}

/// Writes `text` at offset 0 of `data` as `uid`, through the mount.
fn write_as(uid: u32, data: &std::path::Path, text: &str) {
    let r = sh_as(
        uid,
        &format!(
            "printf {text} | dd of={} bs=1 conv=notrunc status=none",
            q(data)
        ),
    );
    assert!(
        r.ok(),
        "uid {uid} writing {text} to {}: {r:?}",
        data.display()
    );
}

/// A 0600 segment: the attacker cannot attach it, so it waits until neither `lpid` nor `cpid`
/// maps it and sorts first among the holders. The first open (nothing fingerprinted yet)
/// attaches briefly; the later ones go through the real holder's mapping, never the forged one.
#[test]
fn a_forged_mapping_sorting_first_is_never_used() {
    require_fuse!();
    let m = Mount::builder().option("allow_other").mount();
    let seg = victim_segment(0o600);
    let id = seg.id.to_string();
    // pid_max may be as low as 32768: should pids wrap between the two, both start again.
    let (mut forger, holder) = (0..5)
        .map(|_| {
            let forger = Helper::start_as(ATTACKER, &["sysv-forge", &id, &SIZE.to_string()]);
            let holder = Helper::start_as(VICTIM, &["sysv-attach", &id, "rw"]);
            (forger, holder)
        })
        .find(|(forger, holder)| holder.pid() > forger.pid())
        .expect("five pairs of processes, each with pids wrapping between them");
    // lpid: a process that is gone; cpid: this test, which maps nothing.
    let exit = sh_as(
        VICTIM,
        &format!("{} sysv-attach-exit {id}", q(helper_bin())),
    );
    assert!(exit.ok(), "{exit:?}");
    assert_forgery_in_place(&mut forger, &seg);
    let data = m.sysv(seg.id, "data");

    assert_real(&fs::read(&data).unwrap(), "root's first read");
    assert_eq!(
        seg.attach_evidence().0,
        m.pid() as i32,
        "the first open attached briefly"
    );
    // Let the second of the brief attach pass, so that a later attach would show in atime.
    std::thread::sleep(Duration::from_millis(1100));
    let before = seg.attach_evidence();
    assert_real(&fs::read(&data).unwrap(), "root's second read");
    write_as(VICTIM, &data, "SECRET");
    assert_eq!(
        seg.attach_evidence(),
        before,
        "(lpid, atime, dtime, nattch, ctime): the later opens went through the real holder"
    );
    assert_eq!(seg.attach().read(0, 6), b"SECRET", "the real segment");
    assert_eq!(forger.step("peek"), "F".repeat(16), "the forged memory");
    let as_root = fs::read(&data).unwrap();
    assert_eq!(&as_root[..6], b"SECRET");
    assert_eq!(&as_root[6..], &real_bytes()[6..]);
    assert!(!m.log().contains("panicked"), "daemon log:\n{}", m.log());
    drop((forger, holder));
}

/// A 0644 segment: the attacker attaches the real one read-only and becomes `lpid`, so its
/// process (forged mapping first, at a low address) is the first tried. The real read-only
/// mapping in the same process is the one used, for the owner's write too.
#[test]
fn a_forged_mapping_of_the_lpid_is_never_used() {
    require_fuse!();
    let m = Mount::builder().option("allow_other").mount();
    let seg = victim_segment(0o644);
    let id = seg.id.to_string();
    let mut forger = Helper::start_as(ATTACKER, &["sysv-forge", &id, &SIZE.to_string(), "r"]);
    assert_eq!(seg.attach_evidence().0, forger.pid(), "the forger is lpid");
    assert_forgery_in_place(&mut forger, &seg);
    let data = m.sysv(seg.id, "data");

    assert_real(&fs::read(&data).unwrap(), "root's first read");
    assert_eq!(forger.step("attach"), "attached");
    assert_eq!(
        seg.attach_evidence().0,
        forger.pid(),
        "the forger is lpid again"
    );
    std::thread::sleep(Duration::from_millis(1100));
    let before = seg.attach_evidence();
    assert_real(&fs::read(&data).unwrap(), "root's second read");
    let r = sh_as(VICTIM, &format!("cat {}", q(&data)));
    assert!(r.ok(), "{r:?}");
    assert_real(&r.stdout, "the owner's read");
    write_as(VICTIM, &data, "SECRET");
    assert_eq!(
        seg.attach_evidence(),
        before,
        "(lpid, atime, dtime, nattch, ctime): through the forger's real, read-only mapping"
    );
    assert_eq!(seg.attach().read(0, 6), b"SECRET", "the real segment");
    assert_eq!(forger.step("peek"), "F".repeat(16), "the forged memory");
    drop(forger);
}

/// Read-only attachers: when every holder attached the segment read-only, a write through `data`
/// by its owner still moves nothing (root opens `map_files` of a read-only mapping read-write).
#[test]
fn a_write_through_read_only_attachers_moves_nothing() {
    require_fuse!();
    let m = Mount::builder().option("allow_other").mount();
    let seg = victim_segment(0o600);
    let id = seg.id.to_string();
    let data = m.sysv(seg.id, "data");
    // The first open after the daemon started: attaches briefly and fingerprints the segment.
    assert_real(&fs::read(&data).unwrap(), "the first read");
    let reader = Helper::start_as(VICTIM, &["sysv-attach", &id, "r"]);
    let other = Helper::start(&["sysv-attach", &id, "r"]);
    std::thread::sleep(Duration::from_millis(1100));
    let before = seg.attach_evidence();
    assert_eq!(before.3, 2, "two read-only holders");
    write_as(VICTIM, &data, "WRITTEN");
    assert_eq!(
        seg.attach_evidence(),
        before,
        "(lpid, atime, dtime, nattch, ctime) after the owner's write"
    );
    assert_eq!(seg.attach().read(0, 7), b"WRITTEN");
    // The owner's right is still the kernel's: a stranger may not write.
    let r = sh_as(ATTACKER, &format!("printf X > {}", q(&data)));
    assert!(!r.ok(), "uid {ATTACKER} wrote to a 0600 segment: {r:?}");
    assert_eq!(seg.attach().read(0, 1), b"W");
    drop((reader, other));
}

/// The contract that remains: the first open of an attached segment's `data` after the daemon
/// started attaches briefly; every later one (read or write, by anyone allowed) moves none of
/// lpid, atime, dtime, nattch.
#[test]
fn after_the_first_open_opens_of_an_attached_segment_move_nothing() {
    require_fuse!();
    let m = Mount::builder().option("allow_other").mount();
    let seg = victim_segment(0o666);
    let id = seg.id.to_string();
    let holder = Helper::start_as(VICTIM, &["sysv-attach", &id, "rw"]);
    std::thread::sleep(Duration::from_millis(1100));
    let data = m.sysv(seg.id, "data");
    let fresh = seg.attach_evidence();
    assert_real(&fs::read(&data).unwrap(), "first read");
    let first = seg.attach_evidence();
    assert_eq!(first.0, m.pid() as i32, "the first open attached briefly");
    assert_ne!(first, fresh);
    std::thread::sleep(Duration::from_millis(1100));
    for i in 0..3 {
        assert_eq!(fs::read(&data).unwrap().len(), SIZE);
        write_as(ATTACKER, &data, "abc");
        assert!(sh_as(VICTIM, &format!("cat {} >/dev/null", q(&data))).ok());
        assert_eq!(seg.attach_evidence(), first, "round {i}");
    }
    drop(holder);
}
