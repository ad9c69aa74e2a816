//! Shares that hold: a user's share of the daemon's descriptors and of the memory of rendered
//! text and listings counts its subordinate uids (`/etc/subuid`) as its own, root always keeps
//! a reserve, and 400 held opens of a large `index.json` (or of a large directory) cost the
//! daemon tens of MiB at most, given back when they close.
//!
//! Each test runs the daemon in a `World` (private mount and IPC namespaces), where the test's
//! own subuid file is bind-mounted on /etc/subuid, so that nothing of the machine changes.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// The user with subordinate uids (named `shmfs-test` in the world, and named so in subuid).
const OWNER: u32 = 12345;
/// OWNER's subordinate uids: `shmfs-test:200000:65536`.
const SUB: u32 = 200000;
/// A user whose range is given by uid: `12346:300000:65536`.
const NUMERIC: u32 = 12346;
const NUMERIC_SUB: u32 = 300000;
/// Users without ranges.
const OTHERS: [u32; 3] = [12347, 12348, 12349];
/// The daemon's descriptor limit in these tests: a share (a quarter) is 100 descriptors, all
/// users together may hold 350 (an eighth is root's reserve).
const LIMIT: usize = 400;
const SHARE: usize = LIMIT / 4;
const POOL: usize = LIMIT - LIMIT / 8;

const SUBUID: &str = "shmfs-test:200000:65536\n\
                      this line is not a range\n\
                      12346:300000:65536\n";

/// A world with a user database naming OWNER, the test's /etc/subuid, and `shmfs -f` run by
/// root with `allow_other` on `mnt` (its daemon's pid `pid`, its output in `log`). Dropping it
/// fails the test if the daemon's output shows a panic or a system call its sandbox refused.
struct Setup {
    world: World,
    mnt: PathBuf,
    pid: u32,
    log: PathBuf,
}

impl Setup {
    /// None when the world cannot be made here (after `unavailable`).
    fn new(shm_size: &str) -> Option<Setup> {
        let world = World::with_shm_size(shm_size);
        if !world.allow_user(OWNER) {
            return None;
        }
        let subuid = world.dir().join("subuid");
        std::fs::write(&subuid, SUBUID).unwrap();
        world.sh_ok(&format!("mount --bind {} /etc/subuid", q(&subuid)));
        let mnt = world.mkdir("mnt");
        let log = world.dir().join("daemon.log");
        world.sh_ok(&format!(
            "{} -f -o allow_other {} >{} 2>&1 </dev/null &",
            q(BIN),
            q(&mnt),
            q(&log)
        ));
        let start = Instant::now();
        let pid = loop {
            if let [pid] = pids_with_arg(&mnt)[..]
                && world.mount_at(&mnt).is_some()
            {
                break pid as u32;
            }
            assert!(
                start.elapsed() < MOUNT_TIMEOUT,
                "no mount on {mnt:?}: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        Some(Setup {
            world,
            mnt,
            pid,
            log,
        })
    }

    /// What the daemon printed so far.
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn p(&self, rel: &str) -> PathBuf {
        self.mnt.join(rel)
    }

    /// A process of `uid` (root: 0) in the world holding opens of `path` (see [`Hog`]).
    fn hog(&self, uid: u32, path: &Path, tries: usize) -> Hog {
        Hog::start(&self.world, uid, path, tries, None)
    }

    /// The daemon's resident memory in KiB.
    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no VmRSS in {status}"))
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        let log = self.log();
        if !std::thread::panicking() {
            assert!(
                !log.contains("panicked at") && !log.contains("seccomp refused"),
                "the daemon's log: {log}"
            );
        }
    }
}

/// A process of `uid` in the world that opens `path` up to `tries` times (growing its own
/// object `grow` by a byte before each open, if given, so that every `index.json` it opens is
/// a new text), reports how many it holds and the errno of the first refusal, and keeps them
/// open until it is dropped.
struct Hog {
    child: Child,
    held: usize,
    refused_with: String,
}

impl Hog {
    fn start(world: &World, uid: u32, path: &Path, tries: usize, grow: Option<&str>) -> Hog {
        let script = format!(
            "import errno, os, sys\n\
             grow = {grow}\n\
             g = os.open(grow, os.O_RDWR | os.O_CREAT, 0o600) if grow else None\n\
             fds, err = [], 'none'\n\
             for i in range({tries}):\n    \
                 if g is not None: os.ftruncate(g, i + 1)\n    \
                 try:\n        fds.append(os.open({path:?}, os.O_RDONLY))\n    \
                 except OSError as e:\n        err = errno.errorcode[e.errno]; break\n\
             print(len(fds), err, flush=True)\n\
             sys.stdin.read()\n",
            grow = grow.map_or("None".to_string(), |g| format!("{g:?}")),
            path = path.display().to_string(),
        );
        let mut child = in_world_as(world, uid)
            .args(["/usr/bin/python3", "-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start python3 in the world");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("hog's report");
        let mut words = line.split_whitespace();
        let held = words
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("hog of uid {uid} printed {line:?}"));
        let refused_with = words.next().unwrap_or("").to_string();
        Hog {
            child,
            held,
            refused_with,
        }
    }

    fn got(&self) -> (usize, &str) {
        (self.held, self.refused_with.as_str())
    }
}

impl Drop for Hog {
    fn drop(&mut self) {
        // nsenter passes the signal on to the hog, and waits for it.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A command that runs in the world's namespaces as `uid` (uid and gid, no supplementary
/// groups; root as it is).
fn in_world_as(world: &World, uid: u32) -> std::process::Command {
    let mut cmd = world.nsenter();
    if uid != 0 {
        cmd.arg("setpriv")
            .arg(format!("--reuid={uid}"))
            .arg(format!("--regid={uid}"))
            .arg("--clear-groups");
    }
    cmd
}

/// Whether `uid` can read `path` through the mount now (opens and closes it).
fn can_read(world: &World, uid: u32, path: &Path) -> Run {
    run_with_timeout(
        in_world_as(world, uid).args(["sh", "-c", &format!("cat {} >/dev/null", q(path))]),
        COMMAND_TIMEOUT,
    )
}

fn limit_descriptors(s: &Setup) {
    let r = sh(&format!("prlimit --pid {} --nofile={LIMIT}:{LIMIT}", s.pid));
    assert!(r.ok(), "prlimit on the daemon: {r:?}");
}

#[test]
fn subordinate_uids_share_their_users_descriptors_and_root_keeps_a_reserve() {
    require_fuse!();
    require_tools!("python3" => "Debian package python3", "prlimit" => "Debian package util-linux");
    let Some(s) = Setup::new("64m") else {
        return;
    };
    limit_descriptors(&s);
    s.world
        .sh_ok("printf 'everyone may read this' > /dev/shm/public && chmod 644 /dev/shm/public");
    let data = s.p("posix/public/data");

    // Five of OWNER's subordinate uids between them get OWNER's one share, no more.
    let quarter = SHARE / 4;
    let subs: Vec<Hog> = (0..4).map(|i| s.hog(SUB + i, &data, quarter)).collect();
    for (i, hog) in subs.iter().enumerate() {
        assert_eq!(
            hog.got(),
            (quarter, "none"),
            "subordinate uid {}",
            SUB + i as u32
        );
    }
    let fifth = s.hog(SUB + 65535, &data, 10);
    assert_eq!(
        fifth.got(),
        (0, "EMFILE"),
        "the last of OWNER's subordinate uids"
    );
    let own = s.hog(OWNER, &data, 10);
    assert_eq!(own.got(), (0, "EMFILE"), "OWNER's own uid, its share held");
    let past = s.hog(SUB + 65536, &data, 10);
    assert_eq!(
        past.got(),
        (10, "none"),
        "the uid after OWNER's range is not OWNER's"
    );
    drop(past);

    // Everyone else keeps working: another user (whose range is named by uid), root.
    let numeric = s.hog(NUMERIC_SUB, &data, 10);
    assert_eq!(
        numeric.got(),
        (10, "none"),
        "uid {NUMERIC}'s subordinate uid"
    );
    let r = can_read(&s.world, OTHERS[0], &data);
    assert!(
        r.ok(),
        "uid {} reading while OWNER holds its share: {r:?}",
        OTHERS[0]
    );
    let r = can_read(&s.world, 0, &data);
    assert!(r.ok(), "root reading while OWNER holds its share: {r:?}");

    // A subordinate uid's close gives OWNER's share back, to any of its uids.
    drop(subs);
    drop(fifth);
    drop(own);
    retry(50, || match s.hog(OWNER, &data, 3).got() {
        (3, _) => Ok(()),
        got => Err(format!("after closing, OWNER got {got:?}")),
    });

    // Users together never take root's reserve: NUMERIC (through two of its uids), OWNER and
    // two more users fill what all users may hold; a fifth user is refused, root is not.
    let mut held = vec![numeric];
    held.push(s.hog(NUMERIC_SUB + 1, &data, SHARE));
    assert_eq!(
        held[1].got(),
        (SHARE - 10, "EMFILE"),
        "uid {NUMERIC}, second uid"
    );
    held.push(s.hog(OWNER, &data, SHARE));
    held.push(s.hog(OTHERS[0], &data, SHARE));
    let third = s.hog(OTHERS[1], &data, SHARE);
    assert_eq!(
        third.got(),
        (POOL - 3 * SHARE, "EMFILE"),
        "the user that reaches what all users may hold"
    );
    held.push(third);
    let late = s.hog(OTHERS[2], &data, 10);
    assert_eq!(
        late.got(),
        (0, "EMFILE"),
        "a user once all users' part is held"
    );
    assert!(
        s.log()
            .contains("user 12345 holds 100 open data files, its share"),
        "the refusal is logged: {}",
        s.log()
    );
    let root = s.hog(0, &data, 20);
    assert_eq!(root.got(), (20, "none"), "root, from its reserve");
    for report in ["index", "index.json", "limits", "posix/public/stat"] {
        let r = can_read(&s.world, 0, &s.p(report));
        assert!(r.ok(), "root reading {report}: {r:?}");
    }
}

/// How many POSIX objects the text test makes, and how long their names are: `index.json`
/// is then over a megabyte.
const OBJECTS: usize = 3000;
const NAME_LEN: usize = 200;

#[test]
fn held_opens_of_a_large_index_cost_tens_of_mib_and_come_back() {
    require_fuse!();
    require_tools!("python3" => "Debian package python3");
    let Some(s) = Setup::new("64m") else {
        return;
    };
    s.world.sh_ok(&format!(
        "cd /dev/shm && i=0; while [ $i -lt {OBJECTS} ]; do \
         : > \"$(printf 'object-%0{NAME_LEN}d' $i)\"; i=$((i+1)); done"
    ));
    let index = s.p("index.json");
    let len: u64 = s
        .world
        .sh_ok(&format!("stat -c %s {}", q(&index)))
        .trim()
        .parse()
        .unwrap();
    assert!(
        len > 1 << 20,
        "index.json is {len} bytes, not over a megabyte"
    );
    // The daemon as it is after one reading of the index.
    assert!(can_read(&s.world, 0, &index).ok());
    assert!(
        s.world
            .sh(&format!("ls {} >/dev/null", q(s.p("posix"))))
            .ok()
    );
    let before = s.rss_kib();

    // 400 opens of the same moment hold one copy.
    let hog = s.hog(OWNER, &index, 400);
    assert_eq!(hog.got(), (400, "none"), "400 opens of index.json by OWNER");
    // So do 400 opens of the directory (each an opendir, holding its listing).
    let dirs = s.hog(OWNER, &s.p("posix"), 400);
    assert_eq!(dirs.got(), (400, "none"), "400 opens of posix/ by OWNER");
    let held = s.rss_kib();
    assert!(
        held < before + 32 * 1024,
        "with 400 opens of a {len}-byte index.json and 400 of a {OBJECTS}-entry directory \
         held, the daemon grew from {before} KiB to {held} KiB"
    );

    // Opens that each hold a different text (the hog grows an object of its own before each)
    // are bounded by the user's share, also when spread over its subordinate uids.
    let varying = Hog::start(
        &s.world,
        SUB,
        &index,
        400,
        Some(&format!("/dev/shm/grow-{SUB}")),
    );
    assert_eq!(varying.refused_with, "ENOMEM", "{:?}", varying.got());
    assert!(
        varying.held >= 2 && varying.held <= 16,
        "{} different texts of {len} bytes within a 16 MiB share",
        varying.held
    );
    let more = Hog::start(
        &s.world,
        SUB + 1,
        &index,
        10,
        Some(&format!("/dev/shm/grow-{}", SUB + 1)),
    );
    assert_eq!(
        more.got(),
        (0, "ENOMEM"),
        "another of OWNER's uids, OWNER's share held"
    );
    assert!(
        s.log()
            .contains("its opens of text files and directories fail with ENOMEM"),
        "the refusal is logged: {}",
        s.log()
    );
    let full = s.rss_kib();
    assert!(
        full < before + 48 * 1024,
        "with OWNER's share of text held, the daemon grew from {before} KiB to {full} KiB"
    );

    // Root and other users still read it, and everything else.
    for uid in [0, OTHERS[0], NUMERIC] {
        for report in ["index.json", "index", "metrics.prom"] {
            let r = can_read(&s.world, uid, &s.p(report));
            assert!(
                r.ok(),
                "uid {uid} reading {report} while OWNER's share is held: {r:?}"
            );
        }
    }

    eprintln!(
        "index.json {len} bytes; daemon RSS {before} KiB before, {held} KiB with 400 opens, \
         {full} KiB with {} more different texts",
        varying.held
    );

    // Closed, the memory comes back.
    drop(hog);
    drop(dirs);
    drop(varying);
    drop(more);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let after = s.rss_kib();
        if after < before + 8 * 1024 {
            eprintln!("daemon RSS {after} KiB after the opens closed");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "after the opens closed the daemon holds {after} KiB, {before} KiB before them"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // And the share: OWNER may hold its 400 opens again.
    let again = s.hog(OWNER, &index, 400);
    assert_eq!(again.got(), (400, "none"), "OWNER after its opens closed");
}
