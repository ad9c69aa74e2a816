//! Least privilege: a mounted daemon keeps only the capabilities docs/sandbox.md
//! names, has no_new_privs and a seccomp filter on every thread; `--no-sandbox` keeps the old
//! state and says so; the filter the daemon installs really refuses execve, ptrace and
//! AF_INET sockets, and `setns` into anything but an IPC or UTS namespace, while it lets
//! through what `ns/` needs (`setns` of those two types, `pidfd_open`, the pidfd's and nsfs's
//! namespace ioctls) and what semaphore sets and queues need (`semctl` GETALL, `msgrcv` with
//! MSG_COPY but not one that receives, a detached mqueue mount and `mq_getattr`) and nothing
//! near it (`mount`, `move_mount`, `fsopen` of another filesystem, `mq_setattr`); a non-root
//! daemon is filtered too and still unmounts on SIGTERM.

mod common;

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use shmfs::daemon::sandbox;

/// The `Name:` line of a status file, as text.
fn field<'a>(status: &'a str, name: &str) -> &'a str {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .unwrap_or_else(|| panic!("no {name} in {status}"))
        .trim()
}

/// A capability line (hex) as a bit set.
fn caps(status: &str, name: &str) -> u64 {
    u64::from_str_radix(field(status, name), 16).unwrap()
}

fn status_of(pid: u32) -> String {
    fs::read_to_string(format!("/proc/{pid}/status")).expect("read the daemon's status")
}

/// The status of every thread of `pid`, with its name.
fn thread_statuses(pid: u32) -> Vec<(String, String)> {
    fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
        .filter_map(|t| {
            let status = fs::read_to_string(t.path().join("status")).ok()?;
            Some((field(&status, "Name").to_string(), status))
        })
        .collect()
}

/// What the test process itself holds (the daemon starts with the same).
fn own_status() -> String {
    fs::read_to_string("/proc/self/status").unwrap()
}

#[test]
fn a_mounted_daemon_keeps_only_the_named_capabilities_on_every_thread() {
    require_fuse!();
    let m = Mount::new();
    // Work on every path first: workers, the notice and sweep threads exist then.
    fs::write(m.shm_dir().join("obj"), b"bytes").unwrap();
    assert_eq!(fs::read(m.posix("obj", "data")).unwrap(), b"bytes");
    let _ = fs::read_to_string(m.p("index")).unwrap();
    let seg = SysvSeg::private(4096, 0o600);
    assert!(fs::read_to_string(m.sysv(seg.id, "stat")).is_ok());

    let own = own_status();
    let keep = sandbox::caps::kept_mask() & caps(&own, "CapPrm");
    assert_ne!(keep, 0, "the test runs as root with capabilities");
    let status = status_of(m.pid());
    for name in ["CapEff", "CapPrm", "CapBnd"] {
        assert_eq!(
            caps(&status, name),
            keep,
            "{name} of the daemon: {:?}, expected {:?}",
            sandbox::caps::names(caps(&status, name)),
            sandbox::caps::names(keep)
        );
    }
    assert!(keep.count_ones() <= 12);
    assert_eq!(caps(&status, "CapInh"), 0);
    assert_eq!(caps(&status, "CapAmb"), 0);
    assert_eq!(field(&status, "NoNewPrivs"), "1");
    assert_eq!(field(&status, "Seccomp"), "2");

    let threads = thread_statuses(m.pid());
    assert!(threads.len() > 4, "the workers are running: {threads:?}");
    for (name, status) in &threads {
        for cap in ["CapEff", "CapPrm", "CapBnd"] {
            assert_eq!(caps(status, cap), keep, "{cap} of thread {name}");
        }
        assert_eq!(field(status, "NoNewPrivs"), "1", "thread {name}");
        assert_eq!(field(status, "Seccomp"), "2", "thread {name}");
    }
    assert!(
        !m.log().contains("seccomp refused"),
        "nothing the daemon did was refused: {}",
        m.log()
    );
}

#[test]
fn no_sandbox_keeps_every_capability_and_says_so() {
    require_fuse!();
    let m = Mount::builder().args(&["--no-sandbox".to_string()]).mount();
    assert!(fs::read_dir(m.p("sysv")).is_ok());
    let own = own_status();
    let status = status_of(m.pid());
    for name in ["CapEff", "CapPrm", "CapBnd", "CapInh", "CapAmb"] {
        assert_eq!(caps(&status, name), caps(&own, name), "{name}");
    }
    assert_eq!(field(&status, "NoNewPrivs"), field(&own, "NoNewPrivs"));
    assert_eq!(field(&status, "Seccomp"), field(&own, "Seccomp"));
    assert_eq!(
        field(&own, "Seccomp"),
        "0",
        "the test itself runs unfiltered"
    );
    let log = m.log();
    assert!(
        log.contains("--no-sandbox: keeping every capability"),
        "the log says the sandbox is off: {log:?}"
    );
}

/// What the child that installed the filter saw: each call's errno (0: it succeeded).
#[derive(Debug, PartialEq)]
struct Refusals {
    execve: i32,
    ptrace: i32,
    inet_socket: i32,
    unix_socket: i32,
    thread: i32,
    /// `setns` into the child's own namespaces: IPC, UTS (allowed), net and any type (0).
    setns_ipc: i32,
    setns_uts: i32,
    setns_net: i32,
    setns_any: i32,
    /// `NS_GET_ID` of an nsfs file, `pidfd_open`, `PIDFD_GET_IPC_NAMESPACE` of the pidfd.
    ns_get_id: i32,
    pidfd_open: i32,
    pidfd_get_ipc: i32,
    /// Semaphore sets: `semctl(GETALL)` (allowed), `semctl(IPC_INFO)` (a command shmfs never
    /// makes), `semget` with IPC_CREAT (shmfs only looks sets up).
    semctl_getall: i32,
    semctl_ipc_info: i32,
    semget_create: i32,
    /// Message queues: `msgrcv(MSG_COPY | IPC_NOWAIT)` (allowed), a plain `msgrcv` with
    /// IPC_NOWAIT (which would receive the message), `msgctl(MSG_STAT_ANY)` (allowed).
    msgrcv_copy: i32,
    msgrcv_receive: i32,
    msgctl_stat_any: i32,
    /// POSIX queues: `MqueueDir::of_thread_namespace()` and `get` of a queue through it
    /// (fsopen, fsconfig, fsmount, mq_getattr), `mq_setattr`, `mount(2)` of an mqueue fs,
    /// `fsopen` of another filesystem (tmpfs), `move_mount` of the detached mount.
    mqueue_dir: i32,
    mq_getattr: i32,
    mq_setattr: i32,
    mount: i32,
    fsopen_tmpfs: i32,
    move_mount: i32,
    /// Every call of shmfs's own modules for these kinds (kernel/sem.rs, msg.rs, mqueue.rs,
    /// posix_sem.rs): 0 if each worked and gave what was expected, else the first failure's
    /// errno (-1: a wrong answer).
    kernel_modules: i32,
}

/// Test objects of the calling process's IPC namespace, made before the fork and removed when
/// dropped, even if the test fails: a semaphore set of 3, a message queue holding one message
/// and a POSIX queue holding one.
struct IpcObjects {
    semid: i32,
    msqid: i32,
    mq_name: String,
    /// The POSIX queue, open for reading (the child inherits it: `mq_open` is refused).
    mqd: libc::mqd_t,
}

impl IpcObjects {
    const MESSAGE: &'static [u8] = b"peek";

    fn new() -> IpcObjects {
        let mq_name = format!("shmfs-sandbox-{}", std::process::id());
        let mut made = IpcObjects {
            semid: -1,
            msqid: -1,
            mq_name,
            mqd: -1,
        };
        unsafe {
            made.semid = libc::semget(libc::IPC_PRIVATE, 3, libc::IPC_CREAT | 0o600);
            assert!(
                made.semid >= 0,
                "semget: {}",
                std::io::Error::last_os_error()
            );
            made.msqid = libc::msgget(libc::IPC_PRIVATE, libc::IPC_CREAT | 0o600);
            assert!(
                made.msqid >= 0,
                "msgget: {}",
                std::io::Error::last_os_error()
            );
            let mut buf = [0u8; 16];
            buf[..8].copy_from_slice(&1i64.to_ne_bytes());
            buf[8..8 + Self::MESSAGE.len()].copy_from_slice(Self::MESSAGE);
            let rc = libc::msgsnd(made.msqid, buf.as_ptr().cast(), Self::MESSAGE.len(), 0);
            assert_eq!(rc, 0, "msgsnd: {}", std::io::Error::last_os_error());
            let c = std::ffi::CString::new(format!("/{}", made.mq_name)).unwrap();
            let mut attr: libc::mq_attr = std::mem::zeroed();
            attr.mq_maxmsg = 2;
            attr.mq_msgsize = 16;
            made.mqd = libc::mq_open(
                c.as_ptr(),
                libc::O_CREAT | libc::O_EXCL | libc::O_RDWR,
                0o600 as libc::mode_t,
                &attr as *const libc::mq_attr,
            );
            assert!(
                made.mqd >= 0,
                "mq_open: {}",
                std::io::Error::last_os_error()
            );
            assert_eq!(libc::mq_send(made.mqd, b"x".as_ptr().cast(), 1, 0), 0);
        }
        made
    }

    /// Messages in the System V queue, as IPC_STAT says.
    fn queued(&self) -> u64 {
        let mut ds: libc::msqid_ds = unsafe { std::mem::zeroed() };
        assert_eq!(
            unsafe { libc::msgctl(self.msqid, libc::IPC_STAT, &mut ds) },
            0
        );
        ds.msg_qnum
    }
}

impl Drop for IpcObjects {
    fn drop(&mut self) {
        let c = std::ffi::CString::new(format!("/{}", self.mq_name)).unwrap();
        unsafe {
            if self.semid >= 0 {
                libc::semctl(self.semid, 0, libc::IPC_RMID);
            }
            if self.msqid >= 0 {
                libc::msgctl(self.msqid, libc::IPC_RMID, std::ptr::null_mut());
            }
            if self.mqd >= 0 {
                libc::mq_close(self.mqd);
            }
            libc::mq_unlink(c.as_ptr());
        }
    }
}

/// Runs under the filter every call that kernel/sem.rs, msg.rs, mqueue.rs and posix_sem.rs
/// make for `objects`, as the mount will: 0, or the first failure's errno (-1: a wrong answer).
fn module_calls(objects: &IpcObjects, posix_dir: &fs::File) -> i32 {
    use shmfs::kernel::{mqueue, msg, posix_sem, sem};
    let step = || -> std::io::Result<bool> {
        let wrong = Ok(false);
        let id = objects.semid;
        if !sem::sets()?.iter().any(|s| s.semid == id) || sem::set(id)?.nsems != 3 {
            return wrong;
        }
        sem::set_values(id, &[1, 2, 3])?;
        sem::set_value(id, 2, 4)?;
        let values: Vec<u16> = sem::values(id, 3)?.iter().map(|v| v.value).collect();
        if values != [1, 2, 4] {
            return wrong;
        }
        sem::set_perm(id, 0o600, 0, 0)?;
        sem::limits()?;
        sem::blocked_on(id)?;
        let id = objects.msqid;
        if !msg::queues()?.iter().any(|q| q.msqid == id) || msg::queue(id)?.qnum != 1 {
            return wrong;
        }
        let msgmax = usize::try_from(msg::limits()?.msgmax).unwrap_or(8192);
        if msg::peek(id, 0, msgmax)?.bytes != IpcObjects::MESSAGE
            || msg::listing(id, msgmax, 16)?.len() != 1
        {
            return wrong;
        }
        msg::set_perm(id, 0o600, 0, 0, None)?;
        msg::blocked_on(id)?;
        let dir = mqueue::MqueueDir::of_thread_namespace()?;
        let name = std::ffi::OsStr::new(&objects.mq_name);
        if !dir.list()?.iter().any(|q| q.name == name) || dir.get(name)?.curmsgs != 1 {
            return wrong;
        }
        use std::os::fd::AsFd;
        let state = posix_sem::read_state(posix_dir.as_fd(), std::ffi::OsStr::new("sem.test"))?;
        Ok(state.value == 5)
    };
    match step() {
        Ok(true) => 0,
        Ok(false) => -1,
        Err(e) => e.raw_os_error().unwrap_or(-1),
    }
}

/// Forks a child that installs the daemon's filter (the very function) and tries the calls
/// (on `objects`'s for System V and POSIX IPC); returns their errnos, the child's
/// NoNewPrivs and Seccomp lines and what it wrote to stderr.
fn try_calls_under_the_filter(objects: &IpcObjects) -> (Refusals, String, String) {
    // A glibc named semaphore's file (value 5), in a directory of the test's own.
    let posix = tempfile::tempdir().unwrap();
    let mut sem_file = [0u8; 32];
    sem_file[..8].copy_from_slice(&5u64.to_ne_bytes());
    fs::write(posix.path().join("sem.test"), sem_file).unwrap();
    let posix_dir = fs::File::open(posix.path()).unwrap();
    let mut results = [0i32; 2];
    let mut errors = [0i32; 2];
    unsafe {
        assert_eq!(libc::pipe2(results.as_mut_ptr(), libc::O_CLOEXEC), 0);
        assert_eq!(libc::pipe2(errors.as_mut_ptr(), libc::O_CLOEXEC), 0);
    }
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork");
    if pid == 0 {
        // The child: only system calls and the filter's installation, then _exit.
        unsafe {
            libc::dup2(errors[1], 2);
            let code = match sandbox::seccomp::install() {
                Ok(_) => 0,
                Err(_) => 99,
            };
            let errno = || *libc::__errno_location();
            let argv = [c"/bin/true".as_ptr(), std::ptr::null()];
            let envp = [std::ptr::null()];
            let execve = if libc::execve(argv[0], argv.as_ptr(), envp.as_ptr()) < 0 {
                errno()
            } else {
                0
            };
            let ptrace = if libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0) < 0 {
                errno()
            } else {
                0
            };
            let inet = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
            let inet_socket = if inet < 0 { errno() } else { 0 };
            let unix = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0);
            let unix_socket = if unix < 0 { errno() } else { 0 };
            let thread = match std::thread::Builder::new().spawn(|| 7).map(|t| t.join()) {
                Ok(Ok(7)) => 0,
                _ => -1,
            };
            let call = |rc: libc::c_long| if rc < 0 { errno() } else { 0 };
            let ns =
                |name: &std::ffi::CStr| libc::open(name.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
            let (ipc, uts, net) = (
                ns(c"/proc/thread-self/ns/ipc"),
                ns(c"/proc/thread-self/ns/uts"),
                ns(c"/proc/thread-self/ns/net"),
            );
            let setns_ipc = call(libc::setns(ipc, libc::CLONE_NEWIPC).into());
            let setns_uts = call(libc::setns(uts, libc::CLONE_NEWUTS).into());
            let setns_net = call(libc::setns(net, libc::CLONE_NEWNET).into());
            let setns_any = call(libc::setns(ipc, 0).into());
            let mut id = 0u64;
            let ns_get_id = call(
                libc::ioctl(
                    ipc,
                    shmfs::kernel::namespace::NS_GET_ID as _,
                    &mut id as *mut u64,
                )
                .into(),
            );
            let pidfd = libc::syscall(libc::SYS_pidfd_open, libc::getpid(), 0);
            let pidfd_open = call(pidfd);
            let pidfd_get_ipc = call(
                libc::ioctl(
                    pidfd as i32,
                    shmfs::kernel::enter::PIDFD_GET_IPC_NAMESPACE as _,
                    0 as libc::c_ulong,
                )
                .into(),
            );
            let mut values = [7u16; 3];
            let semctl_getall =
                call(libc::semctl(objects.semid, 0, libc::GETALL, values.as_mut_ptr()).into());
            let mut seminfo: libc::seminfo = std::mem::zeroed();
            let semctl_ipc_info =
                call(libc::semctl(0, 0, libc::IPC_INFO, &mut seminfo as *mut libc::seminfo).into());
            let created = libc::semget(libc::IPC_PRIVATE, 1, libc::IPC_CREAT | 0o600);
            if created >= 0 {
                // Allowed by mistake: leave nothing behind (IPC_RMID is allowed).
                libc::semctl(created, 0, libc::IPC_RMID);
            }
            let semget_create = call(created.into());
            let mut msg = [0u64; 1 + 8192 / 8];
            let copied = libc::msgrcv(
                objects.msqid,
                msg.as_mut_ptr().cast(),
                8192,
                0,
                shmfs::kernel::msg::MSG_COPY | libc::IPC_NOWAIT,
            );
            let msgrcv_copy = if copied == IpcObjects::MESSAGE.len() as isize {
                0
            } else {
                call(-1)
            };
            let msgrcv_receive = call(libc::msgrcv(
                objects.msqid,
                msg.as_mut_ptr().cast(),
                8192,
                0,
                libc::IPC_NOWAIT,
            ) as _);
            let mut ds: libc::msqid_ds = std::mem::zeroed();
            let msgctl_stat_any =
                call(libc::msgctl(objects.msqid, shmfs::kernel::msg::MSG_STAT_ANY, &mut ds).into());
            let dir = shmfs::kernel::mqueue::MqueueDir::of_thread_namespace();
            let mqueue_dir = dir
                .as_ref()
                .map_or_else(|e| e.raw_os_error().unwrap_or(-1), |_| 0);
            let mq_getattr = match dir
                .as_ref()
                .map(|d| d.get(std::ffi::OsStr::new(&objects.mq_name)))
            {
                Ok(Ok(info)) if info.curmsgs == 1 => 0,
                Ok(Err(e)) => e.raw_os_error().unwrap_or(-1),
                _ => -1,
            };
            let mut nonblock: libc::mq_attr = std::mem::zeroed();
            nonblock.mq_flags = libc::O_NONBLOCK as _;
            let mq_setattr =
                call(libc::mq_setattr(objects.mqd, &nonblock, std::ptr::null_mut()).into());
            let target = c"/proc/self/fdinfo";
            let mount = call(
                libc::mount(
                    c"mqueue".as_ptr(),
                    target.as_ptr(),
                    c"mqueue".as_ptr(),
                    libc::MS_NOSUID,
                    std::ptr::null(),
                )
                .into(),
            );
            let tmpfs = libc::syscall(libc::SYS_fsopen, c"tmpfs".as_ptr(), 1 as libc::c_uint);
            let fsopen_tmpfs = call(tmpfs);
            // MOVE_MOUNT_F_EMPTY_PATH (4) of no descriptor: EBADF even if it were allowed.
            let move_mount = call(libc::syscall(
                libc::SYS_move_mount,
                -1,
                c"".as_ptr(),
                libc::AT_FDCWD,
                c"/proc/self/status".as_ptr(),
                4 as libc::c_uint,
            ));
            let kernel_modules = module_calls(objects, &posix_dir);
            let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
            let lines: String = status
                .lines()
                .filter(|l| l.starts_with("NoNewPrivs") || l.starts_with("Seccomp:"))
                .collect::<Vec<_>>()
                .join("\n");
            let out = format!(
                "{execve} {ptrace} {inet_socket} {unix_socket} {thread} {setns_ipc} {setns_uts} \
                 {setns_net} {setns_any} {ns_get_id} {pidfd_open} {pidfd_get_ipc} \
                 {semctl_getall} {semctl_ipc_info} {semget_create} {msgrcv_copy} \
                 {msgrcv_receive} {msgctl_stat_any} {mqueue_dir} {mq_getattr} {mq_setattr} \
                 {mount} {fsopen_tmpfs} {move_mount} {kernel_modules}\n{lines}"
            );
            libc::write(results[1], out.as_ptr().cast(), out.len());
            libc::_exit(code);
        }
    }
    unsafe {
        libc::close(results[1]);
        libc::close(errors[1]);
    }
    let read_all = |fd: i32| {
        let mut file = unsafe { <fs::File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        let mut text = String::new();
        std::io::Read::read_to_string(&mut file, &mut text).unwrap();
        text
    };
    let out = read_all(results[0]);
    let stderr = read_all(errors[0]);
    let mut status = 0;
    unsafe { libc::waitpid(pid, &mut status, 0) };
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "the child installed the filter and exited normally: status {status:#x}, stderr {stderr}"
    );
    let (numbers, lines) = out.split_once('\n').expect("the child's report");
    let n: Vec<i32> = numbers.split(' ').map(|n| n.parse().unwrap()).collect();
    (
        Refusals {
            execve: n[0],
            ptrace: n[1],
            inet_socket: n[2],
            unix_socket: n[3],
            thread: n[4],
            setns_ipc: n[5],
            setns_uts: n[6],
            setns_net: n[7],
            setns_any: n[8],
            ns_get_id: n[9],
            pidfd_open: n[10],
            pidfd_get_ipc: n[11],
            semctl_getall: n[12],
            semctl_ipc_info: n[13],
            semget_create: n[14],
            msgrcv_copy: n[15],
            msgrcv_receive: n[16],
            msgctl_stat_any: n[17],
            mqueue_dir: n[18],
            mq_getattr: n[19],
            mq_setattr: n[20],
            mount: n[21],
            fsopen_tmpfs: n[22],
            move_mount: n[23],
            kernel_modules: n[24],
        },
        lines.to_string(),
        stderr,
    )
}

#[test]
fn the_daemons_filter_refuses_execve_ptrace_and_inet_sockets() {
    let ipc = IpcObjects::new();
    let (refusals, status, stderr) = try_calls_under_the_filter(&ipc);
    assert_eq!(
        refusals,
        Refusals {
            execve: libc::EPERM,
            ptrace: libc::EPERM,
            inet_socket: libc::EPERM,
            unix_socket: 0,
            thread: 0,
            setns_ipc: 0,
            setns_uts: 0,
            setns_net: libc::EPERM,
            setns_any: libc::EPERM,
            ns_get_id: 0,
            pidfd_open: 0,
            pidfd_get_ipc: 0,
            semctl_getall: 0,
            semctl_ipc_info: libc::EPERM,
            semget_create: libc::EPERM,
            msgrcv_copy: 0,
            msgrcv_receive: libc::EPERM,
            msgctl_stat_any: 0,
            mqueue_dir: 0,
            mq_getattr: 0,
            mq_setattr: libc::EPERM,
            mount: libc::EPERM,
            fsopen_tmpfs: libc::EPERM,
            move_mount: libc::EPERM,
            kernel_modules: 0,
        },
        "under the filter (child's stderr: {stderr})"
    );
    assert_eq!(ipc.queued(), 1, "the refused msgrcv received nothing");
    assert!(status.contains("NoNewPrivs:\t1"), "{status}");
    assert!(status.contains("Seccomp:\t2"), "{status}");
    for name in [
        "execve",
        "ptrace",
        "socket",
        "setns",
        "semctl",
        "semget",
        "msgrcv",
        "mq_getsetattr",
        "mount",
        "fsopen",
        "move_mount",
    ] {
        assert!(
            stderr
                .lines()
                .any(|l| l.contains("seccomp refused system call")
                    && l.contains(&format!("({name})"))),
            "a warning names the refused {name}: {stderr:?}"
        );
    }
    assert_eq!(
        stderr.matches("seccomp refused").count(),
        12,
        "nothing else was refused: {stderr:?}"
    );
    // As root and unfiltered, the same calls are allowed: the filter is what refused them.
    let inet = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) };
    assert!(inet >= 0, "an AF_INET socket outside the filter");
    unsafe { libc::close(inet) };
    let net = fs::File::open("/proc/thread-self/ns/net").unwrap();
    std::thread::spawn(move || {
        use std::os::fd::AsRawFd;
        let rc = unsafe { libc::setns(net.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns(CLONE_NEWNET) outside the filter");
    })
    .join()
    .unwrap();
}

/// uid and gid of the non-root user; the world gives it a passwd entry of its own.
const USER: u32 = 12346;

#[test]
fn a_users_daemon_is_filtered_and_unmounts_on_sigterm() {
    require_fuse!();
    require_tools!("fusermount3" => "Debian package fuse3");
    let w = World::new();
    if !w.allow_user(USER) {
        return;
    }
    let (bin, home, mnt) = w.user_mount_dirs(USER);
    let r = w.sh_as(USER, &home, &format!("{} {}", q(&bin), q(&mnt)));
    assert!(r.ok(), "shmfs MNT as user {USER}: {r:?}");
    assert!(w.mount_at(&mnt).is_some(), "the user's mount is there");
    let r = w.sh_as(USER, &home, &format!("ls {}/sysv", q(&mnt)));
    assert!(r.ok(), "ls MNT/sysv as the user: {r:?}");

    let daemons = pids_with_arg(&mnt);
    assert_eq!(daemons.len(), 1, "one daemon (the helper is shmfs-unmount)");
    let status = status_of(daemons[0] as u32);
    assert_eq!(field(&status, "NoNewPrivs"), "1");
    assert_eq!(field(&status, "Seccomp"), "2");
    assert_eq!(caps(&status, "CapEff") | caps(&status, "CapPrm"), 0);
    let helpers = helpers_of(&mnt);
    assert_eq!(helpers.len(), 1, "one unmount helper");
    assert_eq!(
        field(&status_of(helpers[0] as u32), "Seccomp"),
        "0",
        "the helper stays outside the filter (it runs fusermount3)"
    );

    unsafe { libc::kill(daemons[0], libc::SIGTERM) };
    let start = Instant::now();
    while w.mount_at(&mnt).is_some() || !pids_with_arg_under(&mnt).is_empty() {
        assert!(
            start.elapsed() < MOUNT_TIMEOUT,
            "after SIGTERM: mounted {:?}, processes {:?}",
            w.mount_at(&mnt),
            pids_with_arg_under(&mnt)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Live `shmfs-unmount` helpers with `mnt` on their command line.
fn helpers_of(mnt: &Path) -> Vec<i32> {
    pids_with_arg_under(mnt)
        .into_iter()
        .filter(|pid| {
            fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim() == "shmfs-unmount")
        })
        .collect()
}
