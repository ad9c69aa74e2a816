//! Least privilege: a mounted daemon keeps only the capabilities docs/sandbox.md
//! names, has no_new_privs and a seccomp filter on every thread; `--no-sandbox` keeps the old
//! state and says so; the filter the daemon installs really refuses execve, ptrace and
//! AF_INET sockets, and `setns` into anything but an IPC or UTS namespace, while it lets
//! through what `ns/` needs (`setns` of those two types, `pidfd_open`, the pidfd's and nsfs's
//! namespace ioctls); a non-root daemon is filtered too and still unmounts on SIGTERM.

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
}

/// Forks a child that installs the daemon's filter (the very function) and tries the calls;
/// returns their errnos, the child's NoNewPrivs and Seccomp lines and what it wrote to stderr.
fn try_calls_under_the_filter() -> (Refusals, String, String) {
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
            let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
            let lines: String = status
                .lines()
                .filter(|l| l.starts_with("NoNewPrivs") || l.starts_with("Seccomp:"))
                .collect::<Vec<_>>()
                .join("\n");
            let out = format!(
                "{execve} {ptrace} {inet_socket} {unix_socket} {thread} {setns_ipc} {setns_uts} \
                 {setns_net} {setns_any} {ns_get_id} {pidfd_open} {pidfd_get_ipc}\n{lines}"
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
        },
        lines.to_string(),
        stderr,
    )
}

#[test]
fn the_daemons_filter_refuses_execve_ptrace_and_inet_sockets() {
    let (refusals, status, stderr) = try_calls_under_the_filter();
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
        },
        "under the filter (child's stderr: {stderr})"
    );
    assert!(status.contains("NoNewPrivs:\t1"), "{status}");
    assert!(status.contains("Seccomp:\t2"), "{status}");
    for name in ["execve", "ptrace", "socket", "setns"] {
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
        5,
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
