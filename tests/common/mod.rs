//! Shared harness for the shmfs integration tests.
//!
//! Every test that needs a real FUSE mount calls `require_fuse!()` first. Each test gets its own
//! mount (`Mount`), its own private directory under /dev/shm for POSIX objects, and its own SysV
//! segments (`SysvSeg`), so tests can run in parallel and never touch what they did not create.

#![allow(dead_code)]

use std::collections::{BTreeSet, HashMap};
use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tempfile::TempDir;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_shmfs");

/// How long a mount may take to come up, and a daemon to exit after a signal.
pub const MOUNT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long any shell command may run before the test calls it hung.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------------
// Preconditions
// ---------------------------------------------------------------------------------------------

/// Returns true when FUSE tests can run here (root and /dev/fuse).
///
/// Otherwise: if `CI` is set (non-empty) it panics, because CI must run these tests; else it
/// prints "skipping: ..." and returns false.
pub fn fuse_available() -> bool {
    let reason = if unsafe { libc::geteuid() } != 0 {
        Some("not running as root")
    } else if !Path::new("/dev/fuse").exists() {
        Some("/dev/fuse does not exist")
    } else {
        None
    };
    let Some(reason) = reason else {
        return true;
    };
    if std::env::var_os("CI").is_some_and(|v| !v.is_empty()) {
        panic!(
            "shmfs integration tests need root and /dev/fuse, but {reason}; \
             CI is set, so this is a failure rather than a skip"
        );
    }
    eprintln!("skipping: {reason} (shmfs integration tests need root and /dev/fuse)");
    false
}

/// First line of every FUSE test: returns from the test when FUSE tests cannot run here.
macro_rules! require_fuse {
    () => {
        if !crate::common::fuse_available() {
            return;
        }
    };
}
pub(crate) use require_fuse;

// ---------------------------------------------------------------------------------------------
// Running commands
// ---------------------------------------------------------------------------------------------

/// What a finished command left behind.
pub struct Run {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Run {
    pub fn ok(&self) -> bool {
        self.status.success()
    }

    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "status {}, stdout {:?}, stderr {:?}",
            self.status,
            String::from_utf8_lossy(&self.stdout),
            self.stderr
        )
    }
}

/// Runs `cmd` to completion with stdin from /dev/null and stdout/stderr captured in files (not
/// pipes, so that a process that wrongly daemonizes with inherited stdio cannot hang the test).
/// Panics if it runs longer than `timeout`.
pub fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> Run {
    let out = tempfile::tempfile().expect("create stdout capture file");
    let err = tempfile::tempfile().expect("create stderr capture file");
    cmd.stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(err.try_clone().unwrap())
        .env("LC_ALL", "C");
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} did not finish within {timeout:?} (hung filesystem?)");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let elapsed = start.elapsed();
    Run {
        status,
        stdout: read_all(out),
        stderr: String::from_utf8_lossy(&read_all(err)).into_owned(),
        elapsed,
    }
}

fn read_all(mut f: fs::File) -> Vec<u8> {
    use std::io::{Read, Seek};
    f.seek(io::SeekFrom::Start(0)).unwrap();
    let mut v = Vec::new();
    f.read_to_end(&mut v).unwrap();
    v
}

/// Runs a shell script (`sh -c`), with `LC_ALL=C` so error messages are predictable.
pub fn sh(script: &str) -> Run {
    run_with_timeout(Command::new("sh").arg("-c").arg(script), COMMAND_TIMEOUT)
}

/// Runs a shell script that must succeed; returns its stdout.
pub fn sh_ok(script: &str) -> String {
    let r = sh(script);
    assert!(r.ok(), "`{script}` failed: {r:?}");
    r.stdout_str()
}

/// Runs a shell script as another user (uid and gid `id`, no supplementary groups).
pub fn sh_as(id: u32, script: &str) -> Run {
    run_with_timeout(
        Command::new("setpriv")
            .arg(format!("--reuid={id}"))
            .arg(format!("--regid={id}"))
            .arg("--clear-groups")
            .arg("sh")
            .arg("-c")
            .arg(script),
        COMMAND_TIMEOUT,
    )
}

/// Quotes a path for a shell script.
pub fn q(p: impl AsRef<Path>) -> String {
    let s = p.as_ref().to_str().expect("utf-8 path");
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The errno of an io::Error (panics if it has none).
pub fn errno(e: &io::Error) -> i32 {
    e.raw_os_error()
        .unwrap_or_else(|| panic!("error without errno: {e}"))
}

/// Asserts that `r` failed with errno `want`, naming `what` the user did.
#[track_caller]
pub fn assert_errno<T: std::fmt::Debug>(r: io::Result<T>, want: i32, what: &str) {
    match r {
        Ok(v) => panic!(
            "{what}: expected it to fail with {}, but it succeeded ({v:?})",
            errno_name(want)
        ),
        Err(e) => assert_eq!(
            errno(&e),
            want,
            "{what}: expected {}, got {e}",
            errno_name(want)
        ),
    }
}

pub fn errno_name(e: i32) -> String {
    let name = match e {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::EACCES => "EACCES",
        libc::EINVAL => "EINVAL",
        libc::ENOSPC => "ENOSPC",
        libc::EROFS => "EROFS",
        libc::EEXIST => "EEXIST",
        _ => return format!("errno {e} ({})", io::Error::from_raw_os_error(e)),
    };
    format!("{name} ({})", io::Error::from_raw_os_error(e))
}

// ---------------------------------------------------------------------------------------------
// Mounts
// ---------------------------------------------------------------------------------------------

/// Device number of `p` (stat, follows nothing special).
fn dev_of(p: &Path) -> Option<u64> {
    fs::metadata(p).ok().map(|m| m.dev())
}

/// True when `p`'s st_dev differs from its parent's: something answers there.
pub fn st_dev_differs_from_parent(p: &Path) -> bool {
    match (dev_of(p), p.parent().and_then(dev_of)) {
        (Some(a), Some(b)) => a != b,
        _ => false,
    }
}

/// True when /proc/self/mountinfo lists `p` as a mount point (never blocks on the filesystem).
pub fn is_listed_in_mountinfo(p: &Path) -> bool {
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let want = p.to_str().unwrap().replace(' ', "\\040");
    info.lines()
        .any(|l| l.split(' ').nth(4).is_some_and(|mp| mp == want))
}

/// Lazily unmounts `p` until mountinfo no longer lists it (at most a few times).
pub fn force_unmount(p: &Path) {
    for _ in 0..4 {
        if !is_listed_in_mountinfo(p) {
            return;
        }
        let _ = Command::new("umount")
            .arg("-l")
            .arg(p)
            .stderr(Stdio::null())
            .status();
    }
}

/// Waits up to `timeout` for `child` to exit.
pub fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let start = Instant::now();
    loop {
        if let Ok(Some(s)) = child.try_wait() {
            return Some(s);
        }
        if start.elapsed() > timeout {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Options for a test mount.
pub struct MountBuilder {
    options: Vec<String>,
    args: Vec<String>,
    private_shm_dir: bool,
}

impl MountBuilder {
    /// Adds a `-o` mount option (`ro`, `allow_other`, ...).
    pub fn option(mut self, opt: &str) -> Self {
        self.options.push(opt.to_string());
        self
    }

    /// Adds command-line arguments before the mount point (`--pid PID`, `--ipc-ns PATH`).
    pub fn args(mut self, args: &[String]) -> Self {
        self.args.extend_from_slice(args);
        self
    }

    /// Does not pass `--shm-dir`: the mount shows the real /dev/shm.
    pub fn system_shm_dir(mut self) -> Self {
        self.private_shm_dir = false;
        self
    }

    pub fn mount(self) -> Mount {
        let mnt = tempfile::Builder::new()
            .prefix("shmfs-mnt-")
            .tempdir()
            .expect("create mount point");
        let shm = if self.private_shm_dir {
            Some(
                tempfile::Builder::new()
                    .prefix("shmfs-test-")
                    .tempdir_in("/dev/shm")
                    .expect("create private directory under /dev/shm"),
            )
        } else {
            None
        };
        let log = tempfile::NamedTempFile::new().expect("create daemon log file");

        let mut cmd = Command::new(BIN);
        cmd.arg("-f");
        if !self.options.is_empty() {
            cmd.arg("-o").arg(self.options.join(","));
        }
        if let Some(shm) = &shm {
            cmd.arg("--shm-dir").arg(shm.path());
        }
        cmd.args(&self.args)
            .arg(mnt.path())
            .stdin(Stdio::null())
            .stdout(log.reopen().unwrap())
            .stderr(log.reopen().unwrap());
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));

        let mut m = Mount {
            child: Some(child),
            mnt: Some(mnt),
            shm,
            log,
        };
        m.wait_until_mounted(&cmd);
        m
    }
}

/// A running `shmfs -f` on a fresh temporary mount point. Dropping it unmounts (SIGTERM) and
/// cleans up.
pub struct Mount {
    child: Option<Child>,
    mnt: Option<TempDir>,
    shm: Option<TempDir>,
    log: tempfile::NamedTempFile,
}

impl Mount {
    /// `shmfs -f --shm-dir /dev/shm/shmfs-test-XXXX MNT`.
    pub fn new() -> Mount {
        Mount::builder().mount()
    }

    pub fn builder() -> MountBuilder {
        MountBuilder {
            args: Vec::new(),
            options: Vec::new(),
            private_shm_dir: true,
        }
    }

    fn wait_until_mounted(&mut self, cmd: &Command) {
        let start = Instant::now();
        loop {
            if st_dev_differs_from_parent(self.path()) {
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                self.child = None;
                panic!(
                    "{cmd:?} exited with {status} before the mount came up; its output:\n{}",
                    self.log()
                );
            }
            if start.elapsed() > MOUNT_TIMEOUT {
                panic!(
                    "{cmd:?}: mount point still not mounted after {MOUNT_TIMEOUT:?}; output:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        self.mnt.as_ref().unwrap().path()
    }

    /// The private shm directory given with --shm-dir (panics if the mount has none).
    pub fn shm_dir(&self) -> &Path {
        self.shm
            .as_ref()
            .expect("mount without private --shm-dir")
            .path()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("daemon already stopped").id()
    }

    /// Everything the daemon printed so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// `MNT/<rel>`.
    pub fn p(&self, rel: &str) -> PathBuf {
        self.path().join(rel)
    }

    /// `MNT/sysv/<id>`.
    pub fn sysv_dir(&self, id: i32) -> PathBuf {
        self.path().join("sysv").join(id.to_string())
    }

    /// `MNT/sysv/<id>/<file>`.
    pub fn sysv(&self, id: i32, file: &str) -> PathBuf {
        self.sysv_dir(id).join(file)
    }

    /// `MNT/posix/<name>`.
    pub fn posix_dir(&self, name: &str) -> PathBuf {
        self.path().join("posix").join(name)
    }

    /// `MNT/posix/<name>/<file>`.
    pub fn posix(&self, name: &str, file: &str) -> PathBuf {
        self.posix_dir(name).join(file)
    }

    /// The shmids listed in `MNT/sysv`.
    pub fn ls_sysv(&self) -> BTreeSet<i32> {
        fs::read_dir(self.p("sysv"))
            .expect("ls MNT/sysv")
            .map(|e| {
                let name = e.unwrap().file_name();
                let name = name.to_str().unwrap().to_string();
                name.parse()
                    .unwrap_or_else(|_| panic!("MNT/sysv has a non-numeric entry {name:?}"))
            })
            .collect()
    }

    /// The names listed in a directory of the mount.
    pub fn ls(&self, rel: &str) -> BTreeSet<String> {
        ls(&self.p(rel))
    }

    /// Sends `sig` to the daemon and waits (up to MOUNT_TIMEOUT) for it to exit.
    /// Returns its exit status, or None if it did not exit in time.
    pub fn signal_and_wait(&mut self, sig: i32) -> Option<ExitStatus> {
        let mut child = self.child.take().expect("daemon already stopped");
        unsafe {
            libc::kill(child.id() as i32, sig);
        }
        let status = wait_timeout(&mut child, MOUNT_TIMEOUT);
        if status.is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
        status
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            unsafe {
                libc::kill(child.id() as i32, libc::SIGTERM);
            }
            if wait_timeout(&mut child, MOUNT_TIMEOUT).is_none() {
                eprintln!("shmfs did not exit within {MOUNT_TIMEOUT:?} of SIGTERM; forcing");
                force_unmount(self.path());
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        let path = self.path().to_path_buf();
        force_unmount(&path);
        if is_listed_in_mountinfo(&path) {
            // Never recurse into a live shmfs: removing its tree would remove segments.
            eprintln!("{} is still mounted; leaving it in place", path.display());
            let _ = self.mnt.take().unwrap().keep();
        }
    }
}

/// Names in a directory.
pub fn ls(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("ls {}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_str().unwrap().to_string())
        .collect()
}

/// Asserts that `dir` lists at least `names` (README documents further entries, such as
/// `attached`, `index` and `index.json`, beyond DESIGN §1's layout).
#[track_caller]
pub fn assert_has_entries(dir: &Path, names: &[&str]) {
    let have = ls(dir);
    let missing: Vec<&&str> = names.iter().filter(|n| !have.contains(**n)).collect();
    assert!(
        missing.is_empty(),
        "`ls {}` shows {have:?}, missing {missing:?}",
        dir.display()
    );
}

/// Pids of shmfs daemons whose command line contains `arg` as one argument. Other programs
/// that name the mount point (fusermount3's auto-unmount watchdog) do not count.
pub fn pids_with_arg(arg: &Path) -> Vec<i32> {
    let me = std::process::id() as i32;
    let want = arg.as_os_str().as_bytes();
    let mut pids = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_str().unwrap_or("").parse::<i32>() else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(cmdline) = fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let is_shmfs = fs::read_to_string(e.path().join("comm")).is_ok_and(|c| c.trim() == "shmfs");
        if is_shmfs && cmdline.split(|b| *b == 0).any(|a| a == want) && !is_zombie(pid) {
            pids.push(pid);
        }
    }
    pids
}

/// True when `pid` is gone or a zombie.
pub fn is_zombie(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(s) => s
            .rsplit_once(')')
            .map(|(_, rest)| rest.trim_start().starts_with('Z'))
            .unwrap_or(true),
    }
}

// ---------------------------------------------------------------------------------------------
// "name: value" text (stat, perm, limits)
// ---------------------------------------------------------------------------------------------

/// The `name: value` lines of a text file, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Fields(pub Vec<(String, String)>);

impl Fields {
    pub fn parse(text: &str) -> Fields {
        assert!(
            text.ends_with('\n'),
            "text does not end with a newline: {text:?}"
        );
        Fields(
            text.lines()
                .map(|l| {
                    let (n, v) = l
                        .split_once(": ")
                        .unwrap_or_else(|| panic!("line {l:?} is not `name: value` in {text:?}"));
                    (n.to_string(), v.to_string())
                })
                .collect(),
        )
    }

    pub fn names(&self) -> Vec<&str> {
        self.0.iter().map(|(n, _)| n.as_str()).collect()
    }

    #[track_caller]
    pub fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("no `{name}:` line in {:?}", self.0))
    }

    #[track_caller]
    pub fn num(&self, name: &str) -> u64 {
        let v = self.get(name);
        v.parse()
            .unwrap_or_else(|_| panic!("`{name}: {v}` is not a decimal number"))
    }
}

/// Reads a text file of the mount and parses its `name: value` lines.
pub fn read_fields(p: &Path) -> Fields {
    Fields::parse(&read_text(p))
}

pub fn read_text(p: &Path) -> String {
    fs::read_to_string(p).unwrap_or_else(|e| panic!("cat {}: {e}", p.display()))
}

// ---------------------------------------------------------------------------------------------
// System V segments
// ---------------------------------------------------------------------------------------------

/// A random, non-zero key, unlikely to collide with other tests or other users of the machine.
pub fn random_key() -> i32 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut x =
        (u64::from(std::process::id()) << 32) ^ nanos ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    // splitmix64 finaliser
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    match x as u32 as i32 {
        0 => random_key(),
        k => k,
    }
}

/// `shmctl(id, IPC_STAT)`.
pub fn ipc_stat(id: i32) -> io::Result<libc::shmid_ds> {
    let mut ds: libc::shmid_ds = unsafe { std::mem::zeroed() };
    if unsafe { libc::shmctl(id, libc::IPC_STAT, &mut ds) } == 0 {
        Ok(ds)
    } else {
        Err(io::Error::last_os_error())
    }
}

pub const SHM_DEST: u32 = 0o1000;
pub const SHM_LOCKED: u32 = 0o2000;

/// A System V segment created by this test; removed (IPC_RMID) when dropped.
pub struct SysvSeg {
    pub id: i32,
    pub key: i32,
    pub size: usize,
    removed: bool,
}

impl SysvSeg {
    /// `shmget(IPC_PRIVATE, size, IPC_CREAT|IPC_EXCL|mode)`.
    pub fn private(size: usize, mode: u32) -> SysvSeg {
        Self::create(libc::IPC_PRIVATE, size, mode).expect("shmget(IPC_PRIVATE)")
    }

    /// A segment with a fresh random key.
    pub fn keyed(size: usize, mode: u32) -> SysvSeg {
        for _ in 0..100 {
            match Self::create(random_key(), size, mode) {
                Ok(s) => return s,
                Err(e) if errno(&e) == libc::EEXIST => continue,
                Err(e) => panic!("shmget(key, {size}): {e}"),
            }
        }
        panic!("could not find a free random key");
    }

    fn create(key: i32, size: usize, mode: u32) -> io::Result<SysvSeg> {
        let id = unsafe { libc::shmget(key, size, libc::IPC_CREAT | libc::IPC_EXCL | mode as i32) };
        if id < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(SysvSeg {
            id,
            key,
            size,
            removed: false,
        })
    }

    /// Takes ownership of a segment this test created by other means (e.g. `ipcmk`).
    pub fn adopt(id: i32) -> SysvSeg {
        let ds = ipc_stat(id).unwrap_or_else(|e| panic!("IPC_STAT of adopted shmid {id}: {e}"));
        SysvSeg {
            id,
            key: ds.shm_perm.__key,
            size: ds.shm_segsz,
            removed: false,
        }
    }

    /// `shmctl(IPC_STAT)`; panics on error.
    #[track_caller]
    pub fn stat(&self) -> libc::shmid_ds {
        ipc_stat(self.id).unwrap_or_else(|e| panic!("IPC_STAT of shmid {}: {e}", self.id))
    }

    /// Mode bits (permission bits only).
    pub fn mode(&self) -> u32 {
        u32::from(self.stat().shm_perm.mode) & 0o777
    }

    /// `shmctl(IPC_SET)` changing only what is given.
    pub fn set(&self, mode: Option<u32>, uid: Option<u32>, gid: Option<u32>) {
        let mut ds = self.stat();
        if let Some(m) = mode {
            ds.shm_perm.mode = m as u16;
        }
        if let Some(u) = uid {
            ds.shm_perm.uid = u;
        }
        if let Some(g) = gid {
            ds.shm_perm.gid = g;
        }
        let r = unsafe { libc::shmctl(self.id, libc::IPC_SET, &mut ds) };
        assert_eq!(
            r,
            0,
            "IPC_SET on shmid {}: {}",
            self.id,
            io::Error::last_os_error()
        );
    }

    /// `shmctl(SHM_LOCK)`.
    pub fn lock(&self) {
        let r = unsafe { libc::shmctl(self.id, libc::SHM_LOCK, std::ptr::null_mut()) };
        assert_eq!(r, 0, "SHM_LOCK: {}", io::Error::last_os_error());
    }

    /// `shmctl(IPC_RMID)` now.
    pub fn remove(&mut self) {
        let r = unsafe { libc::shmctl(self.id, libc::IPC_RMID, std::ptr::null_mut()) };
        assert_eq!(r, 0, "IPC_RMID: {}", io::Error::last_os_error());
        self.removed = true;
    }

    /// Forget the segment: it has been removed by other means (e.g. `ipcrm` run by the test).
    pub fn forget(&mut self) {
        self.removed = true;
    }

    /// Attaches the segment in this process (shmat).
    pub fn attach(&self) -> Attachment {
        let addr = unsafe { libc::shmat(self.id, std::ptr::null(), 0) };
        assert!(
            addr as isize != -1,
            "shmat({}): {}",
            self.id,
            io::Error::last_os_error()
        );
        Attachment {
            addr: addr as *mut u8,
            len: self.size,
        }
    }
}

impl Drop for SysvSeg {
    fn drop(&mut self) {
        if !self.removed {
            unsafe {
                libc::shmctl(self.id, libc::IPC_RMID, std::ptr::null_mut());
            }
        }
    }
}

/// The test's own attachment of a segment: direct access to its bytes. Detaches on drop.
pub struct Attachment {
    addr: *mut u8,
    len: usize,
}

impl Attachment {
    pub fn write(&self, offset: usize, bytes: &[u8]) {
        assert!(offset + bytes.len() <= self.len, "write past segment end");
        for (i, b) in bytes.iter().enumerate() {
            unsafe { std::ptr::write_volatile(self.addr.add(offset + i), *b) };
        }
    }

    pub fn read(&self, offset: usize, len: usize) -> Vec<u8> {
        assert!(offset + len <= self.len, "read past segment end");
        (0..len)
            .map(|i| unsafe { std::ptr::read_volatile(self.addr.add(offset + i)) })
            .collect()
    }

    /// All bytes of the segment.
    pub fn all(&self) -> Vec<u8> {
        self.read(0, self.len)
    }
}

impl Drop for Attachment {
    fn drop(&mut self) {
        unsafe {
            libc::shmdt(self.addr as *const libc::c_void);
        }
    }
}

/// A deterministic, non-repeating-looking pattern of `len` bytes.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i.wrapping_mul(31) ^ (i >> 8) ^ seed as usize) as u8)
        .collect()
}

/// The row of /proc/sysvipc/shm for `id`, as column name -> value.
pub fn proc_sysvipc_row(id: i32) -> Option<HashMap<String, String>> {
    let text = fs::read_to_string("/proc/sysvipc/shm").expect("read /proc/sysvipc/shm");
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next()?.split_whitespace().collect();
    let shmid_col = header.iter().position(|h| *h == "shmid")?;
    for l in lines {
        let cols: Vec<&str> = l.split_whitespace().collect();
        if cols.get(shmid_col) == Some(&id.to_string().as_str()) {
            return Some(
                header
                    .iter()
                    .zip(cols)
                    .map(|(h, c)| (h.to_string(), c.to_string()))
                    .collect(),
            );
        }
    }
    None
}

/// The shmids `ipcs -m` lists.
pub fn ipcs_m_ids() -> BTreeSet<i32> {
    let out = sh_ok("ipcs -m");
    out.lines()
        .filter(|l| l.starts_with("0x"))
        .map(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("cannot parse `ipcs -m` line {l:?}"))
        })
        .collect()
}

/// The "name value" lines of `ipcs -m -u` ("segments allocated 3" -> ("segments allocated", 3)).
pub fn ipcs_m_u() -> HashMap<String, u64> {
    sh_ok("ipcs -m -u")
        .lines()
        .filter_map(|l| {
            let (name, val) = l.trim().rsplit_once(char::is_whitespace)?;
            Some((name.trim().to_string(), val.parse().ok()?))
        })
        .collect()
}

/// Runs `ipcmk -M size -p mode` and returns the new shmid, parsed from "Shared memory id: N".
pub fn ipcmk(size: usize, mode: &str) -> i32 {
    let out = sh_ok(&format!("ipcmk -M {size} -p {mode}"));
    parse_ipcmk(&out)
}

pub fn parse_ipcmk(out: &str) -> i32 {
    out.lines()
        .find_map(|l| l.strip_prefix("Shared memory id: "))
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| panic!("no `Shared memory id: N` in ipcmk output {out:?}"))
}

/// Repeats `check` (returning Err(description) on mismatch) up to `tries` times, 50 ms apart,
/// for comparisons with global state other processes may change meanwhile.
#[track_caller]
pub fn retry(tries: u32, mut check: impl FnMut() -> Result<(), String>) {
    let mut last = String::new();
    for _ in 0..tries {
        match check() {
            Ok(()) => return,
            Err(e) => last = e,
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("still mismatched after {tries} tries: {last}");
}

// ---------------------------------------------------------------------------------------------
// POSIX objects
// ---------------------------------------------------------------------------------------------

/// Creates `dir/name` as shm_open(O_CREAT|O_EXCL) would, with exactly `mode` and `content`.
pub fn create_posix(dir: &Path, name: &str, mode: u32, content: &[u8]) -> PathBuf {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let p = dir.join(name);
    let mut f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&p)
        .unwrap_or_else(|e| panic!("create {}: {e}", p.display()));
    f.set_permissions(fs::Permissions::from_mode(mode)).unwrap(); // undo the umask
    f.write_all(content).unwrap();
    p
}

/// mkfifo(path, mode).
pub fn mkfifo(p: &Path, mode: u32) {
    let c = CString::new(p.as_os_str().as_bytes()).unwrap();
    let r = unsafe { libc::mkfifo(c.as_ptr(), mode) };
    assert_eq!(
        r,
        0,
        "mkfifo {}: {}",
        p.display(),
        io::Error::last_os_error()
    );
}

/// truncate(2) of a path.
pub fn truncate(p: &Path, len: i64) -> io::Result<()> {
    let c = CString::new(p.as_os_str().as_bytes()).unwrap();
    if unsafe { libc::truncate(c.as_ptr(), len) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Writes `bytes` in ONE write(2) call to `p` opened O_WRONLY (no O_TRUNC).
pub fn write_once(p: &Path, bytes: &[u8]) -> io::Result<usize> {
    use std::io::Write;
    let mut f = fs::OpenOptions::new().write(true).open(p)?;
    f.write(bytes)
}

/// Formats a mode as in stat/perm: `0%03o` of the permission bits.
pub fn fmt_mode(mode: u32) -> String {
    format!("0{:03o}", mode & 0o777)
}

// ---------------------------------------------------------------------------------------------
// Probe: one operation, as any uid/gid/groups, through the mount or directly against the kernel
// ---------------------------------------------------------------------------------------------

/// The probe's C source: `probe OP ARGS...` performs one system call (or open + read/write)
/// and prints `ok`, or the errno's name (`EACCES`, `EPERM`, ...). See `Probe`.
const PROBE_C: &str = r#"
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <unistd.h>

static int done(int failed) {
    if (!failed) {
        puts("ok");
    } else {
        int e = errno;
        const char *name = strerrorname_np(e);
        if (name) puts(name); else printf("errno %d\n", e);
    }
    return 0;
}

static long num(const char *s, int base) { return strtol(s, NULL, base); }

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: probe OP ARG...\n"); return 2; }
    const char *op = argv[1], *a = argv[2];
    char c = 0;
    if (!strcmp(op, "read")) {            /* read PATH: open O_RDONLY, read 1 byte */
        int fd = open(a, O_RDONLY);
        return done(fd < 0 || read(fd, &c, 1) < 0);
    } else if (!strcmp(op, "write")) {    /* write PATH: open O_WRONLY, pwrite "w" at 0 */
        int fd = open(a, O_WRONLY);
        return done(fd < 0 || pwrite(fd, "w", 1, 0) != 1);
    } else if (!strcmp(op, "write-text") && argc == 4) { /* write-text PATH TEXT: one write */
        int fd = open(a, O_WRONLY);
        size_t n = strlen(argv[3]);
        return done(fd < 0 || write(fd, argv[3], n) != (ssize_t)n);
    } else if (!strcmp(op, "chmod") && argc == 4) {      /* chmod PATH OCTAL */
        return done(chmod(a, (mode_t)num(argv[3], 8)) != 0);
    } else if (!strcmp(op, "chown") && argc == 5) {      /* chown PATH UID GID (-1 keeps) */
        return done(chown(a, (uid_t)num(argv[3], 10), (gid_t)num(argv[4], 10)) != 0);
    } else if (!strcmp(op, "truncate") && argc == 4) {   /* truncate PATH LEN */
        return done(truncate(a, (off_t)num(argv[3], 10)) != 0);
    } else if (!strcmp(op, "touch")) {    /* touch PATH: utimensat(NULL), times to now */
        return done(utimensat(AT_FDCWD, a, NULL, 0) != 0);
    } else if (!strcmp(op, "rmdir")) {
        return done(rmdir(a) != 0);
    } else if (!strcmp(op, "unlink")) {
        return done(unlink(a) != 0);
    } else if (!strcmp(op, "shm-read")) {  /* shm-read ID: shmat(SHM_RDONLY), read 1 byte */
        volatile char *p = shmat((int)num(a, 10), NULL, SHM_RDONLY);
        if (p == (void *)-1) return done(1);
        c = p[0];
        shmdt((void *)p);
        return done(0);
    } else if (!strcmp(op, "shm-write")) { /* shm-write ID: shmat read-write, write "w" at 0 */
        volatile char *p = shmat((int)num(a, 10), NULL, 0);
        if (p == (void *)-1) return done(1);
        p[0] = 'w';
        shmdt((void *)p);
        return done(0);
    } else if (!strcmp(op, "shm-attach")) { /* shm-attach ID: shmat read-write, detach */
        void *p = shmat((int)num(a, 10), NULL, 0);
        if (p == (void *)-1) return done(1);
        shmdt(p);
        return done(0);
    } else if (!strcmp(op, "access") && argc == 4) { /* access PATH rw: access(2) R_OK|W_OK */
        int how = (strchr(argv[3], 'r') ? R_OK : 0) | (strchr(argv[3], 'w') ? W_OK : 0);
        return done(access(a, how) != 0);
    } else if (!strcmp(op, "ipc-set") && argc == 6) { /* ipc-set ID OCTAL UID GID */
        struct shmid_ds ds;
        memset(&ds, 0, sizeof ds);
        ds.shm_perm.mode = (unsigned short)num(argv[3], 8);
        ds.shm_perm.uid = (uid_t)num(argv[4], 10);
        ds.shm_perm.gid = (gid_t)num(argv[5], 10);
        return done(shmctl((int)num(a, 10), IPC_SET, &ds) != 0);
    } else if (!strcmp(op, "ipc-rmid")) {
        return done(shmctl((int)num(a, 10), IPC_RMID, NULL) != 0);
    } else if (!strcmp(op, "shmget") && argc == 4) { /* shmget SIZE COUNT: print COUNT ids */
        for (long i = 0; i < num(argv[3], 10); i++) {
            int id = shmget(IPC_PRIVATE, (size_t)num(a, 10), IPC_CREAT | 0600);
            if (id < 0) { perror("shmget"); return 1; }
            printf("%d\n", id);
        }
        return 0;
    }
    fprintf(stderr, "probe: unknown operation %s (or wrong argument count)\n", op);
    return 2;
}
"#;

/// Who runs a probe: uid, primary gid, supplementary groups (empty: none) and capabilities.
#[derive(Clone, Copy, Debug)]
pub struct Ids {
    pub uid: u32,
    pub gid: u32,
    pub groups: &'static [u32],
    /// `None`: what the uid has by nature (everything for root, nothing for others).
    /// `Some(list)`: exactly these capabilities (setpriv names, comma-separated, e.g.
    /// `"ipc_owner"`; `""` for none), whatever the uid.
    pub caps: Option<&'static str>,
}

/// The probe binary, compiled with `cc` into a temporary directory that other uids can
/// enter; removed when dropped.
pub struct Probe {
    dir: TempDir,
}

impl Probe {
    /// Compiles the probe (panics with cc's output if that fails).
    pub fn build() -> Probe {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::Builder::new()
            .prefix("shmfs-probe-")
            .tempdir()
            .expect("create probe directory");
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let src = dir.path().join("probe.c");
        fs::write(&src, PROBE_C).unwrap();
        let r = run_with_timeout(
            Command::new("cc")
                .arg("-O1")
                .arg("-Wall")
                .arg("-o")
                .arg(dir.path().join("probe"))
                .arg(&src),
            COMMAND_TIMEOUT,
        );
        assert!(r.ok(), "cc probe.c failed: {r:?}");
        Probe { dir }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().join("probe")
    }

    /// Runs `probe ARGS...` as `who` (setpriv --reuid/--regid and --groups or --clear-groups)
    /// and returns what it printed: `ok` or an errno name. Panics if it did not run properly.
    pub fn run_as(&self, who: Ids, args: &[&str]) -> String {
        let mut cmd = Command::new("setpriv");
        cmd.arg(format!("--reuid={}", who.uid))
            .arg(format!("--regid={}", who.gid));
        if who.groups.is_empty() {
            cmd.arg("--clear-groups");
        } else {
            let list: Vec<String> = who.groups.iter().map(u32::to_string).collect();
            cmd.arg(format!("--groups={}", list.join(",")));
        }
        if let Some(caps) = who.caps {
            // Bounding set, inheritable and ambient sets: a root probe keeps exactly these
            // through exec, a non-root one gets them as ambient capabilities.
            let list = if caps.is_empty() {
                "-all".to_string()
            } else {
                let plus: Vec<String> = caps.split(',').map(|c| format!("+{c}")).collect();
                format!("-all,{}", plus.join(","))
            };
            cmd.arg(format!("--bounding-set={list}"))
                .arg(format!("--inh-caps={list}"));
            if who.uid != 0 {
                cmd.arg(format!("--ambient-caps={list}"));
            }
        }
        cmd.arg(self.path()).args(args);
        let r = run_with_timeout(&mut cmd, COMMAND_TIMEOUT);
        assert!(r.ok(), "probe {args:?} as {who:?} did not run: {r:?}");
        r.stdout_str().trim().to_string()
    }
}

// ---------------------------------------------------------------------------------------------
// Mounts with further command-line arguments (--pid, --ipc-ns)
// ---------------------------------------------------------------------------------------------

impl Mount {
    /// `shmfs -f [-o OPTIONS] [--shm-dir PRIVATE] ARGS... MNT`: like `Mount::builder()`, with
    /// extra arguments such as `--pid PID` or `--ipc-ns PATH`. Without `private_shm_dir` no
    /// `--shm-dir` is given (so `--pid` picks the process's /dev/shm).
    pub fn with_args(options: &[&str], args: &[String], private_shm_dir: bool) -> Mount {
        let mut builder = Mount::builder().args(args);
        for opt in options {
            builder = builder.option(opt);
        }
        if !private_shm_dir {
            builder = builder.system_shm_dir();
        }
        builder.mount()
    }
}

// ---------------------------------------------------------------------------------------------
// Helper processes that attach, map or hold shared memory (a small C program)
// ---------------------------------------------------------------------------------------------

/// The helper's source. Every mode prints one `ready ...` line once it holds what it was asked
/// to hold, then keeps holding it until its standard input reaches EOF (or it is killed).
///
/// - `sysv-attach SHMID r|rw`: shmat (SHM_RDONLY for `r`); prints `ready ADDR`.
/// - `sysv-attach-exit SHMID`: shmat, then exits at once (no output).
/// - `posix-mmap PATH r|rw`: open, mmap MAP_SHARED the whole file, close the fd; `ready`.
/// - `posix-open PATH`: open O_RDONLY and keep the fd; prints `ready FD`.
/// - `newns [-m NAME] KEY:SIZE...`: unshare(CLONE_NEWIPC) (with -m also a mount namespace with
///   a private tmpfs on /dev/shm holding a 5-byte object NAME), shmget each KEY (hex or
///   decimal) with SIZE, mode 0600; prints `seg SHMID KEY` for each, attaches the first one
///   read-write, then prints `ready`.
/// - `rss-steps`: unshare(CLONE_NEWIPC); two 4096-byte segments A and B, both attached; touches
///   B's page and prints `ready A B`; on the next input line touches A's page, drops B's page
///   with madvise(MADV_REMOVE) and prints `done`.
pub const HELPER_C: &str = r#"
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <unistd.h>

static void die(const char *what) {
    fprintf(stderr, "shmholder: %s: %s\n", what, strerror(errno));
    exit(2);
}

/* Reads up to the next newline; returns 0 at EOF. */
static int wait_line(void) {
    char c;
    for (;;) {
        ssize_t n = read(0, &c, 1);
        if (n == 0) return 0;
        if (n < 0) { if (errno == EINTR) continue; return 0; }
        if (c == '\n') return 1;
    }
}

static void hold(void) { while (wait_line()) {} }

static void say(const char *line) { fputs(line, stdout); fflush(stdout); }

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: shmholder MODE ARGS...\n"); return 2; }
    const char *mode = argv[1];
    if (!strcmp(mode, "sysv-attach") && argc == 4) {
        int ro = !strcmp(argv[3], "r");
        void *p = shmat(atoi(argv[2]), NULL, ro ? SHM_RDONLY : 0);
        if (p == (void *)-1) die("shmat");
        printf("ready %lx\n", (unsigned long)p); fflush(stdout);
        hold();
        return 0;
    }
    if (!strcmp(mode, "sysv-attach-exit") && argc == 3) {
        if (shmat(atoi(argv[2]), NULL, 0) == (void *)-1) die("shmat");
        return 0;
    }
    if (!strcmp(mode, "posix-mmap") && argc == 4) {
        int ro = !strcmp(argv[3], "r");
        int fd = open(argv[2], ro ? O_RDONLY : O_RDWR);
        if (fd < 0) die("open");
        struct stat st;
        if (fstat(fd, &st) < 0) die("fstat");
        void *p = mmap(NULL, st.st_size, ro ? PROT_READ : PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED) die("mmap");
        close(fd);
        say("ready\n");
        hold();
        return 0;
    }
    if (!strcmp(mode, "posix-open") && argc == 3) {
        int fd = open(argv[2], O_RDONLY);
        if (fd < 0) die("open");
        printf("ready %d\n", fd); fflush(stdout);
        hold();
        return 0;
    }
    if (!strcmp(mode, "newns")) {
        int i = 2;
        const char *name = NULL;
        if (argc > 3 && !strcmp(argv[2], "-m")) { name = argv[3]; i = 4; }
        if (unshare(CLONE_NEWIPC | (name ? CLONE_NEWNS : 0)) < 0) die("unshare");
        if (name) {
            if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) die("mount --make-rprivate /");
            if (mount("tmpfs", "/dev/shm", "tmpfs", 0, "mode=1777") < 0) die("mount tmpfs /dev/shm");
            char path[4096];
            snprintf(path, sizeof path, "/dev/shm/%s", name);
            int fd = open(path, O_CREAT | O_EXCL | O_RDWR, 0600);
            if (fd < 0 || write(fd, "hello", 5) != 5) die("create object");
            close(fd);
        }
        int first = -1;
        for (; i < argc; i++) {
            char *colon = strchr(argv[i], ':');
            if (!colon) { fprintf(stderr, "shmholder: want KEY:SIZE, got %s\n", argv[i]); return 2; }
            key_t key = (key_t)strtoul(argv[i], NULL, 0);
            size_t size = strtoul(colon + 1, NULL, 0);
            int id = shmget(key, size, IPC_CREAT | IPC_EXCL | 0600);
            if (id < 0) die("shmget");
            if (first < 0) first = id;
            printf("seg %d %d\n", id, (int)key);
        }
        if (first >= 0 && shmat(first, NULL, 0) == (void *)-1) die("shmat");
        say("ready\n");
        hold();
        return 0;
    }
    if (!strcmp(mode, "rss-steps") && argc == 2) {
        if (unshare(CLONE_NEWIPC) < 0) die("unshare");
        int a = shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600);
        int b = shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600);
        if (a < 0 || b < 0) die("shmget");
        volatile char *pa = shmat(a, NULL, 0), *pb = shmat(b, NULL, 0);
        if (pa == (void *)-1 || pb == (void *)-1) die("shmat");
        pb[0] = 1;
        printf("ready %d %d\n", a, b); fflush(stdout);
        if (!wait_line()) return 0;
        pa[0] = 1;
        if (madvise((void *)pb, 4096, MADV_REMOVE) < 0) die("madvise(MADV_REMOVE)");
        say("done\n");
        hold();
        return 0;
    }
    fprintf(stderr, "shmholder: bad arguments\n");
    return 2;
}
"#;

/// The helper's command name, as `/proc/PID/comm` and `attached` show it.
pub const HELPER_COMM: &str = "shmholder";

/// Path of the compiled helper (compiled with `cc` on first use, once per test binary, into a
/// directory of the target dir named after a hash of the source).
pub fn helper_bin() -> &'static Path {
    use std::hash::{Hash, Hasher};
    static BIN_PATH: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN_PATH.get_or_init(|| {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        HELPER_C.hash(&mut h);
        let dir =
            Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("shmholder-{:016x}", h.finish()));
        let bin = dir.join(HELPER_COMM);
        if bin.exists() {
            return bin;
        }
        fs::create_dir_all(&dir).expect("create helper directory");
        let tag = format!("{}-{}", std::process::id(), random_key() as u32);
        let src = dir.join(format!("shmholder-{tag}.c"));
        let tmp = dir.join(format!("shmholder-{tag}.out"));
        fs::write(&src, HELPER_C).expect("write helper source");
        let r = run_with_timeout(
            Command::new("cc")
                .arg("-O1")
                .arg("-Wall")
                .arg("-o")
                .arg(&tmp)
                .arg(&src),
            COMMAND_TIMEOUT,
        );
        let _ = fs::remove_file(&src);
        assert!(
            r.ok(),
            "cc of the test helper failed (is gcc installed?): {r:?}"
        );
        fs::rename(&tmp, &bin).expect("install helper");
        bin
    })
}

/// A running helper process (see `HELPER_C`). Dropping it closes its stdin, kills it and
/// reaps it, so whatever it held is released.
pub struct Helper {
    child: Option<Child>,
    stdin: Option<std::process::ChildStdin>,
    lines: std::sync::mpsc::Receiver<String>,
    /// What the helper printed before (and including) its `ready` line.
    pub output: Vec<String>,
    /// Its `ready` line without the word `ready` (e.g. an address or an fd).
    pub ready: String,
}

impl Helper {
    /// Starts the helper with `args` and waits (up to MOUNT_TIMEOUT) for its `ready` line.
    pub fn start(args: &[&str]) -> Helper {
        let mut cmd = Command::new(helper_bin());
        cmd.args(args);
        Helper::start_cmd(cmd, args)
    }

    /// Like `start`, as uid and gid `id` with no supplementary groups (`setpriv` execs the
    /// helper, so the pid is the helper's).
    pub fn start_as(id: u32, args: &[&str]) -> Helper {
        let mut cmd = Command::new("setpriv");
        cmd.arg(format!("--reuid={id}"))
            .arg(format!("--regid={id}"))
            .arg("--clear-groups")
            .arg(helper_bin())
            .args(args);
        Helper::start_cmd(cmd, args)
    }

    fn start_cmd(mut cmd: Command, args: &[&str]) -> Helper {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start shmholder {args:?}: {e}"));
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let (etx, erx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::Read;
            let mut s = String::new();
            let _ = io::BufReader::new(stderr).read_to_string(&mut s);
            let _ = etx.send(s);
        });
        let mut h = Helper {
            child: Some(child),
            stdin,
            lines: rx,
            output: Vec::new(),
            ready: String::new(),
        };
        loop {
            match h.lines.recv_timeout(MOUNT_TIMEOUT) {
                Ok(line) => {
                    h.output.push(line.clone());
                    if line == "ready" || line.starts_with("ready ") {
                        h.ready = line.trim_start_matches("ready").trim().to_string();
                        return h;
                    }
                }
                Err(_) => {
                    let status = h.child.as_mut().unwrap().try_wait().ok().flatten();
                    let err = erx.recv_timeout(Duration::from_secs(1)).unwrap_or_default();
                    panic!(
                        "shmholder {args:?} did not get ready (exit status {status:?}): \
                         stdout {:?}, stderr {err:?}",
                        h.output
                    );
                }
            }
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    /// Sends one line to the helper and waits for its next line of output.
    pub fn step(&mut self, line: &str) -> String {
        use std::io::Write;
        let stdin = self.stdin.as_mut().expect("helper stdin closed");
        writeln!(stdin, "{line}").expect("write to helper");
        stdin.flush().unwrap();
        self.lines
            .recv_timeout(MOUNT_TIMEOUT)
            .unwrap_or_else(|_| panic!("helper {} did not answer {line:?}", self.pid()))
    }

    /// Lets the helper finish on its own (closes its stdin) and waits for it to be reaped:
    /// from then on it holds nothing.
    pub fn finish(mut self) {
        self.stdin = None;
        let mut child = self.child.take().unwrap();
        if wait_timeout(&mut child, MOUNT_TIMEOUT).is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        self.stdin = None;
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs the helper to completion (for modes that exit by themselves, e.g. `sysv-attach-exit`).
pub fn run_helper(args: &[&str]) -> Run {
    run_with_timeout(Command::new(helper_bin()).args(args), COMMAND_TIMEOUT)
}

// ---------------------------------------------------------------------------------------------
// /proc/PID/maps, users
// ---------------------------------------------------------------------------------------------

/// One line of /proc/PID/maps.
#[derive(Debug, Clone)]
pub struct MapsLine {
    /// `START-END` in hex, as maps prints it.
    pub range: String,
    /// `rw-s` and the like.
    pub perms: String,
    pub inode: u64,
    pub path: String,
}

/// The lines of /proc/PID/maps.
pub fn maps_of(pid: i32) -> Vec<MapsLine> {
    let text = fs::read_to_string(format!("/proc/{pid}/maps"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/maps: {e}"));
    text.lines()
        .filter_map(|l| {
            let mut f = l.splitn(6, ' ');
            let range = f.next()?.to_string();
            let perms = f.next()?.to_string();
            let _offset = f.next()?;
            let _dev = f.next()?;
            let inode = f.next()?.parse().ok()?;
            let path = f.next().unwrap_or("").trim().to_string();
            Some(MapsLine {
                range,
                perms,
                inode,
                path,
            })
        })
        .collect()
}

/// The maps lines of `pid` that are attachments of SysV segment `shmid`
/// (`/SYSV%08x (deleted)` with the shmid in the inode column).
pub fn sysv_maps_lines(pid: i32, shmid: i32) -> Vec<MapsLine> {
    maps_of(pid)
        .into_iter()
        .filter(|l| l.path.starts_with("/SYSV") && l.inode == shmid as u64)
        .collect()
}

/// The user name of `uid` (from the C library), or None if it has none.
pub fn user_name(uid: u32) -> Option<String> {
    let mut buf = vec![0 as libc::c_char; 16384];
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    let rc = unsafe { libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result) };
    if rc != 0 || result.is_null() {
        return None;
    }
    let name = unsafe { std::ffi::CStr::from_ptr(pwd.pw_name) };
    Some(name.to_string_lossy().into_owned())
}

/// `Hugetlb:` of /proc/meminfo in kB (0 when huge pages are neither reserved nor in use).
pub fn meminfo_hugetlb_kb() -> u64 {
    fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Hugetlb:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

impl Attachment {
    /// `madvise(MADV_REMOVE)` on `len` bytes from `offset`: frees those pages of the segment
    /// (its rss drops), as a process that punches a hole does.
    pub fn madvise_remove(&self, offset: usize, len: usize) {
        assert!(offset + len <= self.len, "madvise past segment end");
        let r = unsafe {
            libc::madvise(
                self.addr.add(offset) as *mut libc::c_void,
                len,
                libc::MADV_REMOVE,
            )
        };
        assert_eq!(r, 0, "madvise(MADV_REMOVE): {}", io::Error::last_os_error());
    }
}

// ---------------------------------------------------------------------------------------------
// Tools from other packages (stress-ng, fio, fsx, fusermount3): required like FUSE itself
// ---------------------------------------------------------------------------------------------

/// True when `CI` is set (non-empty): what would be a skip is a failure.
pub fn ci_is_set() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty())
}

/// An executable `cmd` on PATH, in the usual bin and sbin directories, or in cargo's bin
/// directory (`$CARGO_HOME/bin`, `~/.cargo/bin`, where `cargo install` puts programs).
pub fn find_tool(cmd: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    dirs.extend(
        [
            "/usr/local/sbin",
            "/usr/local/bin",
            "/usr/sbin",
            "/usr/bin",
            "/sbin",
            "/bin",
        ]
        .map(PathBuf::from),
    );
    if let Some(home) = std::env::var_os("CARGO_HOME") {
        dirs.push(PathBuf::from(home).join("bin"));
    }
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(PathBuf::from(home).join(".cargo/bin"));
    }
    dirs.into_iter()
        .map(|dir| dir.join(cmd))
        .find(|p| fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
}

/// True when every `(command, where it comes from)` is installed, e.g.
/// `("stress-ng", "Debian package stress-ng")`. Otherwise fails if `CI` is set (`.ci/run` must
/// install it) and else prints `skipping: ...` and returns false. Tests install nothing.
pub fn tools_available(needs: &[(&str, &str)]) -> bool {
    let missing: Vec<String> = needs
        .iter()
        .filter(|(cmd, _)| find_tool(cmd).is_none())
        .map(|(cmd, from)| format!("`{cmd}` ({from})"))
        .collect();
    if missing.is_empty() {
        return true;
    }
    let what = format!(
        "{} not installed: .ci/run must install it; tests install nothing themselves",
        missing.join(", ")
    );
    if ci_is_set() {
        panic!("{what}; CI is set, so this is a failure rather than a skip");
    }
    eprintln!("skipping: {what}");
    false
}

/// Returns from the test unless every command is installed (see [`tools_available`]):
/// `require_tools!("fio" => "Debian package fio");`
#[allow(unused_macros)]
macro_rules! require_tools {
    ($($cmd:expr => $from:expr),+ $(,)?) => {
        if !crate::common::tools_available(&[$(($cmd, $from)),+]) {
            return;
        }
    };
}
#[allow(unused_imports)]
pub(crate) use require_tools;

/// Runs `f` on a thread of its own and waits up to `limit` for it: a call that hangs (on a
/// stuck mount) fails the test instead of blocking it. Returns what `f` returned and how long
/// it took; panics on timeout, naming `what`.
#[track_caller]
pub fn within<T: Send + 'static>(
    limit: Duration,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> (T, Duration) {
    let (tx, rx) = std::sync::mpsc::channel();
    let start = Instant::now();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(limit) {
        Ok(v) => (v, start.elapsed()),
        Err(_) => panic!("{what} did not finish within {limit:?} (hung?)"),
    }
}

/// The daemon behind a mount is still running (neither exited nor a zombie).
pub fn daemon_alive(m: &Mount) -> bool {
    !is_zombie(m.pid() as i32)
}

/// A watchdog for a test's daemon: if still armed after `limit`, it kills the daemon (SIGKILL,
/// after checking the pid is still a `shmfs`), so that a test stuck on a hung mount fails
/// (every access then errors out) instead of blocking the run. Disarmed when dropped: declare
/// it after the `Mount` it watches.
pub struct KillOnHang {
    done: std::sync::Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>,
}

impl KillOnHang {
    pub fn new(m: &Mount, limit: Duration) -> KillOnHang {
        let pid = m.pid() as i32;
        let done = std::sync::Arc::new((std::sync::Mutex::new(false), std::sync::Condvar::new()));
        let watch = done.clone();
        let name = std::thread::current().name().unwrap_or("test").to_string();
        std::thread::spawn(move || {
            let (lock, cvar) = &*watch;
            let guard = lock.lock().unwrap();
            let (guard, _) = cvar.wait_timeout_while(guard, limit, |d| !*d).unwrap();
            let is_shmfs =
                fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "shmfs");
            if !*guard && is_shmfs && !is_zombie(pid) {
                eprintln!(
                    "{name}: still running after {limit:?}: killing its shmfs daemon \
                     (pid {pid}) so that it fails instead of hanging"
                );
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        });
        KillOnHang { done }
    }
}

impl Drop for KillOnHang {
    fn drop(&mut self) {
        let (lock, cvar) = &*self.done;
        *lock.lock().unwrap() = true;
        cvar.notify_all();
    }
}
