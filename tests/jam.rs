//! No user can stall anyone else through its own mmap lock (issue 21, item 3).
//!
//! A process of an ordinary user (uid 12345) attaches segments it owns (becoming their `lpid`),
//! maps a file of a FUSE filesystem whose reads never answer (the test serves it and holds every
//! read until the end), reads its own memory at that mapping through `/proc/self/mem` (the kernel
//! takes the process's mmap lock for reading and keeps it while the fault waits for the FUSE
//! read) and has a second thread call `mmap`, which queues for the write lock: from then on
//! every reader of that mmap lock (`/proc/PID/smaps`, `map_files`, `maps` where the kernel takes
//! it) waits as long as the test likes. The test checks that the jam is real (root's read of the
//! process's smaps does not finish), then that shmfs serves everyone: the `stat` and `data` of
//! the jammed process's segments answer (`data` with the segment's bytes) instead of hanging,
//! the daemon logs the stalled pid once and does not wait on it again, and other users' and
//! root's requests are served within a second while the jam holds. A second test shows `stat` learning `hugetlb`
//! from an attacher's `maps` (which recent kernels read without the lock) instead of `smaps`.
//!
//! Everything is undone by guards even when the test fails: the FUSE reads are answered, the
//! jammer is killed, both filesystems are unmounted and the segments removed; a watchdog kills
//! the daemon if the test still runs after a minute, so a regression fails instead of hanging.

mod common;

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, UNIX_EPOCH};

use common::*;
use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, INodeNo, LockOwner, OpenFlags, ReplyAttr,
    ReplyData, ReplyEntry, Request,
};

/// The jamming user, and another ordinary user who must still be served.
const JAMMER: u32 = 12345;
const OTHER: u32 = 12346;
/// How long a request of anyone but the jammed one may take.
const SERVED_WITHIN: Duration = Duration::from_secs(1);
/// How long the jammed requests may take before the test calls them hung.
const ANSWERED_WITHIN: Duration = Duration::from_secs(10);

/// The jamming process (compiled with cc on first use). Arguments: FILE SHMID...; it attaches
/// each segment read-write, maps FILE, starts two threads and prints `ready`. On the input line
/// `jam` the first thread reads /proc/self/mem at the mapping (`reading`); on `queue` the second
/// calls mmap (`queued`). It exits at EOF on its standard input, or when killed; a thread
/// waiting for the FUSE read waits uninterruptibly, so the reads are released first.
const JAMMER_C: &str = r#"
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <unistd.h>

static char *addr;
static int go_read[2], go_map[2];

static void wait_go(int fd) {
    char c;
    while (read(fd, &c, 1) < 0 && errno == EINTR) {}
}

static void die(const char *what) {
    fprintf(stderr, "jammer: %s: %s\n", what, strerror(errno));
    exit(2);
}

static void *reader(void *unused) {
    (void)unused;
    char byte;
    int fd = open("/proc/self/mem", O_RDONLY);
    if (fd < 0) die("open /proc/self/mem");
    wait_go(go_read[0]);
    pread(fd, &byte, 1, (off_t)(uintptr_t)addr);
    return NULL;
}

static void *mapper(void *unused) {
    (void)unused;
    wait_go(go_map[0]);
    mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: jammer FILE SHMID...\n"); return 2; }
    for (int i = 2; i < argc; i++)
        if (shmat(atoi(argv[i]), NULL, 0) == (void *)-1) die("shmat");
    int fd = open(argv[1], O_RDONLY);
    if (fd < 0) die("open FILE");
    addr = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);
    if (addr == MAP_FAILED) die("mmap FILE");
    /* Both threads exist before the jam: creating one then would need mmap (its stack). */
    pthread_t t;
    if (pipe(go_read) || pipe(go_map)) die("pipe");
    if (pthread_create(&t, NULL, reader, NULL) || pthread_create(&t, NULL, mapper, NULL))
        die("thread");
    printf("ready\n");
    fflush(stdout);
    char line[64];
    while (fgets(line, sizeof line, stdin)) {
        if (strcmp(line, "jam\n") == 0) {
            if (write(go_read[1], "x", 1) != 1) die("write");
            printf("reading\n");
        } else if (strcmp(line, "queue\n") == 0) {
            if (write(go_map[1], "x", 1) != 1) die("write");
            printf("queued\n");
        } else {
            printf("?\n");
        }
        fflush(stdout);
    }
    _exit(0);
}
"#;

fn jammer_bin() -> &'static Path {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("jammer-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .expect("directory for the jammer")
            .keep();
        let src = dir.join("jammer.c");
        let bin = dir.join("jammer");
        fs::write(&src, JAMMER_C).expect("write jammer source");
        let r = run_with_timeout(
            Command::new("cc")
                .args(["-O1", "-Wall", "-pthread", "-o"])
                .arg(&bin)
                .arg(&src),
            COMMAND_TIMEOUT,
        );
        assert!(r.ok(), "cc of the jammer failed (is gcc installed?): {r:?}");
        // Another user runs it.
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        bin
    })
}

/// The reads the FUSE filesystem holds, and whether it still holds them.
#[derive(Default)]
struct Held {
    replies: Vec<ReplyData>,
    released: bool,
}

/// A one-file FUSE filesystem (`/f`, one page) whose reads are held until released.
struct Stall {
    held: Arc<(Mutex<Held>, Condvar)>,
}

const ROOT: FileAttr = attr(INodeNo::ROOT, FileType::Directory, 0o755, 0);
const FILE: FileAttr = attr(INodeNo(2), FileType::RegularFile, 0o444, 4096);

const fn attr(ino: INodeNo, kind: FileType, perm: u16, size: u64) -> FileAttr {
    FileAttr {
        ino,
        size,
        blocks: size / 512,
        atime: UNIX_EPOCH,
        mtime: UNIX_EPOCH,
        ctime: UNIX_EPOCH,
        crtime: UNIX_EPOCH,
        kind,
        perm,
        nlink: 1,
        uid: 0,
        gid: 0,
        rdev: 0,
        blksize: 4096,
        flags: 0,
    }
}

impl Filesystem for Stall {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        if parent == INodeNo::ROOT && name == "f" {
            reply.entry(&Duration::from_secs(60), &FILE, fuser::Generation(0));
        } else {
            reply.error(Errno::ENOENT);
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match ino {
            INodeNo::ROOT => reply.attr(&Duration::from_secs(60), &ROOT),
            INodeNo(2) => reply.attr(&Duration::from_secs(60), &FILE),
            _ => reply.error(Errno::ENOENT),
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let (lock, cvar) = &*self.held;
        let mut held = lock.lock().unwrap();
        if held.released {
            reply.data(&vec![0; size as usize]);
        } else {
            held.replies.push(reply);
            cvar.notify_all();
        }
    }
}

/// The stalling filesystem mounted on a fresh directory; dropping it answers every held read
/// and unmounts.
struct StallMount {
    held: Arc<(Mutex<Held>, Condvar)>,
    session: Option<fuser::BackgroundSession>,
    dir: tempfile::TempDir,
}

impl StallMount {
    fn new() -> StallMount {
        let dir = tempfile::Builder::new()
            .prefix("shmfs-jam-")
            .tempdir()
            .expect("mount point");
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let held = Arc::new((Mutex::new(Held::default()), Condvar::new()));
        let mut config = fuser::Config::default();
        config.acl = fuser::SessionACL::All;
        config.mount_options = vec![fuser::MountOption::FSName("shmfs-jam".into())];
        let session = fuser::spawn_mount(
            Stall {
                held: Arc::clone(&held),
            },
            dir.path(),
            &config,
        )
        .expect("mount the stalling FUSE filesystem");
        StallMount {
            held,
            session: Some(session),
            dir,
        }
    }

    fn file(&self) -> PathBuf {
        self.dir.path().join("f")
    }

    /// Waits until at least one read is held.
    fn wait_for_read(&self) {
        let (lock, cvar) = &*self.held;
        let held = lock.lock().unwrap();
        let (held, _) = cvar
            .wait_timeout_while(held, MOUNT_TIMEOUT, |h| h.replies.is_empty())
            .unwrap();
        assert!(
            !held.replies.is_empty(),
            "the jammer's read of its own memory never reached the FUSE filesystem"
        );
    }
}

/// Answers every held read (zeros) and every later one at once.
fn release(held: &Arc<(Mutex<Held>, Condvar)>) {
    let (lock, _) = &**held;
    let mut held = lock.lock().unwrap_or_else(|p| p.into_inner());
    held.released = true;
    for reply in held.replies.drain(..) {
        reply.data(&[0; 4096]);
    }
}

impl Drop for StallMount {
    fn drop(&mut self) {
        release(&self.held);
        if let Some(session) = self.session.take() {
            let _ = session.umount_and_join();
        }
    }
}

/// The jamming process; dropping it releases the stalling filesystem's reads (without which
/// it could not die), then kills and reaps it.
struct Jammer {
    held: Arc<(Mutex<Held>, Condvar)>,
    child: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Jammer {
    fn start(stall: &StallMount, shmids: &[i32]) -> Jammer {
        use std::process::Stdio;
        let mut child = Command::new("setpriv")
            .arg(format!("--reuid={JAMMER}"))
            .arg(format!("--regid={JAMMER}"))
            .arg("--clear-groups")
            .arg(jammer_bin())
            .arg(stall.file())
            .args(shmids.iter().map(|id| id.to_string()))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the jammer");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut jammer = Jammer {
            held: Arc::clone(&stall.held),
            child,
            stdin,
            lines,
        };
        jammer.expect("ready");
        jammer
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn expect(&mut self, want: &str) {
        let got = self.lines.recv_timeout(MOUNT_TIMEOUT);
        assert_eq!(got.as_deref(), Ok(want), "the jammer's answer");
    }

    fn say(&mut self, line: &str, want: &str) {
        use std::io::Write;
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
        self.expect(want);
    }
}

impl Drop for Jammer {
    fn drop(&mut self) {
        release(&self.held);
        self.stdin = None;
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until `n` threads of process `pid` sleep uninterruptibly (the reader in its fault,
/// the mapper queued for the write lock).
fn wait_until_blocked(pid: u32, n: usize) {
    let deadline = Instant::now() + MOUNT_TIMEOUT;
    loop {
        let blocked = fs::read_dir(format!("/proc/{pid}/task"))
            .expect("threads of the jammer")
            .flatten()
            .filter(|t| {
                fs::read_to_string(t.path().join("stat")).is_ok_and(|stat| {
                    stat.rsplit_once(") ")
                        .is_some_and(|(_, rest)| rest.starts_with('D'))
                })
            })
            .count();
        if blocked >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "only {blocked} threads of the jammer blocked after {MOUNT_TIMEOUT:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Whether a thread's read of `path` is still unfinished after `wait` (the thread is left to
/// finish when the jam is released).
fn read_hangs(path: String, wait: Duration) -> bool {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(fs::read(&path).is_ok());
    });
    rx.recv_timeout(wait).is_err()
}

/// Runs `f`, fails the test if it takes longer than `limit` (or hangs), returns its result.
#[track_caller]
fn served<T: Send + 'static>(
    limit: Duration,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (value, took) = within(ANSWERED_WITHIN, what, f);
    assert!(
        took <= limit,
        "{what} took {took:?} (more than {limit:?}) while a process is jammed"
    );
    value
}

/// `ls` of `dir` as `uid`, timed by the shell itself (process start-up not counted): the
/// listing and the time it took.
fn ls_as(uid: u32, dir: &Path) -> (String, Duration) {
    let r = sh_as(
        uid,
        &format!(
            "s=$(date +%s%N); ls {} || exit 1; e=$(date +%s%N); echo \"took $((e - s))\"",
            q(dir)
        ),
    );
    assert!(r.ok(), "ls as uid {uid}: {r:?}");
    let out = r.stdout_str();
    let (list, took) = out.rsplit_once("took ").expect("the time of ls");
    let nanos: u64 = took.trim().parse().expect("nanoseconds");
    (list.to_string(), Duration::from_nanos(nanos))
}

/// How many lines of the daemon's log name pid `pid` as stalled.
fn stall_lines(m: &Mount, pid: u32) -> usize {
    m.log()
        .lines()
        .filter(|l| l.contains("stalled") && l.contains(&format!("pid {pid}")))
        .count()
}

#[test]
fn a_jammed_mmap_lock_stalls_no_one_else() {
    require_fuse!();
    require_tools!("setpriv" => "util-linux", "cc" => "gcc");
    let stall = StallMount::new();

    // The jammer's segments (owned by it, root's bytes in the first) and another of root's
    // that an ordinary helper keeps attached.
    let jammed: Vec<SysvSeg> = (0..3).map(|_| SysvSeg::private(4096, 0o600)).collect();
    jammed[0].attach().write(0, b"jammed bytes");
    for seg in &jammed {
        seg.set(None, Some(JAMMER), Some(JAMMER));
    }
    let other = SysvSeg::private(4096, 0o644);
    let other_id = other.id.to_string();
    let holder = Helper::start(&["sysv-attach", &other_id, "rw"]);

    let ids: Vec<i32> = jammed.iter().map(|s| s.id).collect();
    let mut jammer = Jammer::start(&stall, &ids);
    for seg in &jammed {
        assert_eq!(
            seg.stat().shm_lpid as u32,
            jammer.pid(),
            "the jammer is lpid"
        );
    }

    let m = Mount::builder().option("allow_other").mount();
    let _watchdog = KillOnHang::new(&m, Duration::from_secs(60));

    jammer.say("jam", "reading");
    stall.wait_for_read();
    jammer.say("queue", "queued");
    let pid = jammer.pid();
    wait_until_blocked(pid, 2);
    assert!(
        read_hangs(format!("/proc/{pid}/smaps"), Duration::from_secs(1)),
        "the jam did not take: root's read of /proc/{pid}/smaps finished"
    );
    eprintln!(
        "with the jam, root's read of /proc/{pid}/maps hangs: {}",
        read_hangs(format!("/proc/{pid}/maps"), Duration::from_secs(1))
    );

    // The jammed segments: stat and data answer, not hang. The second open of `data` goes
    // through the jammed process's mapping (`map_files`, which waits on its mmap lock on every
    // kernel; the first open attached briefly and recorded the segment's proof): the daemon
    // gives up on it, says so in its log and attaches briefly instead.
    let stat_of_jammed = |what: &'static str| {
        for seg in &jammed {
            let path = m.sysv(seg.id, "stat");
            let (stat, took) = within(ANSWERED_WITHIN, what, move || {
                fs::metadata(&path).and_then(|_| fs::read_to_string(&path))
            });
            let text = stat.unwrap_or_else(|e| panic!("{what}: {e}"));
            assert!(text.contains("nattch: 1\n"), "{what}: {text}");
            assert!(
                text.contains("hugetlb: no\n") || text.contains("hugetlb: unknown\n"),
                "{what}: {text}"
            );
            eprintln!("{what} of segment {}: {took:?}", seg.id);
        }
    };
    let data_of_jammed = |what: &'static str| {
        let data = m.sysv(jammed[0].id, "data");
        let (bytes, took) = within(ANSWERED_WITHIN, what, move || fs::read(&data));
        let bytes = bytes.unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(&bytes[..12], b"jammed bytes", "{what}");
        eprintln!("{what}: {took:?}");
    };
    stat_of_jammed("stat of a jammed process's segment");
    data_of_jammed("first data of a jammed process's segment");
    data_of_jammed("second data of a jammed process's segment");
    let logged = stall_lines(&m, pid);
    assert!(
        logged >= 1,
        "no log line names the stalled pid {pid} (was map_files opened unbounded, or not \
         at all?):\n{}",
        m.log()
    );

    // Asked again, the daemon does not wait on the jammed process again.
    let start = Instant::now();
    stat_of_jammed("a repeated stat of a jammed process's segment");
    data_of_jammed("a repeated data of a jammed process's segment");
    assert!(
        start.elapsed() <= SERVED_WITHIN,
        "repeated stats and data took {:?}",
        start.elapsed()
    );
    assert_eq!(
        stall_lines(&m, pid),
        logged,
        "the repeated requests waited on the jammed process again:\n{}",
        m.log()
    );

    // Everyone else is served while the jam holds.
    let (list, took) = ls_as(OTHER, &m.p("sysv"));
    assert!(list.lines().any(|l| l == other_id), "{list}");
    assert!(took <= SERVED_WITHIN, "uid {OTHER}'s ls took {took:?}");
    let limits = m.p("limits");
    served(SERVED_WITHIN, "root's cat limits", move || {
        fs::read_to_string(&limits)
    })
    .expect("limits");
    let stat = m.sysv(other.id, "stat");
    let text = served(SERVED_WITHIN, "stat of another segment", move || {
        fs::read_to_string(&stat)
    })
    .expect("stat of another segment");
    assert!(text.contains("hugetlb: no\n"), "{text}");
    let attached = m.sysv(other.id, "attached");
    let text = served(SERVED_WITHIN, "attached of another segment", move || {
        fs::read_to_string(&attached)
    })
    .expect("attached of another segment");
    assert!(
        text.starts_with(&format!("{} ", holder.pid())),
        "attached of another segment: {text:?}"
    );
    let sysv = m.p("sysv");
    served(
        ANSWERED_WITHIN,
        "grep -l of every segment's stat",
        move || sh(&format!("grep -l '^nattch: 0$' {}/*/stat", q(&sysv))),
    );
    let (list, took) = ls_as(JAMMER, &m.p("sysv"));
    assert!(list.lines().any(|l| l == ids[0].to_string()), "{list}");
    assert!(took <= SERVED_WITHIN, "the jammer's own ls took {took:?}");

    // Still jammed at the end: everything above ran against a held lock.
    assert!(
        read_hangs(format!("/proc/{pid}/smaps"), Duration::from_millis(200)),
        "the jam came undone during the test"
    );
    drop(holder);
    drop(jammer);
}

/// `stat` learns `hugetlb` from an attacher's `maps` (the device of its mapping: the kernel's
/// internal hugetlbfs or its tmpfs), not from `smaps`, which waits on the attacher's mmap lock
/// on every kernel: a huge-page segment a helper keeps attached says `yes` before anyone opens
/// its `data`, a normal one `no`.
#[test]
fn hugetlb_is_learned_from_an_attachers_maps() {
    require_fuse!();
    let Some((_pages, huge)) = huge_pages_for_test(2) else {
        return;
    };
    let big = SysvSeg::private(huge, 0o600 | libc::SHM_HUGETLB as u32);
    let normal = SysvSeg::private(4096, 0o600);
    let _big_holder = Helper::start(&["sysv-attach", &big.id.to_string(), "rw"]);
    let _normal_holder = Helper::start(&["sysv-attach", &normal.id.to_string(), "rw"]);
    let m = Mount::new();
    assert_eq!(
        read_fields(&m.sysv(big.id, "stat")).get("hugetlb"),
        "yes",
        "a huge-page segment with an attacher"
    );
    assert_eq!(
        read_fields(&m.sysv(normal.id, "stat")).get("hugetlb"),
        "no",
        "a normal segment with an attacher"
    );
}
