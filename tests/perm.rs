//! The perm file, chmod and chown, and who may change what.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use common::*;

const OTHER: u32 = 12345;

/// (mode, uid, gid) of a segment per IPC_STAT.
fn sysv_owner(seg: &SysvSeg) -> (u32, u32, u32) {
    let ds = seg.stat();
    (
        u32::from(ds.shm_perm.mode) & 0o777,
        ds.shm_perm.uid,
        ds.shm_perm.gid,
    )
}

/// (mode, uid, gid) of a file per stat(2).
fn file_owner(p: &Path) -> (u32, u32, u32) {
    let md = fs::metadata(p).unwrap();
    (md.mode() & 0o777, md.uid(), md.gid())
}

fn perm_text(mode: u32, uid: u32, gid: u32) -> String {
    format!("mode: {}\nuid: {uid}\ngid: {gid}\n", fmt_mode(mode))
}

#[test]
fn sysv_perm_reads_mode_uid_gid() {
    require_fuse!();
    let m = Mount::new();
    let seg = SysvSeg::private(4096, 0o640);
    assert_eq!(read_text(&m.sysv(seg.id, "perm")), perm_text(0o640, 0, 0));
    seg.set(None, Some(OTHER), Some(23456));
    assert_eq!(
        read_text(&m.sysv(seg.id, "perm")),
        perm_text(0o640, OTHER, 23456),
        "perm after IPC_SET uid/gid"
    );
}

#[test]
fn posix_perm_reads_mode_uid_gid() {
    require_fuse!();
    let m = Mount::new();
    let p = create_posix(m.shm_dir(), "o", 0o604, b"");
    assert_eq!(read_text(&m.posix("o", "perm")), perm_text(0o604, 0, 0));
    std::os::unix::fs::chown(&p, Some(OTHER), Some(23456)).unwrap();
    assert_eq!(
        read_text(&m.posix("o", "perm")),
        perm_text(0o604, OTHER, 23456)
    );
}

#[test]
fn echo_octal_mode_into_perm_changes_mode() {
    require_fuse!();
    let m = Mount::new();
    let seg = SysvSeg::private(4096, 0o640);
    let perm = m.sysv(seg.id, "perm");
    let r = sh(&format!("echo 600 > {}", q(&perm)));
    assert!(r.ok(), "`echo 600 > perm` should succeed: {r:?}");
    assert_eq!(sysv_owner(&seg), (0o600, 0, 0), "after `echo 600 > perm`");
    let ipcs = sh_ok(&format!("ipcs -m -i {}", seg.id));
    assert!(
        ipcs.contains("mode=0600"),
        "`ipcs -m -i ID` after `echo 600 > perm`: {ipcs}"
    );
    assert_eq!(read_text(&perm), perm_text(0o600, 0, 0));

    sh_ok(&format!("echo 0644 > {}", q(&perm)));
    assert_eq!(sysv_owner(&seg), (0o644, 0, 0), "after `echo 0644 > perm`");
}

#[test]
fn perm_pairs_change_named_fields_only() {
    require_fuse!();
    let m = Mount::new();
    let seg = SysvSeg::private(4096, 0o600);
    let perm = m.sysv(seg.id, "perm");

    sh_ok(&format!(
        "printf 'mode: 0640\\nuid: 12345\\n' > {}",
        q(&perm)
    ));
    assert_eq!(
        sysv_owner(&seg),
        (0o640, OTHER, 0),
        "after `mode: 0640\\nuid: 12345\\n`"
    );

    sh_ok(&format!("printf 'mode=600 gid=23456' > {}", q(&perm)));
    assert_eq!(
        sysv_owner(&seg),
        (0o600, OTHER, 23456),
        "after `mode=600 gid=23456`"
    );

    sh_ok(&format!("printf 'uid: root\\ngid: root\\n' > {}", q(&perm)));
    assert_eq!(
        sysv_owner(&seg),
        (0o600, 0, 0),
        "after `uid: root\\ngid: root`"
    );

    sh_ok(&format!("printf 'gid=23456 uid=12345' > {}", q(&perm)));
    assert_eq!(sysv_owner(&seg), (0o600, OTHER, 23456));
    sh_ok(&format!("printf 'uid=root' > {}", q(&perm)));
    assert_eq!(sysv_owner(&seg), (0o600, 0, 23456), "after `uid=root`");
    assert_eq!(read_text(&perm), perm_text(0o600, 0, 23456));
}

/// Writes that must fail with EINVAL and change nothing.
const INVALID: &[&[u8]] = &[
    b"mode: 999",
    b"mode: 8",
    b"bogus: 1",
    b"mode: 0600 junk",
    b"\n",
    b"   ",
    b"\x00\xff\x01\x80binary",
    b"mode: 0640 uid: no-such-user-shmfs",
    b"mode: 0640\ngid: no-such-group-shmfs\n",
    b"uid: -1",
    b"mode:",
];

fn assert_invalid_writes_refused(perm: &Path, state: impl Fn() -> (u32, u32, u32)) {
    let before = state();
    for bad in INVALID {
        assert_errno(
            write_once(perm, bad),
            libc::EINVAL,
            &format!("write {:?} to perm", String::from_utf8_lossy(bad)),
        );
        assert_eq!(
            state(),
            before,
            "refused write {:?} changed mode/uid/gid",
            String::from_utf8_lossy(bad)
        );
    }
    // An empty write(2) never reaches the filesystem (the kernel answers 0); it must change
    // nothing either way.
    let _ = write_once(perm, b"");
    assert_eq!(state(), before, "an empty write changed mode/uid/gid");

    // dash's builtin echo reports any write error as "I/O error": check its exit status, and
    // the errno through dd, which prints strerror.
    let r = sh(&format!("echo 'mode: 999' > {}", q(perm)));
    assert!(!r.ok(), "`echo 'mode: 999' > perm` should fail: {r:?}");
    let r = sh(&format!(
        "echo 'mode: 999' | dd of={} conv=notrunc status=none",
        q(perm)
    ));
    assert!(
        !r.ok() && r.stderr.contains("Invalid argument"),
        "`echo 'mode: 999' | dd of=perm` should fail with Invalid argument: {r:?}"
    );
    // Truncation alone (`: > perm`) is accepted and changes nothing.
    let r = sh(&format!(": > {}", q(perm)));
    assert!(r.ok(), "`: > perm` (truncate only) should succeed: {r:?}");
    assert_eq!(state(), before);

    // Truncation to any other size (its current length included) is refused with EINVAL:
    // accepting it would claim a change that does not happen.
    let text = read_text(perm);
    let len = text.len() as u64;
    for size in [5, 1, len, len + 100] {
        let file = fs::OpenOptions::new().write(true).open(perm).unwrap();
        assert_errno(
            file.set_len(size),
            libc::EINVAL,
            &format!("ftruncate(perm, {size})"),
        );
    }
    let r = sh(&format!("truncate -s 5 {}", q(perm)));
    assert!(
        !r.ok() && r.stderr.contains("Invalid argument"),
        "`truncate -s 5 perm` should fail with Invalid argument: {r:?}"
    );
    let file = fs::OpenOptions::new().write(true).open(perm).unwrap();
    file.set_len(0).expect("ftruncate(perm, 0) is accepted");
    assert_eq!(state(), before, "refused truncations changed mode/uid/gid");
    assert_eq!(read_text(perm), text, "perm reads the same after them");
}

#[test]
fn invalid_sysv_perm_writes_fail_einval_and_change_nothing() {
    require_fuse!();
    let m = Mount::new();
    let seg = SysvSeg::private(4096, 0o640);
    seg.set(None, Some(OTHER), Some(23456));
    assert_invalid_writes_refused(&m.sysv(seg.id, "perm"), || sysv_owner(&seg));
}

#[test]
fn invalid_posix_perm_writes_fail_einval_and_change_nothing() {
    require_fuse!();
    let m = Mount::new();
    let p = create_posix(m.shm_dir(), "inv", 0o640, b"x");
    assert_invalid_writes_refused(&m.posix("inv", "perm"), || file_owner(&p));
}

#[test]
fn chmod_and_chown_change_the_segment() {
    require_fuse!();
    let m = Mount::new();
    let seg = SysvSeg::private(4096, 0o600);
    let dir = m.sysv_dir(seg.id);
    sh_ok(&format!("chmod 640 {}", q(&dir)));
    assert_eq!(sysv_owner(&seg), (0o640, 0, 0), "after `chmod 640 sysv/ID`");
    sh_ok(&format!("chmod 600 {}", q(dir.join("data"))));
    assert_eq!(
        sysv_owner(&seg),
        (0o600, 0, 0),
        "after `chmod 600 sysv/ID/data`"
    );
    sh_ok(&format!("chown 12345:23456 {}", q(&dir)));
    assert_eq!(
        sysv_owner(&seg),
        (0o600, OTHER, 23456),
        "after `chown 12345:23456 sysv/ID`"
    );
    sh_ok(&format!("chown root {}", q(dir.join("data"))));
    assert_eq!(
        sysv_owner(&seg),
        (0o600, 0, 23456),
        "after `chown root data`"
    );
    assert_eq!(
        file_owner(&dir.join("data")),
        (0o600, 0, 23456),
        "`ls -l data` after chmod/chown"
    );
}

#[test]
fn posix_perm_chmod_and_chown_change_the_object() {
    require_fuse!();
    let m = Mount::new();
    let p = create_posix(m.shm_dir(), "pc", 0o600, b"x");
    let perm = m.posix("pc", "perm");
    sh_ok(&format!("echo 640 > {}", q(&perm)));
    assert_eq!(file_owner(&p), (0o640, 0, 0), "after `echo 640 > perm`");
    sh_ok(&format!("printf 'uid: 12345\\ngid=23456' > {}", q(&perm)));
    assert_eq!(file_owner(&p), (0o640, OTHER, 23456), "after uid/gid pairs");
    sh_ok(&format!("chmod 600 {}", q(m.posix_dir("pc"))));
    assert_eq!(
        file_owner(&p),
        (0o600, OTHER, 23456),
        "after `chmod 600 posix/pc`"
    );
    sh_ok(&format!("chmod 604 {}", q(m.posix("pc", "data"))));
    assert_eq!(file_owner(&p), (0o604, OTHER, 23456));
    sh_ok(&format!("chown 0:0 {}", q(m.posix_dir("pc"))));
    assert_eq!(file_owner(&p), (0o604, 0, 0), "after `chown 0:0 posix/pc`");
    assert_eq!(fs::read(&p).unwrap(), b"x", "content unchanged");
}

#[test]
fn other_user_is_refused_on_root_segment() {
    require_fuse!();
    let m = Mount::builder().option("allow_other").mount();
    let seg = SysvSeg::private(4096, 0o600);
    let id = seg.id;

    // Anyone may look inside and read stat.
    let r = sh_as(OTHER, &format!("cat {}", q(m.sysv(id, "stat"))));
    assert!(r.ok(), "uid {OTHER} reading stat of a 0600 segment: {r:?}");
    assert!(r.stdout_str().contains(&format!("shmid: {id}\n")));

    let r = sh_as(
        OTHER,
        &format!(
            "printf 644 | dd of={} conv=notrunc status=none",
            q(m.sysv(id, "perm"))
        ),
    );
    assert!(
        !r.ok() && r.stderr.contains("Operation not permitted"),
        "uid {OTHER} writing perm of root's segment should fail with EPERM: {r:?}"
    );
    let r = sh_as(OTHER, &format!("chmod 644 {}", q(m.sysv_dir(id))));
    assert!(
        !r.ok() && r.stderr.contains("Operation not permitted"),
        "uid {OTHER} chmod of root's segment should fail with EPERM: {r:?}"
    );
    let r = sh_as(
        OTHER,
        &format!(
            "dd if={} of=/dev/null count=1 status=none",
            q(m.sysv(id, "data"))
        ),
    );
    assert!(
        !r.ok() && r.stderr.contains("Permission denied"),
        "uid {OTHER} opening data of a 0600 root segment should fail with EACCES: {r:?}"
    );
    assert_eq!(
        sysv_owner(&seg),
        (0o600, 0, 0),
        "refused changes changed the segment"
    );

    // Control: the same user may do all of it on a segment it owns.
    let own = SysvSeg::private(4096, 0o600);
    own.set(None, Some(OTHER), Some(OTHER));
    let r = sh_as(
        OTHER,
        &format!(
            "dd if={} of=/dev/null status=none && echo 640 > {}",
            q(m.sysv(own.id, "data")),
            q(m.sysv(own.id, "perm"))
        ),
    );
    assert!(r.ok(), "uid {OTHER} on its own segment: {r:?}");
    assert_eq!(sysv_owner(&own), (0o640, OTHER, OTHER));
}

#[test]
fn creator_keeps_owner_rights_after_giving_segment_away() {
    require_fuse!();
    let m = Mount::builder().option("allow_other").mount();
    let r = sh_as(OTHER, "ipcmk -M 4096 -p 0600");
    assert!(r.ok(), "ipcmk as uid {OTHER}: {r:?}");
    let seg = SysvSeg::adopt(parse_ipcmk(&r.stdout_str()));
    seg.set(None, Some(23456), Some(23456));
    let ds = seg.stat();
    assert_eq!((ds.shm_perm.cuid, ds.shm_perm.uid), (OTHER, 23456));

    // The kernel grants the creator the owner's rights (ipcperms, IPC_SET).
    let r = sh_as(
        OTHER,
        &format!(
            "dd if={} of=/dev/null status=none",
            q(m.sysv(seg.id, "data"))
        ),
    );
    assert!(
        r.ok(),
        "creator uid {OTHER} reading data of its 0600 segment: {r:?}"
    );
    let r = sh_as(
        OTHER,
        &format!(
            "printf 'mode: 0640' | dd of={} conv=notrunc status=none",
            q(m.sysv(seg.id, "perm"))
        ),
    );
    assert!(r.ok(), "creator uid {OTHER} writing perm: {r:?}");
    assert_eq!(sysv_owner(&seg), (0o640, 23456, 23456));
}

#[test]
fn other_user_is_refused_on_root_posix_object() {
    require_fuse!();
    let m = Mount::builder().option("allow_other").mount();
    let p = create_posix(m.shm_dir(), "secret", 0o600, b"secret");

    let r = sh_as(OTHER, &format!("cat {}", q(m.posix("secret", "stat"))));
    assert!(r.ok(), "uid {OTHER} reading stat of a 0600 object: {r:?}");

    let r = sh_as(
        OTHER,
        &format!(
            "printf 644 | dd of={} conv=notrunc status=none",
            q(m.posix("secret", "perm"))
        ),
    );
    assert!(
        !r.ok() && r.stderr.contains("Operation not permitted"),
        "uid {OTHER} writing perm of root's object should fail with EPERM: {r:?}"
    );
    let r = sh_as(
        OTHER,
        &format!(
            "dd if={} of=/dev/null status=none",
            q(m.posix("secret", "data"))
        ),
    );
    assert!(
        !r.ok() && r.stderr.contains("Permission denied"),
        "uid {OTHER} opening data of a 0600 root object should fail with EACCES: {r:?}"
    );
    assert!(r.stdout.is_empty());
    assert_eq!(
        file_owner(&p),
        (0o600, 0, 0),
        "refused change changed the object"
    );
}

/// Runs a root process that opens `perm` for writing with euid `opener` only, switches back to
/// euid 0 (regaining every capability) and then writes `text` through that descriptor: a
/// privileged writer handed someone else's descriptor. Returns `ok` or the errno's name.
fn write_with_descriptor_opened_by(opener: u32, perm: &Path, text: &str) -> String {
    let script = format!(
        "import errno, os\n\
         os.setresgid(-1, {opener}, -1)\n\
         os.setresuid(-1, {opener}, -1)\n\
         try:\n    fd = os.open({perm:?}, os.O_WRONLY)\n\
         except OSError as e:\n    print('open', errno.errorcode[e.errno]); raise SystemExit\n\
         os.setresuid(-1, 0, -1)\n\
         os.setresgid(-1, 0, -1)\n\
         try:\n    os.write(fd, {text:?}.encode()); print('ok')\n\
         except OSError as e:\n    print(errno.errorcode[e.errno])\n",
        perm = perm.display().to_string(),
    );
    let r = run_with_timeout(
        std::process::Command::new("/usr/bin/python3")
            .arg("-c")
            .arg(script),
        COMMAND_TIMEOUT,
    );
    assert!(r.ok(), "python3 did not run: {r:?}");
    r.stdout_str().trim().to_string()
}

/// Who may write `perm` is decided when it is opened, as for /proc and sysfs files: a
/// descriptor opened by its owner and handed to root changes no more than the owner could,
/// and someone who may not change the object cannot open it for writing at all.
#[test]
fn perm_writes_carry_the_rights_of_the_opener() {
    require_fuse!();
    let m = Mount::builder().option("allow_other").mount();
    let p = create_posix(m.shm_dir(), "handed", 0o600, b"x");
    std::os::unix::fs::chown(&p, Some(OTHER), Some(OTHER)).unwrap();
    let perm = m.posix("handed", "perm");

    // The owner may not give its object to root (chown needs CAP_CHOWN): neither may root
    // writing through the owner's descriptor.
    assert_eq!(
        write_with_descriptor_opened_by(OTHER, &perm, "uid: 0\n"),
        "EPERM",
        "root writing `uid: 0` through a descriptor the owner opened"
    );
    assert_eq!(file_owner(&p), (0o600, OTHER, OTHER), "owner changed");
    // What the owner may do goes through: a mode change.
    assert_eq!(
        write_with_descriptor_opened_by(OTHER, &perm, "mode: 0640\n"),
        "ok"
    );
    assert_eq!(file_owner(&p), (0o640, OTHER, OTHER));

    // A stranger cannot even open it for writing, for either kind; reading stays open to all.
    let seg = SysvSeg::private(4096, 0o600);
    for perm in [m.posix("handed", "perm"), m.sysv(seg.id, "perm")] {
        assert_eq!(
            write_with_descriptor_opened_by(4242, &perm, "mode: 0666\n"),
            "open EPERM",
            "uid 4242 opening {perm:?} for writing"
        );
        let r = sh_as(4242, &format!("cat {}", q(&perm)));
        assert!(r.ok(), "uid 4242 reading {perm:?}: {r:?}");
    }
    assert_eq!(sysv_owner(&seg), (0o600, 0, 0));
    assert_eq!(file_owner(&p), (0o640, OTHER, OTHER));
}

/// `perm` fills the fields a write does not name from the object as it is: a `chmod` running
/// at the same time must not undo a `gid=` write, nor the other way round. Every gid written
/// is higher than the one before, so a write undone by a concurrent chmod shows as the gid
/// going down.
#[test]
fn concurrent_perm_and_chmod_lose_no_update() {
    require_fuse!();
    let m = Mount::builder().mount();
    let seg = SysvSeg::private(4096, 0o600);
    let perm = m.sysv(seg.id, "perm");
    let data = m.sysv(seg.id, "data");
    const FIRST: u32 = 20_000;
    const WRITES: u32 = 2_000;
    let done = std::sync::atomic::AtomicBool::new(false);
    let (went_down, chmods) = std::thread::scope(|s| {
        let chmod = s.spawn(|| {
            let mut n = 0u32;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let mode = if n.is_multiple_of(2) { 0o640 } else { 0o600 };
                fs::set_permissions(&data, std::os::unix::fs::PermissionsExt::from_mode(mode))
                    .expect("chmod data");
                n += 1;
            }
            n
        });
        let watch = s.spawn(|| {
            let mut last = 0;
            let mut went_down = Vec::new();
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let gid = seg.stat().shm_perm.gid;
                if gid < last {
                    went_down.push((last, gid));
                }
                last = gid;
            }
            went_down
        });
        for gid in FIRST..FIRST + WRITES {
            fs::write(&perm, format!("gid={gid}")).expect("write perm");
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        (watch.join().unwrap(), chmod.join().unwrap())
    });
    assert!(
        chmods > 100,
        "only {chmods} chmods ran alongside the writes"
    );
    assert!(
        went_down.is_empty(),
        "{} gid writes were undone by a concurrent chmod (gid went from/to: {:?})",
        went_down.len(),
        &went_down[..went_down.len().min(10)]
    );
    assert_eq!(seg.stat().shm_perm.gid, FIRST + WRITES - 1);
}

/// The same rule for set-user-ID, set-group-ID and sticky bits through `chmod` and `perm`: a
/// segment cannot hold them (IPC_SET keeps only 0777), so both refuse them with EINVAL and
/// change nothing, rather than dropping them silently; a POSIX object is a file of the shm
/// dir, which holds them, so both set them.
#[test]
fn special_bits_follow_one_rule_through_chmod_and_perm() {
    require_fuse!();
    let m = Mount::new();
    let seg = SysvSeg::private(4096, 0o600);
    for (what, cmd) in [
        (
            "chmod 1640 data",
            format!("chmod 1640 {}", q(m.sysv(seg.id, "data"))),
        ),
        (
            "chmod g+s sysv/ID",
            format!("chmod g+s {}", q(m.sysv_dir(seg.id))),
        ),
        (
            "echo 1777 > perm",
            format!(
                "echo 1777 | dd of={} status=none",
                q(m.sysv(seg.id, "perm"))
            ),
        ),
        (
            "mode: 04640 > perm",
            format!(
                "echo 'mode: 04640' | dd of={} status=none",
                q(m.sysv(seg.id, "perm"))
            ),
        ),
    ] {
        let r = sh(&cmd);
        assert!(
            !r.ok() && r.stderr.contains("Invalid argument"),
            "`{what}` on a segment must fail with Invalid argument: {r:?}"
        );
        assert_eq!(
            sysv_owner(&seg),
            (0o600, 0, 0),
            "`{what}` changed the segment"
        );
    }
    sh_ok(&format!("chmod 640 {}", q(m.sysv(seg.id, "data"))));
    assert_eq!(sysv_owner(&seg), (0o640, 0, 0), "a plain chmod still works");

    let p = create_posix(m.shm_dir(), "bits", 0o600, b"x");
    let mode = |p: &Path| fs::metadata(p).unwrap().mode() & 0o7777;
    sh_ok(&format!("chmod 1640 {}", q(m.posix("bits", "data"))));
    assert_eq!(mode(&p), 0o1640, "chmod 1640 data on an object");
    sh_ok(&format!("echo 04750 > {}", q(m.posix("bits", "perm"))));
    assert_eq!(mode(&p), 0o4750, "echo 04750 > perm on an object");
    assert!(
        read_text(&m.posix("bits", "perm")).starts_with("mode: 04750\n"),
        "perm shows the bits"
    );
    sh_ok(&format!(
        "echo 'mode: 2640' > {}",
        q(m.posix("bits", "perm"))
    ));
    assert_eq!(mode(&p), 0o2640);
}

/// A user who may write someone else's object but does not own it cannot add set-user-ID,
/// set-group-ID or sticky bits, through chmod or perm, to a POSIX object or a segment: the
/// kernel refuses such a chmod (EPERM) and so does shmfs, changing nothing. (A world-writable
/// root-owned object turned 4777 would run the attacker's program as root.)
#[test]
fn non_owners_cannot_add_set_id_or_sticky_bits() {
    require_fuse!();
    let m = Mount::builder().option("allow_other").mount();
    let p = create_posix(m.shm_dir(), "open-to-all", 0o600, b"#!/bin/sh\n");
    fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let mode = |p: &Path| fs::metadata(p).unwrap().mode() & 0o7777;

    // The kernel's own answer, directly on the shm dir, for the same user and object.
    let direct = sh_as(OTHER, &format!("chmod 4777 {}", q(&p)));
    assert!(
        !direct.ok() && direct.stderr.contains("Operation not permitted"),
        "the kernel should refuse uid {OTHER}'s chmod 4777 of root's object: {direct:?}"
    );
    assert_eq!(mode(&p), 0o777);

    let data = m.posix("open-to-all", "data");
    for bits in ["4777", "2777", "6777", "1777", "u+s", "g+s", "+t"] {
        let r = sh_as(OTHER, &format!("chmod {bits} {}", q(&data)));
        assert!(
            !r.ok() && r.stderr.contains("Operation not permitted"),
            "uid {OTHER}: chmod {bits} of root's 0777 object must fail with EPERM: {r:?}"
        );
        assert_eq!(
            mode(&p),
            0o777,
            "chmod {bits} by uid {OTHER} changed the object"
        );
    }
    let r = sh_as(
        OTHER,
        &format!(
            "echo 02666 | dd of={} status=none",
            q(m.posix("open-to-all", "perm"))
        ),
    );
    assert!(
        !r.ok() && r.stderr.contains("Operation not permitted"),
        "uid {OTHER} writing 02666 into perm of root's object: {r:?}"
    );
    assert_eq!(
        mode(&p),
        0o777,
        "perm write by uid {OTHER} changed the object"
    );
    // Writing is still allowed, and leaves the mode as it was (no bits to clear).
    let r = sh_as(OTHER, &format!("printf x >> {}", q(&data)));
    assert!(r.ok(), "uid {OTHER} appending to a 0777 object: {r:?}");
    assert_eq!(mode(&p), 0o777);

    let seg = SysvSeg::private(4096, 0o666);
    for target in [m.sysv(seg.id, "data"), m.sysv_dir(seg.id)] {
        for bits in ["4666", "2666", "1666", "u+s"] {
            let r = sh_as(OTHER, &format!("chmod {bits} {}", q(&target)));
            assert!(
                !r.ok() && r.stderr.contains("Operation not permitted"),
                "uid {OTHER}: chmod {bits} {target:?} of root's segment must fail with EPERM: {r:?}"
            );
        }
    }
    let r = sh_as(
        OTHER,
        &format!(
            "echo 04666 | dd of={} status=none",
            q(m.sysv(seg.id, "perm"))
        ),
    );
    assert!(
        !r.ok() && r.stderr.contains("Operation not permitted"),
        "uid {OTHER} writing 04666 into perm of root's segment: {r:?}"
    );
    assert_eq!(sysv_owner(&seg), (0o666, 0, 0), "the segment changed");
}
