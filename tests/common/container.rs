//! A container as the tests make one (`Container`): `unshare --ipc --mount --uts --pid --fork`
//! running a setup script of the test's as root inside its namespaces, then waiting, with every
//! command the script ran finished, until the test ends it. What the script mounts is seen by
//! nobody else (propagation private); its pid namespace makes the container's end the end of
//! every process in it, as a runtime's container ends.

use std::fs::{self, File};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::mount::MOUNT_TIMEOUT;
use super::run::{q, wait_timeout};

/// The one file of the /etc of a [`Container::with_dev_shm_to_own_etc`], and what it reads.
pub const OWN_ETC_FILE: &str = "shmfs-test-marker";
pub const OWN_ETC_TEXT: &str = "the container's own /etc\n";

/// A directory for a container (`$DIR` of its setup), 0755 where tempfile makes it 0700:
/// other users (the tests' ordinary user, a rootless container inside) must reach it.
pub fn open_container_dir() -> TempDir {
    let dir = tempfile::Builder::new()
        .prefix("shmfs-container-")
        .tempdir()
        .expect("create the container's directory");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// A running container (see the module's comment). Dropping it ends it (closes its input, then
/// kills it if it lingers) and removes its directory.
pub struct Container {
    /// `unshare`, the container's parent outside it.
    unshare: Option<Child>,
    /// Closing it lets the container's first process (its pid 1) exit.
    stdin: Option<ChildStdin>,
    /// The container's first process, as the machine numbers it.
    pid: u32,
    dir: TempDir,
    log: PathBuf,
}

impl Container {
    /// Starts a container whose first process runs `setup` (a `sh` script, run with `set -e`
    /// after the mount namespace let go of its copies of FUSE mounts), then waits for the end
    /// of its input. `setup` may use `$DIR`, the container's directory (made by the test,
    /// readable from both sides). Panics with the script's output if it fails.
    pub fn start(setup: &str) -> Container {
        Container::start_in(
            tempfile::Builder::new()
                .prefix("shmfs-container-")
                .tempdir()
                .expect("create the container's directory"),
            setup,
        )
    }

    /// A container whose /dev/shm is a symlink to `/etc` (as images have `/dev/shm ->
    /// /run/shm`), with an /etc of its own (a bind mount of a directory of the test's) holding
    /// one file, [`OWN_ETC_FILE`], which reads [`OWN_ETC_TEXT`]. What shmfs shows of its
    /// /dev/shm must be that file, never the machine's /etc, whose `passwd` tells the two apart
    /// (asserted here).
    pub fn with_dev_shm_to_own_etc() -> Container {
        let dir = open_container_dir();
        let etc = dir.path().join("etc");
        fs::create_dir(&etc).unwrap();
        fs::write(etc.join(OWN_ETC_FILE), OWN_ETC_TEXT).unwrap();
        // Only builtins run after the last mount: the container's /etc has no ld.so.cache.
        let container = Container::start_in(
            dir,
            r#"mount -t tmpfs -o size=1m,mode=0755 shmfs-test-dev /dev
ln -s /etc /dev/shm
mount --bind "$DIR/etc" /etc"#,
        );
        assert!(
            fs::metadata("/etc/passwd").is_ok(),
            "the machine's /etc has a passwd, for the test to tell the two apart"
        );
        container
    }

    /// Like [`Container::start`], in a directory the test prepared.
    pub fn start_in(dir: TempDir, setup: &str) -> Container {
        let ready = dir.path().join("ready");
        let log = dir.path().join("container.log");
        // After `setup`, only the shell's builtins run: the setup may have hidden what a
        // program needs to start (/etc, /dev).
        let script = format!(
            r#"set -e
DIR={dir}
# The mount namespace starts with copies of every mount of the machine. Let go of the copies of
# FUSE mounts, or their daemons would wait for this namespace to end before they can exit.
awk '$0 ~ / - fuse/ {{ print $5 }}' /proc/self/mountinfo | while read -r m; do
    umount -l "$(printf '%b' "$m")" 2>/dev/null || true
done
{setup}
: > {ready}
read -r _ || true
"#,
            dir = q(dir.path()),
            ready = q(&ready),
        );
        let out = File::create(&log).expect("create the container's log");
        let mut unshare = Command::new("unshare")
            .args([
                "--ipc",
                "--mount",
                "--uts",
                "--pid",
                "--fork",
                "--kill-child",
            ])
            .args(["--propagation", "private", "--", "sh", "-c", &script])
            .stdin(Stdio::piped())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("start unshare (util-linux)");
        let stdin = unshare.stdin.take();
        let unshare_pid = unshare.id();
        let mut container = Container {
            unshare: Some(unshare),
            stdin,
            pid: 0,
            dir,
            log,
        };
        let start = Instant::now();
        while !ready.exists() {
            if let Ok(Some(status)) = container.unshare.as_mut().unwrap().try_wait() {
                container.unshare = None;
                panic!(
                    "the container's setup failed ({status}): {}",
                    fs::read_to_string(&container.log).unwrap_or_default()
                );
            }
            assert!(
                start.elapsed() < MOUNT_TIMEOUT,
                "the container was not ready within {MOUNT_TIMEOUT:?}: {}",
                fs::read_to_string(&container.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        container.pid = children_of(unshare_pid)
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("unshare {unshare_pid} has no child: the container?"));
        container
    }

    /// The container's first process (its pid 1), as the machine numbers it: what
    /// `shmfs --pid` is given.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The container's directory (`$DIR` of the setup script).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Ends the container: its first process exits, which ends every other process in its pid
    /// namespace, and unshare is reaped once it has. From then on its namespaces hold nothing
    /// but what something outside keeps.
    pub fn stop(&mut self) {
        self.stdin = None;
        if let Some(mut unshare) = self.unshare.take()
            && wait_timeout(&mut unshare, MOUNT_TIMEOUT).is_none()
        {
            let _ = unshare.kill();
            let _ = unshare.wait();
        }
        // unshare reaped its child before it exited; wait for the pid to be gone from /proc
        // all the same, in case unshare was killed.
        let start = Instant::now();
        while Path::new(&format!("/proc/{}", self.pid)).exists() && start.elapsed() < MOUNT_TIMEOUT
        {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The children of process `pid` (from the parent field of every /proc/N/stat).
fn children_of(pid: u32) -> Vec<u32> {
    let mut children = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(child) = e.file_name().to_str().unwrap_or("").parse::<u32>() else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        let parent = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if parent == Some(pid) {
            children.push(child);
        }
    }
    children
}
