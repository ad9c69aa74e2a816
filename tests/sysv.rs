//! System V segments: listing under sysv/, the stat file, by-key links, freshness.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use common::*;

/// The stat text shmfs must show for segment `id`, built from IPC_STAT and /proc/sysvipc/shm.
fn expected_stat(id: i32) -> String {
    let ds = ipc_stat(id).unwrap();
    let row = proc_sysvipc_row(id).expect("segment missing from /proc/sysvipc/shm");
    let p = &ds.shm_perm;
    let mode = u32::from(p.mode);
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    format!(
        "kind: sysv\nshmid: {id}\nkey: 0x{:08x}\nsize: {}\nmode: {}\nuid: {}\ngid: {}\n\
         cuid: {}\ncgid: {}\ncpid: {}\nlpid: {}\nnattch: {}\natime: {}\ndtime: {}\nctime: {}\n\
         rss: {}\nswap: {}\ndest: {}\nlocked: {}\n",
        p.__key as u32,
        ds.shm_segsz,
        fmt_mode(mode),
        p.uid,
        p.gid,
        p.cuid,
        p.cgid,
        ds.shm_cpid,
        ds.shm_lpid,
        ds.shm_nattch,
        ds.shm_atime,
        ds.shm_dtime,
        ds.shm_ctime,
        row["rss"],
        row["swap"],
        yes_no(mode & SHM_DEST != 0),
        yes_no(mode & SHM_LOCKED != 0),
    )
}

/// Asserts that `text` (a sysv stat file) shows exactly what the kernel knows of segment `id`: the
/// lines docs/design.md §1 fixes, in its order, with the kernel's values. Lines after them (such
/// as `hugetlb`) must still be `name: value` with new names.
#[track_caller]
fn assert_stat_matches_kernel(text: &str, id: i32, what: &str) {
    let want = expected_stat(id);
    let n = want.lines().count();
    let head: String = text.lines().take(n).map(|l| format!("{l}\n")).collect();
    assert_eq!(
        head, want,
        "{what}: `cat MNT/sysv/ID/stat` (left) differs from IPC_STAT + /proc/sysvipc/shm (right)"
    );
    let fields = Fields::parse(text);
    let design = Fields::parse(&want);
    let design = design.names();
    for name in &fields.names()[n..] {
        assert!(
            !design.contains(name),
            "{what}: stat repeats `{name}` after the fixed fields: {text:?}"
        );
    }
}

fn by_key_name(key: i32) -> String {
    format!("0x{:08x}", key as u32)
}

fn exists_per_shell(p: &Path) -> bool {
    sh(&format!("test -e {}", q(p))).ok()
}

// --- listing -------------------------------------------------------------------------------

#[test]
fn shmget_segment_is_listed() {
    require_fuse!();
    let m = Mount::new();
    let seg = SysvSeg::private(4096, 0o600);
    assert!(
        m.ls_sysv().contains(&seg.id),
        "`ls MNT/sysv` does not show shmid {} created by shmget",
        seg.id
    );
    assert_has_entries(&m.sysv_dir(seg.id), &["data", "perm", "stat"]);
}

#[test]
fn ipcmk_segment_is_listed_with_its_mode() {
    require_fuse!();
    let m = Mount::new();
    let seg = SysvSeg::adopt(ipcmk(4096, "0640"));
    assert!(
        m.ls_sysv().contains(&seg.id),
        "`ls MNT/sysv` does not show shmid {} made by ipcmk",
        seg.id
    );
    let st = read_fields(&m.sysv(seg.id, "stat"));
    assert_eq!(st.get("mode"), "0640", "ipcmk -p 0640 segment's stat");
    assert_eq!(st.num("size"), 4096);
}

#[test]
fn ipcrm_removes_directory_immediately() {
    require_fuse!();
    let m = Mount::new();
    let mut seg = SysvSeg::private(4096, 0o600);
    let dir = m.sysv_dir(seg.id);
    assert!(exists_per_shell(&dir), "test -e MNT/sysv/ID before ipcrm");
    read_fields(&m.sysv(seg.id, "stat")); // let the kernel cache whatever it caches
    sh_ok(&format!("ipcrm -m {}", seg.id));
    seg.forget();
    assert!(
        !exists_per_shell(&dir),
        "`test -e MNT/sysv/{}` is still true right after `ipcrm -m {}`",
        seg.id,
        seg.id
    );
    assert!(
        !m.sysv(seg.id, "stat").exists(),
        "MNT/sysv/ID/stat still exists after ipcrm"
    );
    assert!(
        !m.ls_sysv().contains(&seg.id),
        "`ls MNT/sysv` still lists the removed shmid"
    );
}

#[test]
fn listing_matches_ipcs() {
    require_fuse!();
    let m = Mount::new();
    let _a = SysvSeg::private(4096, 0o600);
    let _b = SysvSeg::keyed(8192, 0o644);
    let mut c = SysvSeg::keyed(4096, 0o600);
    let _att = c.attach();
    c.remove(); // dest, still attached: both ipcs and shmfs show it
    retry(20, || {
        let ipcs = ipcs_m_ids();
        let ours = m.ls_sysv();
        if ipcs == ours {
            Ok(())
        } else {
            Err(format!("`ipcs -m` ids {ipcs:?} != `ls MNT/sysv` {ours:?}"))
        }
    });
}

#[test]
fn new_segment_shows_at_once_in_ls() {
    require_fuse!();
    let m = Mount::new();
    let before = m.ls_sysv();
    let seg = SysvSeg::private(4096, 0o600);
    assert!(!before.contains(&seg.id));
    assert!(
        m.ls_sysv().contains(&seg.id),
        "a segment created just now is missing from the next `ls MNT/sysv`"
    );
    assert!(exists_per_shell(&m.sysv(seg.id, "data")));
}

// --- stat ----------------------------------------------------------------------------------

#[test]
fn stat_matches_ipc_stat_and_proc() {
    require_fuse!();
    let m = Mount::new();
    let seg = SysvSeg::keyed(4 * 4096, 0o640);
    {
        // attach, touch two pages, detach: atime, dtime, lpid, rss all non-zero
        let att = seg.attach();
        att.write(0, b"x");
        att.write(4096, b"y");
    }
    let _att = seg.attach(); // nattch 1
    let text = read_text(&m.sysv(seg.id, "stat"));
    assert_stat_matches_kernel(&text, seg.id, "attached keyed segment");
    let f = Fields::parse(&text);
    assert_eq!(f.num("rss"), 8192, "two touched pages");
    assert_eq!(f.num("nattch"), 1);
    assert_eq!(f.num("lpid"), u64::from(std::process::id()));
}

#[test]
fn stat_of_private_segment_has_key_zero() {
    require_fuse!();
    let m = Mount::new();
    let seg = SysvSeg::private(4096, 0o600);
    let text = read_text(&m.sysv(seg.id, "stat"));
    assert_stat_matches_kernel(&text, seg.id, "stat");
    assert_eq!(Fields::parse(&text).get("key"), "0x00000000");
}

#[test]
fn stat_shows_dest_after_rmid_while_attached() {
    require_fuse!();
    let m = Mount::new();
    let mut seg = SysvSeg::keyed(4096, 0o600);
    let att = seg.attach();
    let link = m.p("by-key").join(by_key_name(seg.key));
    assert!(link.symlink_metadata().is_ok(), "by-key link before RMID");
    seg.remove();

    assert!(
        m.ls_sysv().contains(&seg.id),
        "a removed but still attached segment must stay listed"
    );
    let text = read_text(&m.sysv(seg.id, "stat"));
    let f = Fields::parse(&text);
    assert_eq!(f.get("dest"), "yes", "stat after IPC_RMID while attached");
    assert_eq!(f.get("key"), "0x00000000", "key after IPC_RMID");
    assert_eq!(f.get("mode"), "0600", "mode shows permission bits only");
    assert_stat_matches_kernel(&text, seg.id, "stat");
    assert!(
        link.symlink_metadata().is_err(),
        "by-key link of a segment whose key became 0 must be gone"
    );

    drop(att);
    assert!(
        !exists_per_shell(&m.sysv_dir(seg.id)),
        "segment directory still there after the last detach of a removed segment"
    );
}

#[test]
fn stat_shows_locked_after_shm_lock() {
    require_fuse!();
    let m = Mount::new();
    let seg = SysvSeg::private(4096, 0o600);
    assert_eq!(read_fields(&m.sysv(seg.id, "stat")).get("locked"), "no");
    seg.lock();
    let text = read_text(&m.sysv(seg.id, "stat"));
    let f = Fields::parse(&text);
    assert_eq!(f.get("locked"), "yes", "stat after SHM_LOCK");
    assert_eq!(f.get("dest"), "no");
    assert_eq!(f.get("mode"), "0600", "mode shows permission bits only");
    assert_stat_matches_kernel(&text, seg.id, "stat");
}

#[test]
fn huge_segment_shows_its_size_and_reading_stat_allocates_nothing() {
    require_fuse!();
    let m = Mount::new();
    let size: usize = 5 << 30;
    let seg = SysvSeg::private(size, 0o600);
    let text = read_text(&m.sysv(seg.id, "stat"));
    let f = Fields::parse(&text);
    assert_eq!(f.num("size"), 5368709120, "stat size of a 5 GiB segment");
    assert_eq!(f.num("rss"), 0);
    let data_len = fs::metadata(m.sysv(seg.id, "data")).unwrap().len();
    assert_eq!(data_len, 5368709120, "`ls -l data` size of a 5 GiB segment");
    sh_ok(&format!("ls -l {} >/dev/null", q(m.sysv_dir(seg.id))));
    read_text(&m.sysv(seg.id, "perm"));
    let row = proc_sysvipc_row(seg.id).unwrap();
    assert_eq!(
        row["rss"], "0",
        "reading stat/perm and ls -l allocated memory of an untouched segment"
    );
    assert_stat_matches_kernel(&text, seg.id, "stat");
}

#[test]
fn stat_shows_foreign_owner() {
    require_fuse!();
    let m = Mount::new();
    let a = SysvSeg::private(4096, 0o600);
    a.set(None, Some(12345), Some(23456));
    let b = SysvSeg::private(4096, 0o600);
    b.set(None, Some(70000), Some(70001));
    for (seg, uid, gid) in [(&a, 12345, 23456), (&b, 70000, 70001)] {
        let text = read_text(&m.sysv(seg.id, "stat"));
        let f = Fields::parse(&text);
        assert_eq!(f.num("uid"), uid, "stat uid after IPC_SET uid={uid}");
        assert_eq!(f.num("gid"), gid, "stat gid after IPC_SET gid={gid}");
        assert_eq!(f.num("cuid"), 0, "creator stays root");
        assert_stat_matches_kernel(&text, seg.id, "foreign owner");
        let md = fs::metadata(m.sysv(seg.id, "data")).unwrap();
        assert_eq!(
            (md.uid(), md.gid()),
            (uid as u32, gid as u32),
            "owner of data"
        );
    }
}

#[test]
fn reading_metadata_files_does_not_attach() {
    require_fuse!();
    let m = Mount::new();
    let seg = SysvSeg::keyed(3 * 4096, 0o640);
    let before = seg.stat();
    read_text(&m.sysv(seg.id, "stat"));
    read_text(&m.sysv(seg.id, "perm"));
    read_text(&m.p("limits"));
    sh_ok(&format!("ls -l {} >/dev/null", q(m.sysv_dir(seg.id))));
    // Other tests' segments may vanish between readdir and stat: ignore ls's exit status here.
    sh(&format!("ls -l {} {}", q(m.p("sysv")), q(m.p("by-key"))));
    sh_ok(&format!("stat {} >/dev/null", q(m.sysv(seg.id, "data"))));
    read_text(&m.p("by-key").join(by_key_name(seg.key)).join("stat"));
    let after = seg.stat();
    let view = |d: &libc::shmid_ds| (d.shm_nattch, d.shm_atime, d.shm_dtime, d.shm_lpid);
    assert_eq!(
        view(&after),
        view(&before),
        "(nattch, atime, dtime, lpid) changed by reading stat/perm/limits or ls -l"
    );
    assert_eq!(proc_sysvipc_row(seg.id).unwrap()["rss"], "0");
}

// --- freshness -----------------------------------------------------------------------------

#[test]
fn ipc_set_by_another_process_shows_at_once() {
    require_fuse!();
    let m = Mount::new();
    let seg = SysvSeg::private(4096, 0o600);
    // Look first so that any cache is primed.
    assert_eq!(read_fields(&m.sysv(seg.id, "stat")).get("mode"), "0600");
    let data_mode = |m: &Mount| fs::metadata(m.sysv(seg.id, "data")).unwrap().mode() & 0o7777;
    assert_eq!(data_mode(&m), 0o600);

    seg.set(Some(0o640), Some(12345), None);
    assert_eq!(
        read_fields(&m.sysv(seg.id, "stat")).get("mode"),
        "0640",
        "stat right after IPC_SET mode 0640"
    );
    assert_eq!(
        data_mode(&m),
        0o640,
        "`stat -c %a data` right after IPC_SET mode 0640"
    );
    let dir = fs::metadata(m.sysv_dir(seg.id)).unwrap();
    assert_eq!(dir.mode() & 0o7777, 0o755, "dir mode = 0640 | 0555");
    assert_eq!(dir.uid(), 12345, "dir owner right after IPC_SET uid");
}

// --- by-key --------------------------------------------------------------------------------

#[test]
fn by_key_link_points_to_segment() {
    require_fuse!();
    let m = Mount::new();
    let seg = SysvSeg::keyed(4096, 0o600);
    let name = by_key_name(seg.key);
    let link = m.p("by-key").join(&name);
    let md = link
        .symlink_metadata()
        .unwrap_or_else(|e| panic!("MNT/by-key/{name}: {e}"));
    assert!(
        md.file_type().is_symlink(),
        "by-key/{name} is not a symlink"
    );
    assert_eq!(
        fs::read_link(&link).unwrap(),
        Path::new(&format!("../sysv/{}", seg.id)),
        "readlink by-key/{name}"
    );
    assert!(m.ls("by-key").contains(&name), "ls by-key");
    let out = sh_ok(&format!("cat {}", q(link.join("stat"))));
    assert!(
        out.contains(&format!("shmid: {}\n", seg.id)),
        "cat by-key/{name}/stat: {out:?}"
    );
}

#[test]
fn private_segment_has_no_by_key_link() {
    require_fuse!();
    let m = Mount::new();
    let seg = SysvSeg::private(4096, 0o600);
    let target = format!("../sysv/{}", seg.id);
    for name in m.ls("by-key") {
        // other tests' segments may vanish meanwhile: ignore links that are gone
        if let Ok(t) = fs::read_link(m.p("by-key").join(&name)) {
            assert_ne!(
                t,
                Path::new(&target),
                "IPC_PRIVATE segment has a by-key link {name}"
            );
        }
    }
    assert!(
        m.p("by-key/0x00000000").symlink_metadata().is_err(),
        "by-key/0x00000000 must not exist"
    );
}

// --- removal and other changes of the tree ---------------------------------------------------

#[test]
fn rmdir_marks_attached_segment_for_removal() {
    require_fuse!();
    let m = Mount::new();
    let mut seg = SysvSeg::keyed(4096, 0o600);
    let att = seg.attach();
    let r = sh(&format!("rmdir {}", q(m.sysv_dir(seg.id))));
    assert!(r.ok(), "rmdir sysv/ID of an attached segment: {r:?}");
    seg.forget();
    let ds = seg.stat();
    assert!(
        u32::from(ds.shm_perm.mode) & SHM_DEST != 0,
        "rmdir sysv/ID did not IPC_RMID the segment"
    );
    assert_eq!(ds.shm_perm.__key, 0, "key after rmdir");
    let f = read_fields(&m.sysv(seg.id, "stat"));
    assert_eq!((f.get("dest"), f.get("key")), ("yes", "0x00000000"));
    drop(att);
    assert!(!exists_per_shell(&m.sysv_dir(seg.id)));
}

#[test]
fn rmdir_removes_unattached_segment() {
    require_fuse!();
    let m = Mount::new();
    let mut seg = SysvSeg::private(4096, 0o600);
    let r = sh(&format!("rmdir {}", q(m.sysv_dir(seg.id))));
    assert!(r.ok(), "rmdir sysv/ID: {r:?}");
    seg.forget();
    assert_errno(
        ipc_stat(seg.id),
        libc::EINVAL,
        "IPC_STAT after rmdir sysv/ID",
    );
    assert!(!exists_per_shell(&m.sysv_dir(seg.id)));
    assert!(!m.ls_sysv().contains(&seg.id));
}

#[test]
fn other_changes_of_the_tree_fail_and_change_nothing() {
    require_fuse!();
    let m = Mount::new();
    let seg = SysvSeg::keyed(4096, 0o600);
    let att = seg.attach();
    att.write(0, b"keep me");
    let dir = m.sysv_dir(seg.id);
    let entries = ls(&dir);
    let top = m.ls("");
    let other = m.p("sysv").join("999999999");
    for script in [
        format!("mkdir {}", q(&other)),
        format!("mkdir {}", q(m.p("newdir"))),
        format!("mkdir {}", q(m.p("by-key").join("0x12345678"))),
        format!("rm -f {}", q(dir.join("data"))),
        format!("rm -f {}", q(dir.join("stat"))),
        format!("rm -f {}", q(dir.join("perm"))),
        format!("rm -f {}", q(m.p("limits"))),
        format!("mv {} {}", q(&dir), q(&other)),
        format!("mv {} {}", q(dir.join("data")), q(dir.join("data2"))),
        format!("ln {} {}", q(dir.join("data")), q(dir.join("data2"))),
        format!("touch {}", q(dir.join("newfile"))),
        format!("rmdir {}", q(m.p("by-key"))),
    ] {
        let r = sh(&script);
        assert!(!r.ok(), "`{script}` should fail: {r:?}");
        assert!(!r.stderr.is_empty(), "`{script}` failed without a message");
    }
    assert_eq!(ls(&dir), entries, "entries of sysv/ID changed");
    assert!(!other.exists());
    let ds = seg.stat();
    assert_eq!(u32::from(ds.shm_perm.mode), 0o600, "segment changed");
    assert_eq!(ds.shm_perm.__key, seg.key);
    assert_eq!(att.read(0, 7), b"keep me");
    assert!(
        m.ls("") == top && m.ls("by-key").contains(&by_key_name(seg.key)),
        "the tree changed"
    );
}
