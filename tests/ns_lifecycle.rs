//! The life of `ns/N` (issue 23, "Nothing pinned, nothing stale"): a container that exits
//! while its files are being listed and read goes without any error but ENOENT or ESTALE and
//! without a daemon crash, is gone from the next listing, and handles kept from before give
//! ENOENT or ESTALE, never another namespace's data (also when a new namespace gets its number);
//! its memory (a 64 MiB segment and a 64 MiB object in its /dev/shm, both listed and read
//! through shmfs) is freed as if shmfs were not mounted (`Shmem` of /proc/meminfo); and a
//! namespace kept alive by nothing but a bind mount shows to root (not to an ordinary user)
//! until the bind mount goes. One kept by two bind mounts, the first of which becomes a file,
//! is read through the other, and never takes `ns/index` or `metrics.prom` away.
//!
//! Needs root, /dev/fuse, util-linux (`unshare`, `nsenter`, `ipcs`, `setpriv`) and `cc`;
//! without them skipped, or failed when `CI` is set.

mod common;

use std::collections::BTreeSet;
use std::ffi::CString;
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::*;

/// How long the tests wait for something the kernel does after a process exits (a deadline for
/// a hang, not a measure of speed).
const SETTLE: Duration = Duration::from_secs(10);

/// ENOENT or ESTALE: what a gone namespace may answer.
fn is_gone(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ESTALE))
}

/// `openat(dir, name, O_RDONLY)`.
fn openat(dir: &File, name: &str) -> io::Result<File> {
    use std::os::fd::FromRawFd;
    let c = CString::new(name).unwrap();
    // SAFETY: a valid directory descriptor and a NUL-terminated name.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            c.as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        Err(io::Error::last_os_error())
    } else {
        // SAFETY: a descriptor just opened and owned by nobody else.
        Ok(unsafe { File::from_raw_fd(fd) })
    }
}

/// The first `len` bytes a file gives from offset 0 (one pread).
fn pread(f: &File, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0; len];
    let n = f.read_at(&mut buf, 0)?;
    buf.truncate(n);
    Ok(buf)
}

/// The pids in a `members` text (after its header).
fn member_pids(text: &str) -> BTreeSet<u32> {
    text.lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect()
}

/// Whether `ns/N` still shows the container whose processes were `old`: listed, and its
/// `members` naming one of them. (nsfs reuses inode numbers: once the container is gone, a new
/// namespace made by another test may be `ns/N`.)
fn still_shows(m: &Mount, n: u64, old: &BTreeSet<u32>) -> bool {
    if !m.ls("ns").contains(&n.to_string()) {
        return false;
    }
    match fs::read_to_string(m.p("ns").join(n.to_string()).join("members")) {
        Ok(text) => !member_pids(&text).is_disjoint(old),
        Err(e) if is_gone(&e) => false,
        Err(e) => panic!("cat ns/{n}/members: {e}"),
    }
}

/// Waits (up to SETTLE) until `ns/N` no longer shows the container whose processes were `old`.
#[track_caller]
fn wait_gone(m: &Mount, n: u64, old: &BTreeSet<u32>) {
    let start = Instant::now();
    while still_shows(m, n, old) {
        assert!(
            start.elapsed() < SETTLE,
            "{SETTLE:?} after the container exited, ns/{n} still shows it (ls ns: {:?})",
            m.ls("ns")
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One round of what a user does in `ns/N` while its container may be exiting: every error
/// that is not ENOENT or ESTALE is returned, as a description. While `alive`, what is read
/// must be the container's (its segments' keys).
fn look_once(dir: &Path, keys: &BTreeSet<String>, alive: bool) -> Vec<String> {
    let mut bad = Vec::new();
    let mut wrong = Vec::new();
    let mut check = |what: String, r: io::Result<()>| {
        if let Err(e) = r
            && !is_gone(&e)
        {
            bad.push(format!("{what}: {e}"));
        }
    };
    check(
        format!("ls {}", dir.parent().unwrap().display()),
        fs::read_dir(dir.parent().unwrap()).and_then(|mut d| d.try_for_each(|e| e.map(|_| ()))),
    );
    check(
        format!("ls {}", dir.display()),
        fs::read_dir(dir).and_then(|mut d| d.try_for_each(|e| e.map(|_| ()))),
    );
    let sysv = dir.join("sysv");
    let mut ids = Vec::new();
    check(
        format!("ls {}", sysv.display()),
        fs::read_dir(&sysv).and_then(|d| {
            for e in d {
                ids.push(e?.file_name());
            }
            Ok(())
        }),
    );
    for id in ids {
        let stat = sysv.join(&id).join("stat");
        let r = fs::read_to_string(&stat).map(|text| {
            let key = text
                .lines()
                .find_map(|l| l.strip_prefix("key: "))
                .unwrap_or("")
                .to_string();
            if alive && !keys.contains(&key) {
                wrong.push(format!(
                    "{} has key {key:?}, not the container's",
                    stat.display()
                ));
            }
        });
        check(format!("cat {}", stat.display()), r);
        let data = sysv.join(&id).join("data");
        check(
            format!("read {}", data.display()),
            File::open(&data).and_then(|f| pread(&f, 4096)).map(|_| ()),
        );
    }
    for file in [
        "members",
        "container",
        "index",
        "index.json",
        "limits",
        "posix/obj/data",
    ] {
        let p = dir.join(file);
        check(
            format!("cat {}", p.display()),
            File::open(&p).and_then(|mut f| {
                let mut v = Vec::new();
                f.read_to_end(&mut v).map(|_| ())
            }),
        );
    }
    bad.extend(wrong);
    bad
}

#[test]
fn a_container_that_exits_while_listed_leaves_no_error_and_nothing_stale() {
    require_fuse!();
    require_ns_tools!();
    let m = Mount::new();
    let mut c = NsCtr::start(&CtrSpec {
        hostname: test_hostname("exit"),
        shm_size: Some("1m".into()),
        posix: vec![(
            "obj".into(),
            b"the container's object\n".to_vec(),
            0o644,
            None,
        )],
        segs: vec![
            SegSpec::new(4096, 0o600).owner(NOBODY).hold(),
            SegSpec::new(8192, 0o644),
        ],
        ..Default::default()
    });
    let n = c.ns;
    let dir = c.p(m.path(), "");
    let keys: BTreeSet<String> = c.segs.iter().map(|s| key_hex(s.key)).collect();
    let old = processes_in(n);
    assert!(old.contains(&c.pid()));
    assert_ns_listed(&m, n);
    assert!(look_once(&dir, &keys, true).is_empty());

    // Handles kept across the exit.
    let held_dir = File::open(&dir).expect("open ns/N");
    let held_members = File::open(dir.join("members")).expect("open ns/N/members");
    let id0 = c.segs[0].id;
    let held_stat =
        File::open(dir.join(format!("sysv/{id0}/stat"))).expect("open ns/N/sysv/ID/stat");
    // What they read before: a text file may serve a reading taken at its open (as the root's
    // do), which is the same namespace's; anything else would be another's.
    let members_before = pread(&held_members, 65536).unwrap();
    assert!(!member_pids(&String::from_utf8_lossy(&members_before)).is_empty());
    let stat_before = pread(&held_stat, 65536).unwrap();

    const THREADS: usize = 4;
    let stop = Arc::new(AtomicBool::new(false));
    let alive = Arc::new(AtomicBool::new(true));
    let rounds: Arc<Vec<AtomicU64>> = Arc::new((0..THREADS).map(|_| AtomicU64::new(0)).collect());
    let bad = Arc::new(Mutex::new(Vec::<String>::new()));
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let (stop, alive, rounds, bad) =
                (stop.clone(), alive.clone(), rounds.clone(), bad.clone());
            let (dir, keys) = (dir.clone(), keys.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let was_alive = alive.load(Ordering::Relaxed);
                    let found = look_once(&dir, &keys, was_alive);
                    bad.lock().unwrap().extend(found);
                    rounds[t].fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let wait_rounds = |at_least: u64| {
        let start = Instant::now();
        while rounds.iter().any(|r| r.load(Ordering::Relaxed) < at_least) {
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "the readers made no progress (hung mount?)"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    wait_rounds(5);
    alive.store(false, Ordering::Relaxed);
    c.stop();
    wait_gone(&m, n, &old);
    let after: Vec<u64> = rounds.iter().map(|r| r.load(Ordering::Relaxed)).collect();
    wait_rounds(after.iter().max().unwrap() + 5);
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().expect("a reader panicked");
    }
    let bad = bad.lock().unwrap();
    assert!(
        bad.is_empty(),
        "errors other than ENOENT/ESTALE while the container exited: {bad:#?}"
    );
    // The daemon is alive and well.
    assert!(m.ls("ns").contains("index"));
    let _ = m.ls_sysv();

    // Paths to the gone namespace (unless a new namespace got its number meanwhile).
    let reused = m.ls("ns").contains(&n.to_string());
    if !reused {
        for p in [
            dir.clone(),
            dir.join("members"),
            dir.join(format!("sysv/{id0}/stat")),
        ] {
            match fs::metadata(&p) {
                Err(e) if is_gone(&e) => {}
                other => panic!("stat {} of a gone namespace: {other:?}", p.display()),
            }
        }
    }
    // Handles kept from before: a lookup through them is ENOENT or ESTALE; a read is that, or
    // the very text the handle gave before; never another namespace's data.
    let assert_stale = |when: &str| {
        for (what, r, before) in [
            (
                "openat(ns/N, members)",
                openat(&held_dir, "members").map(|_| Vec::new()),
                None,
            ),
            (
                "openat(ns/N, sysv)",
                openat(&held_dir, "sysv").map(|_| Vec::new()),
                None,
            ),
            (
                "pread of ns/N/members",
                pread(&held_members, 65536),
                Some(&members_before),
            ),
            (
                "pread of ns/N/sysv/ID/stat",
                pread(&held_stat, 65536),
                Some(&stat_before),
            ),
        ] {
            match r {
                Err(e) if is_gone(&e) => {}
                Ok(v) if Some(&v) == before => {}
                other => panic!(
                    "{what}, kept from before the container exited ({when}): {:?}",
                    other.map(|v| String::from_utf8_lossy(&v).into_owned())
                ),
            }
        }
    };
    assert_stale("its namespace gone");

    // nsfs hands the lowest free inode number to the next namespace, once the kernel has
    // freed the old one (an IPC namespace is freed from a work queue, a little after its last
    // process): new containers soon get N. The kept handles must then still be stale, while
    // the path shows the new one. Tried for a few seconds; not reached is no failure.
    let mut reuser = None;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        let f = NsCtr::start(&CtrSpec {
            hostname: test_hostname("reuse"),
            segs: vec![SegSpec::new(4096, 0o600)],
            ..Default::default()
        });
        if f.ns == n {
            reuser = Some(f);
            break;
        }
        drop(f);
        std::thread::sleep(Duration::from_millis(50));
    }
    match reuser {
        Some(f) => {
            assert_stale("a new container got its number");
            let stat = read_text(&f.p(m.path(), &format!("sysv/{}/stat", f.segs[0].id)));
            assert!(
                stat.contains(&format!("key: {}", key_hex(f.segs[0].key))),
                "ns/{n} is now the new container's: {stat}"
            );
        }
        None => eprintln!(
            "note: no new container got the number {n} back within 5 s: the reuse was not tried"
        ),
    }
}

/// The daemon's descriptors on the file system of device `dev`, or naming IPC namespace `ns`.
fn daemon_holds(pid: u32, dev: u64, ns: u64) -> Vec<String> {
    let want = format!("ipc:[{ns}]");
    fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let target = fs::read_link(e.path()).unwrap_or_default();
            let on_dev = fs::metadata(e.path()).is_ok_and(|m| m.dev() == dev);
            (on_dev || target.to_string_lossy() == want).then(|| {
                format!(
                    "fd {} -> {}",
                    e.file_name().to_string_lossy(),
                    target.display()
                )
            })
        })
        .collect()
}

#[test]
fn a_containers_memory_comes_back_when_it_exits_though_shmfs_read_it() {
    require_fuse!();
    require_ns_tools!();
    const MIB: usize = 64;
    let m = Mount::new();
    let mut c = NsCtr::start(&CtrSpec {
        hostname: test_hostname("memory"),
        shm_size: Some(format!("{}m", MIB + 16)),
        segs: vec![SegSpec::new(MIB << 20, 0o600).owner(NOBODY).fill()],
        extra: format!("head -c {MIB}M /dev/zero > /dev/shm/big\n"),
        ..Default::default()
    });
    let n = c.ns;
    let seg = c.segs[0].clone();
    let dir = c.p(m.path(), "");
    let shm_dev = fs::metadata(format!("/proc/{}/root/dev/shm", c.pid()))
        .unwrap()
        .dev();
    let old = processes_in(n);

    // shmfs lists and reads all of both.
    assert_ns_listed(&m, n);
    assert_eq!(
        m.ls(&format!("ns/{n}/sysv")),
        BTreeSet::from([seg.id.to_string()])
    );
    assert_eq!(
        m.ls(&format!("ns/{n}/posix")),
        BTreeSet::from(["big".to_string()])
    );
    let stat = read_fields(&dir.join(format!("sysv/{}/stat", seg.id)));
    assert_eq!(stat.num("size"), (MIB << 20) as u64);
    assert_eq!(
        stat.num("rss"),
        (MIB << 20) as u64,
        "nsipc filled every page"
    );
    let sysv_data: PathBuf = dir.join(format!("sysv/{}/data", seg.id));
    let head = pread(&File::open(&sysv_data).unwrap(), 16).unwrap();
    assert_eq!(
        head,
        (0..16u8)
            .map(|i| i.wrapping_mul(7).wrapping_add(1))
            .collect::<Vec<_>>(),
        "the first bytes nsipc wrote"
    );
    for p in [sysv_data.clone(), dir.join("posix/big/data")] {
        let copied = io::copy(&mut File::open(&p).unwrap(), &mut io::sink()).unwrap();
        assert_eq!(copied, (MIB << 20) as u64, "cat {} | wc -c", p.display());
    }
    let _ = read_text(&m.p("ns/index"));
    let _ = read_text(&m.p("metrics.prom"));

    // Between requests the daemon holds nothing of the container.
    let held = daemon_holds(m.pid(), shm_dev, n);
    assert!(
        held.is_empty(),
        "the daemon holds {held:?} between requests"
    );
    let sysv_maps: Vec<String> = maps_of(m.pid() as i32)
        .into_iter()
        .filter(|l| l.path.starts_with(&format!("/SYSV{:08x}", seg.key as u32)))
        .map(|l| format!("{} {}", l.range, l.path))
        .collect();
    assert!(
        sysv_maps.is_empty(),
        "the daemon has the segment attached: {sysv_maps:?}"
    );

    let before = meminfo_kb("Shmem").expect("Shmem in /proc/meminfo");
    c.stop();
    // Both are freed: 2 × 64 MiB. Other tests may allocate shared memory meanwhile: three
    // quarters of it is enough (either one kept would leave at most half).
    let want = before.saturating_sub((2 * MIB as u64 * 1024) * 3 / 4);
    let start = Instant::now();
    let mut lowest = before;
    while start.elapsed() < SETTLE {
        lowest = lowest.min(meminfo_kb("Shmem").unwrap());
        if lowest <= want {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        lowest <= want,
        "Shmem was {before} kB before the container exited and at least {lowest} kB for \
         {SETTLE:?} after, with shmfs mounted: its {MIB} MiB segment and {MIB} MiB object were \
         not freed (the daemon holds {:?})",
        daemon_holds(m.pid(), shm_dev, n)
    );
    wait_gone(&m, n, &old);
}

/// `unshare --ipc=FILE true`: a namespace no process is in, kept alive by a bind mount of its
/// nsfs file. Root (CAP_SYS_ADMIN) sees it and its segment; an ordinary user does not. Once
/// the bind mount goes, so does the namespace, and `ns/N` with it.
#[test]
fn a_namespace_kept_by_a_bind_mount_shows_to_root_until_it_goes() {
    require_fuse!();
    require_ns_tools!();
    let m = Mount::builder().option("allow_other").mount();
    let mut b = NsBind::new();
    let key = random_key();
    let id = b.mk(key, 4096, 0o600);
    let n = b.ns.to_string();
    assert_eq!(
        b.ipcs().into_iter().collect::<Vec<_>>(),
        vec![(id, key_hex(key))],
        "ipcs -m in the bound namespace"
    );
    assert!(
        processes_in(b.ns).is_empty(),
        "no process is in the bound namespace"
    );

    assert_ns_listed(&m, b.ns);
    let listed = m.ls("ns");
    assert!(
        listed.contains(&n),
        "`ls ns/` as root must show the bound {n}: {listed:?}"
    );
    let dir = m.p("ns").join(&n);
    assert_eq!(
        ls(&dir.join("sysv")),
        BTreeSet::from([id.to_string()]),
        "ns/{n}/sysv"
    );
    let stat = read_fields(&dir.join(format!("sysv/{id}/stat")));
    assert_eq!(stat.get("key"), key_hex(key));
    assert_eq!(stat.num("nattch"), 0);
    assert_eq!(
        member_pids(&read_text(&dir.join("members"))),
        BTreeSet::new(),
        "ns/{n}/members of a namespace without processes"
    );
    let row = ns_index_row(m.path(), b.ns).unwrap_or_else(|| panic!("no row for {n} in ns/index"));
    assert_eq!(
        (
            row["PROCS"].as_str(),
            row["SEGMENTS"].as_str(),
            row["ORPHANS"].as_str()
        ),
        ("0", "1", "1"),
        "{row:?}"
    );

    // Not to an ordinary user: only CAP_SYS_ADMIN sees namespaces without processes.
    let r = sh_as(NOBODY, &format!("ls {}", q(m.p("ns"))));
    assert!(r.ok(), "ls ns/ as nobody: {r:?}");
    assert!(
        !r.stdout_str().lines().any(|l| l == n),
        "`ls ns/` as nobody shows the bound {n}: {r:?}"
    );
    let r = sh_as(NOBODY, &format!("ls {}", q(dir.join("sysv"))));
    assert!(!r.ok(), "ls ns/{n}/sysv as nobody: {r:?}");

    // The bind mount goes: the namespace and its segment go, and ns/N with them (unless a new
    // namespace got the number: then it does not have this segment).
    b.release();
    let start = Instant::now();
    loop {
        let still = m.ls("ns").contains(&n)
            && fs::read_to_string(dir.join(format!("sysv/{id}/stat")))
                .is_ok_and(|s| s.contains(&format!("key: {}", key_hex(key))));
        if !still {
            break;
        }
        assert!(
            start.elapsed() < SETTLE,
            "{SETTLE:?} after the bind mount went, ns/{n} still shows its segment"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A namespace no process is in, kept alive by two bind mounts of its nsfs file, at `T/a/ns`
/// and `T/z/ns` of a tmpfs `T` that only the mount namespace of a container (`ctr`) has, with
/// one segment of its own. The container's own namespace has a segment too.
struct PinnedTwice {
    ctr: NsCtr,
    /// `T`, as the container's mount namespace (and root, the machine's) sees it.
    t: PathBuf,
    /// `N` of `ns/N` of the pinned namespace.
    ns: u64,
    /// Its segment: shmid and key.
    id: i32,
    key: i32,
}

impl PinnedTwice {
    fn start() -> PinnedTwice {
        let key = random_key();
        // The nsfs file is bound from /proc/self of `mount` itself, a child of the shell in
        // the new namespace: the container's pid namespace numbers it otherwise than the
        // machine's /proc it kept (`unshare --ipc=FILE` would bind the wrong process's).
        let extra = format!(
            r#"mkdir "$DIR/T"
mount -t tmpfs -o size=1m,mode=0755 shmfs-test-pins "$DIR/T"
mkdir "$DIR/T/a" "$DIR/T/z"
: > "$DIR/T/a/ns"
: > "$DIR/T/z/ns"
unshare --ipc sh -c 'set -e
mount --bind /proc/self/ns/ipc "$1/a/ns"
mount --bind /proc/self/ns/ipc "$1/z/ns"
"$2" mk {key:#x} 4096 0600 > "$3"' sh "$DIR/T" "$NSIPC" "$DIR/pinned-seg"
"#,
            key = key as u32
        );
        let ctr = NsCtr::start(&CtrSpec {
            hostname: test_hostname("pins"),
            segs: vec![SegSpec::new(4096, 0o600)],
            extra,
            ..Default::default()
        });
        let t = ctr.container.dir().join("T");
        let line = fs::read_to_string(ctr.container.dir().join("pinned-seg")).unwrap();
        let id = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("nsipc mk printed {line:?}"));
        let ns: u64 = ctr
            .sh_ok(&format!("stat -L -c %i {}", q(t.join("z/ns"))))
            .trim()
            .parse()
            .expect("stat -L -c %i of the bind mount");
        assert_ne!(ns, ctr.ns);
        assert!(
            processes_in(ns).is_empty(),
            "no process is in the pinned namespace {ns}"
        );
        PinnedTwice {
            ctr,
            t,
            ns,
            id,
            key,
        }
    }

    /// The nsfs mounts of the container's mount namespace: (mount point, `ipc:[N]`).
    fn nsfs_mounts(&self) -> Vec<(String, String)> {
        fs::read_to_string(format!("/proc/{}/mountinfo", self.ctr.pid()))
            .unwrap()
            .lines()
            .filter(|l| l.contains(" - nsfs "))
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f[4].to_string(), f[3].to_string())
            })
            .collect()
    }

    /// Root lists `ns/` and reads the pinned namespace's segment: the daemon has found it,
    /// through its first bind mount (`T/a/ns`, first in the mount table).
    fn look(&self, m: &Mount) {
        let mounts = self.nsfs_mounts();
        let want = format!("ipc:[{}]", self.ns);
        let a = self.t.join("a/ns").display().to_string();
        let z = self.t.join("z/ns").display().to_string();
        assert_eq!(
            mounts,
            vec![(a, want.clone()), (z, want)],
            "the container's nsfs mounts, T/a/ns first"
        );
        assert_ns_listed(m, self.ns);
        self.assert_segment_shown(m, "before T/a changed");
    }

    /// `umount T/a/ns; rm -r T/a; touch T/a` in the container's mount namespace: the first
    /// mount point is now a file's path component, `T/z/ns` the namespace's only way in.
    fn replace_first_mount_point(&self) {
        let a = self.t.join("a");
        self.ctr.sh_ok(&format!(
            "umount {ns} && rm -r {a} && : > {a}",
            ns = q(a.join("ns")),
            a = q(&a)
        ));
        let z = self.t.join("z/ns").display().to_string();
        assert_eq!(
            self.nsfs_mounts(),
            vec![(z, format!("ipc:[{}]", self.ns))],
            "the container's nsfs mounts once T/a is a file"
        );
    }

    /// `ls ns/N/sysv` and its segment's `stat`, as root, show the pinned segment.
    #[track_caller]
    fn assert_segment_shown(&self, m: &Mount, when: &str) {
        let n = self.ns;
        let sysv = m.p("ns").join(n.to_string()).join("sysv");
        let listed = fs::read_dir(&sysv)
            .and_then(|d| {
                d.map(|e| Ok(e?.file_name().to_string_lossy().into_owned()))
                    .collect()
            })
            .map(|v: Vec<String>| v.into_iter().collect::<BTreeSet<_>>());
        assert_eq!(
            listed.as_ref().map_err(|e| e.to_string()),
            Ok(&BTreeSet::from([self.id.to_string()])),
            "ls ns/{n}/sysv as root, {when}; the daemon's warnings:\n{}",
            log_warnings(&m.log())
        );
        let stat = fs::read_to_string(sysv.join(self.id.to_string()).join("stat"));
        assert!(
            stat.as_ref()
                .is_ok_and(|s| s.contains(&format!("key: {}", key_hex(self.key)))),
            "cat ns/{n}/sysv/{}/stat as root, {when}: {stat:?}",
            self.id
        );
    }
}

/// One namespace whose way in broke must not take `ns/index` and `metrics.prom` away from
/// everyone (the review's reproduction): a namespace kept by two bind mounts, found by a scan
/// through the first; that mount point then becomes a file (`T/a`). `ns/index` and
/// `metrics.prom` still read, with their rows and series of the other namespaces (a container's,
/// the daemon's own) and of the pinned one, found through the bind mount that is left; and
/// `ns/N/sysv` still shows its segment.
#[test]
fn a_pinned_namespace_whose_mount_point_became_a_file_leaves_ns_index_and_metrics_to_all() {
    require_fuse!();
    require_ns_tools!();
    let m = Mount::new();
    let p = PinnedTwice::start();
    p.look(&m);
    p.replace_first_mount_point();

    let index = fs::read_to_string(m.p("ns/index"));
    let index = index.unwrap_or_else(|e| {
        panic!(
            "cat ns/index once the first mount point of pinned {} is a file: {e}; the daemon's \
             warnings:\n{}",
            p.ns,
            log_warnings(&m.log())
        )
    });
    let (header, rows) = parse_table(&index, "ns/index");
    assert_eq!(header, NS_INDEX_HEADER, "the header of ns/index");
    let row = |ns: u64| {
        let n = ns.to_string();
        rows.iter()
            .find(|r| r["NS"] == n)
            .unwrap_or_else(|| panic!("ns/index has no row for {n}:\n{index}"))
    };
    let home = ipc_ns_of(m.pid());
    assert!(
        row(home)["PROCS"].parse::<u64>().unwrap() >= 1,
        "the daemon's namespace's row: {:?}",
        row(home)
    );
    let c = row(p.ctr.ns);
    assert_eq!(
        (c["HOSTNAME"].as_str(), c["SEGMENTS"].as_str()),
        (p.ctr.hostname.as_str(), "1"),
        "the container's row: {c:?}"
    );
    let pinned = row(p.ns);
    assert_eq!(
        (
            pinned["PROCS"].as_str(),
            pinned["SEGMENTS"].as_str(),
            pinned["BYTES"].as_str(),
            pinned["ORPHANS"].as_str()
        ),
        ("0", "1", "4096", "1"),
        "the pinned namespace's row, read through T/z/ns: {pinned:?}"
    );

    let metrics = fs::read_to_string(m.p("metrics.prom")).unwrap_or_else(|e| {
        panic!(
            "cat metrics.prom once the first mount point of pinned {} is a file: {e}",
            p.ns
        )
    });
    for (ns, want) in [(p.ctr.ns, "1"), (p.ns, "1")] {
        let label = format!("namespace=\"{ns}\"");
        let series: Vec<&str> = metrics
            .lines()
            .filter(|l| l.starts_with("shmfs_namespace_segments{") && l.contains(&label))
            .collect();
        assert_eq!(
            series
                .iter()
                .map(|l| l.rsplit_once(' ').map_or("", |(_, v)| v))
                .collect::<Vec<_>>(),
            vec![want],
            "shmfs_namespace_segments with {label} in metrics.prom: {series:?}"
        );
    }

    assert_ns_listed(&m, p.ns);
    p.assert_segment_shown(&m, "after T/a became a file and ns/ was listed again");
}

/// The same broken first mount point, but nothing lists `ns/` again: `ns/N`, which the kernel
/// still knows from before, must lead to the namespace through the bind mount that is left
/// (`T/z/ns`), never answer ENOTDIR for a directory that is there.
#[test]
fn a_pinned_namespace_whose_mount_point_became_a_file_is_reached_through_the_other() {
    require_fuse!();
    require_ns_tools!();
    let m = Mount::new();
    let p = PinnedTwice::start();
    p.look(&m);
    p.replace_first_mount_point();
    p.assert_segment_shown(&m, "right after T/a became a file");
    let members = fs::read_to_string(m.p("ns").join(p.ns.to_string()).join("members"));
    assert!(
        members.as_ref().is_ok_and(|t| member_pids(t).is_empty()),
        "cat ns/{}/members as root, once T/a is a file: {members:?}",
        p.ns
    );
}
