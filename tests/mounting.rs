//! Mounting the usual ways, and the tools people know (docs/mounting.md): `mount -t fuse.shmfs`, an
//! fstab line with `mount -a`, `umount`; a non-root user through fusermount3; the systemd units
//! (`systemd-analyze verify`); `df`, `du`, `find`, `tar`, `cp`, `file` and `stat` on a mount;
//! Midnight Commander driven in tmux; `--help`, `--version` and the man page.
//!
//! Every FUSE test runs in a [`World`] (tests/common/world.rs): a private mount and IPC namespace
//! (`unshare`) with a tmpfs of its own on /dev/shm, so that what it mounts is seen by nobody else
//! and what it lists is only what it made. mount(8) runs its helpers with a fixed PATH
//! (`/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`), whatever the caller's PATH
//! is, so the world puts the binary under test there: a tmpfs of its own on /usr/local/sbin
//! holding a symlink `shmfs` to it. Nothing outside the world changes.
//!
//! A test never installs anything: when a command it needs is missing, it fails if `CI` is set
//! (`mount-scripts/test.sh` installs the Debian package named in the message) and otherwise prints
//! `skipping: ...` and passes.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// uid and gid of the non-root user; the world gives it a passwd entry of its own.
const USER: u32 = 12345;

/// How long mc may take to show what a key asked for.
const SCREEN_TIMEOUT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------------
// Commands that may be missing
// ---------------------------------------------------------------------------------------------

/// Returns from the test unless every command is installed (`common::tools_available`).
macro_rules! require_commands {
    ($($cmd:expr => $pkg:expr),+ $(,)?) => {
        require_tools!($($cmd => concat!("Debian package ", $pkg)),+)
    };
}

// ---------------------------------------------------------------------------------------------
// Daemons and files, seen from the world
// ---------------------------------------------------------------------------------------------

/// Waits until no live process has `arg` as an argument (a daemon serving a mount point).
fn wait_for_exit_of_processes_with_arg(arg: &Path) -> bool {
    let start = Instant::now();
    while !pids_with_arg(arg).is_empty() {
        if start.elapsed() > MOUNT_TIMEOUT {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

/// shmfs daemons (the binary under test, however it was started) serving `mnt`.
fn daemons_of(mnt: &Path) -> Vec<i32> {
    let bin = fs::canonicalize(BIN).unwrap();
    pids_with_arg(mnt)
        .into_iter()
        .filter(|pid| fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|exe| exe == bin))
        .collect()
}

/// The shmid `ipcmk` printed.
fn ipcmk_in(w: &World, size: usize, mode: &str) -> i32 {
    parse_ipcmk(&w.sh_ok(&format!("ipcmk -M {size} -p {mode}")))
}

/// The `name: value` fields of a text file of the mount, read inside the world.
fn fields_in(w: &World, p: &Path) -> Fields {
    Fields::parse(&w.sh_ok(&format!("cat {}", q(p))))
}

// ---------------------------------------------------------------------------------------------
// mount -t, fstab and mount -a, umount
// ---------------------------------------------------------------------------------------------

#[test]
fn mount_t_fuse_shmfs_mounts_and_umount_stops_the_daemon() {
    require_fuse!();
    require_commands!("mount.fuse3" => "fuse3");
    let w = World::new();
    let mnt = w.mkdir("mnt");

    // What README tells people to type, with the world's mount point.
    let r = w.sh(&format!(
        "mount -t fuse.shmfs shmfs {} -o allow_other",
        q(&mnt)
    ));
    assert!(
        r.ok(),
        "mount -t fuse.shmfs shmfs MNT -o allow_other: {r:?}"
    );
    assert!(
        r.stderr.is_empty(),
        "mount printed to stderr: {:?}",
        r.stderr
    );
    let (source, fstype, options) = w
        .mount_at(&mnt)
        .expect("MNT is not a mount point after mount -t");
    assert_eq!(source, "shmfs", "findmnt SOURCE");
    assert!(fstype.starts_with("fuse"), "FSTYPE {fstype}");
    assert!(options.contains("allow_other"), "options {options}");
    let ls = w.sh_ok(&format!("ls {}", q(&mnt)));
    for name in ["by-key", "limits", "posix", "sysv"] {
        assert!(
            ls.lines().any(|l| l == name),
            "ls MNT shows {ls:?}, no {name}"
        );
    }
    // allow_other reached the kernel: another user may look in.
    let r = run_with_timeout(
        w.nsenter()
            .arg("setpriv")
            .arg(format!("--reuid={USER}"))
            .arg(format!("--regid={USER}"))
            .args(["--clear-groups", "ls"])
            .arg(mnt.join("sysv")),
        COMMAND_TIMEOUT,
    );
    assert!(
        r.ok(),
        "user {USER} cannot list MNT/sysv despite allow_other: {r:?}"
    );
    assert_eq!(
        daemons_of(&mnt).len(),
        1,
        "not one shmfs process with the mount point as argument"
    );

    let r = w.sh(&format!("umount {}", q(&mnt)));
    assert!(r.ok(), "umount MNT: {r:?}");
    assert!(w.mount_at(&mnt).is_none(), "MNT still mounted after umount");
    assert!(
        wait_for_exit_of_processes_with_arg(&mnt),
        "the daemon did not exit within {MOUNT_TIMEOUT:?} of umount"
    );
}

#[test]
fn fstab_line_mounts_with_mount_a_and_by_mount_point() {
    require_fuse!();
    require_commands!("mount.fuse3" => "fuse3");
    let w = World::new();
    let mnt = w.mkdir("mnt");
    let other = w.mkdir("other");
    let fstab = w.dir().join("fstab");
    // The README's line, and one full of options meant for mount(8) and systemd, which shmfs
    // must take in its stride.
    fs::write(
        &fstab,
        format!(
            "# <file system> <mount point> <type> <options> <dump> <pass>\n\
             shmfs {} fuse.shmfs allow_other,nofail 0 0\n\
             shmfs {} fuse.shmfs defaults,nofail,_netdev,noatime,x-systemd.idle-timeout=60,comment=test,allow_other 0 0\n",
            mnt.display(),
            other.display()
        ),
    )
    .unwrap();

    let r = w.sh(&format!("mount --fstab {} -a", q(&fstab)));
    assert!(r.ok(), "mount --fstab FSTAB -a: {r:?}");
    for p in [&mnt, &other] {
        let (source, _, options) = w
            .mount_at(p)
            .unwrap_or_else(|| panic!("{} not mounted by mount -a", p.display()));
        assert_eq!(source, "shmfs");
        assert!(options.contains("allow_other"), "options {options}");
        w.sh_ok(&format!("ls {}/sysv", q(p)));
    }
    assert!(
        w.mount_at(&other).unwrap().2.contains("noatime"),
        "noatime from fstab did not reach the mount"
    );

    // mount -a again (at boot, or a user trying twice) leaves things as they are.
    let r = w.sh(&format!("mount --fstab {} -a", q(&fstab)));
    assert!(r.ok(), "second mount -a: {r:?}");
    assert_eq!(w.mount_count(&mnt), 1, "second mount -a mounted MNT twice");
    assert_eq!(
        daemons_of(&mnt).len(),
        1,
        "one daemon for MNT after a second mount -a"
    );

    for p in [&mnt, &other] {
        w.sh_ok(&format!("umount {}", q(p)));
        assert!(
            wait_for_exit_of_processes_with_arg(p),
            "daemon for {} still there after umount",
            p.display()
        );
    }

    // `mount MNT` alone finds the rest in fstab (here: in FSTAB).
    let r = w.sh(&format!("mount --fstab {} {}", q(&fstab), q(&mnt)));
    assert!(r.ok(), "mount --fstab FSTAB MNT: {r:?}");
    assert!(w.mount_at(&mnt).is_some(), "not mounted by mount MNT");
    w.sh_ok(&format!("umount {}", q(&mnt)));
    assert!(wait_for_exit_of_processes_with_arg(&mnt));
}

/// The generic options mount(8) passes on to every file system (libfuse's file systems, sshfs
/// among them, take them): an fstab line copied from elsewhere often has them.
#[test]
fn fstab_line_with_generic_vfs_options_mounts() {
    require_fuse!();
    require_commands!("mount.fuse3" => "fuse3");
    let w = World::new();
    let mnt = w.mkdir("mnt");
    let fstab = w.dir().join("fstab");
    fs::write(
        &fstab,
        format!(
            "shmfs {} fuse.shmfs allow_other,nofail,relatime,nodiratime,lazytime,silent 0 0\n",
            mnt.display()
        ),
    )
    .unwrap();
    let r = w.sh(&format!("mount --fstab {} -a", q(&fstab)));
    assert!(
        r.ok(),
        "mount -a with relatime,nodiratime,lazytime,silent: {r:?}"
    );
    assert!(w.mount_at(&mnt).is_some(), "not mounted");
    w.sh_ok(&format!("umount {}", q(&mnt)));
    assert!(wait_for_exit_of_processes_with_arg(&mnt));
}

/// docs/mounting.md "Unmounting": with fuse3 installed, a killed daemon's mount goes away by
/// itself. mount(8) runs shmfs without PATH in its environment, and shmfs looks for fusermount3
/// only in PATH.
#[test]
fn a_killed_daemon_mounted_by_mount_t_leaves_no_dead_mount() {
    require_fuse!();
    require_commands!("mount.fuse3" => "fuse3", "fusermount3" => "fuse3");
    let w = World::new();
    let mnt = w.mkdir("mnt");
    w.sh_ok(&format!(
        "mount -t fuse.shmfs shmfs {} -o allow_other",
        q(&mnt)
    ));
    let daemons = daemons_of(&mnt);
    assert_eq!(daemons.len(), 1, "one daemon");
    unsafe {
        libc::kill(daemons[0], libc::SIGKILL);
    }
    let start = Instant::now();
    while w.mount_at(&mnt).is_some() {
        assert!(
            start.elapsed() < MOUNT_TIMEOUT,
            "the mount of a daemon killed with SIGKILL is still there after {MOUNT_TIMEOUT:?}: {:?}",
            w.sh(&format!("ls {}", q(&mnt)))
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------------------------------------
// A user who is not root
// ---------------------------------------------------------------------------------------------

#[test]
fn a_user_mounts_through_fusermount3_and_sees_what_they_may() {
    require_fuse!();
    require_commands!("fusermount3" => "fuse3");
    let w = World::new();
    if !w.allow_user(USER) {
        return;
    }
    let (bin, home, mnt) = w.user_mount_dirs(USER);

    let roots = ipcmk_in(&w, 4096, "0600");
    let r = w.sh_as(USER, &home, "ipcmk -M 8192 -p 0600");
    assert!(r.ok(), "ipcmk as user {USER}: {r:?}");
    let users = parse_ipcmk(&r.stdout_str());

    let r = w.sh_as(USER, &home, &format!("{} {}", q(&bin), q(&mnt)));
    assert!(r.ok(), "shmfs MNT as user {USER}: {r:?}");
    let (source, fstype, options) = w.mount_at(&mnt).expect("the user's mount is not there");
    assert_eq!(source, "shmfs");
    assert_eq!(
        fstype, "fuse.shmfs",
        "a mount through fusermount3 has the subtype"
    );
    assert!(
        options.contains(&format!("user_id={USER}")),
        "options {options}"
    );

    let r = w.sh_as(USER, &home, &format!("ls {}/sysv", q(&mnt)));
    assert!(r.ok(), "ls MNT/sysv as the user: {r:?}");
    let ids = r.stdout_str();
    for id in [roots, users] {
        assert!(
            ids.lines().any(|l| l == id.to_string()),
            "the user's ls sysv shows {ids:?}, not {id}"
        );
    }
    // Their own segment: read and write.
    let data = mnt.join(format!("sysv/{users}/data"));
    let r = w.sh_as(
        USER,
        &home,
        &format!(
            "printf mine | dd of={d} conv=notrunc status=none && head -c 4 {d}",
            d = q(&data)
        ),
    );
    assert!(r.ok(), "user writing their own data: {r:?}");
    assert_eq!(r.stdout_str(), "mine");
    // root's 0600 segment: its stat, but not its bytes.
    let stat = w.sh_as(
        USER,
        &home,
        &format!("cat {}", q(mnt.join(format!("sysv/{roots}/stat")))),
    );
    assert!(stat.ok(), "user reading root's stat: {stat:?}");
    let f = Fields::parse(&stat.stdout_str());
    assert_eq!((f.get("uid"), f.get("mode")), ("0", "0600"));
    let r = w.sh_as(
        USER,
        &home,
        &format!("head -c 1 {}", q(mnt.join(format!("sysv/{roots}/data")))),
    );
    assert!(
        !r.ok() && r.stderr.contains("Permission denied"),
        "user reading root's 0600 data should get Permission denied: {r:?}"
    );
    // Without allow_other the mount is the user's alone, root included.
    let r = w.sh(&format!("ls {}", q(&mnt)));
    assert!(
        !r.ok() && r.stderr.contains("Permission denied"),
        "root listing a user's mount without allow_other: {r:?}"
    );

    let r = w.sh_as(USER, &home, &format!("fusermount3 -u {}", q(&mnt)));
    assert!(r.ok(), "fusermount3 -u MNT: {r:?}");
    assert!(
        w.mount_at(&mnt).is_none(),
        "still mounted after fusermount3 -u"
    );
    assert!(
        wait_for_exit_of_processes_with_arg(&mnt),
        "the user's daemon did not exit after fusermount3 -u"
    );
}

// ---------------------------------------------------------------------------------------------
// systemd
// ---------------------------------------------------------------------------------------------

#[test]
fn systemd_units_pass_systemd_analyze_verify() {
    require_commands!("systemd-analyze" => "systemd", "man" => "man-db");
    let scripts = Path::new(env!("CARGO_MANIFEST_DIR")).join("mount-scripts");
    let mount_unit = fs::read_to_string(scripts.join("mnt-shmfs.mount")).unwrap();
    for line in [
        "What=shmfs",
        "Where=/mnt/shmfs",
        "Type=fuse.shmfs",
        "Options=allow_other",
    ] {
        assert!(
            mount_unit.lines().any(|l| l == line),
            "mnt-shmfs.mount has no line {line}"
        );
    }
    let service = fs::read_to_string(scripts.join("shmfs.service")).unwrap();
    assert!(
        service.contains("ExecStart=/usr/local/bin/shmfs -f -o allow_other /mnt/shmfs"),
        "shmfs.service does not run /usr/local/bin/shmfs -f -o allow_other /mnt/shmfs"
    );

    let tmp = tempfile::tempdir().unwrap();
    // verify checks that ExecStart's binary exists: point it at the one under test.
    fs::write(tmp.path().join("mnt-shmfs.mount"), &mount_unit).unwrap();
    fs::write(
        tmp.path().join("shmfs.service"),
        service.replace("/usr/local/bin/shmfs", BIN),
    )
    .unwrap();
    // verify also runs `man shmfs(1)` for Documentation=: give man the page under test.
    let man1 = tmp.path().join("man/man1");
    fs::create_dir_all(&man1).unwrap();
    let page = run_with_timeout(Command::new(BIN).arg("--man"), COMMAND_TIMEOUT);
    assert!(page.ok(), "shmfs --man: {page:?}");
    fs::write(man1.join("shmfs.1"), &page.stdout).unwrap();

    let r = run_with_timeout(
        Command::new("systemd-analyze")
            .arg("verify")
            .arg(tmp.path().join("mnt-shmfs.mount"))
            .arg(tmp.path().join("shmfs.service"))
            .env("MANPATH", tmp.path().join("man"))
            .env("SYSTEMD_LOG_COLOR", "0")
            .env("SYSTEMD_PAGER", ""),
        COMMAND_TIMEOUT,
    );
    assert!(r.ok(), "systemd-analyze verify: {r:?}");
    // It may also speak of other units of this machine; about ours it must say nothing.
    let ours: Vec<&str> = r.stderr.lines().filter(|l| l.contains("shmfs")).collect();
    assert!(
        ours.is_empty(),
        "systemd-analyze verify complains: {ours:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// df, du, find, tar, cp, file, stat
// ---------------------------------------------------------------------------------------------

/// A world with shmfs mounted (`shmfs -o allow_other MNT`, in the background as people run it),
/// a 2 MiB segment filled with known bytes (a gzip stream first, so `file` has something to
/// name) and a 4 KiB one with a few.
struct Tools {
    w: World,
    mnt: PathBuf,
    big: i32,
    small: i32,
    /// The bytes of `big`.
    content: Vec<u8>,
}

const BIG: usize = 2 << 20;
const SMALL: usize = 4096;

impl Tools {
    fn new() -> Tools {
        let w = World::new();
        let mnt = w.mkdir("mnt");
        w.sh_ok(&format!("{} -o allow_other {}", q(BIN), q(&mnt)));
        let big = ipcmk_in(&w, BIG, "0640");
        let small = ipcmk_in(&w, SMALL, "0600");

        let gzip = w.sh(&format!(
            "printf 'shmfs\\n' | gzip -c > {}",
            q(w.dir().join("gz"))
        ));
        assert!(gzip.ok(), "gzip: {gzip:?}");
        let mut content = fs::read(w.dir().join("gz")).unwrap();
        content.extend(pattern(BIG - content.len(), 7));
        let src = w.dir().join("content");
        fs::write(&src, &content).unwrap();
        w.sh_ok(&format!(
            "dd if={} of={}/sysv/{big}/data bs=1M conv=notrunc status=none && \
             printf small | dd of={}/sysv/{small}/data conv=notrunc status=none",
            q(&src),
            q(&mnt),
            q(&mnt)
        ));
        Tools {
            w,
            mnt,
            big,
            small,
            content,
        }
    }

    fn seg(&self, id: i32) -> PathBuf {
        self.mnt.join(format!("sysv/{id}"))
    }

    fn sh_ok(&self, script: &str) -> String {
        self.w.sh_ok(script)
    }
}

impl Drop for Tools {
    fn drop(&mut self) {
        let _ = self.w.sh(&format!("umount {}", q(&self.mnt)));
    }
}

#[test]
fn df_reports_sizes_and_du_the_rss() {
    require_fuse!();
    let t = Tools::new();
    let out = t.sh_ok(&format!(
        "df -B1 --output=source,size,used,avail {}",
        q(&t.mnt)
    ));
    let row: Vec<&str> = out
        .lines()
        .nth(1)
        .expect("df printed no row")
        .split_whitespace()
        .collect();
    let [source, size, used, avail] = row[..] else {
        panic!("df row {row:?}");
    };
    let (size, used, avail): (u64, u64, u64) = (
        size.parse().unwrap(),
        used.parse().unwrap(),
        avail.parse().unwrap(),
    );
    assert_eq!(source, "shmfs", "df's Filesystem column");
    // The world's /dev/shm is a 64 MiB tmpfs; the segments' pages come on top.
    assert!(
        size >= 64 << 20,
        "df size {size} < the 64 MiB of the shm dir"
    );
    assert!(
        used >= BIG as u64,
        "df used {used} < the 2 MiB segment's resident pages"
    );
    assert!(
        used + avail <= size,
        "df: used {used} + avail {avail} > size {size}"
    );

    let rss = fields_in(&t.w, &t.seg(t.big).join("stat")).num("rss");
    assert_eq!(rss, BIG as u64, "the segment was written in full");
    let du = t.sh_ok(&format!("du -s -B1 {}", q(t.seg(t.big))));
    let du: u64 = du.split_whitespace().next().unwrap().parse().unwrap();
    assert_eq!(du, rss, "du -s -B1 of the segment's directory is its rss");
    let human = t.sh_ok(&format!("du -sh {}", q(t.seg(t.big))));
    assert!(human.starts_with("2.0M\t"), "du -sh: {human:?}");
    // -b counts sizes, not blocks: the segment's size and the text files' lengths.
    let apparent = t.sh_ok(&format!("du -sb {}", q(t.seg(t.big))));
    let apparent: u64 = apparent.split_whitespace().next().unwrap().parse().unwrap();
    assert!(apparent > BIG as u64, "du -sb {apparent}");
}

#[test]
fn find_size_finds_the_big_segment_only() {
    require_fuse!();
    require_commands!("find" => "findutils");
    let t = Tools::new();
    // `ns/` holds every IPC namespace's tree, the mount's own among them: pruned here.
    let ns = t.mnt.join("ns");
    let out = t.sh_ok(&format!(
        "find {} -path {} -prune -o -name data -size +1M -print",
        q(&t.mnt),
        q(&ns)
    ));
    let want = t.seg(t.big).join("data");
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [want.to_str().unwrap()],
        "find output"
    );
    let out = t.sh_ok(&format!(
        "find {} -path {} -prune -o -name data -size -5k -print",
        q(&t.mnt),
        q(&ns)
    ));
    assert!(
        out.contains(&format!("/sysv/{}/data", t.small)) && !out.contains(&format!("/{}/", t.big)),
        "find -size -5k: {out:?}"
    );
}

#[test]
fn tar_lists_and_extracts_the_real_bytes() {
    require_fuse!();
    require_commands!("tar" => "tar");
    let t = Tools::new();
    let dir = t.seg(t.big);
    let listing = t.sh_ok(&format!(
        "tar -cf - -C {}/sysv {} | tar -tvf -",
        q(&t.mnt),
        t.big
    ));
    let size_of = |name: &str| -> u64 {
        let line = listing
            .lines()
            .find(|l| l.ends_with(&format!(" {}/{name}", t.big)))
            .unwrap_or_else(|| panic!("tar -tv shows no {name}: {listing}"));
        line.split_whitespace().nth(2).unwrap().parse().unwrap()
    };
    let stat_len = t.sh_ok(&format!("cat {}", q(dir.join("stat")))).len() as u64;
    let perm_len = t.sh_ok(&format!("cat {}", q(dir.join("perm")))).len() as u64;
    assert_eq!(size_of("data"), BIG as u64, "{listing}");
    assert_eq!(size_of("stat"), stat_len, "{listing}");
    assert_eq!(size_of("perm"), perm_len, "{listing}");

    let out = t.w.mkdir("untar");
    t.sh_ok(&format!(
        "tar -cf - -C {}/sysv {id} | tar -xf - -C {}",
        q(&t.mnt),
        q(&out),
        id = t.big
    ));
    let got = fs::read(out.join(format!("{}/data", t.big))).unwrap();
    assert!(
        got == t.content,
        "tar extracted other bytes than the segment's"
    );
    let stat = fs::read_to_string(out.join(format!("{}/stat", t.big))).unwrap();
    assert!(stat.starts_with("kind: sysv\n"), "extracted stat: {stat:?}");
    assert_eq!(
        fs::read_to_string(out.join(format!("{}/perm", t.big))).unwrap(),
        "mode: 0640\nuid: 0\ngid: 0\n"
    );
}

#[test]
fn cp_r_copies_the_bytes() {
    require_fuse!();
    let t = Tools::new();
    let out = t.w.dir().join("copy");
    t.sh_ok(&format!("cp -r {} {}", q(t.seg(t.big)), q(&out)));
    assert!(
        fs::read(out.join("data")).unwrap() == t.content,
        "cp -r: other bytes in data"
    );
    let stat = fs::read_to_string(out.join("stat")).unwrap();
    assert!(
        stat.contains(&format!("shmid: {}\n", t.big)),
        "copied stat: {stat:?}"
    );
    let small = t.w.dir().join("copy-small");
    t.sh_ok(&format!("cp -r {} {}", q(t.seg(t.small)), q(&small)));
    let bytes = fs::read(small.join("data")).unwrap();
    assert_eq!(bytes.len(), SMALL);
    assert_eq!(&bytes[..5], b"small");
    assert!(bytes[5..].iter().all(|b| *b == 0));
}

#[test]
fn file_and_stat_describe_data() {
    require_fuse!();
    require_commands!("file" => "file");
    let t = Tools::new();
    let dir = t.seg(t.big);
    let kind = t.sh_ok(&format!("file -b {}", q(dir.join("data"))));
    assert!(kind.contains("gzip compressed data"), "file data: {kind:?}");
    let kind = t.sh_ok(&format!("file -b {}", q(dir.join("stat"))));
    assert!(kind.contains("text"), "file stat: {kind:?}");

    let out = t.sh_ok(&format!(
        "stat -c '%s %b %B %a %u %F' {}",
        q(dir.join("data"))
    ));
    let v: Vec<&str> = out.trim().splitn(6, ' ').collect();
    let rss = fields_in(&t.w, &dir.join("stat")).num("rss");
    assert_eq!(v[0], BIG.to_string(), "stat %s: {out}");
    assert_eq!(
        v[1].parse::<u64>().unwrap() * v[2].parse::<u64>().unwrap(),
        rss,
        "stat %b × %B is the rss: {out}"
    );
    assert_eq!((v[3], v[4], v[5]), ("640", "0", "regular file"), "{out}");
    // And stat(1) of the directory and of a text file work too.
    t.sh_ok(&format!("stat {} {}", q(&dir), q(dir.join("perm"))));
}

// ---------------------------------------------------------------------------------------------
// Midnight Commander
// ---------------------------------------------------------------------------------------------

/// mc in a detached tmux session inside the world.
struct Tmux {
    socket: PathBuf,
}

impl Tmux {
    fn start(w: &World, command: &str) -> Tmux {
        let socket = w.dir().join("tmux.sock");
        w.sh_ok(&format!(
            "tmux -S {} -f /dev/null new-session -d -x 160 -y 40 {}",
            q(&socket),
            q(command)
        ));
        Tmux { socket }
    }

    fn tmux(&self) -> Command {
        let mut cmd = Command::new("tmux");
        cmd.arg("-S").arg(&self.socket);
        cmd
    }

    fn keys(&self, keys: &[&str]) {
        for k in keys {
            let r = run_with_timeout(self.tmux().args(["send-keys", k]), COMMAND_TIMEOUT);
            assert!(r.ok(), "tmux send-keys {k}: {r:?}");
            std::thread::sleep(Duration::from_millis(150));
        }
    }

    fn type_text(&self, text: &str) {
        let r = run_with_timeout(self.tmux().args(["send-keys", "-l", text]), COMMAND_TIMEOUT);
        assert!(r.ok(), "tmux send-keys -l {text}: {r:?}");
        std::thread::sleep(Duration::from_millis(300));
    }

    fn screen(&self) -> String {
        run_with_timeout(self.tmux().args(["capture-pane", "-p"]), COMMAND_TIMEOUT).stdout_str()
    }

    /// Waits (generously) until the screen satisfies `ok`; returns it.
    #[track_caller]
    fn wait_for(&self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let s = self.screen();
            if ok(&s) {
                return s;
            }
            if start.elapsed() > SCREEN_TIMEOUT {
                panic!("mc did not show {what} within {SCREEN_TIMEOUT:?}; the screen:\n{s}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self
            .tmux()
            .arg("kill-server")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

#[test]
fn midnight_commander_lists_views_and_copies() {
    require_fuse!();
    require_commands!("mc" => "mc", "tmux" => "tmux");
    let t = Tools::new();
    let id = t.small;
    t.sh_ok(&format!(
        "printf 'shmfs-mc-test' | dd of={}/data conv=notrunc status=none",
        q(t.seg(id))
    ));
    let home = t.w.mkdir("mc-home");
    let out = t.w.mkdir("mc-out");
    let seg = t.seg(id);
    let tmux = Tmux::start(
        &t.w,
        &format!(
            "env HOME={} TERM=xterm mc -u {} {}",
            q(&home),
            q(&seg),
            q(&out)
        ),
    );

    // The left panel lists the segment's directory.
    let path = seg.to_str().unwrap().to_string();
    tmux.wait_for("the segment's directory", |s| {
        s.contains(&path)
            && ["attached", "data", "perm", "stat"]
                .iter()
                .all(|n| s.contains(n))
    });

    // F3 on stat: the viewer shows the text.
    tmux.keys(&["C-s"]);
    tmux.type_text("stat");
    tmux.keys(&["F3"]);
    tmux.wait_for("stat in the viewer", |s| {
        s.contains("kind: sysv") && s.contains(&format!("shmid: {id}"))
    });
    tmux.keys(&["F10"]);
    tmux.wait_for("the panels again", |s| {
        !s.contains("kind: sysv") && s.contains(&path)
    });

    // F3 on data, F4 for hex: the bytes, in hex and as text.
    tmux.keys(&["C-s"]);
    tmux.type_text("data");
    tmux.keys(&["F3"]);
    tmux.wait_for("data in the viewer", |s| {
        s.contains(&format!("{path}/data"))
    });
    tmux.keys(&["F4"]);
    tmux.wait_for("data in hex", |s| {
        s.contains("73 68 6D 66") && s.contains("shmfs-mc-test")
    });
    tmux.keys(&["F10"]);
    tmux.wait_for("the panels again", |s| {
        s.contains(&path) && !s.contains("73 68 6D 66")
    });

    // F5 copies data to the other panel's directory.
    tmux.keys(&["F5"]);
    tmux.wait_for("the copy dialog", |s| s.contains("Copy file \"data\""));
    tmux.keys(&["Enter"]);
    let copy = out.join("data");
    let start = Instant::now();
    while fs::metadata(&copy).map(|m| m.len()).unwrap_or(0) < SMALL as u64 {
        assert!(
            start.elapsed() < SCREEN_TIMEOUT,
            "mc's copy did not arrive; the screen:\n{}",
            tmux.screen()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let bytes = fs::read(&copy).unwrap();
    assert_eq!(bytes.len(), SMALL);
    assert_eq!(&bytes[..13], b"shmfs-mc-test");
    assert!(bytes[13..].iter().all(|b| *b == 0));
    tmux.keys(&["F10"]);
}

// ---------------------------------------------------------------------------------------------
// --help, --version, the man page, install.sh
// ---------------------------------------------------------------------------------------------

fn run_bin(args: &[&str]) -> Run {
    run_with_timeout(Command::new(BIN).args(args), COMMAND_TIMEOUT)
}

#[test]
fn help_and_version_are_complete() {
    let v = run_bin(&["--version"]);
    assert!(v.ok(), "shmfs --version: {v:?}");
    assert_eq!(
        v.stdout_str(),
        format!("shmfs {}\n", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(run_bin(&["-V"]).stdout_str(), v.stdout_str());

    let h = run_bin(&["--help"]);
    assert!(h.ok(), "shmfs --help: {h:?}");
    let help = h.stdout_str();
    for needle in [
        "Usage: shmfs",
        "MOUNTPOINT",
        "-f, --foreground",
        "-o <",
        "allow_other",
        "metrics=all|totals",
        "metrics.prom",
        "--shm-dir",
        "--ipc-ns",
        "--pid",
        "--threads",
        "--man",
        "--no-sandbox",
        "-h, --help",
        "-V, --version",
    ] {
        assert!(
            help.contains(needle),
            "shmfs --help lacks {needle:?}:\n{help}"
        );
    }
}

/// Arguments that cannot work are refused before anything is mounted, with a message that
/// says what is wrong: `--threads 0` (no worker would answer), `--pid` of a process that does
/// not exist.
#[test]
fn impossible_arguments_are_refused_plainly() {
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().to_str().unwrap();
    let r = run_bin(&["--threads", "0", mnt]);
    assert_eq!(r.status.code(), Some(2), "--threads 0: {r:?}");
    assert!(
        r.stderr.contains("--threads") && r.stderr.contains("0 is not in 1.."),
        "--threads 0 must say why: {r:?}"
    );
    // The largest pid the kernel may hand out is at most 2^22: this one cannot exist.
    let r = run_bin(&["--pid", "99999999", mnt]);
    assert_eq!(r.status.code(), Some(1), "--pid 99999999: {r:?}");
    assert_eq!(
        r.stderr.trim_end(),
        "shmfs: --pid 99999999: no such process",
        "{r:?}"
    );
    assert!(
        !is_listed_in_mountinfo(dir.path()),
        "something was mounted on {mnt}"
    );
}

#[test]
fn install_script_explains_itself_and_refuses_unknown_arguments() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("mount-scripts/install.sh");
    let help = run_with_timeout(
        Command::new("bash").arg(&script).arg("--help"),
        COMMAND_TIMEOUT,
    );
    assert!(help.ok(), "install.sh --help: {help:?}");
    let text = help.stdout_str();
    for needle in ["--enable", "--uninstall", "/usr/local/bin/shmfs", "fuse3"] {
        assert!(
            text.contains(needle),
            "install.sh --help lacks {needle:?}:\n{text}"
        );
    }
    let bad = run_with_timeout(
        Command::new("bash").arg(&script).arg("--bogus"),
        COMMAND_TIMEOUT,
    );
    assert!(!bad.ok(), "install.sh --bogus succeeded");
    assert!(bad.stderr.contains("unknown argument: --bogus"), "{bad:?}");
    let both = run_with_timeout(
        Command::new("bash")
            .arg(&script)
            .args(["--enable", "--uninstall"]),
        COMMAND_TIMEOUT,
    );
    assert!(!both.ok(), "install.sh --enable --uninstall succeeded");
}
