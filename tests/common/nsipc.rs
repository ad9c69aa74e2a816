//! What the `ns/` tests (issue 23: one directory per IPC namespace on the host) make and look
//! at: the `nsipc` C program (`c/nsipc.c`: segments with keys of the test's own, made, written,
//! read and held inside a container), containers holding segments owned by other users and a
//! `/dev/shm` of their own (`NsCtr`, over [`Container`]), IPC namespaces kept alive by nothing
//! but a bind mount (`NsBind`), and how the kernel itself sees a namespace (`nsenter ... ipcs`,
//! the processes in it), to compare `ns/N/` with.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

use super::cc::compile_c;
use super::container::{Container, open_container_dir};
use super::run::{COMMAND_TIMEOUT, Run, q, run_with_timeout, sh, sh_ok};
use super::sysv::random_key;

/// The source of `nsipc` (its opening comment lists its modes).
pub const NSIPC_C: &str = include_str!("c/nsipc.c");

/// The command name of `nsipc`, as `/proc/PID/comm` and `members` show it.
pub const NSIPC_COMM: &str = "nsipc";

/// The user the tests make other users' segments and objects as (`nobody` on Debian).
pub const NOBODY: u32 = 65534;

/// Returns from the test unless the tools of the `ns/` tests are installed (see
/// [`tools_available`](super::preconditions::tools_available)): util-linux's `unshare`,
/// `nsenter`, `ipcs` and `setpriv`, and `cc` for `nsipc`. A test names what else it needs:
/// `require_ns_tools!("hexdump" => "Debian package bsdextrautils");`
#[allow(unused_macros)] // the benchmark shares the harness and has no tests
macro_rules! require_ns_tools {
    ($($cmd:expr => $from:expr),* $(,)?) => {
        if !crate::common::tools_available(&[
            ("unshare", "Debian package util-linux"),
            ("nsenter", "Debian package util-linux"),
            ("ipcs", "Debian package util-linux"),
            ("setpriv", "Debian package util-linux"),
            $(($cmd, $from),)*
            ("cc", "Debian package gcc"),
        ]) {
            return;
        }
    };
}
#[allow(unused_imports)]
pub(crate) use require_ns_tools;

/// A hostname of the test's own, `shmfs-WHAT-XXXX` (what `ns/N/container` and `ns/index` must
/// show of a container given it).
pub fn test_hostname(what: &str) -> String {
    format!("shmfs-{what}-{:04x}", random_key() as u32 & 0xffff)
}

/// Path of the compiled `nsipc`, compiled on first use, once per test binary (see
/// [`compile_c`]: a directory of `/tmp` that other users and the tests' containers, which keep
/// the machine's /tmp, run it from, checked before it is used).
pub fn nsipc_bin() -> &'static Path {
    static BIN_PATH: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN_PATH.get_or_init(|| compile_c(NSIPC_COMM, NSIPC_C))
}

/// The inode number of the IPC namespace `/proc/PID/ns/ipc` (or any nsfs file) names: `N` of
/// `ipc:[N]`, the name of its directory under `ns/`.
pub fn ns_inode(path: &Path) -> u64 {
    fs::metadata(path)
        .unwrap_or_else(|e| panic!("stat -L {}: {e}", path.display()))
        .ino()
}

/// The IPC namespace of process `pid`, as `ns/` names it.
pub fn ipc_ns_of(pid: u32) -> u64 {
    ns_inode(Path::new(&format!("/proc/{pid}/ns/ipc")))
}

/// The processes (as the machine numbers them) whose IPC namespace is `ipc:[ns]`, from every
/// `/proc/PID/ns/ipc` (what `lsns -t ipc` reads).
pub fn processes_in(ns: u64) -> BTreeSet<u32> {
    let want = format!("ipc:[{ns}]");
    fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            fs::read_link(format!("/proc/{pid}/ns/ipc")).is_ok_and(|l| l.to_string_lossy() == want)
        })
        .collect()
}

/// `0x%08x` of a key, as `stat`, `index` and `by-key/` write it.
pub fn key_hex(key: i32) -> String {
    format!("0x{:08x}", key as u32)
}

/// The rows of `ipcs -m` (key, shmid) of a namespace, from the output of an `ipcs -m` run in it.
pub fn parse_ipcs_m(out: &str) -> BTreeMap<i32, String> {
    out.lines()
        .filter(|l| l.starts_with("0x"))
        .map(|l| {
            let mut cols = l.split_whitespace();
            let key = cols.next().unwrap().to_string();
            let id = cols
                .next()
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("cannot parse `ipcs -m` line {l:?}"));
            (id, key)
        })
        .collect()
}

/// A segment a container is to make (see [`CtrSpec`]).
#[derive(Clone, Debug)]
pub struct SegSpec {
    pub key: i32,
    pub size: usize,
    pub mode: u32,
    /// Made as this uid and gid (`setpriv`), or as the container's root.
    pub owner: Option<u32>,
    /// Every byte written at creation (its pages allocated).
    pub fill: bool,
    /// A process of the container (`nsipc hold`) keeps it attached.
    pub hold: bool,
}

impl SegSpec {
    /// A segment of `size` bytes, mode `mode`, a random key, made by the container's root.
    pub fn new(size: usize, mode: u32) -> SegSpec {
        SegSpec {
            key: random_key(),
            size,
            mode,
            owner: None,
            fill: false,
            hold: false,
        }
    }

    pub fn owner(mut self, uid: u32) -> SegSpec {
        self.owner = Some(uid);
        self
    }

    pub fn fill(mut self) -> SegSpec {
        self.fill = true;
        self
    }

    pub fn hold(mut self) -> SegSpec {
        self.hold = true;
        self
    }
}

/// What a container is to hold. Every container of [`NsCtr`] has IPC, mount, UTS and pid
/// namespaces of its own.
#[derive(Clone, Debug, Default)]
pub struct CtrSpec {
    /// Its UTS hostname.
    pub hostname: String,
    /// The size of a tmpfs of its own on /dev/shm (`4m`), or None to keep the machine's.
    pub shm_size: Option<String>,
    /// Files it makes in its /dev/shm: name, content, mode, owner uid (and gid).
    pub posix: Vec<(String, Vec<u8>, u32, Option<u32>)>,
    pub segs: Vec<SegSpec>,
    /// More setup, run last (`$DIR` is the container's directory, `$NSIPC` the helper).
    pub extra: String,
}

/// A segment a container made.
#[derive(Clone, Debug)]
pub struct MadeSeg {
    pub id: i32,
    pub key: i32,
    pub size: usize,
    pub mode: u32,
    /// Who made it, as the machine numbers it (what `cpid` must say from the host).
    pub creator_host_pid: u32,
    /// Who made it, as the container's pid namespace numbers it.
    pub creator_ns_pid: u32,
    /// The process keeping it attached, as the machine numbers it.
    pub holder: Option<u32>,
}

/// A running container made to a [`CtrSpec`]; ended (with every process in it) when dropped.
pub struct NsCtr {
    pub container: Container,
    pub hostname: String,
    /// Its IPC namespace: `N` of `ns/N`.
    pub ns: u64,
    pub segs: Vec<MadeSeg>,
}

impl NsCtr {
    pub fn start(spec: &CtrSpec) -> NsCtr {
        let dir = open_container_dir();
        let mut script = format!("NSIPC={}\n", q(nsipc_bin()));
        if !spec.hostname.is_empty() {
            script += &format!(
                "printf '%s\\n' {} > /proc/sys/kernel/hostname\n",
                q(&spec.hostname)
            );
        }
        if let Some(size) = &spec.shm_size {
            script +=
                &format!("mount -t tmpfs -o size={size},mode=1777 shmfs-test-ns-shm /dev/shm\n");
        }
        for (i, (name, content, mode, owner)) in spec.posix.iter().enumerate() {
            let src = dir.path().join(format!("posix.{i}"));
            fs::write(&src, content).unwrap();
            let dst = q(Path::new("/dev/shm").join(name));
            script += &format!("cat {} > {dst}\nchmod {mode:o} {dst}\n", q(&src));
            if let Some(uid) = owner {
                script += &format!("chown {uid}:{uid} {dst}\n");
            }
        }
        for (i, s) in spec.segs.iter().enumerate() {
            let who = match s.owner {
                Some(uid) => format!("setpriv --reuid={uid} --regid={uid} --clear-groups "),
                None => String::new(),
            };
            script += &format!(
                "{who}\"$NSIPC\" mk {key:#x} {size} 0{mode:o} {fill} > \"$DIR/seg.{i}\"\n",
                key = s.key as u32,
                size = s.size,
                mode = s.mode,
                fill = if s.fill { "fill" } else { "" },
            );
            if s.hold {
                script += &format!(
                    "\"$NSIPC\" hold \"$(cut -d' ' -f2 \"$DIR/seg.{i}\")\" > \"$DIR/hold.{i}\"\n"
                );
            }
        }
        script += &spec.extra;
        let container = Container::start_in(dir, &script);
        let segs = spec
            .segs
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let line = fs::read_to_string(container.dir().join(format!("seg.{i}"))).unwrap();
                let f: Vec<&str> = line.split_whitespace().collect();
                assert!(f.len() == 4 && f[0] == "seg", "nsipc mk printed {line:?}");
                let holder = s.hold.then(|| {
                    let line =
                        fs::read_to_string(container.dir().join(format!("hold.{i}"))).unwrap();
                    line.trim()
                        .strip_prefix("held ")
                        .and_then(|p| p.parse().ok())
                        .unwrap_or_else(|| panic!("nsipc hold printed {line:?}"))
                });
                MadeSeg {
                    id: f[1].parse().unwrap(),
                    key: s.key,
                    size: s.size,
                    mode: s.mode,
                    creator_host_pid: f[2].parse().unwrap(),
                    creator_ns_pid: f[3].parse().unwrap(),
                    holder,
                }
            })
            .collect();
        let ns = ipc_ns_of(container.pid());
        NsCtr {
            container,
            hostname: spec.hostname.clone(),
            ns,
            segs,
        }
    }

    /// The container's first process, as the machine numbers it.
    pub fn pid(&self) -> u32 {
        self.container.pid()
    }

    /// `N` of `ns/N`, as a string.
    pub fn n(&self) -> String {
        self.ns.to_string()
    }

    /// `MNT/ns/N/<rel>` (`rel` may be empty).
    pub fn p(&self, mnt: &Path, rel: &str) -> PathBuf {
        let d = mnt.join("ns").join(self.n());
        if rel.is_empty() { d } else { d.join(rel) }
    }

    /// Runs a shell script in every namespace of the container (nsenter; in its pid namespace
    /// as a new process).
    pub fn sh(&self, script: &str) -> Run {
        run_with_timeout(
            Command::new("nsenter")
                .arg("-t")
                .arg(self.pid().to_string())
                .args([
                    "--ipc", "--mount", "--uts", "--pid", "--", "sh", "-c", script,
                ]),
            COMMAND_TIMEOUT,
        )
    }

    /// Like [`NsCtr::sh`]; must succeed; its stdout.
    #[track_caller]
    pub fn sh_ok(&self, script: &str) -> String {
        let r = self.sh(script);
        assert!(r.ok(), "`{script}` in the container failed: {r:?}");
        r.stdout_str()
    }

    /// `ipcs -m` in the container: shmid -> key.
    pub fn ipcs(&self) -> BTreeMap<i32, String> {
        parse_ipcs_m(&sh_ok(&format!(
            "nsenter -t {} --ipc ipcs -m",
            self.container.pid()
        )))
    }

    /// Ends the container (see [`Container::stop`]).
    pub fn stop(&mut self) {
        self.container.stop();
    }
}

/// An IPC namespace that no process is in, kept alive by nothing but a bind mount of its nsfs
/// file on a file of a temporary directory (`unshare --ipc=FILE true`). Dropping it unmounts the
/// file and removes it (which also detaches the copies that containers started meanwhile made
/// of the bind mount: a mount point removed in one namespace is detached in every other), so
/// the namespace ends.
pub struct NsBind {
    dir: Option<TempDir>,
    file: PathBuf,
    /// `N` of `ns/N`.
    pub ns: u64,
}

impl NsBind {
    pub fn new() -> NsBind {
        let dir = tempfile::Builder::new()
            .prefix("shmfs-nsbind-")
            .tempdir()
            .expect("create a directory for the bind mount");
        let file = dir.path().join("ipc");
        fs::write(&file, "").unwrap();
        let mut me = NsBind {
            dir: Some(dir),
            file,
            ns: 0,
        };
        let r = sh(&format!("unshare --ipc={} true", q(&me.file)));
        assert!(r.ok(), "unshare --ipc=FILE true: {r:?}");
        me.ns = ns_inode(&me.file);
        me
    }

    /// The bind-mounted nsfs file.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// Runs a shell script in the namespace (`nsenter --ipc=FILE`).
    pub fn sh(&self, script: &str) -> Run {
        run_with_timeout(
            Command::new("nsenter")
                .arg(format!("--ipc={}", self.file.display()))
                .args(["--", "sh", "-c", script]),
            COMMAND_TIMEOUT,
        )
    }

    /// Makes a segment there with `nsipc mk`; its shmid.
    pub fn mk(&self, key: i32, size: usize, mode: u32) -> i32 {
        let script = format!("{} mk {:#x} {size} 0{mode:o}", q(nsipc_bin()), key as u32);
        let r = self.sh(&script);
        assert!(r.ok(), "{script} in the bound namespace: {r:?}");
        r.stdout_str()
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("nsipc mk printed {r:?}"))
    }

    /// `ipcs -m` in the namespace: shmid -> key.
    pub fn ipcs(&self) -> BTreeMap<i32, String> {
        let r = self.sh("ipcs -m");
        assert!(r.ok(), "ipcs -m in the bound namespace: {r:?}");
        parse_ipcs_m(&r.stdout_str())
    }

    /// Unmounts and removes the file: from then on nothing holds the namespace.
    pub fn release(&mut self) {
        for _ in 0..4 {
            let r = sh(&format!("umount {} 2>&1", q(&self.file)));
            if !r.ok() {
                break;
            }
        }
        let _ = fs::remove_file(&self.file);
        self.dir.take();
    }
}

impl Drop for NsBind {
    fn drop(&mut self) {
        if self.dir.is_some() {
            self.release();
        }
    }
}

/// A table file of the mount (`ns/index`, `members`): its header's columns, and its rows as
/// column -> value. Panics if a row does not have one value per column.
pub fn read_table(p: &Path) -> (Vec<String>, Vec<BTreeMap<String, String>>) {
    let text = fs::read_to_string(p).unwrap_or_else(|e| panic!("cat {}: {e}", p.display()));
    parse_table(&text, &p.display().to_string())
}

/// See [`read_table`].
pub fn parse_table(text: &str, what: &str) -> (Vec<String>, Vec<BTreeMap<String, String>>) {
    let mut lines = text.lines();
    let header: Vec<String> = lines
        .next()
        .unwrap_or_else(|| panic!("{what} is empty"))
        .split_whitespace()
        .map(String::from)
        .collect();
    let rows = lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(
                cols.len(),
                header.len(),
                "{what}: row {l:?} has not one value per column of {header:?}"
            );
            header
                .iter()
                .cloned()
                .zip(cols.into_iter().map(String::from))
                .collect()
        })
        .collect();
    (header, rows)
}

/// The columns of `ns/index`, as issue 23 and shmfs(5) give them.
pub const NS_INDEX_HEADER: [&str; 10] = [
    "NS",
    "CONTAINER",
    "HOSTNAME",
    "PROCS",
    "SEGMENTS",
    "BYTES",
    "RSS",
    "ORPHANS",
    "SHM_USED",
    "SHM_SIZE",
];

/// The row of `MNT/ns/index` for namespace `ns`, if any (checks the header).
#[track_caller]
pub fn ns_index_row(mnt: &Path, ns: u64) -> Option<BTreeMap<String, String>> {
    let (header, rows) = read_table(&mnt.join("ns/index"));
    assert_eq!(header, NS_INDEX_HEADER, "the header of ns/index");
    let n = ns.to_string();
    let mut found = rows.into_iter().filter(|r| r["NS"] == n);
    let row = found.next();
    assert!(found.next().is_none(), "ns/index has two rows for {n}");
    row
}

/// The warnings and errors in a daemon's log (its last 10), to say why a namespace is missing
/// from `ns/` (a system call its sandbox refused, say).
pub fn log_warnings(log: &str) -> String {
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("WARN") || l.contains("ERROR") || l.contains("panicked"))
        .collect();
    lines[lines.len().saturating_sub(10)..].join("\n")
}

/// Asserts that `ls MNT/ns/` (as root) lists namespace `ns`, or fails with the daemon's
/// warnings.
#[track_caller]
pub fn assert_ns_listed(m: &super::mount::Mount, ns: u64) {
    let listed = super::files::ls(&m.p("ns"));
    assert!(
        listed.contains(&ns.to_string()),
        "`ls ns/` as root shows {listed:?}, not {ns}; the daemon's warnings:\n{}",
        log_warnings(&m.log())
    );
}
