//! Who is attached (shmfs(5) ATTACHED), checked against processes the
//! test starts: `attached` lists exactly the live holders, as `PID START-END ACCESS COMM` with the
//! range of the holder's own /proc/PID/maps line, sorted by pid; SysV line count equals `nattch`.
//! Each reader sees only the holders it may trace (other users' processes and the daemon's own
//! are left out, with a `+N hidden` count for SysV). Also `hugetlb` in a segment's stat.

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

    // With an attacher, its maps tells.
    let _attacher = Helper::start(&["sysv-attach", &seg.id.to_string(), "rw"]);
    assert_eq!(
        read_fields(&m.sysv(seg.id, "stat")).get("hugetlb"),
        "no",
        "hugetlb of a normal segment with an attacher"
    );
}

/// Two ordinary users for the visibility tests: ALICE holds, BOB only looks.
const ALICE: u32 = 2101;
const BOB: u32 = 2102;

/// `cat PATH` as uid `id`; its output (which must succeed).
fn cat_as(id: u32, path: &std::path::Path) -> String {
    let r = sh_as(id, &format!("cat {}", q(path)));
    assert!(r.ok(), "`cat {}` as uid {id}: {r:?}", path.display());
    r.stdout_str()
}

/// `cat PATH` as root without CAP_SYS_PTRACE (dropped from the bounding set, so from every set).
fn cat_as_root_without_ptrace(path: &std::path::Path) -> String {
    let r = sh(&format!(
        "setpriv --bounding-set=-sys_ptrace sh -c 'grep ^CapEff: /proc/self/status >&2; cat {}'",
        q(path)
    ));
    assert!(
        r.ok(),
        "`cat {}` as root without CAP_SYS_PTRACE: {r:?}",
        path.display()
    );
    r.stdout_str()
}

/// The pids that lines of an `attached` text name (the `+N hidden` line names none).
fn pids_in(text: &str) -> Vec<u32> {
    text.lines()
        .filter(|l| !l.starts_with('+'))
        .map(|l| {
            l.split(' ')
                .next()
                .and_then(|p| p.parse().ok())
                .unwrap_or_else(|| panic!("line {l:?} of attached does not start with a pid"))
        })
        .collect()
}

/// `attached` shows a caller only the holders whose /proc/PID/maps it could
/// read itself (no pid, no command name of the others), and for SysV the count of the rest as
/// a last line `+N hidden` (nattch is public, as in `ipcs`).
#[test]
fn sysv_attached_shows_only_holders_the_reader_may_trace_and_counts_the_rest() {
    require_fuse!();
    let m = Mount::builder().option("allow_other").mount();
    let seg = SysvSeg::private(16384, 0o666);
    let id = seg.id.to_string();
    let alices = Helper::start_as(ALICE, &["sysv-attach", &id, "rw"]);
    let roots = Helper::start(&["sysv-attach", &id, "r"]);
    assert_eq!(
        fs::metadata(format!("/proc/{}", alices.pid()))
            .unwrap()
            .uid(),
        ALICE,
        "the helper runs as alice"
    );
    let alice_line = line(alices.pid(), &sysv_range(&alices, seg.id, "rw"), "rw");
    let root_line = line(roots.pid(), &sysv_range(&roots, seg.id, "r"), "r");
    let path = m.sysv(seg.id, "attached");

    assert_eq!(
        read_text(&path),
        text_of(vec![
            (alices.pid(), alice_line.clone()),
            (roots.pid(), root_line.clone())
        ]),
        "root sees every attacher and no hidden line"
    );
    assert_eq!(
        cat_as(ALICE, &path),
        format!("{alice_line}+1 hidden\n"),
        "alice sees her own attachment, not root's, and a count of one hidden"
    );
    let bobs = cat_as(BOB, &path);
    assert_eq!(
        bobs, "+2 hidden\n",
        "bob may trace neither process: no pid, no command, only the count"
    );
    assert!(!bobs.contains(HELPER_COMM));
    assert_eq!(seg.stat().shm_nattch, 2, "the count is nattch");

    alices.finish();
    assert_eq!(cat_as(BOB, &path), "+1 hidden\n", "after alice detached");
    assert_eq!(cat_as(ALICE, &path), "+1 hidden\n");
    roots.finish();
    assert_eq!(cat_as(BOB, &path), "", "nobody attached: no line at all");
}

/// The same for a POSIX object (mapped by one user, held open by another): a reader sees only
/// holders it may trace; no count, since the kernel shows none for a file.
#[test]
fn posix_attached_shows_only_holders_the_reader_may_trace() {
    require_fuse!();
    let m = Mount::builder().option("allow_other").mount();
    let path = create_posix(m.shm_dir(), "shared", 0o666, &[1u8; 4096]);
    let ino = fs::metadata(&path).unwrap().ino();
    let p = path.to_str().unwrap();
    let alices = Helper::start_as(ALICE, &["posix-open", p]);
    let roots = Helper::start(&["posix-mmap", p, "rw"]);
    let alice_line = line(alices.pid(), &format!("fd:{}", alices.ready), "r");
    let root_line = line(roots.pid(), &posix_range(&roots, ino, "shared", "rw"), "rw");
    let attached = m.posix("shared", "attached");

    assert_eq!(
        read_text(&attached),
        text_of(vec![
            (alices.pid(), alice_line.clone()),
            (roots.pid(), root_line)
        ]),
        "root sees both holders"
    );
    assert_eq!(
        cat_as(ALICE, &attached),
        alice_line,
        "alice sees only herself"
    );
    assert_eq!(cat_as(BOB, &attached), "", "bob sees nobody");
}

/// The daemon may always read its own /proc/PID/maps, so asking "could the caller read it?"
/// inside the daemon said yes for the daemon's own holdings: they were shown to everyone.
/// They are shown only to root with CAP_SYS_PTRACE, who could read the daemon's maps itself.
#[test]
fn the_daemons_own_holdings_are_shown_only_to_root_with_cap_sys_ptrace() {
    require_fuse!();
    let m = Mount::builder().option("allow_other").mount();
    let daemon = m.pid();
    let seg = SysvSeg::private(8192, 0o666);
    let _obj = create_posix(m.shm_dir(), "held", 0o666, &[0u8; 4096]);
    // Root opens both `data` files through the mount and keeps them open: the daemon holds the
    // object (and the segment's memory) meanwhile.
    let _sysv_data = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(m.sysv(seg.id, "data"))
        .unwrap();
    let _posix_data = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(m.posix("held", "data"))
        .unwrap();
    let root_attacher = Helper::start(&["sysv-attach", &seg.id.to_string(), "r"]);

    let posix_attached = m.posix("held", "attached");
    let as_root = read_text(&posix_attached);
    assert!(
        pids_in(&as_root).contains(&daemon),
        "root sees the daemon (pid {daemon}) holding the object it opened: {as_root:?}"
    );
    let sysv_attached = m.sysv(seg.id, "attached");
    let sysv_as_root = read_text(&sysv_attached);
    let nattch = seg.stat().shm_nattch;
    assert_eq!(
        sysv_as_root.lines().count() as u64,
        nattch,
        "root sees every attachment (the daemon's too, if it keeps one): {sysv_as_root:?}"
    );

    for (who, posix_text, sysv_text) in [
        (
            "uid 2102",
            cat_as(BOB, &posix_attached),
            cat_as(BOB, &sysv_attached),
        ),
        (
            "root without CAP_SYS_PTRACE",
            cat_as_root_without_ptrace(&posix_attached),
            cat_as_root_without_ptrace(&sysv_attached),
        ),
    ] {
        for (file, text) in [("posix", &posix_text), ("sysv", &sysv_text)] {
            assert!(
                !pids_in(text).contains(&daemon),
                "{who} must not see the daemon (pid {daemon}) in {file} attached: {text:?}"
            );
            assert!(
                !text.contains(" shmfs\n"),
                "{who}: {file} attached names the daemon's command: {text:?}"
            );
        }
        // The count covers whatever is not shown.
        let shown = sysv_text.lines().filter(|l| !l.starts_with('+')).count() as u64;
        let hidden = sysv_text
            .lines()
            .find_map(|l| l.strip_prefix('+'))
            .map_or(0, |l| {
                l.strip_suffix(" hidden")
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap_or_else(|| panic!("{who}: bad count line {l:?}"))
            });
        assert_eq!(
            shown + hidden,
            nattch,
            "{who}: lines plus the hidden count must be nattch: {sysv_text:?}"
        );
    }
    drop(root_attacher);
}
