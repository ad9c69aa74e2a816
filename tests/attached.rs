//! Who is attached (README "attached", issue 3 "Who is attached"), checked against processes the
//! test starts: `attached` lists exactly the live holders, as `PID START-END ACCESS COMM` with the
//! range of the holder's own /proc/PID/maps line, sorted by pid; SysV line count equals `nattch`.
//! Also `hugetlb` in a segment's stat.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;

use common::*;

/// One expected line of `attached`.
fn line(pid: i32, place: &str, access: &str) -> String {
    format!("{pid} {place} {access} {HELPER_COMM}\n")
}

/// The expected text: lines sorted by pid.
fn text_of(mut lines: Vec<(i32, String)>) -> String {
    lines.sort();
    lines.into_iter().map(|(_, l)| l).collect()
}

/// The one maps line of helper `h` for SysV segment `shmid`, checked against its access.
fn sysv_range(h: &Helper, shmid: i32, access: &str) -> String {
    let lines = sysv_maps_lines(h.pid(), shmid);
    assert_eq!(
        lines.len(),
        1,
        "/proc/{}/maps should have one /SYSV line for shmid {shmid}: {lines:?}",
        h.pid()
    );
    let l = &lines[0];
    let want_perms = if access == "r" { "r--s" } else { "rw-s" };
    assert_eq!(l.perms, want_perms, "maps line of pid {}: {l:?}", h.pid());
    // The helper printed the address shmat returned: the start of that range.
    let start = l.range.split('-').next().unwrap();
    assert_eq!(
        u64::from_str_radix(start, 16).unwrap(),
        u64::from_str_radix(&h.ready, 16).unwrap(),
        "maps range {} vs shmat address {}",
        l.range,
        h.ready
    );
    l.range.clone()
}

#[test]
fn sysv_attached_lists_exactly_the_live_attachers() {
    require_fuse!();
    let m = Mount::new();
    let seg = SysvSeg::keyed(16384, 0o600);
    let id = seg.id.to_string();
    let reader = Helper::start(&["sysv-attach", &id, "r"]);
    let writer = Helper::start(&["sysv-attach", &id, "rw"]);
    let gone = run_helper(&["sysv-attach-exit", &id]);
    assert!(gone.ok(), "helper that attaches and exits: {gone:?}");
    assert_eq!(
        fs::read_to_string(format!("/proc/{}/comm", reader.pid())).unwrap(),
        format!("{HELPER_COMM}\n")
    );

    let want = text_of(vec![
        (
            reader.pid(),
            line(reader.pid(), &sysv_range(&reader, seg.id, "r"), "r"),
        ),
        (
            writer.pid(),
            line(writer.pid(), &sysv_range(&writer, seg.id, "rw"), "rw"),
        ),
    ]);
    let before = seg.stat();
    let got = read_text(&m.sysv(seg.id, "attached"));
    assert_eq!(
        got, want,
        "`cat sysv/{id}/attached` (left) must list the read-only and the read-write attacher \
         (and not the one that exited) as their maps show them (right)"
    );
    let stat = read_fields(&m.sysv(seg.id, "stat"));
    assert_eq!(
        stat.num("nattch"),
        got.lines().count() as u64,
        "nattch in stat vs lines of attached: {got:?}"
    );
    assert_eq!(stat.num("nattch"), 2);
    let after = seg.stat();
    assert_eq!(
        (after.shm_nattch, after.shm_atime, after.shm_lpid),
        (before.shm_nattch, before.shm_atime, before.shm_lpid),
        "reading attached and stat must not attach the segment (nattch, atime, lpid)"
    );

    // One detaches (exits): only the other is left.
    let writer_line = line(writer.pid(), &sysv_range(&writer, seg.id, "rw"), "rw");
    reader.finish();
    let got = read_text(&m.sysv(seg.id, "attached"));
    assert_eq!(got, writer_line, "attached after the reader exited");
    assert_eq!(read_fields(&m.sysv(seg.id, "stat")).num("nattch"), 1);

    writer.finish();
    assert_eq!(
        read_text(&m.sysv(seg.id, "attached")),
        "",
        "attached after every attacher exited"
    );
    assert_eq!(read_fields(&m.sysv(seg.id, "stat")).num("nattch"), 0);
}

/// The maps line of helper `h` for the file with inode `ino` whose path ends in `/name`.
fn posix_range(h: &Helper, ino: u64, name: &str, access: &str) -> String {
    let suffix = format!("/{name}");
    let lines: Vec<MapsLine> = maps_of(h.pid())
        .into_iter()
        .filter(|l| {
            l.inode == ino
                && (l.path.ends_with(&suffix) || l.path.ends_with(&format!("{suffix} (deleted)")))
        })
        .collect();
    assert_eq!(
        lines.len(),
        1,
        "/proc/{}/maps should map {name} (inode {ino}) once: {lines:?}",
        h.pid()
    );
    let want_perms = if access == "r" { "r--s" } else { "rw-s" };
    assert_eq!(lines[0].perms, want_perms, "maps line of pid {}", h.pid());
    lines[0].range.clone()
}

#[test]
fn posix_attached_lists_mappers_and_openers_by_inode_not_name() {
    require_fuse!();
    let m = Mount::new();
    let path = create_posix(m.shm_dir(), "held", 0o600, &[7u8; 8192]);
    let ino = fs::metadata(&path).unwrap().ino();
    let p = path.to_str().unwrap();
    let writer = Helper::start(&["posix-mmap", p, "rw"]);
    let reader = Helper::start(&["posix-mmap", p, "r"]);
    let opener = Helper::start(&["posix-open", p]);

    let want = text_of(vec![
        (
            writer.pid(),
            line(writer.pid(), &posix_range(&writer, ino, "held", "rw"), "rw"),
        ),
        (
            reader.pid(),
            line(reader.pid(), &posix_range(&reader, ino, "held", "r"), "r"),
        ),
        (
            opener.pid(),
            line(opener.pid(), &format!("fd:{}", opener.ready), "r"),
        ),
    ]);
    assert_eq!(
        read_text(&m.posix("held", "attached")),
        want,
        "`cat posix/held/attached` (left): a read-write and a read-only mapper, and a process \
         holding it open O_RDONLY (right)"
    );

    // Unlink it and create a new object of the same name: the old holders hold the old one.
    fs::remove_file(&path).unwrap();
    let path2 = create_posix(m.shm_dir(), "held", 0o600, &[9u8; 4096]);
    let ino2 = fs::metadata(&path2).unwrap().ino();
    assert_ne!(ino, ino2, "the new object has a new inode");
    assert_eq!(
        read_text(&m.posix("held", "attached")),
        "",
        "nobody holds the new posix/held; the holders of the unlinked one must not show"
    );
    let newcomer = Helper::start(&["posix-mmap", p, "rw"]);
    assert_eq!(
        read_text(&m.posix("held", "attached")),
        line(
            newcomer.pid(),
            &posix_range(&newcomer, ino2, "held", "rw"),
            "rw"
        ),
        "only the holder of the new object"
    );
    // The old holders are still alive and still hold the old object.
    posix_range(&writer, ino, "held", "rw");
    posix_range(&reader, ino, "held", "r");
    drop((writer, reader, opener, newcomer));
}

#[test]
fn hugetlb_is_no_for_a_normal_segment() {
    require_fuse!();
    let m = Mount::new();
    let seg = SysvSeg::private(16384, 0o600);
    let huge_kb = meminfo_hugetlb_kb();

    let shown = read_fields(&m.sysv(seg.id, "stat"))
        .get("hugetlb")
        .to_string();
    if huge_kb == 0 {
        assert_eq!(
            shown, "no",
            "no huge pages on this machine (Hugetlb: 0 kB), so no segment can use them"
        );
    } else {
        assert!(
            shown == "no" || shown == "unknown",
            "huge pages exist here (Hugetlb: {huge_kb} kB); an unattached normal segment may \
             show `no` or `unknown`, got {shown:?}"
        );
    }

    // With an attacher, its smaps tells.
    let _attacher = Helper::start(&["sysv-attach", &seg.id.to_string(), "rw"]);
    assert_eq!(
        read_fields(&m.sysv(seg.id, "stat")).get("hugetlb"),
        "no",
        "hugetlb of a normal segment with an attacher"
    );
}
