//! A private world for a test: a process holding a mount and an IPC namespace of its own
//! (`unshare --mount --ipc`), with a tmpfs of its own on /dev/shm, so that what the test mounts
//! and makes there is seen by nobody else and what it lists is only what it made (`World`).

use std::fs::{self, File};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::mount::{BIN, MOUNT_TIMEOUT};
use super::preconditions::unavailable;
use super::run::{COMMAND_TIMEOUT, Run, q, run_with_timeout, wait_timeout};
use super::system::is_zombie;

/// A process holding a private mount and IPC namespace (`unshare --mount --ipc`), with a tmpfs
/// of its own on /dev/shm and the binary under test as `/usr/local/sbin/shmfs`: mount(8) runs
/// its helpers with a fixed PATH (`/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`),
/// whatever the caller's PATH is. Nothing outside the world changes.
///
/// Commands run inside with [`World::sh`] or [`World::command`]; the daemon of a `Mount` made
/// outside shows the world with `--pid` [`World::pid`]. The holder lives until its standard
/// input closes. Dropping the world unmounts what is left under its directory, ends the holder
/// (and with it the namespaces) and stops what still runs with a path of the world's directory
/// on its command line.
pub struct World {
    holder: Option<Child>,
    /// Closing it lets the holder exit.
    stdin: Option<ChildStdin>,
    dir: Option<TempDir>,
    log: PathBuf,
}

impl World {
    /// A world whose /dev/shm is a 64 MiB tmpfs.
    pub fn new() -> World {
        World::with_shm_size("64m")
    }

    /// A world whose /dev/shm is a tmpfs of `size` (tmpfs's `size=` option: `64m`, `1g`).
    pub fn with_shm_size(size: &str) -> World {
        let dir = tempfile::Builder::new()
            .prefix("shmfs-world-")
            .tempdir()
            .expect("create the world's directory");
        // Other users (the non-root test user) must reach what is inside.
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let ready = dir.path().join("ready");
        let log = dir.path().join("holder.log");
        let script = format!(
            r#"set -e
# The namespace starts with copies of every mount of the machine. Let go of the copies of FUSE
# mounts, or their daemons would wait for this namespace to end before they can exit.
awk '$0 ~ / - fuse/ {{ print $5 }}' /proc/self/mountinfo | while read -r m; do
    umount -l "$(printf '%b' "$m")" 2>/dev/null || true
done
mount -t tmpfs -o size={size},mode=1777 shmfs-test-shm /dev/shm
mount -t tmpfs -o size=1m,mode=0755 shmfs-test-sbin /usr/local/sbin
ln -s {bin} /usr/local/sbin/shmfs
touch {ready}
exec cat > /dev/null
"#,
            bin = q(BIN),
            ready = q(&ready),
        );
        let out = File::create(&log).unwrap();
        let mut holder = Command::new("unshare")
            .args(["--mount", "--ipc", "--propagation", "private", "--"])
            .args(["sh", "-c", &script])
            .stdin(Stdio::piped())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .process_group(0)
            .spawn()
            .expect("start unshare (util-linux)");
        let stdin = holder.stdin.take();
        let mut world = World {
            holder: Some(holder),
            stdin,
            dir: Some(dir),
            log,
        };
        let start = Instant::now();
        while !ready.exists() {
            if let Ok(Some(status)) = world.holder.as_mut().unwrap().try_wait() {
                world.holder = None;
                panic!(
                    "setting up the private namespaces failed ({status}): {}",
                    fs::read_to_string(&world.log).unwrap_or_default()
                );
            }
            assert!(
                start.elapsed() < MOUNT_TIMEOUT,
                "the private namespaces were not ready within {MOUNT_TIMEOUT:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        let own = fs::read_link("/proc/self/ns/ipc").unwrap();
        assert_ne!(
            fs::read_link(world.ipc_ns()).unwrap(),
            own,
            "no IPC namespace of its own"
        );
        world
    }

    /// The holder's pid: `--pid` of a daemon that shows the world, `nsenter --target`.
    pub fn pid(&self) -> u32 {
        self.holder.as_ref().unwrap().id()
    }

    /// The world's IPC namespace (for `setns`).
    pub fn ipc_ns(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}/ns/ipc", self.pid()))
    }

    /// The world's /dev/shm, as seen from outside.
    pub fn shm_dir(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root/dev/shm", self.pid()))
    }

    /// The world's directory (under /tmp, on the machine's own file system: the test sees it too).
    pub fn dir(&self) -> &Path {
        self.dir.as_ref().unwrap().path()
    }

    /// `DIR/name`, created as a directory.
    pub fn mkdir(&self, name: &str) -> PathBuf {
        let p = self.dir().join(name);
        fs::create_dir_all(&p).unwrap();
        p
    }

    /// `nsenter --target=PID --mount --ipc --`, to which the caller adds a command.
    pub fn nsenter(&self) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--target={}", self.pid()))
            .args(["--mount", "--ipc", "--"]);
        cmd
    }

    /// `program` run inside the world (its IPC and mount namespaces), in its root directory.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("nsenter");
        c.arg("-t")
            .arg(self.pid().to_string())
            .args(["--ipc", "--mount", "--wd=/", "--"])
            .arg(program);
        c
    }

    /// Runs a shell script (as root) inside the world.
    pub fn sh(&self, script: &str) -> Run {
        run_with_timeout(self.nsenter().args(["sh", "-c", script]), COMMAND_TIMEOUT)
    }

    /// Runs a shell script inside the world that must succeed; returns its stdout.
    #[track_caller]
    pub fn sh_ok(&self, script: &str) -> String {
        let r = self.sh(script);
        assert!(r.ok(), "`{script}` failed in the world: {r:?}");
        r.stdout_str()
    }

    /// Runs a shell script inside the world as `uid` (gid the same, no other groups), with HOME
    /// set to `home`.
    pub fn sh_as(&self, uid: u32, home: &Path, script: &str) -> Run {
        run_with_timeout(
            self.nsenter()
                .arg("setpriv")
                .arg(format!("--reuid={uid}"))
                .arg(format!("--regid={uid}"))
                .args(["--clear-groups", "env"])
                .arg(format!("HOME={}", home.display()))
                .args(["sh", "-c", script]),
            COMMAND_TIMEOUT,
        )
    }

    /// `(SOURCE, FSTYPE, OPTIONS)` of the mount on `p` in the world, if any.
    pub fn mount_at(&self, p: &Path) -> Option<(String, String, String)> {
        let info = fs::read_to_string(format!("/proc/{}/mountinfo", self.pid())).unwrap();
        let want = p.to_str().unwrap().replace(' ', "\\040");
        info.lines().rev().find_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let left: Vec<&str> = left.split(' ').collect();
            if left.get(4) != Some(&want.as_str()) {
                return None;
            }
            let right: Vec<&str> = right.split(' ').collect();
            Some((
                right.get(1)?.to_string(),
                right.first()?.to_string(),
                format!("{},{}", left.get(5)?, right.get(2)?),
            ))
        })
    }

    /// How many times `p` is a mount point in the world.
    pub fn mount_count(&self, p: &Path) -> usize {
        let info = fs::read_to_string(format!("/proc/{}/mountinfo", self.pid())).unwrap();
        let want = p.to_str().unwrap().replace(' ', "\\040");
        info.lines()
            .filter(|l| l.split(' ').nth(4) == Some(want.as_str()))
            .count()
    }

    /// What a mount by non-root user `uid` needs: shmfs copied where the user may run it
    /// (whatever the permissions on the way to target/), and a home of the user's holding an
    /// empty mount point `shm`. Gives (the binary, the home, the mount point).
    pub fn user_mount_dirs(&self, uid: u32) -> (PathBuf, PathBuf, PathBuf) {
        let bin = self.mkdir("bin").join("shmfs");
        // Copied by cp(1), not by this process: a child forked meanwhile by another test's
        // thread would hold the copy open for writing until it execs, and running the copy
        // would then fail with ETXTBSY ("Text file busy").
        let copied = std::process::Command::new("cp")
            .arg(BIN)
            .arg(&bin)
            .status()
            .expect("cp");
        assert!(copied.success(), "cp {BIN} {}", bin.display());
        fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
        let home = self.mkdir("home");
        let mnt = home.join("shm");
        fs::create_dir(&mnt).unwrap();
        for p in [&home, &mnt] {
            std::os::unix::fs::chown(p, Some(uid), Some(uid)).unwrap();
        }
        (bin, home, mnt)
    }

    /// Makes the world ready for a non-root user `uid`: a passwd and group entry (fusermount3
    /// needs a user name), and a /dev/fuse that every user may open, as udev makes it on a
    /// Debian machine (containers often have mode 0600). Returns false (after `unavailable`)
    /// when that cannot be done here.
    pub fn allow_user(&self, uid: u32) -> bool {
        let etc = self.mkdir("etc");
        let dev = self.mkdir("dev");
        let mode = fs::metadata("/dev/fuse")
            .map(|m| m.permissions().mode())
            .unwrap_or(0);
        let fuse = if mode & 0o006 == 0o006 {
            String::new()
        } else {
            format!(
                "mount -t tmpfs -o size=64k,mode=0755 shmfs-test-dev {dev} && \
                 mknod -m 0666 {dev}/fuse c 10 229 && mount --bind {dev}/fuse /dev/fuse",
                dev = q(&dev)
            )
        };
        let r = self.sh(&format!(
            "set -e
             {fuse}
             cp /etc/passwd {etc}/passwd; cp /etc/group {etc}/group
             echo 'shmfs-test:x:{uid}:{uid}:shmfs test:/nonexistent:/bin/sh' >> {etc}/passwd
             echo 'shmfs-test:x:{uid}:' >> {etc}/group
             mount --bind {etc}/passwd /etc/passwd; mount --bind {etc}/group /etc/group",
            etc = q(&etc)
        ));
        if !r.ok() {
            return unavailable(&format!(
                "cannot give user {uid} a name and a usable /dev/fuse in a private mount \
                 namespace (mknod c 10 229 and bind mounts must be allowed): {r:?}"
            ));
        }
        true
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let dir = self.dir().to_path_buf();
        if let Some(mut holder) = self.holder.take() {
            // Unmount what the test left mounted under its directory, deepest first.
            let info = fs::read_to_string(format!("/proc/{}/mountinfo", holder.id()));
            let mut targets: Vec<String> = info
                .unwrap_or_default()
                .lines()
                .filter_map(|l| l.split(' ').nth(4))
                .map(|t| t.replace("\\040", " "))
                .filter(|t| Path::new(t).starts_with(&dir))
                .collect();
            targets.sort_by_key(|t| std::cmp::Reverse(t.len()));
            for t in targets {
                let _ = Command::new("nsenter")
                    .arg(format!("--target={}", holder.id()))
                    .args(["--mount", "--", "umount", "-l", &t])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
            // End of input ends the holder, and with it the namespaces.
            self.stdin = None;
            if wait_timeout(&mut holder, Duration::from_secs(5)).is_none() {
                let _ = holder.kill();
                let _ = holder.wait();
            }
        }
        // Daemons (and tmux, mc) started in the world name a path in it on their command line.
        let start = Instant::now();
        loop {
            let pids = pids_with_arg_under(&dir);
            if pids.is_empty() {
                break;
            }
            if start.elapsed() > Duration::from_secs(3) {
                for pid in pids {
                    unsafe {
                        libc::kill(pid, libc::SIGKILL);
                    }
                }
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Pids of live processes with a command-line argument that is `dir` or a path below it.
pub fn pids_with_arg_under(dir: &Path) -> Vec<i32> {
    let me = std::process::id() as i32;
    let mut pids = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_str().unwrap_or("").parse::<i32>() else {
            continue;
        };
        let Ok(cmdline) = fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let names_dir = cmdline.split(|b| *b == 0).any(|arg| {
            std::str::from_utf8(arg)
                .is_ok_and(|a| a.starts_with('/') && Path::new(a).starts_with(dir))
        });
        if pid != me && names_dir && !is_zombie(pid) {
            pids.push(pid);
        }
    }
    pids
}
