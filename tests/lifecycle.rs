//! Creating and removing from the shell (shmfs(5) CREATING AND REMOVING):
//! `rmdir sysv/ID` is IPC_RMID, `rmdir posix/NAME` is shm_unlink, `mkdir posix/NAME` creates an
//! empty object; every other change of the tree fails and changes nothing; and who may remove
//! what is decided by the kernel's rules for the calling user.

mod common;

use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use common::*;

/// A uid with no account; tests drop to it with `sh_as`.
const OTHER: u32 = 12345;

/// True when IPC_STAT still finds the segment.
fn segment_exists(id: i32) -> bool {
    ipc_stat(id).is_ok()
}

fn exists_per_shell(p: &Path) -> bool {
    sh(&format!("test -e {}", q(p))).ok()
}

fn by_key_name(key: i32) -> String {
    format!("0x{:08x}", key as u32)
}

/// Makes the test's private shm dir world-writable and sticky, as /dev/shm is.
fn make_shm_dir_like_dev_shm(m: &Mount) {
    fs::set_permissions(m.shm_dir(), fs::Permissions::from_mode(0o1777)).unwrap();
}

/// mode, uid, gid and size of a file in the shm dir.
fn object_attrs(p: &Path) -> (u32, u32, u32, u64) {
    let md = fs::symlink_metadata(p).unwrap_or_else(|e| panic!("stat {}: {e}", p.display()));
    assert!(
        md.file_type().is_file(),
        "{} is not a regular file",
        p.display()
    );
    (md.mode() & 0o7777, md.uid(), md.gid(), md.len())
}

// --- rmdir sysv/ID ---------------------------------------------------------------------------

#[test]
fn rmdir_sysv_removes_the_segment() {
    require_fuse!();
    let m = Mount::new();
    let mut seg = SysvSeg::keyed(4096, 0o600);
    assert!(
        ipcs_m_ids().contains(&seg.id),
        "ipcs -m lists the new segment"
    );

    let r = sh(&format!("rmdir {}", q(m.sysv_dir(seg.id))));
    assert!(r.ok(), "rmdir sysv/{}: {r:?}", seg.id);
    if !segment_exists(seg.id) {
        seg.forget();
    }
    assert!(
        !ipcs_m_ids().contains(&seg.id),
        "`ipcs -m` still lists segment {} after `rmdir sysv/{}`",
        seg.id,
        seg.id
    );
    assert!(
        !exists_per_shell(&m.sysv_dir(seg.id)),
        "sysv/{} still exists after rmdir",
        seg.id
    );
    assert!(
        !m.ls("by-key").contains(&by_key_name(seg.key)),
        "by-key/{} still listed after rmdir",
        by_key_name(seg.key)
    );
}

#[test]
fn rmdir_of_an_attached_segment_waits_for_the_last_detach() {
    require_fuse!();
    let m = Mount::new();
    let mut seg = SysvSeg::keyed(8192, 0o600);
    let attacher = Helper::start(&["sysv-attach", &seg.id.to_string(), "rw"]);

    let r = sh(&format!("rmdir {}", q(m.sysv_dir(seg.id))));
    assert!(r.ok(), "rmdir sysv/{} while attached: {r:?}", seg.id);

    // The kernel keeps it, with key 0 and SHM_DEST, and so does shmfs.
    let stat = read_fields(&m.sysv(seg.id, "stat"));
    assert_eq!(
        stat.get("dest"),
        "yes",
        "stat after rmdir of an attached segment"
    );
    assert_eq!(
        stat.get("key"),
        "0x00000000",
        "stat key after rmdir of an attached segment"
    );
    assert_eq!(stat.num("nattch"), 1, "the helper is still attached");
    assert!(
        m.ls_sysv().contains(&seg.id),
        "`ls sysv` must still list {} until the last detach",
        seg.id
    );
    assert!(
        ipcs_m_ids().contains(&seg.id),
        "ipcs -m lists the segment until the last detach"
    );
    assert!(
        !m.ls("by-key").contains(&by_key_name(seg.key)),
        "a segment pending removal has key 0 and so no by-key link"
    );

    // The last detach: the kernel destroys it, and the directory goes.
    attacher.finish();
    assert!(
        !segment_exists(seg.id),
        "IPC_STAT still finds the segment after its last detach"
    );
    seg.forget();
    assert!(
        !ipcs_m_ids().contains(&seg.id),
        "ipcs -m lists the segment after its last detach"
    );
    assert!(
        !exists_per_shell(&m.sysv_dir(seg.id)),
        "sysv/{} still exists after the last detach",
        seg.id
    );
    assert!(!m.ls_sysv().contains(&seg.id));
}

// --- rmdir and mkdir posix/NAME --------------------------------------------------------------

#[test]
fn rmdir_posix_unlinks_the_object() {
    require_fuse!();
    let m = Mount::new();
    let obj = create_posix(m.shm_dir(), "goner", 0o600, b"bye");
    let r = sh(&format!("rmdir {}", q(m.posix_dir("goner"))));
    assert!(r.ok(), "rmdir posix/goner: {r:?}");
    assert!(
        fs::symlink_metadata(&obj).is_err(),
        "{} still exists after rmdir posix/goner",
        obj.display()
    );
    assert!(!m.ls("posix").contains("goner"));
    assert!(!exists_per_shell(&m.posix_dir("goner")));
}

#[test]
fn mkdir_posix_creates_an_empty_object_with_the_mode_after_umask() {
    require_fuse!();
    let m = Mount::new();
    for (script, name, want_mode) in [
        ("umask 077; mkdir", "umask077", 0o700),
        ("umask 022; mkdir", "umask022", 0o755),
        ("umask 022; mkdir -m 600", "m600", 0o600),
        ("umask 077; mkdir -m 640", "m640", 0o640),
    ] {
        let r = sh(&format!("{script} {}", q(m.posix_dir(name))));
        assert!(r.ok(), "`{script} posix/{name}`: {r:?}");
        assert_eq!(
            object_attrs(&m.shm_dir().join(name)),
            (want_mode, 0, 0, 0),
            "`{script} posix/{name}` must create an empty regular file with mode {want_mode:04o} \
             owned by root (mode, uid, gid, size)"
        );
        let stat = read_fields(&m.posix(name, "stat"));
        assert_eq!(stat.get("mode"), fmt_mode(want_mode), "posix/{name}/stat");
        assert_eq!(stat.num("size"), 0, "posix/{name}/stat");
    }

    // truncate -s on data sizes it.
    let r = sh(&format!(
        "truncate -s 8192 {}",
        q(m.posix("umask077", "data"))
    ));
    assert!(r.ok(), "truncate -s 8192 posix/umask077/data: {r:?}");
    assert_eq!(
        fs::metadata(m.shm_dir().join("umask077")).unwrap().len(),
        8192
    );
    assert_eq!(read_fields(&m.posix("umask077", "stat")).num("size"), 8192);
    assert_eq!(
        fs::read(m.posix("umask077", "data")).unwrap(),
        vec![0u8; 8192],
        "data of the sized object"
    );
}

#[test]
fn mkdir_posix_as_another_user_is_owned_by_that_user() {
    require_fuse!();
    let m = Mount::builder().option("allow_other").mount();
    make_shm_dir_like_dev_shm(&m);

    let r = sh_as(
        OTHER,
        &format!(
            "umask 077; mkdir {} && mkdir -m 600 {}",
            q(m.posix_dir("users")),
            q(m.posix_dir("users600"))
        ),
    );
    assert!(r.ok(), "mkdir posix/NAME as uid {OTHER}: {r:?}");
    assert_eq!(
        object_attrs(&m.shm_dir().join("users")),
        (0o700, OTHER, OTHER, 0),
        "`umask 077; mkdir posix/users` as uid {OTHER} (mode, uid, gid, size)"
    );
    assert_eq!(
        object_attrs(&m.shm_dir().join("users600")),
        (0o600, OTHER, OTHER, 0),
        "`mkdir -m 600 posix/users600` as uid {OTHER} (mode, uid, gid, size)"
    );
    let stat = read_fields(&m.posix("users", "stat"));
    assert_eq!(
        (stat.num("uid"), stat.num("gid")),
        (u64::from(OTHER), u64::from(OTHER)),
        "posix/users/stat"
    );

    let r = sh_as(
        OTHER,
        &format!("truncate -s 8192 {}", q(m.posix("users", "data"))),
    );
    assert!(
        r.ok(),
        "truncate -s 8192 of its own object as uid {OTHER}: {r:?}"
    );
    assert_eq!(object_attrs(&m.shm_dir().join("users")).3, 8192);
}

// --- refusals: rm of a file and every other change of the tree -------------------------------

/// Everything a user could see change: the tree of the mount (for the test's own segment and
/// object), the shm dir, the segment's kernel state and the object's bytes.
#[derive(Debug, PartialEq)]
struct Snapshot {
    top: Vec<String>,
    has_seg: bool,
    seg_entries: Vec<String>,
    posix: Vec<String>,
    obj_entries: Vec<String>,
    by_key: bool,
    shm_dir: Vec<String>,
    seg_state: (u32, i32, u32, usize),
    obj_state: (u32, u32, u64, Vec<u8>),
}

fn snapshot(m: &Mount, seg: &SysvSeg, obj: &str) -> Snapshot {
    let ds = seg.stat();
    let obj_path = m.shm_dir().join(obj);
    let md = fs::metadata(&obj_path).unwrap();
    Snapshot {
        top: m.ls("").into_iter().collect(),
        has_seg: m.ls_sysv().contains(&seg.id),
        seg_entries: ls(&m.sysv_dir(seg.id)).into_iter().collect(),
        posix: m.ls("posix").into_iter().collect(),
        obj_entries: ls(&m.posix_dir(obj)).into_iter().collect(),
        by_key: m.ls("by-key").contains(&by_key_name(seg.key)),
        shm_dir: ls(m.shm_dir()).into_iter().collect(),
        seg_state: (
            u32::from(ds.shm_perm.mode),
            ds.shm_perm.__key,
            ds.shm_perm.uid,
            ds.shm_segsz,
        ),
        obj_state: (md.mode(), md.uid(), md.len(), fs::read(&obj_path).unwrap()),
    }
}

#[test]
fn rm_of_a_file_fails_with_eperm_and_changes_nothing() {
    require_fuse!();
    let m = Mount::new();
    let seg = SysvSeg::keyed(4096, 0o600);
    create_posix(m.shm_dir(), "x", 0o600, b"precious");
    let before = snapshot(&m, &seg, "x");

    // As a user types it.
    for p in [m.posix("x", "data"), m.sysv(seg.id, "stat")] {
        let r = sh(&format!("rm {}", q(&p)));
        assert!(
            !r.ok() && r.stderr.contains("Operation not permitted"),
            "`rm {}` must fail with EPERM: {r:?}",
            p.display()
        );
    }
    // Every file, at the system-call level.
    let mut files: Vec<_> = ["data", "stat", "perm", "attached"]
        .iter()
        .flat_map(|f| [m.sysv(seg.id, f), m.posix("x", f)])
        .collect();
    files.extend(["limits", "index", "index.json", "metrics.prom"].map(|f| m.p(f)));
    files.push(m.p("by-key").join(by_key_name(seg.key)));
    for p in &files {
        assert_errno(
            fs::remove_file(p),
            libc::EPERM,
            &format!("rm {}", p.display()),
        );
    }
    assert_eq!(
        snapshot(&m, &seg, "x"),
        before,
        "a refused rm changed something"
    );
}

#[test]
fn other_changes_of_the_tree_fail_with_a_clear_errno_and_change_nothing() {
    require_fuse!();
    let m = Mount::new();
    let seg = SysvSeg::keyed(4096, 0o600);
    create_posix(m.shm_dir(), "x", 0o600, b"precious");
    let before = snapshot(&m, &seg, "x");
    let sdir = m.sysv_dir(seg.id);
    let pdir = m.posix_dir("x");

    type Attempt = (String, io::Result<()>, i32);
    let touch = |p: &Path| -> Attempt {
        let r = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(p)
            .map(drop);
        (format!("create {}", p.display()), r, libc::EPERM)
    };
    let mut attempts: Vec<Attempt> = vec![
        touch(&m.p("newfile")),
        touch(&m.p("sysv").join("newfile")),
        touch(&m.p("posix").join("newfile")),
        touch(&sdir.join("newfile")),
        touch(&pdir.join("newfile")),
    ];
    for (from, to) in [
        (pdir.clone(), m.posix_dir("y")),
        (sdir.clone(), m.p("sysv").join("0999")),
        (pdir.join("data"), pdir.join("data2")),
        (sdir.join("data"), sdir.join("data2")),
        (sdir.join("stat"), pdir.join("stat2")),
        (m.p("limits"), m.p("limits2")),
    ] {
        attempts.push((
            format!("mv {} {}", from.display(), to.display()),
            fs::rename(&from, &to),
            libc::EPERM,
        ));
    }
    for (from, to) in [
        (pdir.join("data"), pdir.join("data2")),
        (sdir.join("data"), sdir.join("data2")),
        (sdir.join("data"), m.p("posix").join("y")),
    ] {
        attempts.push((
            format!("ln {} {}", from.display(), to.display()),
            fs::hard_link(&from, &to),
            libc::EPERM,
        ));
    }
    for link in [
        m.posix_dir("y"),
        m.p("sysv").join("0999"),
        sdir.join("link"),
        pdir.join("link"),
        m.p("by-key").join("0xnotakey"),
    ] {
        attempts.push((
            format!("ln -s data {}", link.display()),
            std::os::unix::fs::symlink("data", &link),
            libc::EPERM,
        ));
    }
    for fifo in [m.posix_dir("fifo"), sdir.join("fifo"), pdir.join("fifo")] {
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        let r = if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        };
        attempts.push((format!("mkfifo {}", fifo.display()), r, libc::EPERM));
    }
    for dir in [
        m.p("newdir"),
        m.p("sysv").join("0999"),
        m.p("sysv").join("new"),
        m.p("by-key").join("0xnotakey"),
        sdir.join("sub"),
        pdir.join("sub"),
    ] {
        attempts.push((
            format!("mkdir {}", dir.display()),
            fs::create_dir(&dir),
            libc::EPERM,
        ));
    }
    attempts.push((
        format!("mkdir {} (exists)", sdir.display()),
        fs::create_dir(&sdir),
        libc::EEXIST,
    ));
    attempts.push((
        format!("mkdir {} (exists)", pdir.display()),
        fs::create_dir(&pdir),
        libc::EEXIST,
    ));
    for dir in [m.p("sysv"), m.p("posix"), m.p("by-key")] {
        attempts.push((
            format!("rmdir {}", dir.display()),
            fs::remove_dir(&dir),
            libc::EPERM,
        ));
    }

    let mut wrong = Vec::new();
    for (what, result, want) in attempts {
        match result {
            Ok(()) => wrong.push(format!("{what}: succeeded, expected {}", errno_name(want))),
            Err(e) if errno(&e) != want => {
                wrong.push(format!("{what}: {e}, expected {}", errno_name(want)))
            }
            Err(_) => {}
        }
    }
    assert!(
        wrong.is_empty(),
        "changes of the tree that must fail:\n{}",
        wrong.join("\n")
    );
    assert_eq!(
        snapshot(&m, &seg, "x"),
        before,
        "a refused change of the tree changed something"
    );
}

// --- who may remove: the kernel's rules for the calling user ---------------------------------

#[test]
fn rmdir_sysv_as_another_user_needs_the_owner() {
    require_fuse!();
    let m = Mount::builder().option("allow_other").mount();

    // Root's segment, readable and writable by all: still not removable by others.
    let roots = SysvSeg::keyed(4096, 0o666);
    let r = sh_as(OTHER, &format!("rmdir {}", q(m.sysv_dir(roots.id))));
    assert!(
        !r.ok() && r.stderr.contains("Operation not permitted"),
        "uid {OTHER}: rmdir of root's 0666 segment must fail with EPERM: {r:?}"
    );
    let ds = roots.stat();
    assert_eq!(
        (u32::from(ds.shm_perm.mode), ds.shm_perm.__key),
        (0o666, roots.key),
        "the refused rmdir changed the segment (mode with SHM_DEST bit, key)"
    );
    assert!(m.ls_sysv().contains(&roots.id));

    // The owner may.
    let mut owned = SysvSeg::keyed(4096, 0o600);
    owned.set(None, Some(OTHER), Some(OTHER));
    let r = sh_as(OTHER, &format!("rmdir {}", q(m.sysv_dir(owned.id))));
    assert!(r.ok(), "uid {OTHER}: rmdir of its own segment: {r:?}");
    assert!(
        !segment_exists(owned.id),
        "the owner's rmdir did not remove segment {}",
        owned.id
    );
    owned.forget();
    assert!(!ipcs_m_ids().contains(&owned.id));
}

/// The walk-through: one process attaches read-only, another read-write; `rmdir` as a
/// different uid fails with EPERM, as the owner it succeeds while they still run, and `stat`
/// then shows `dest: yes`; the segment goes with the last detach.
#[test]
fn rmdir_by_the_owner_while_others_are_attached() {
    require_fuse!();
    let m = Mount::builder().option("allow_other").mount();
    let mut seg = SysvSeg::keyed(65536, 0o644);
    seg.set(None, Some(OTHER), Some(OTHER));
    let id = seg.id.to_string();
    let reader = Helper::start(&["sysv-attach", &id, "r"]);
    let writer = Helper::start(&["sysv-attach", &id, "rw"]);

    let r = sh_as(23456, &format!("rmdir {}", q(m.sysv_dir(seg.id))));
    assert!(
        !r.ok() && r.stderr.contains("Operation not permitted"),
        "uid 23456: rmdir of uid {OTHER}'s segment must fail with EPERM: {r:?}"
    );
    assert_eq!(read_fields(&m.sysv(seg.id, "stat")).get("dest"), "no");

    let r = sh_as(OTHER, &format!("rmdir {}", q(m.sysv_dir(seg.id))));
    assert!(r.ok(), "the owner's rmdir while attached: {r:?}");
    let stat = read_fields(&m.sysv(seg.id, "stat"));
    assert_eq!(
        (stat.get("dest"), stat.get("key"), stat.num("nattch")),
        ("yes", "0x00000000", 2),
        "stat after the owner's rmdir, with two attachers still running (dest, key, nattch)"
    );
    let attached = read_text(&m.sysv(seg.id, "attached"));
    let mut want = vec![reader.pid().to_string(), writer.pid().to_string()];
    want.sort_by_key(|p| p.parse::<i32>().unwrap());
    let pids: Vec<String> = attached
        .lines()
        .map(|l| l.split(' ').next().unwrap().to_string())
        .collect();
    assert_eq!(pids, want, "attached still names both: {attached:?}");

    reader.finish();
    assert!(m.ls_sysv().contains(&seg.id), "one attacher is left");
    writer.finish();
    assert!(!segment_exists(seg.id), "gone after the last detach");
    seg.forget();
    assert!(!exists_per_shell(&m.sysv_dir(seg.id)));
}

/// The creator of a segment keeps the right to remove it after giving it away (the kernel allows
/// IPC_RMID to the owner *or the creator*). `sysv/` is shown sticky (01777, docs/design.md §1), and
/// a VFS sticky check, which knows only the owner shown on `sysv/ID`, could refuse before shmfs is
/// asked (on Linux 6.18 it was not seen to). This test records what happens next to a direct
/// `ipcrm -m` by the same uid, and asserts only that the mount's answer is coherent (done, or
/// refused with EPERM and nothing changed); a mismatch is printed, not asserted.
#[test]
fn rmdir_sysv_by_its_creator_compared_with_ipcrm() {
    require_fuse!();
    let m = Mount::builder().option("allow_other").mount();
    let make = || {
        let r = sh_as(OTHER, "ipcmk -M 4096 -p 0600");
        assert!(r.ok(), "ipcmk as uid {OTHER}: {r:?}");
        let seg = SysvSeg::adopt(parse_ipcmk(&r.stdout_str()));
        seg.set(None, Some(23456), Some(23456));
        let ds = seg.stat();
        assert_eq!((ds.shm_perm.cuid, ds.shm_perm.uid), (OTHER, 23456));
        seg
    };
    let mut direct = make();
    let mut via_mount = make();

    let r = sh_as(OTHER, &format!("ipcrm -m {}", direct.id));
    assert!(
        r.ok() && !segment_exists(direct.id),
        "the kernel lets the creator (uid {OTHER}) remove a segment it gave away: {r:?}"
    );
    direct.forget();

    let r = sh_as(OTHER, &format!("rmdir {}", q(m.sysv_dir(via_mount.id))));
    if r.ok() {
        assert!(
            !segment_exists(via_mount.id),
            "rmdir by the creator reported success but the segment is still there"
        );
        via_mount.forget();
        eprintln!("creator rmdir: succeeded, as `ipcrm -m` by the same uid");
    } else {
        assert!(
            r.stderr.contains("Operation not permitted"),
            "rmdir by the creator failed with something other than EPERM: {r:?}"
        );
        let ds = via_mount.stat();
        assert_eq!(
            (u32::from(ds.shm_perm.mode), ds.shm_perm.__key),
            (0o600, via_mount.key),
            "the refused rmdir changed the segment"
        );
        eprintln!(
            "MISMATCH (reported, not asserted): `ipcrm -m ID` as creator uid {OTHER} succeeds, \
             but `rmdir MNT/sysv/ID` as the same uid fails: {}",
            r.stderr.trim()
        );
    }
}

#[test]
fn rmdir_posix_as_another_user_follows_the_sticky_shm_dir() {
    require_fuse!();
    let m = Mount::builder().option("allow_other").mount();
    make_shm_dir_like_dev_shm(&m);

    let roots = create_posix(m.shm_dir(), "roots", 0o666, b"root's");
    let r = sh_as(OTHER, &format!("rmdir {}", q(m.posix_dir("roots"))));
    assert!(
        !r.ok() && r.stderr.contains("Operation not permitted"),
        "uid {OTHER}: rmdir of root's object in a sticky shm dir must fail with EPERM: {r:?}"
    );
    assert_eq!(
        fs::read(&roots).unwrap(),
        b"root's",
        "root's object must stay"
    );
    assert!(m.ls("posix").contains("roots"));

    let r = sh_as(OTHER, &format!("mkdir -m 600 {}", q(m.posix_dir("mine"))));
    assert!(r.ok(), "uid {OTHER}: mkdir posix/mine: {r:?}");
    assert_eq!(object_attrs(&m.shm_dir().join("mine")).1, OTHER);
    let r = sh_as(OTHER, &format!("rmdir {}", q(m.posix_dir("mine"))));
    assert!(r.ok(), "uid {OTHER}: rmdir of its own object: {r:?}");
    assert!(
        fs::symlink_metadata(m.shm_dir().join("mine")).is_err(),
        "its own object must be gone after rmdir"
    );
}
