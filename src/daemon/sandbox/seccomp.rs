//! The seccomp allowlist: the system calls the daemon makes once it serves, and nothing else.
//!
//! A call that is not on the list fails with EPERM and a warning on stderr (the daemon's log),
//! written by a SIGSYS handler (the filter's action is SECCOMP_RET_TRAP): the request that
//! made it fails, the daemon goes on. The one exception is `clone3`, which fails with ENOSYS
//! and no warning, from a second filter: the C library's thread creation tries it first (with
//! every signal blocked, where a trap would kill the process) and falls back to `clone`, which
//! is allowed for threads only.
//!
//! Allowed with any arguments: memory, threads and futexes, signals, time, reading and writing
//! descriptors, the file operations shmfs makes in the shm dir and /proc (`openat`, `statx`,
//! `getdents64`, `readlinkat`, `unlinkat`, `fchmodat`, `fchownat`, `ftruncate`, `utimensat`,
//! ...), System V shm (`shmget`, `shmat`, `shmdt`, `shmctl`), switching credentials
//! (`setresuid`, `setresgid`, `setgroups`, `capget`, `capset`), and what the C library's user
//! and group lookups need over a Unix socket (`connect`, `sendto`, `recvmsg`, ...).
//! Allowed with some arguments only: `clone` of a thread, `socket` of AF_UNIX, `ioctl` of the
//! FUSE device's own requests (and TCGETS), `prctl` naming a thread or a mapping (or reading
//! the bounding set, as libcap does when a name lookup loads it), `prlimit64`
//! reading a limit, `tgkill` of the daemon's own threads, `process_vm_writev` of the daemon's
//! own memory (copies that a vanished page fails instead of killing), `umount2` plain or lazy,
//! `setns` into an IPC or UTS namespace only (`ns/`, issue 23: a worker visits a container's
//! namespace for one request), and of `ioctl` besides FUSE's, the pidfd's and nsfs's few
//! requests that name a namespace (`PIDFD_GET_IPC_NAMESPACE`, `PIDFD_GET_UTS_NAMESPACE`,
//! `NS_GET_ID`, `NS_GET_NSTYPE`).
//! For semaphore sets, message queues and POSIX queues (issue 24): `semctl` and `msgctl` with
//! the commands shmfs makes only (reading, SETVAL/SETALL, IPC_SET, IPC_RMID), `msgrcv` only
//! with `MSG_COPY | IPC_NOWAIT` (a copy, never a receipt), `semget`/`msgget` without
//! `IPC_CREAT` (lookup by key), `mq_getsetattr` with no new attributes (`mq_getattr`), and
//! `fsopen` of the static "mqueue" name, `fsconfig(FSCONFIG_CMD_CREATE)` and `fsmount` with
//! fixed flags: a detached mount of a namespace's mqueue filesystem, never attached.
//! Everything else is refused: `execve`, `ptrace`, `mount`, `move_mount`, `bpf`, `kexec_load`,
//! `init_module`, `setns` of any other type (a mount, user or pid namespace would give a
//! worker another root, other ids or another pid numbering), `unshare`, `open_by_handle_at`,
//! `process_vm_readv` (and `process_vm_writev` of another process), `kill`, `pidfd_send_signal`,
//! `pidfd_getfd`, `fork`, sockets of any other family, and every call not named here.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

/// `(number, "SYS_name")` for each named system call.
macro_rules! calls {
    ($($name:ident),* $(,)?) => {
        &[$((libc::$name, stringify!($name))),*]
    };
}

/// Allowed with any arguments, on every architecture.
const ANY: &[(libc::c_long, &str)] = calls![
    // Memory.
    SYS_brk,
    SYS_mmap,
    SYS_munmap,
    SYS_mremap,
    SYS_mprotect,
    SYS_madvise,
    // Threads, futexes, exiting.
    SYS_futex,
    SYS_set_robust_list,
    SYS_rseq,
    SYS_set_tid_address,
    SYS_sched_yield,
    SYS_sched_getaffinity,
    SYS_gettid,
    SYS_getpid,
    SYS_exit,
    SYS_exit_group,
    SYS_restart_syscall,
    SYS_wait4,
    // Signals (the signal thread's sigwait, std's handlers and alternate stacks).
    SYS_rt_sigaction,
    SYS_rt_sigprocmask,
    SYS_rt_sigreturn,
    SYS_rt_sigtimedwait,
    SYS_sigaltstack,
    // Time and randomness.
    SYS_clock_gettime,
    SYS_clock_getres,
    SYS_clock_nanosleep,
    SYS_nanosleep,
    SYS_gettimeofday,
    SYS_getrandom,
    // Descriptors.
    SYS_read,
    SYS_write,
    SYS_readv,
    SYS_writev,
    SYS_pread64,
    SYS_pwrite64,
    SYS_lseek,
    SYS_close,
    SYS_fcntl,
    SYS_dup,
    SYS_dup3,
    // Also whether a process held by a pidfd still runs (--pid's, ns/'s members).
    SYS_ppoll,
    // A pidfd of each process whose namespace a request enters (ns/, issue 23): it pins
    // nothing, needs no permission, and serves only what its ioctls and poll allow here
    // (`pidfd_send_signal` and `pidfd_getfd` stay refused).
    SYS_pidfd_open,
    SYS_fstat,
    // Also that an nsfs bind mount is one (NSFS_MAGIC) before it is opened to be entered.
    SYS_fstatfs,
    // Files: the shm dir, /proc, fusectl, /etc (name lookups).
    SYS_openat,
    // Every object of the shm dir, and --pid's dev/shm inside the process's root
    // (RESOLVE_IN_ROOT), found again for each operation.
    SYS_openat2,
    SYS_name_to_handle_at,
    SYS_newfstatat,
    SYS_statx,
    SYS_statfs,
    SYS_getdents64,
    SYS_readlinkat,
    SYS_unlinkat,
    SYS_fchmod,
    SYS_fchmodat,
    SYS_fchown,
    SYS_fchownat,
    SYS_ftruncate,
    SYS_utimensat,
    SYS_faccessat,
    SYS_faccessat2,
    SYS_chdir,
    SYS_getcwd,
    SYS_uname,
    // System V shared memory.
    SYS_shmget,
    SYS_shmat,
    SYS_shmdt,
    SYS_shmctl,
    // Acting as the caller (src/kernel/creds.rs).
    SYS_getuid,
    SYS_geteuid,
    SYS_getgid,
    SYS_getegid,
    SYS_getresuid,
    SYS_getresgid,
    SYS_getgroups,
    SYS_setresuid,
    SYS_setresgid,
    SYS_setgroups,
    SYS_capget,
    SYS_capset,
    // The C library's user and group lookups (nscd, sssd, systemd-userdbd), on the AF_UNIX
    // sockets `socket` is limited to.
    SYS_connect,
    SYS_sendto,
    SYS_sendmsg,
    SYS_recvfrom,
    SYS_recvmsg,
    SYS_getsockopt,
    SYS_getsockname,
    SYS_getpeername,
    SYS_shutdown,
    // Huge-page segments: the device of the kernel's internal hugetlbfs (a memfd of the page
    // size), and allocating the pages a write covers before mapping them (sysv::write_hugetlb).
    // The journal logger also passes long messages in a memfd.
    SYS_memfd_create,
    SYS_fallocate,
];

/// Allowed with any arguments, on x86_64 only (the older calls that aarch64 never had).
#[cfg(target_arch = "x86_64")]
const ANY_ARCH: &[(libc::c_long, &str)] = calls![
    SYS_open,
    SYS_stat,
    SYS_lstat,
    SYS_poll,
    SYS_access,
    SYS_readlink,
    SYS_unlink,
    SYS_chmod,
    SYS_dup2,
    SYS_getrlimit,
];
#[cfg(not(target_arch = "x86_64"))]
const ANY_ARCH: &[(libc::c_long, &str)] = &[];

/// Refused calls named in the warning (others show by number).
const NOTABLE: &[(libc::c_long, &str)] = calls![
    SYS_execve,
    SYS_execveat,
    SYS_ptrace,
    SYS_socket,
    SYS_bind,
    SYS_listen,
    SYS_accept4,
    SYS_mount,
    SYS_umount2,
    SYS_bpf,
    SYS_kexec_load,
    SYS_init_module,
    SYS_finit_module,
    SYS_delete_module,
    SYS_setns,
    SYS_unshare,
    SYS_clone,
    SYS_kill,
    SYS_tgkill,
    SYS_prctl,
    SYS_ioctl,
    SYS_prlimit64,
    SYS_open_by_handle_at,
    SYS_process_vm_readv,
    SYS_process_vm_writev,
    SYS_perf_event_open,
    SYS_keyctl,
    SYS_chroot,
    SYS_pivot_root,
    SYS_mknodat,
    SYS_linkat,
    SYS_symlinkat,
    SYS_renameat2,
    SYS_fsync,
    SYS_fdatasync,
    SYS_pipe2,
    SYS_semctl,
    SYS_semget,
    SYS_msgctl,
    SYS_msgget,
    SYS_msgrcv,
    SYS_msgsnd,
    SYS_semop,
    SYS_semtimedop,
    SYS_mq_getsetattr,
    SYS_mq_open,
    SYS_mq_timedreceive,
    SYS_fsopen,
    SYS_fsconfig,
    SYS_fsmount,
    SYS_fspick,
    SYS_move_mount,
    SYS_open_tree,
    SYS_mount_setattr,
];

/// `_IOC(dir, type, nr, size)` of asm-generic/ioctl.h (x86_64, aarch64, riscv64).
const fn ioc(dir: u64, kind: u64, nr: u64, size: u64) -> u64 {
    (dir << 30) | (size << 16) | (kind << 8) | nr
}
const IOC_WRITE: u64 = 1;
const IOC_READ: u64 = 2;
/// FUSE_DEV_IOC_CLONE: `_IOR(229, 0, uint32_t)` (fuser's clone_fd).
const FUSE_DEV_IOC_CLONE: u64 = ioc(IOC_READ, 229, 0, 4);
/// FUSE_DEV_IOC_BACKING_OPEN: `_IOW(229, 1, struct fuse_backing_map)` (passthrough).
const FUSE_DEV_IOC_BACKING_OPEN: u64 = ioc(IOC_WRITE, 229, 1, 16);
/// FUSE_DEV_IOC_BACKING_CLOSE: `_IOW(229, 2, uint32_t)`.
const FUSE_DEV_IOC_BACKING_CLOSE: u64 = ioc(IOC_WRITE, 229, 2, 4);
/// The namespace requests of pidfds and nsfs that `ns/` makes (issue 23): a namespace's
/// descriptor from a pidfd, its never-reused id, its type.
const NAMESPACE_IOCTLS: [u64; 4] = [
    crate::kernel::enter::PIDFD_GET_IPC_NAMESPACE,
    crate::kernel::enter::PIDFD_GET_UTS_NAMESPACE,
    crate::kernel::namespace::NS_GET_ID,
    crate::kernel::enter::NS_GET_NSTYPE,
];

/// The architecture the filters are for, if seccompiler knows it.
fn target_arch() -> Option<TargetArch> {
    if cfg!(target_arch = "x86_64") {
        Some(TargetArch::x86_64)
    } else if cfg!(target_arch = "aarch64") {
        Some(TargetArch::aarch64)
    } else if cfg!(target_arch = "riscv64") {
        Some(TargetArch::riscv64)
    } else {
        None
    }
}

fn condition(arg: u8, op: SeccompCmpOp, value: u64) -> Result<SeccompCondition, String> {
    SeccompCondition::new(arg, SeccompCmpArgLen::Dword, op, value).map_err(|e| e.to_string())
}

/// A rule per value: argument `arg` (its low 32 bits) equals one of `values`.
fn one_of(arg: u8, values: &[u64]) -> Result<Vec<SeccompRule>, String> {
    values
        .iter()
        .map(|&v| {
            SeccompRule::new(vec![condition(arg, SeccompCmpOp::Eq, v)?]).map_err(|e| e.to_string())
        })
        .collect()
}

/// A rule per command: argument `arg`, a System V IPC command, is one of `commands`, with or
/// without the `IPC_64` bit (0x100) that some C libraries and architectures add to name the
/// 64-bit structures (the kernel takes it off, or refuses the command: no other command is
/// admitted either way).
fn ipc_command(arg: u8, commands: &[libc::c_int]) -> Result<Vec<SeccompRule>, String> {
    const WITHOUT_IPC_64: u64 = 0xffff_feff;
    commands
        .iter()
        .map(|&c| {
            let op = SeccompCmpOp::MaskedEq(WITHOUT_IPC_64);
            SeccompRule::new(vec![condition(arg, op, c as u64 & WITHOUT_IPC_64)?])
                .map_err(|e| e.to_string())
        })
        .collect()
}

/// A rule on a whole 64-bit argument (a pointer): `arg` equals `value`.
fn qword(arg: u8, value: u64) -> Result<SeccompCondition, String> {
    SeccompCondition::new(arg, SeccompCmpArgLen::Qword, SeccompCmpOp::Eq, value)
        .map_err(|e| e.to_string())
}

/// The System V semaphore and message queue calls (issue 24) and their arguments.
// The libc constants' types differ between targets: the casts are not everywhere no-ops.
#[allow(clippy::unnecessary_cast)]
fn semaphores_and_queues() -> Result<Vec<(libc::c_long, Vec<SeccompRule>)>, String> {
    use crate::kernel::msg::{MSG_COPY, MSG_INFO, MSG_STAT_ANY};
    let rule = |conditions| SeccompRule::new(conditions).map_err(|e| e.to_string());
    let copy_nowait = (MSG_COPY | libc::IPC_NOWAIT) as u64;
    let no_create = SeccompCmpOp::MaskedEq(libc::IPC_CREAT as u64);
    Ok(vec![
        // Semaphore sets (kernel/sem.rs): listing and lookup (SEM_INFO, SEM_STAT_ANY,
        // IPC_STAT), `values` (GETALL, then GETNCNT, GETZCNT, GETPID for each; GETVAL), writing
        // it (SETVAL, SETALL), `perm` (IPC_SET), rmdir (IPC_RMID). Not IPC_INFO, SEM_STAT.
        (
            libc::SYS_semctl,
            ipc_command(
                2,
                &[
                    libc::IPC_STAT,
                    libc::SEM_STAT_ANY,
                    libc::SEM_INFO,
                    libc::GETALL,
                    libc::GETVAL,
                    libc::GETPID,
                    libc::GETNCNT,
                    libc::GETZCNT,
                    libc::SETVAL,
                    libc::SETALL,
                    libc::IPC_SET,
                    libc::IPC_RMID,
                ],
            )?,
        ),
        // Message queues (kernel/msg.rs): listing and lookup (MSG_INFO, MSG_STAT_ANY,
        // IPC_STAT), `perm` (IPC_SET), rmdir (IPC_RMID). Not IPC_INFO, MSG_STAT.
        (
            libc::SYS_msgctl,
            ipc_command(
                1,
                &[
                    libc::IPC_STAT,
                    MSG_STAT_ANY,
                    MSG_INFO,
                    libc::IPC_SET,
                    libc::IPC_RMID,
                ],
            )?,
        ),
        // `queue` and `messages/N`: a copy of the message at a position, never a receipt.
        // Both bits must be set: a msgrcv without MSG_COPY would take the message off the
        // queue (and without IPC_NOWAIT could block a worker); the kernel refuses MSG_COPY
        // with MSG_EXCEPT or MSG_NOERROR itself.
        (
            libc::SYS_msgrcv,
            vec![rule(vec![condition(
                4,
                SeccompCmpOp::MaskedEq(copy_nowait),
                copy_nowait,
            )?])?],
        ),
        // `by-key/`: the set or queue of a key, looked up (`semget(key, 0, 0)`,
        // `msgget(key, 0)`), never created.
        (
            libc::SYS_semget,
            vec![rule(vec![condition(2, no_create.clone(), 0)?])?],
        ),
        (
            libc::SYS_msgget,
            vec![rule(vec![condition(1, no_create, 0)?])?],
        ),
        // A POSIX queue's attributes (kernel/mqueue.rs): `mq_getattr` is mq_getsetattr with
        // no new attributes (NULL); setting them (mq_setattr) is refused.
        (libc::SYS_mq_getsetattr, vec![rule(vec![qword(1, 0)?])?]),
        // The mqueue filesystem of a namespace as a detached mount
        // (MqueueDir::of_thread_namespace): fsopen of the one static "mqueue" string (the
        // filter cannot read a string, but can compare its address), close-on-exec;
        // fsconfig's CMD_CREATE only (no option, no source, no reconfiguration); fsmount
        // close-on-exec, nosuid,nodev,noexec. `move_mount`, which would attach it somewhere,
        // and `mount` stay refused.
        (
            libc::SYS_fsopen,
            vec![rule(vec![
                qword(0, crate::kernel::mqueue::fsopen_name_address())?,
                condition(
                    1,
                    SeccompCmpOp::Eq,
                    u64::from(crate::kernel::mqueue::FSOPEN_CLOEXEC),
                )?,
            ])?],
        ),
        (
            libc::SYS_fsconfig,
            vec![rule(vec![
                condition(
                    1,
                    SeccompCmpOp::Eq,
                    u64::from(crate::kernel::mqueue::FSCONFIG_CMD_CREATE),
                )?,
                qword(2, 0)?,
                qword(3, 0)?,
                condition(4, SeccompCmpOp::Eq, 0)?,
            ])?],
        ),
        (
            libc::SYS_fsmount,
            vec![rule(vec![
                condition(
                    1,
                    SeccompCmpOp::Eq,
                    u64::from(crate::kernel::mqueue::FSMOUNT_CLOEXEC),
                )?,
                condition(
                    2,
                    SeccompCmpOp::Eq,
                    crate::kernel::mqueue::MQUEUE_MOUNT_ATTRS,
                )?,
            ])?],
        ),
    ])
}

/// The calls allowed only with some arguments, and those arguments.
// The libc constants' types differ between targets: the casts are not everywhere no-ops.
#[allow(clippy::unnecessary_cast)]
fn conditional() -> Result<Vec<(libc::c_long, Vec<SeccompRule>)>, String> {
    let thread = SeccompRule::new(vec![condition(
        0,
        SeccompCmpOp::MaskedEq(libc::CLONE_THREAD as u64),
        libc::CLONE_THREAD as u64,
    )?])
    .map_err(|e| e.to_string())?;
    let reads_only = SeccompRule::new(vec![
        SeccompCondition::new(2, SeccompCmpArgLen::Qword, SeccompCmpOp::Eq, 0)
            .map_err(|e| e.to_string())?,
    ])
    .map_err(|e| e.to_string())?;
    Ok([
        // Threads, never processes.
        (libc::SYS_clone, vec![thread]),
        // Sockets for the C library's name lookups only.
        (libc::SYS_socket, one_of(0, &[libc::AF_UNIX as u64])?),
        // FUSE's own requests; the namespace requests of ns/: PIDFD_GET_*_NAMESPACE (the
        // kernel checks ptrace read access to the process), NS_GET_ID and NS_GET_NSTYPE
        // (reading an nsfs file's identity and type).
        (
            libc::SYS_ioctl,
            one_of(
                1,
                &[
                    [
                        FUSE_DEV_IOC_CLONE,
                        FUSE_DEV_IOC_BACKING_OPEN,
                        FUSE_DEV_IOC_BACKING_CLOSE,
                        libc::TCGETS as u64,
                    ]
                    .as_slice(),
                    &NAMESPACE_IOCTLS,
                ]
                .concat(),
            )?,
        ),
        // A worker visits an IPC namespace (ns/) or a UTS namespace (a container's hostname)
        // for one request and comes back: only with those types named, so that the kernel
        // refuses a descriptor of any other namespace (0 would join whatever it names).
        (
            libc::SYS_setns,
            one_of(1, &[libc::CLONE_NEWIPC as u64, libc::CLONE_NEWUTS as u64])?,
        ),
        (
            libc::SYS_prctl,
            one_of(
                0,
                &[
                    libc::PR_SET_NAME as u64,
                    libc::PR_GET_NAME as u64,
                    libc::PR_SET_VMA as u64,
                    // libcap's start-up probe, in the systemd name lookup module it is
                    // loaded with: reading, never changing.
                    libc::PR_CAPBSET_READ as u64,
                ],
            )?,
        ),
        // Reading a limit (the descriptor share); never setting one.
        (libc::SYS_prlimit64, vec![reads_only]),
        // Signals to the daemon's own threads (abort), never to another process.
        // SAFETY: getpid has no preconditions.
        (
            libc::SYS_tgkill,
            one_of(0, &[unsafe { libc::getpid() } as u64])?,
        ),
        // Copies into and out of shared memory (sysv::copy_in_memory) in the daemon's own
        // memory, where a page that cannot be had is an error, not SIGBUS; never another's.
        (
            libc::SYS_process_vm_writev,
            // SAFETY: getpid has no preconditions.
            one_of(0, &[unsafe { libc::getpid() } as u64])?,
        ),
        // Unmounting at exit (root): plain, then lazy.
        (libc::SYS_umount2, one_of(1, &[0, libc::MNT_DETACH as u64])?),
    ]
    .into_iter()
    .chain(semaphores_and_queues()?)
    .collect())
}

/// How many system calls the allowlist names (with or without conditions).
pub fn allowed_count() -> usize {
    ANY.len() + ANY_ARCH.len() + conditional().map_or(0, |c| c.len()) + 1
}

/// The filters the daemon installs, in order: `clone3` fails with ENOSYS; then the allowlist,
/// whose refusals trap to [`refused`] (or fail with EPERM on an architecture without it).
#[allow(clippy::unnecessary_cast)] // as in `conditional`
pub fn programs() -> Result<Vec<BpfProgram>, String> {
    let arch = target_arch().ok_or("no seccomp filter for this architecture")?;
    let mut allowed: BTreeMap<i64, Vec<SeccompRule>> = ANY
        .iter()
        .chain(ANY_ARCH)
        .map(|&(nr, _)| (nr as i64, Vec::new()))
        .collect();
    for (nr, rules) in conditional()? {
        allowed.insert(nr as i64, rules);
    }
    // Allowed here so that the ENOSYS of the first filter is what counts (a trap would win).
    allowed.insert(libc::SYS_clone3 as i64, Vec::new());
    let refusal = if TRAPS {
        SeccompAction::Trap
    } else {
        SeccompAction::Errno(libc::EPERM as u32)
    };
    let allowlist = SeccompFilter::new(allowed, refusal, SeccompAction::Allow, arch)
        .map_err(|e| e.to_string())?;
    let no_clone3 = SeccompFilter::new(
        BTreeMap::from([(libc::SYS_clone3 as i64, Vec::new())]),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        arch,
    )
    .map_err(|e| e.to_string())?;
    [no_clone3, allowlist]
        .into_iter()
        .map(|f| BpfProgram::try_from(f).map_err(|e| e.to_string()))
        .collect()
}

/// Sets no_new_privs and installs [`programs`] on every thread of the process (TSYNC), after
/// the SIGSYS handler that turns a refusal into EPERM and a warning. Returns how many calls
/// the allowlist names. This is the very function the daemon calls.
pub fn install() -> Result<usize, String> {
    let programs = programs()?;
    if TRAPS {
        install_handler().map_err(|e| format!("SIGSYS handler: {e}"))?;
    }
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(format!("no_new_privs: {}", std::io::Error::last_os_error()));
    }
    for program in &programs {
        seccompiler::apply_filter_all_threads(program)
            .map_err(|e| format!("installing the seccomp filter: {e}"))?;
    }
    Ok(allowed_count())
}

/// Whether refusals trap to [`refused`] (which must know where the return value goes).
const TRAPS: bool = cfg!(any(target_arch = "x86_64", target_arch = "aarch64"));

fn install_handler() -> std::io::Result<()> {
    // SAFETY: a zeroed sigaction is valid; the handler has the SA_SIGINFO signature.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = refused as *const () as libc::sighandler_t;
        action.sa_flags = libc::SA_SIGINFO;
        libc::sigemptyset(&mut action.sa_mask);
        if libc::sigaction(libc::SIGSYS, &action, std::ptr::null_mut()) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The SIGSYS part of `siginfo_t` (`_sigsys` of the kernel's union), on 64-bit Linux.
#[repr(C)]
struct SigSys {
    signo: libc::c_int,
    errno: libc::c_int,
    code: libc::c_int,
    _pad: libc::c_int,
    call_addr: *mut libc::c_void,
    syscall: libc::c_int,
    arch: libc::c_uint,
}

/// A line built on the stack: the handler may not allocate.
struct Line {
    buf: [u8; 256],
    len: usize,
}

impl std::fmt::Write for Line {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let n = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// The name of a refused call, if it is a notable one.
fn name_of(nr: libc::c_long) -> Option<&'static str> {
    NOTABLE
        .iter()
        .chain(ANY)
        .chain(ANY_ARCH)
        .find(|&&(n, _)| n == nr)
        .map(|&(_, name)| name.trim_start_matches("SYS_"))
}

/// SIGSYS handler: the refused call returns -EPERM, and a warning goes to stderr. Only
/// async-signal-safe work: no allocation, no lock, one write(2).
extern "C" fn refused(_: libc::c_int, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo of SIGSYS and the interrupted context.
    let nr = unsafe { (*(info as *const SigSys)).syscall };
    let [first, second] = arguments(context);
    set_return(context, -(libc::EPERM as i64));
    let mut line = Line {
        buf: [0; 256],
        len: 0,
    };
    let _ = write!(
        line,
        "[WARN  shmfs::daemon::sandbox] seccomp refused system call {nr}"
    );
    if let Some(name) = name_of(nr as libc::c_long) {
        let _ = write!(line, " ({name})");
    }
    let _ = write!(line, " with arguments {first:#x}, {second:#x}, ...");
    let _ = writeln!(line, ": EPERM (Operation not permitted)");
    // SAFETY: write of a buffer that lives across the call.
    unsafe { libc::write(2, line.buf.as_ptr().cast(), line.len) };
}

/// The first two arguments of the interrupted system call (which says what a `prctl`,
/// `ioctl` or `socket` was for).
fn arguments(context: *mut libc::c_void) -> [u64; 2] {
    let context = context as *const libc::ucontext_t;
    // SAFETY: the context the kernel passed to the handler.
    #[cfg(target_arch = "x86_64")]
    unsafe {
        let regs = &(*context).uc_mcontext.gregs;
        [
            regs[libc::REG_RDI as usize] as u64,
            regs[libc::REG_RSI as usize] as u64,
        ]
    }
    // SAFETY: as above.
    #[cfg(target_arch = "aarch64")]
    unsafe {
        let regs = &(*context).uc_mcontext.regs;
        [regs[0], regs[1]]
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        let _ = context;
        [0, 0]
    }
}

/// Makes the interrupted system call return `value`.
#[allow(unused_variables)]
fn set_return(context: *mut libc::c_void, value: i64) {
    let context = context as *mut libc::ucontext_t;
    // SAFETY: the context the kernel passed to the handler; its registers are restored at
    // sigreturn.
    #[cfg(target_arch = "x86_64")]
    unsafe {
        (*context).uc_mcontext.gregs[libc::REG_RAX as usize] = value;
    }
    // SAFETY: as above.
    #[cfg(target_arch = "aarch64")]
    unsafe {
        (*context).uc_mcontext.regs[0] = value as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_compile_and_leave_out_the_dangerous_calls() {
        let programs = programs().expect("compiled");
        assert_eq!(programs.len(), 2);
        let listed: Vec<_> = ANY.iter().chain(ANY_ARCH).map(|&(nr, _)| nr).collect();
        for nr in [
            libc::SYS_execve,
            libc::SYS_ptrace,
            libc::SYS_mount,
            libc::SYS_bpf,
            libc::SYS_kexec_load,
            libc::SYS_init_module,
            libc::SYS_setns,
            libc::SYS_socket,
            libc::SYS_clone,
            libc::SYS_umount2,
            libc::SYS_open_by_handle_at,
            libc::SYS_semctl,
            libc::SYS_msgctl,
            libc::SYS_msgrcv,
            libc::SYS_msgsnd,
            libc::SYS_semop,
            libc::SYS_semtimedop,
            libc::SYS_mq_getsetattr,
            libc::SYS_mq_timedreceive,
            libc::SYS_fsopen,
            libc::SYS_fsconfig,
            libc::SYS_fsmount,
            libc::SYS_move_mount,
        ] {
            assert!(!listed.contains(&nr), "{nr} allowed with any arguments");
        }
        assert_eq!(name_of(libc::SYS_execve), Some("execve"));
        assert_eq!(name_of(libc::SYS_msgrcv), Some("msgrcv"));
        // Neither attaching a mount nor receiving or sending a message is ever allowed.
        let conditional: Vec<_> = conditional().unwrap().into_iter().map(|c| c.0).collect();
        for nr in [
            libc::SYS_mount,
            libc::SYS_move_mount,
            libc::SYS_open_tree,
            libc::SYS_fspick,
            libc::SYS_mount_setattr,
            libc::SYS_msgsnd,
            libc::SYS_semop,
            libc::SYS_semtimedop,
            libc::SYS_mq_timedreceive,
            libc::SYS_mq_open,
        ] {
            assert!(!conditional.contains(&nr) && !listed.contains(&nr), "{nr}");
        }
    }

    #[test]
    fn fuse_ioctl_numbers_match_the_kernel_headers() {
        assert_eq!(FUSE_DEV_IOC_CLONE, 0x8004_e500);
        assert_eq!(FUSE_DEV_IOC_BACKING_OPEN, 0x4010_e501);
        assert_eq!(FUSE_DEV_IOC_BACKING_CLOSE, 0x4004_e502);
    }

    #[test]
    fn namespace_ioctl_numbers_match_the_kernel_headers() {
        // PIDFD_GET_IPC_NAMESPACE, PIDFD_GET_UTS_NAMESPACE (linux/pidfd.h), NS_GET_ID,
        // NS_GET_NSTYPE (linux/nsfs.h).
        assert_eq!(NAMESPACE_IOCTLS, [0xff02, 0xff0a, 0x8008_b70d, 0xb703]);
    }
}
