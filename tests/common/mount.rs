//! A running `shmfs -f` on a temporary mount point (`Mount`, built with `MountBuilder`), and
//! how to tell whether something is mounted.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::files::ls;
use super::run::wait_timeout;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_shmfs");

/// How long a mount may take to come up, and a daemon to exit after a signal.
pub const MOUNT_TIMEOUT: Duration = Duration::from_secs(10);

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

/// Options for a test mount.
pub struct MountBuilder {
    options: Vec<String>,
    args: Vec<String>,
    shm_dir: ShmDir,
    binary: PathBuf,
}

/// What a mount shows as `posix/`.
enum ShmDir {
    /// A fresh private directory under /dev/shm, removed with the mount (`--shm-dir`).
    Private,
    /// A directory the caller made and keeps (`--shm-dir`).
    Given(PathBuf),
    /// No `--shm-dir`: the daemon's default.
    System,
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
        self.shm_dir = ShmDir::System;
        self
    }

    /// Passes `--shm-dir DIR` for a directory the caller made (and removes after the mount).
    pub fn shm_dir(mut self, dir: &Path) -> Self {
        self.shm_dir = ShmDir::Given(dir.to_path_buf());
        self
    }

    /// Runs this shmfs binary instead of [`BIN`] (the benchmark picks a release build).
    pub fn binary(mut self, bin: &Path) -> Self {
        self.binary = bin.to_path_buf();
        self
    }

    /// Starts the daemon and waits until the mount is up; panics if it does not come up.
    pub fn mount(self) -> Mount {
        self.try_mount().unwrap_or_else(|e| panic!("{e}"))
    }

    /// Like [`MountBuilder::mount`], but returns what went wrong instead of panicking (with
    /// the daemon's output, when it ran); whatever was made is cleaned up.
    pub fn try_mount(self) -> Result<Mount, String> {
        let mnt = tempfile::Builder::new()
            .prefix("shmfs-mnt-")
            .tempdir()
            .map_err(|e| format!("create mount point: {e}"))?;
        let (shm, shm_path) = match self.shm_dir {
            ShmDir::Private => {
                let dir = tempfile::Builder::new()
                    .prefix("shmfs-test-")
                    .tempdir_in("/dev/shm")
                    .map_err(|e| format!("create private directory under /dev/shm: {e}"))?;
                let path = dir.path().to_path_buf();
                (Some(dir), Some(path))
            }
            ShmDir::Given(path) => (None, Some(path)),
            ShmDir::System => (None, None),
        };
        let log =
            tempfile::NamedTempFile::new().map_err(|e| format!("create daemon log file: {e}"))?;
        let reopen = || {
            log.reopen()
                .map_err(|e| format!("open daemon log file: {e}"))
        };

        let mut cmd = Command::new(&self.binary);
        cmd.arg("-f");
        if !self.options.is_empty() {
            cmd.arg("-o").arg(self.options.join(","));
        }
        if let Some(shm) = &shm_path {
            cmd.arg("--shm-dir").arg(shm);
        }
        cmd.args(&self.args)
            .arg(mnt.path())
            .stdin(Stdio::null())
            .stdout(reopen()?)
            .stderr(reopen()?);
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {cmd:?}: {e}"))?;

        let mut m = Mount {
            child: Some(child),
            mnt: Some(mnt),
            shm,
            shm_path,
            log,
            check_log: true,
        };
        if let Err(e) = m.wait_until_mounted(&cmd) {
            // The error carries the daemon's output already.
            m.check_log = false;
            return Err(e);
        }
        Ok(m)
    }
}

/// A running `shmfs -f` on a fresh temporary mount point. Dropping it unmounts (SIGTERM) and
/// cleans up, and fails the test if the daemon's output shows a panic or a system call its
/// sandbox refused.
pub struct Mount {
    child: Option<Child>,
    mnt: Option<TempDir>,
    /// The private shm directory, if the mount made one (removed after the daemon stops).
    shm: Option<TempDir>,
    /// What `--shm-dir` was given, if anything.
    shm_path: Option<PathBuf>,
    /// The daemon's stdout and stderr.
    log: tempfile::NamedTempFile,
    /// Whether dropping the mount checks the log for a panic.
    check_log: bool,
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
            shm_dir: ShmDir::Private,
            binary: PathBuf::from(BIN),
        }
    }

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

    fn wait_until_mounted(&mut self, cmd: &Command) -> Result<(), String> {
        let start = Instant::now();
        loop {
            if st_dev_differs_from_parent(self.path()) {
                return Ok(());
            }
            let child = self.child.as_mut().unwrap();
            let exited = child
                .try_wait()
                .map_err(|e| format!("wait for {cmd:?}: {e}"))?;
            if let Some(status) = exited {
                self.child = None;
                return Err(format!(
                    "{cmd:?} exited with {status} before the mount came up; its output:\n{}",
                    self.log()
                ));
            }
            if start.elapsed() > MOUNT_TIMEOUT {
                return Err(format!(
                    "{cmd:?}: mount point still not mounted after {MOUNT_TIMEOUT:?}; output:\n{}",
                    self.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        self.mnt.as_ref().unwrap().path()
    }

    /// The shm directory given with --shm-dir (panics if the mount has none).
    pub fn shm_dir(&self) -> &Path {
        self.shm_path
            .as_deref()
            .expect("mount without private --shm-dir")
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("daemon already stopped").id()
    }

    /// Everything the daemon printed so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// The daemon's log if it shows a panic (`panicked at`), for a caller that reports it
    /// itself rather than failing in Drop (the benchmark); Drop then does not check again.
    pub fn take_panic_log(&mut self) -> Option<String> {
        self.check_log = false;
        let log = self.log();
        log.contains("panicked at").then_some(log)
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
        // The daemon has exited: its log is complete. A panic in it fails the test, unless
        // the test is failing already (a panic while panicking would abort the whole run).
        let log = self.log();
        if self.check_log && log.contains("panicked at") && !std::thread::panicking() {
            panic!("the shmfs daemon panicked; its log:\n{log}");
        }
        // Nothing the daemon does may trip its own seccomp filter (docs/sandbox.md).
        if self.check_log && log.contains("seccomp refused") && !std::thread::panicking() {
            panic!("the sandbox refused a system call of the shmfs daemon; its log:\n{log}");
        }
    }
}
