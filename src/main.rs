//! The `shmfs` command: arguments, logging, mounting, going to the background, signals.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use fuser::Session;
use shmfs::daemon::sandbox::unmounter::Unmounter;
use shmfs::daemon::{mount_options, sandbox, unmount_order};
use shmfs::fs::{Options, ShmFs};
use shmfs::fuse::Fuse;
use shmfs::kernel::context::IpcContext;
use shmfs::kernel::creds;
use shmfs::kernel::pidfd::Pidfd;
use shmfs::kernel::posix::ShmDir;

/// Shared memory as files: every System V segment and POSIX object as a directory
/// with data, stat and perm.
#[derive(Parser, Debug)]
#[command(
    version,
    about,
    long_about = LONG_ABOUT,
    override_usage = "shmfs [OPTIONS] [SOURCE] <MOUNTPOINT>",
    after_help = AFTER_HELP
)]
struct Args {
    /// Stay in the foreground, logging to stderr (RUST_LOG=shmfs=debug for more). In the
    /// background the log goes to the journal, else to syslog, as "shmfs".
    #[arg(short = 'f', long)]
    foreground: bool,

    /// Mount options, comma-separated (may repeat): allow_other, allow_root, ro, rw,
    /// default_permissions, auto_unmount (the default for root when fusermount3 is
    /// installed), no_auto_unmount, nosuid, nodev, noexec, noatime, fsname=NAME,
    /// metrics=all|totals (what metrics.prom holds: every segment and object, the default, or
    /// only the totals, for hosts with many of them), and the options fstab and mount(8) pass
    /// (defaults, nofail, relatime, ...), which are ignored.
    #[arg(short = 'o', value_name = "OPT[,OPT...]")]
    options: Vec<String>,

    /// Directory whose regular files appear under posix/ (a tmpfs), opened as given and kept
    /// open [default: /dev/shm]. For a container's, prefer --pid.
    #[arg(long, value_name = "DIR")]
    shm_dir: Option<PathBuf>,

    /// Show the SysV segments of this IPC namespace (e.g. /proc/PID/ns/ipc) instead of the
    /// daemon's own; every SysV operation then happens there.
    #[arg(long, value_name = "PATH")]
    ipc_ns: Option<PathBuf>,

    /// Show what process PID sees: its IPC namespace and its /dev/shm (a container's view),
    /// the latter looked up inside the process's root for each operation, never kept open.
    /// --ipc-ns and --shm-dir override either half.
    #[arg(long, value_name = "PID")]
    pid: Option<u32>,

    /// Worker threads answering requests (at least 1).
    #[arg(long, value_name = "N", default_value_t = 4,
          value_parser = clap::value_parser!(u16).range(1..))]
    threads: u16,

    /// Run without the sandbox, for debugging: keep every capability, no no_new_privs, no
    /// seccomp filter (by default, once mounted, a root daemon keeps only the capabilities
    /// shmfs uses, and every daemon may make only the system calls shmfs makes). Logged.
    #[arg(long)]
    no_sandbox: bool,

    /// Print the man page of SECTION (1: the command, 5: the files; default 1) as roff and
    /// exit: `shmfs --man 5 | man -l -`.
    #[arg(long, value_name = "SECTION", num_args = 0..=1, default_missing_value = "1",
          value_parser = ["1", "5"], exclusive = true)]
    man: Option<String>,

    /// [SOURCE] MOUNTPOINT: where to mount; a SOURCE before it (as mount.fuse3 passes it,
    /// e.g. "shmfs") is ignored.
    #[arg(value_name = "MOUNTPOINT", num_args = 1..=2, required_unless_present = "man")]
    paths: Vec<PathBuf>,
}

const LONG_ABOUT: &str = "\
Shared memory as files. Mounted on a directory, shmfs shows every System V segment (what \
ipcs -m lists) under sysv/SHMID/ and every regular file of /dev/shm under posix/NAME/, each a \
directory holding data (the bytes), stat (what the kernel knows of it), perm (mode and owner, \
writable) and attached (who has it mapped). by-key/ links keys to segments; limits, index and \
index.json describe everything at once, and metrics.prom does so for Prometheus (point \
node_exporter's --collector.textfile.directory at the mount point). The kernel's own permission rules decide, for each \
caller, what may be read, written, changed or removed.";

const AFTER_HELP: &str = "\
Without -f, shmfs goes to the background once the mount answers. It stays mounted until \
`umount MOUNTPOINT`, or SIGTERM/SIGINT to the daemon, which unmount and exit 0. Exit status \
is 1 when the mount cannot be made (the reason is printed), 2 for bad arguments. Logging: \
`journalctl -t shmfs` (or the syslog file) in the background, stderr with -f; RUST_LOG=shmfs=debug \
for more. The reference: man shmfs, man 5 shmfs.

Examples:
  shmfs -o allow_other /mnt/shmfs
  mount -t fuse.shmfs shmfs /mnt/shmfs -o allow_other
  fstab: shmfs /mnt/shmfs fuse.shmfs allow_other,nofail 0 0
  shmfs --pid 4242 /mnt/container-shm
  shmfs -o allow_other,metrics=totals /mnt/shmfs
      (for node_exporter --collector.textfile.directory=/mnt/shmfs, which runs as prometheus)

See also: ipcs(1), ipcmk(1), ipcrm(1), shm_overview(7), fusermount3(1), mount.fuse3(8).";

/// fusermount3, if it is on the PATH (package fuse3).
fn fusermount3() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("fusermount3"))
        .find(|p| p.is_file())
}

/// Mount points where a shmfs is mounted now, from /proc/self/mountinfo.
fn shmfs_mounted_at(path: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    info.lines().any(|line| {
        let Some((left, right)) = line.split_once(" - ") else {
            return false;
        };
        let mount_point = left.split(' ').nth(4).unwrap_or("");
        let mut right = right.split(' ');
        let fstype = right.next().unwrap_or("");
        let source = right.next().unwrap_or("");
        unescape_mountinfo(mount_point) == path.as_os_str()
            && fstype.starts_with("fuse")
            && source == "shmfs"
    })
}

/// mountinfo escapes space, tab, newline and backslash as \ooo.
fn unescape_mountinfo(s: &str) -> OsString {
    use std::os::unix::ffi::OsStringExt;
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    OsString::from_vec(out)
}

/// Checks the mount point the way a user would want it explained.
fn check_mount_point(path: &Path) -> Result<PathBuf, String> {
    let shown = path.display();
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(format!("mount point {shown} is not a directory")),
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => {
            return Err(format!(
                "mount point {shown} is a dead FUSE mount (transport endpoint is not connected): \
                 run `umount {shown}` first"
            ));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!("mount point {shown} does not exist"));
        }
        Err(e) => return Err(format!("mount point {shown}: {e}")),
    }
    let canonical = path
        .canonicalize()
        .map_err(|e| format!("mount point {shown}: {e}"))?;
    if shmfs_mounted_at(&canonical) {
        return Err(format!("shmfs is already mounted on {shown}"));
    }
    Ok(canonical)
}

fn describe_mount_error(path: &Path, e: &std::io::Error) -> String {
    let root = creds::daemon_is_root();
    if !Path::new("/dev/fuse").exists() {
        return format!(
            "cannot mount {}: /dev/fuse is missing (load the fuse module)",
            path.display()
        );
    }
    if e.kind() == std::io::ErrorKind::NotFound && fusermount3().is_none() {
        let why = if root {
            "auto_unmount needs"
        } else {
            "mounting as a non-root user needs"
        };
        return format!(
            "cannot mount {}: {why} fusermount3, which is not installed (install the fuse3 package)",
            path.display()
        );
    }
    // SAFETY: valid C string; access() only checks.
    if !root && unsafe { libc::access(c"/dev/fuse".as_ptr(), libc::R_OK | libc::W_OK) } != 0 {
        return format!(
            "cannot mount {}: this user may not open /dev/fuse (it should be mode 0666; \
             or run shmfs as root)",
            path.display()
        );
    }
    let e = e.to_string();
    let e = e.trim_end();
    if !root && e.contains("ermission denied") {
        return format!(
            "cannot mount {}: {e} (as a non-root user, mount on a directory you own; \
             allow_other also needs user_allow_other in /etc/fuse.conf)",
            path.display()
        );
    }
    format!("cannot mount {}: {e}", path.display())
}

fn block_signals() -> libc::sigset_t {
    // SAFETY: sigset_t is plain old data, initialised by sigemptyset before use.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::sigaddset(&mut set, sig);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

/// Forks; the parent waits for the child's word that the mount answers and exits with it.
/// Returns the pipe on which the child reports.
fn daemonize() -> Result<std::fs::File, String> {
    let mut fds = [0; 2];
    // SAFETY: fds is a valid array of two ints.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(format!("pipe: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: both fds were just created and are owned here.
    let (read_end, write_end) =
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: no other thread exists yet, so fork is safe.
    match unsafe { libc::fork() } {
        -1 => Err(format!("fork: {}", std::io::Error::last_os_error())),
        0 => {
            drop(read_end);
            // SAFETY: plain system call; a new session leaves the caller's terminal.
            unsafe { libc::setsid() };
            Ok(std::fs::File::from(write_end))
        }
        _ => {
            drop(write_end);
            let mut message = String::new();
            let _ = std::fs::File::from(read_end).read_to_string(&mut message);
            if message == "ok" {
                std::process::exit(0);
            }
            if message.is_empty() {
                message = "the background process died before mounting".into();
            }
            eprintln!("shmfs: {message}");
            std::process::exit(1);
        }
    }
}

/// Points stdin, stdout and stderr at /dev/null once nobody is reading them.
fn detach_stdio() {
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        use std::os::fd::AsRawFd;
        for fd in 0..3 {
            // SAFETY: dup2 onto the standard descriptors.
            unsafe { libc::dup2(null.as_raw_fd(), fd) };
        }
    }
    let _ = std::env::set_current_dir("/");
}

/// Moves the daemon (still one thread, so every worker inherits it) into an IPC namespace.
fn enter_ipc_namespace(path: &Path) -> Result<(), String> {
    let ns = std::fs::File::open(path)
        .map_err(|e| format!("cannot open IPC namespace {}: {e}", path.display()))?;
    use std::os::fd::AsRawFd;
    // SAFETY: valid fd; CLONE_NEWIPC asks the kernel to check it is an IPC namespace.
    if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWIPC) } != 0 {
        return Err(format!(
            "cannot enter IPC namespace {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

fn run(args: Args) -> Result<(), String> {
    let mount_point = args.paths.last().cloned().unwrap_or_default();
    let mount_point = check_mount_point(&mount_point)?;
    // Held from now on: what is read through /proc/PID is checked to be this process's.
    let process = args.pid.map(check_process).transpose()?;
    let plan = mount_options::plan(
        &args.options,
        usize::from(args.threads),
        creds::daemon_is_root(),
        fusermount3().is_some(),
    )?;
    let ipc_ns = args.ipc_ns.clone().or_else(|| {
        args.pid
            .map(|pid| PathBuf::from(format!("/proc/{pid}/ns/ipc")))
    });
    match shmfs::kernel::descriptors::raise_limit() {
        Ok(limit) => log::debug!("descriptor limit: {limit}"),
        Err(e) => log::warn!("cannot raise the descriptor limit: {e}"),
    }
    if let Some(ns) = &ipc_ns {
        enter_ipc_namespace(ns)?;
    }
    if let Some(process) = &process
        && !process.is_running()
    {
        // It may have exited before its namespace was entered, and its pid been reused.
        return Err(format!("--pid {}: the process has exited", process.pid()));
    }
    // A shm dir named on the command line is opened as given and kept; a process's is found
    // inside its root for each operation (see ShmDir::in_root); the daemon's own is kept.
    let shm = match (&args.shm_dir, process) {
        (Some(dir), _) => {
            ShmDir::open(dir).map_err(|e| format!("cannot open shm dir {}: {e}", dir.display()))?
        }
        (None, Some(process)) => {
            let pid = process.pid();
            ShmDir::in_root(process).map_err(|e| {
                format!("--pid {pid}: cannot open /dev/shm inside the process's root: {e}")
            })?
        }
        (None, None) => ShmDir::open(Path::new("/dev/shm"))
            .map_err(|e| format!("cannot open shm dir /dev/shm: {e}"))?,
    };
    // The context of every kernel call: the namespace just entered (or the daemon's own), and
    // the shm dir. Made before the sandbox, which refuses the ioctl that asks the namespace's id.
    let ctx = IpcContext::of_thread(shm)
        .map_err(|e| format!("cannot read the IPC namespace of the daemon: {e}"))?;
    log::debug!(
        "IPC namespace {} (id {:?}), shm dir {}",
        ctx.ipc_ns(),
        ctx.ipc_ns_id(),
        ctx.shm_dir().path().display()
    );

    // Objects made by `mkdir posix/NAME` get exactly the mode the kernel passes, which
    // already has the caller's umask applied.
    // SAFETY: plain system call.
    unsafe { libc::umask(0) };
    let mut report = if args.foreground {
        None
    } else {
        let pipe = daemonize()?;
        let to = shmfs::daemon::logging::to_background();
        log::debug!("logging to {to:?}");
        Some(pipe)
    };
    let signals = block_signals();
    let fs = Fuse::new(ShmFs::new(
        ctx,
        Options {
            read_only: plan.read_only,
            metrics: plan.metrics,
        },
    ));
    let set_notifier = fs.notifier_slot();
    let fds_before_mount = unmount_order::open_fds();
    let slot = unmount_order::Slot::reserve();
    let session = match Session::new(fs, &mount_point, &plan.config) {
        Ok(s) => s,
        Err(e) => {
            let msg = describe_mount_error(&mount_point, &e);
            if let Some(pipe) = report.as_mut() {
                let _ = pipe.write_all(msg.as_bytes());
                std::process::exit(1);
            }
            return Err(msg);
        }
    };
    log::info!("mounted on {}", mount_point.display());
    match slot {
        Ok(slot) => {
            if slot.hold_auto_unmount_socket(&fds_before_mount) {
                log::debug!("fusermount3's socket now closes after the FUSE connection");
            }
        }
        Err(e) => log::warn!("cannot reserve a descriptor for fusermount3's socket: {e}"),
    }
    // Learnt now, before serving: later the mount point's path leads into the mount.
    let connection = Arc::new(Connection::of(&mount_point));
    set_notifier(session.notifier());
    let unmounter = match lock_down(&args, &mount_point) {
        Ok(unmounter) => unmounter,
        Err(msg) => {
            // Not left mounted: fuser unmounts as the session goes.
            drop(session);
            if let Some(pipe) = report.as_mut() {
                let _ = pipe.write_all(msg.as_bytes());
                std::process::exit(1);
            }
            return Err(msg);
        }
    };
    if let Some(mut pipe) = report.take() {
        let _ = pipe.write_all(b"ok");
        drop(pipe);
        detach_stdio();
    }

    // fusermount3 (used for auto_unmount) leaves a child behind that nobody waits for.
    std::thread::spawn(reap_children);
    let shown = mount_point.clone();
    std::thread::spawn(move || {
        let mut sig: libc::c_int = 0;
        // SAFETY: signals is a valid set; sig a valid out-pointer.
        unsafe { libc::sigwait(&signals, &mut sig) };
        log::info!("signal {sig}: unmounting {}", shown.display());
        // A service manager's stop must not wait for users: whatever below blocks (a worker
        // stuck in a handler, an unmount waiting on the daemon), the process ends.
        let last_resort = connection.clone();
        std::thread::spawn(move || {
            std::thread::sleep(STOP_GRACE);
            log::warn!("still running {STOP_GRACE:?} after the signal: aborting and exiting");
            last_resort.abort();
            std::thread::sleep(Duration::from_millis(200));
            std::process::exit(0);
        });
        // The unmount ends the session (the event loop returns when the kernel lets go).
        unmount(&shown, unmounter.as_ref());
        // A lazy detach leaves the connection serving files that are still open, and the
        // event loop waiting for them: end it now. Those files then fail with ENOTCONN, and
        // requests stuck in handlers (even waiting on this very mount) are released.
        connection.abort();
    });
    match serve(session) {
        Ok(()) => {
            log::info!("unmounted {}", mount_point.display());
            Ok(())
        }
        // The kernel ends the connection this way when the unmount we started (or an
        // administrator's `umount -l` / connection abort) takes it down under busy requests.
        Err(e) if e.raw_os_error() == Some(libc::ECONNABORTED) => {
            log::info!("connection ended: {e}");
            Ok(())
        }
        Err(e) => Err(format!("serving {}: {e}", mount_point.display())),
    }
}

/// Runs the session until the kernel ends it. fuser would unmount when the session ends (and
/// again, by mistake, after it ended: its check of whether the mount is still there reads
/// the device's answer backwards), for a non-root daemon by running fusermount3, which the
/// sandbox refuses. shmfs unmounts by itself (see [`unmount`]; `umount` from outside needs
/// nothing), so fuser's handle on the mount is kept to the end of the process instead:
/// dropping it does nothing but that (and closing fusermount3's auto_unmount socket, which
/// the process's exit does as well).
fn serve(session: Session<Fuse>) -> std::io::Result<()> {
    let mut background = session.spawn()?;
    let serving = std::mem::replace(&mut background.guard, std::thread::spawn(|| Ok(())));
    std::mem::forget(background);
    serving
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("the session thread panicked")))
}

/// Puts the daemon in its sandbox (see src/daemon/sandbox.rs), unless --no-sandbox; for a non-root
/// daemon, first starts the helper that will unmount through fusermount3 at exit. Must run
/// while the daemon is one thread.
fn lock_down(args: &Args, mount_point: &Path) -> Result<Option<Unmounter>, String> {
    if args.no_sandbox {
        log::warn!(
            "--no-sandbox: keeping every capability, without no_new_privs or a seccomp filter"
        );
        return Ok(None);
    }
    let unmounter = match fusermount3() {
        Some(fusermount) if !creds::daemon_is_root() => Some(
            Unmounter::start(mount_point, &fusermount, args.foreground)
                .map_err(|e| format!("cannot start the unmount helper: {e}"))?,
        ),
        _ => None,
    };
    let entered = sandbox::enter().map_err(|e| format!("cannot enter the sandbox: {e}"))?;
    let capabilities = match entered.capabilities.as_slice() {
        [] => "none".to_string(),
        names => names.join(","),
    };
    log::info!(
        "sandbox: capabilities {capabilities}; no_new_privs; seccomp allows {} system calls",
        entered.allowed_calls
    );
    Ok(unmounter)
}

/// How long the daemon may take to end after SIGTERM/SIGINT before it exits regardless.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// Where the fusectl filesystem shows FUSE connections.
const FUSECTL: &str = "/sys/fs/fuse/connections";

/// The mount's FUSE connection, as its `abort` file in fusectl, opened at mount time. The
/// open file stays bound to this connection: once the connection is gone, writing to it does
/// nothing, even if a new mount has taken the same number meanwhile.
struct Connection {
    abort: Option<std::fs::File>,
}

impl Connection {
    fn of(mount_point: &Path) -> Connection {
        let Some(number) = fuse_connection_number(mount_point) else {
            log::warn!(
                "{} not found in /proc/self/mountinfo: SIGTERM cannot abort the connection",
                mount_point.display()
            );
            return Connection { abort: None };
        };
        mount_fusectl();
        let path = format!("{FUSECTL}/{number}/abort");
        match std::fs::OpenOptions::new().write(true).open(&path) {
            Ok(file) => Connection { abort: Some(file) },
            Err(e) => {
                log::warn!("{path}: {e}; SIGTERM will end the daemon after {STOP_GRACE:?} instead");
                Connection { abort: None }
            }
        }
    }

    /// Aborts the connection: every pending and later request fails, the event loop ends.
    fn abort(&self) {
        if let Some(mut file) = self.abort.as_ref()
            && let Err(e) = file.write_all(b"1")
        {
            log::warn!("aborting the FUSE connection: {e}");
        }
    }
}

/// The FUSE connection number of the topmost FUSE mount at `path` (its device number, as
/// fusectl names it), from /proc/self/mountinfo: a stat of the mount point would be a
/// request to this daemon.
fn fuse_connection_number(path: &Path) -> Option<u64> {
    let info = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| log::warn!("reading /proc/self/mountinfo: {e}"))
        .ok()?;
    info.lines().rev().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let mut left = left.split(' ');
        let (major, minor) = left.nth(2)?.split_once(':')?;
        let mount_point = left.nth(1)?;
        let fstype = right.split(' ').next()?;
        let ours = unescape_mountinfo(mount_point) == path.as_os_str()
            && (fstype == "fuse" || fstype.starts_with("fuse."));
        let (major, minor): (u64, u64) = (major.parse().ok()?, minor.parse().ok()?);
        // The kernel's dev_t: 12 bits of major above 20 bits of minor.
        ours.then_some((major << 20) | minor)
    })
}

/// Mounts fusectl on /sys/fs/fuse/connections if it is not mounted there (root only, and
/// only on the empty directory the fuse module provides).
fn mount_fusectl() {
    let listed = std::fs::read_to_string("/proc/self/mountinfo").is_ok_and(|info| {
        info.lines().any(|line| {
            line.split_once(" - ").is_some_and(|(left, right)| {
                left.split(' ').nth(4) == Some(FUSECTL) && right.starts_with("fusectl ")
            })
        })
    });
    if listed || !creds::daemon_is_root() {
        return;
    }
    match std::fs::read_dir(FUSECTL).map(|mut d| d.next().is_none()) {
        Ok(true) => {}
        Ok(false) => return,
        Err(e) => {
            log::warn!("{FUSECTL}: {e}");
            return;
        }
    }
    // SAFETY: valid C strings; no data.
    let rc = unsafe {
        libc::mount(
            c"fusectl".as_ptr(),
            c"/sys/fs/fuse/connections".as_ptr(),
            c"fusectl".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        log::warn!(
            "mount -t fusectl {FUSECTL}: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// Waits for the daemon's children (fusermount3) so that none lingers as a zombie; ends when
/// there are none left.
fn reap_children() {
    loop {
        let mut status = 0;
        // SAFETY: plain system call with a valid out-pointer.
        if unsafe { libc::waitpid(-1, &mut status, 0) } < 0
            && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR)
        {
            return;
        }
    }
}

/// Unmounts `path` if shmfs is still mounted there: umount(2) as root (a lazy detach if busy;
/// the caller then aborts the connection), fusermount3 -u -z otherwise (through the helper
/// outside the sandbox, when there is one).
fn unmount(path: &Path, unmounter: Option<&Unmounter>) {
    if !shmfs_mounted_at(path) {
        return;
    }
    if creds::daemon_is_root() {
        let Ok(c) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) else {
            return;
        };
        // SAFETY: valid C string.
        if unsafe { libc::umount2(c.as_ptr(), 0) } != 0 {
            log::warn!(
                "umount {}: {}; detaching lazily",
                path.display(),
                std::io::Error::last_os_error()
            );
            // SAFETY: valid C string.
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
    } else if let Some(unmounter) = unmounter {
        if !unmounter.unmount() {
            log::warn!(
                "fusermount3 -u {} (by the unmount helper) failed",
                path.display()
            );
        }
    } else if let Some(fusermount) = fusermount3() {
        let status = std::process::Command::new(fusermount)
            .args(["-u", "-z", "--"])
            .arg(path)
            .status();
        if !matches!(status, Ok(s) if s.success()) {
            log::warn!("fusermount3 -u {}: {status:?}", path.display());
        }
    }
}

/// `--pid PID`: the process, held by a pidfd (its namespaces and /dev/shm are read through
/// /proc/PID, and the pidfd tells that the pid still names it); say so plainly when there is
/// none.
fn check_process(pid: u32) -> Result<Pidfd, String> {
    Pidfd::open(pid).map_err(|e| match e.raw_os_error() {
        Some(libc::ESRCH) => format!("--pid {pid}: no such process"),
        Some(libc::EINVAL) => {
            format!("--pid {pid}: not a process id (a thread's? give its process's)")
        }
        _ => format!("--pid {pid}: {e}"),
    })
}

/// The hand-written man pages, shmfs(1) and shmfs(5), as installed.
const MAN_PAGES: [(&str, &str); 2] = [
    ("1", include_str!("../man/shmfs.1")),
    ("5", include_str!("../man/shmfs.5")),
];

/// One malloc arena for every thread. The reports (`index`, `index.json`, `metrics.prom`)
/// make megabytes of text at thousands of objects; with glibc's arena per thread, each worker
/// kept its own high-water mark of that (the benchmark's daemon peaked at 39 MiB instead of 20
/// over 4,000 segments and 10,000 objects). The workers allocate little otherwise.
fn one_malloc_arena() {
    #[cfg(target_env = "gnu")]
    // SAFETY: called first in main, before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// `--man [SECTION]`: prints the page of that section.
fn print_man_page(section: &str) -> ExitCode {
    let page = MAN_PAGES
        .iter()
        .find(|(s, _)| *s == section)
        .map_or("", |(_, page)| page);
    match std::io::stdout().write_all(page.as_bytes()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shmfs: {e}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    one_malloc_arena();
    // mount(8) starts us with no PATH; fusermount3 must still be found.
    if std::env::var_os("PATH").is_none() {
        // SAFETY: no other thread exists yet.
        unsafe {
            std::env::set_var(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            )
        };
    }
    let args = Args::parse();
    if let Some(section) = &args.man {
        return print_man_page(section);
    }
    shmfs::daemon::logging::init();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("shmfs: {msg}");
            ExitCode::FAILURE
        }
    }
}
