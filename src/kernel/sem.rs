//! System V semaphore sets (issue 24; not yet used by the mount): a small safe API over
//! `semctl` and `semget`, and the tasks blocked in `semop` read from `/proc`.
//!
//! As for segments (`kernel/sysv.rs`), looking up one set is one `semctl(SEM_STAT_ANY)` and
//! listing is one pass over the kernel's index table (`SEM_INFO` for the highest index). Neither
//! needs read permission (as `/proc/sysvipc/sem`), and neither, nor `values`, changes anything
//! the kernel records: otime, ctime and every semaphore's sempid stay as they were.
//!
//! Every call acts in the IPC namespace of the calling thread, with the thread's credentials:
//! the kernel checks read permission for `values`, alter permission for `set_values` and
//! `set_value`, ownership (or CAP_SYS_ADMIN) for `set_perm` and `remove`. Later the rest of
//! shmfs will reach them through a `kernel::context::IpcContext`.

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};

use libc::{c_int, c_ulong};

use crate::kernel::namespace::IpcNs;

/// The kernel's largest semaphore value (`SEMVMX`), a constant of `ipc/sem.c`.
pub const SEMVMX: u32 = 32767;
/// The most operations of one blocked `semop` that [`blocked_on`] reads.
pub const MAX_WAITER_OPS: usize = 64;

/// What the kernel knows of one semaphore set, as `semctl(IPC_STAT)` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SemSet {
    pub semid: i32,
    /// The key as the unsigned 32-bit value that `ipcs` prints in hex.
    pub key: u32,
    pub nsems: u64,
    /// Permission bits only (0o777).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub cuid: u32,
    pub cgid: u32,
    /// The last `semop`, in seconds since the epoch; 0 for never.
    pub otime: i64,
    /// The last change (creation, IPC_SET, SETVAL, SETALL).
    pub ctime: i64,
}

impl SemSet {
    /// Its mode, owner and times as a file shows them: the size is the number of semaphores,
    /// the last operation stands for the last access and the last change for both others.
    pub fn meta(&self) -> crate::kernel::object::Meta {
        crate::kernel::object::Meta {
            mode: self.mode,
            uid: self.uid,
            gid: self.gid,
            size: self.nsems,
            atime: self.otime,
            mtime: self.ctime,
            ctime: self.ctime,
        }
    }

    fn from_ds(semid: i32, ds: &libc::semid_ds) -> SemSet {
        SemSet {
            semid,
            key: ds.sem_perm.__key as u32,
            // `unsigned long`: 64 bits where shmfs runs, yet `as` keeps it portable.
            #[allow(clippy::unnecessary_cast)]
            nsems: ds.sem_nsems as u64,
            mode: u32::from(ds.sem_perm.mode) & 0o777,
            uid: ds.sem_perm.uid,
            gid: ds.sem_perm.gid,
            cuid: ds.sem_perm.cuid,
            cgid: ds.sem_perm.cgid,
            otime: ds.sem_otime,
            ctime: ds.sem_ctime,
        }
    }
}

fn zeroed_ds() -> libc::semid_ds {
    // SAFETY: semid_ds is plain old data; all-zero is a valid value.
    unsafe { std::mem::zeroed() }
}

fn enoent() -> io::Error {
    io::Error::from_raw_os_error(libc::ENOENT)
}

/// `SEM_STAT_ANY` on an index or semid: the set in that slot and its full semid.
fn stat_slot(index_or_id: c_int) -> io::Result<(i32, libc::semid_ds)> {
    let mut ds = zeroed_ds();
    // SAFETY: SEM_STAT_ANY writes one semid_ds through the pointer, which is valid and ours.
    let id = unsafe { libc::semctl(index_or_id, 0, libc::SEM_STAT_ANY, &mut ds as *mut _) };
    if id < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((id, ds))
}

/// `SEM_INFO`: the limits and usage of the namespace, and the highest used index.
fn info() -> io::Result<(c_int, libc::seminfo)> {
    // SAFETY: seminfo is plain old data; all-zero is a valid value.
    let mut info: libc::seminfo = unsafe { std::mem::zeroed() };
    // SAFETY: SEM_INFO writes one struct seminfo through the pointer, which is valid and ours.
    let max_index = unsafe { libc::semctl(0, 0, libc::SEM_INFO, &mut info as *mut _) };
    if max_index < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((max_index, info))
}

/// The set with this semid, or `ENOENT` (also when its slot now holds another set). One
/// system call; no permission needed.
pub fn set(semid: i32) -> io::Result<SemSet> {
    if semid < 0 {
        return Err(enoent());
    }
    match stat_slot(semid) {
        Ok((id, ds)) if id == semid => Ok(SemSet::from_ds(id, &ds)),
        Ok(_) => Err(enoent()),
        // EINVAL: no set in that slot; EIDRM: removed while we asked.
        Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::EIDRM)) => Err(enoent()),
        Err(e) => Err(e),
    }
}

/// Every set of the IPC namespace, in index order: what `ipcs -s` lists.
pub fn sets() -> io::Result<Vec<SemSet>> {
    let (max_index, info) = info()?;
    let mut sets = Vec::with_capacity(usize::try_from(info.semusz).unwrap_or(0));
    for index in 0..=max_index {
        match stat_slot(index) {
            Ok((id, ds)) => sets.push(SemSet::from_ds(id, &ds)),
            // An empty slot, or a set removed since SEM_INFO.
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::EIDRM)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(sets)
}

/// The live set with this (non-private) key, or `ENOENT`. `semget(key, 0, 0)` asks for no
/// access, so the kernel answers any caller.
pub fn set_with_key(key: u32) -> io::Result<SemSet> {
    if key == 0 {
        return Err(enoent());
    }
    // SAFETY: plain system call.
    let id = unsafe { libc::semget(key as libc::key_t, 0, 0) };
    if id < 0 {
        return Err(io::Error::last_os_error());
    }
    set(id)
}

/// One semaphore, as `ipcs -s -i` shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SemValue {
    pub value: u16,
    /// Tasks waiting for the value to grow (GETNCNT; a multi-semaphore operation counts only
    /// under its first blocking semaphore).
    pub ncount: u32,
    /// Tasks waiting for the value to be zero (GETZCNT; likewise).
    pub zcount: u32,
    /// The last process that changed it (GETPID).
    pub pid: i32,
}

/// A buffer of `len` u16 that ends right before an inaccessible page: a kernel that writes more
/// (a set whose semid was reused by a larger one since its size was learnt) faults (EFAULT)
/// instead of writing past it.
struct GuardedBuf {
    base: *mut libc::c_void,
    map_len: usize,
    len: usize,
}

impl GuardedBuf {
    fn new(len: usize) -> io::Result<GuardedBuf> {
        let page = crate::kernel::memory::page_size() as usize;
        let bytes = len
            .checked_mul(2)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOMEM))?;
        let data_len = bytes.div_ceil(page).max(1) * page;
        let map_len = data_len + page;
        // SAFETY: a new private anonymous mapping chosen by the kernel; checked below.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let buf = GuardedBuf { base, map_len, len };
        // SAFETY: the last page lies inside the mapping just made, which only `buf` owns.
        let rc = unsafe {
            libc::mprotect(
                (base as *mut u8).add(data_len) as *mut libc::c_void,
                page,
                libc::PROT_NONE,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(buf)
    }

    /// The start of the `len` u16 that end at the guard page.
    fn ptr(&self) -> *mut u16 {
        let data_len = self.map_len - crate::kernel::memory::page_size() as usize;
        // SAFETY: data_len ≥ 2 * len, so the result lies inside the mapping (and is 2-aligned:
        // the mapping is page-aligned and data_len even).
        unsafe { (self.base as *mut u8).add(data_len - 2 * self.len) as *mut u16 }
    }

    fn fill(&self, values: &[u16]) {
        let n = values.len().min(self.len);
        // SAFETY: ptr() .. ptr()+len lies in the writable part of the mapping, owned by self;
        // `values` is another allocation.
        unsafe { std::ptr::copy_nonoverlapping(values.as_ptr(), self.ptr(), n) };
    }

    fn to_vec(&self) -> Vec<u16> {
        // SAFETY: ptr() .. ptr()+len lies in the readable part of the mapping, which is
        // initialised (anonymous memory is zero-filled) and owned by self.
        unsafe { std::slice::from_raw_parts(self.ptr(), self.len) }.to_vec()
    }
}

impl Drop for GuardedBuf {
    fn drop(&mut self) {
        // SAFETY: base and map_len are those of the mapping this buffer made and owns.
        unsafe { libc::munmap(self.base, self.map_len) };
    }
}

/// A `semctl` command on one semaphore that takes no argument and answers in its result
/// (GETNCNT, GETZCNT, GETPID, GETVAL).
fn semctl_get(semid: i32, num: u16, cmd: c_int) -> io::Result<c_int> {
    // SAFETY: these commands read no argument.
    let rc = unsafe { libc::semctl(semid, c_int::from(num), cmd) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(rc)
}

/// The `nsems` semaphores of set `semid` (as [`SemSet::nsems`] gives): one GETALL, then
/// GETNCNT, GETZCNT and GETPID for each. None of these changes anything the kernel records.
/// The kernel checks read permission (EACCES). `ENOENT` if the set is gone, or if the semid
/// now names a set with another number of semaphores.
pub fn values(semid: i32, nsems: u64) -> io::Result<Vec<SemValue>> {
    let n = usize::try_from(nsems).map_err(|_| enoent())?;
    let not_that_set = |e: io::Error| match e.raw_os_error() {
        Some(libc::EINVAL | libc::EIDRM | libc::EFAULT) => enoent(),
        _ => e,
    };
    if n == 0 || n > u16::MAX as usize + 1 {
        return Err(enoent());
    }
    let buf = GuardedBuf::new(n)?;
    // SAFETY: GETALL writes the set's nsems u16 at the pointer: n of them fit before the guard
    // page, and a larger set's write faults there (EFAULT) instead of going past.
    let rc = unsafe { libc::semctl(semid, 0, libc::GETALL, buf.ptr()) };
    if rc < 0 {
        return Err(not_that_set(io::Error::last_os_error()));
    }
    let all = buf.to_vec();
    drop(buf);
    // A smaller set has no semaphore n-1: its GETNCNT fails with EINVAL below.
    let mut values = Vec::with_capacity(n);
    for (num, value) in all.into_iter().enumerate() {
        let num = num as u16;
        let count = |cmd| semctl_get(semid, num, cmd).map_err(not_that_set);
        values.push(SemValue {
            value,
            ncount: count(libc::GETNCNT)? as u32,
            zcount: count(libc::GETZCNT)? as u32,
            pid: count(libc::GETPID)?,
        });
    }
    Ok(values)
}

/// Sets every semaphore of set `semid` (SETALL): `values` must have one value per semaphore
/// (else EINVAL), each at most [`SEMVMX`] (else ERANGE); `ENOENT` if the set is gone. The
/// kernel checks alter permission.
///
/// Side effects the kernel has: ctime moves, each semaphore's sempid becomes the caller (the
/// daemon's pid, when the daemon writes for a user), and every process's SEM_UNDO adjustment
/// of every semaphore of the set is cleared; blocked operations that can now proceed wake.
pub fn set_values(semid: i32, values: &[u16]) -> io::Result<()> {
    let n = set(semid)?.nsems;
    if values.len() as u64 != n {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    if values.iter().any(|&v| u32::from(v) > SEMVMX) {
        return Err(io::Error::from_raw_os_error(libc::ERANGE));
    }
    let buf = GuardedBuf::new(values.len())?;
    buf.fill(values);
    // SAFETY: SETALL reads the set's nsems u16 at the pointer: values.len() of them lie before
    // the guard page, and a set that grew since (its semid reused by a larger one) faults
    // there (EFAULT) instead of reading past them.
    let rc = unsafe { libc::semctl(semid, 0, libc::SETALL, buf.ptr()) };
    if rc < 0 {
        return Err(match io::Error::last_os_error() {
            e if matches!(e.raw_os_error(), Some(libc::EIDRM | libc::EFAULT)) => enoent(),
            e => e,
        });
    }
    Ok(())
}

/// Sets semaphore `num` of set `semid` to `value` (SETVAL): ERANGE above [`SEMVMX`], EINVAL
/// for a `num` past the set's end. The kernel checks alter permission.
///
/// Side effects the kernel has: ctime moves, the semaphore's sempid becomes the caller (the
/// daemon's pid, when the daemon writes for a user), and every process's SEM_UNDO adjustment
/// of that semaphore is cleared; blocked operations that can now proceed wake.
pub fn set_value(semid: i32, num: u16, value: u16) -> io::Result<()> {
    // The union semun is passed as a full register: its `int val` in the low half.
    let arg = value as c_ulong;
    // SAFETY: SETVAL reads only `val` of the union semun argument; no memory is passed.
    let rc = unsafe { libc::semctl(semid, c_int::from(num), libc::SETVAL, arg) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Changes mode bits and owner (`semctl(IPC_SET)`); the kernel checks the calling thread's
/// credentials (owner, creator or CAP_SYS_ADMIN). Moves ctime.
pub fn set_perm(semid: i32, mode: u32, uid: u32, gid: u32) -> io::Result<()> {
    let mut ds = zeroed_ds();
    ds.sem_perm.mode = (mode & 0o777) as u16;
    ds.sem_perm.uid = uid;
    ds.sem_perm.gid = gid;
    // SAFETY: IPC_SET reads one semid_ds through the pointer, which is valid.
    let rc = unsafe { libc::semctl(semid, 0, libc::IPC_SET, &mut ds as *mut _) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Removes the set at once (`semctl(IPC_RMID)`): blocked operations fail with EIDRM. The
/// kernel checks the calling thread's credentials (owner, creator or CAP_SYS_ADMIN).
pub fn remove(semid: i32) -> io::Result<()> {
    // SAFETY: IPC_RMID reads no argument.
    let rc = unsafe { libc::semctl(semid, 0, libc::IPC_RMID) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The limits of System V semaphores (`/proc/sys/kernel/sem`, named as `ipcs -l` and the
/// sysctl's fields are) and their use, for the calling thread's IPC namespace.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SemLimits {
    /// Semaphores per set.
    pub semmsl: u64,
    /// Semaphores in all sets.
    pub semmns: u64,
    /// Operations per `semop`.
    pub semopm: u64,
    /// Sets.
    pub semmni: u64,
    /// The largest value ([`SEMVMX`]).
    pub semvmx: u64,
    pub sets_used: u64,
    pub semaphores_used: u64,
}

/// The limits and use of the calling thread's IPC namespace: `/proc/sys/kernel/sem` shows the
/// reader's namespace, SEM_INFO counts its sets and semaphores.
pub fn limits() -> io::Result<SemLimits> {
    let text = std::fs::read_to_string("/proc/sys/kernel/sem")?;
    let [semmsl, semmns, semopm, semmni] = parse_sem_sysctl(&text).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("/proc/sys/kernel/sem: {text:?}"),
        )
    })?;
    let (_, info) = info()?;
    Ok(SemLimits {
        semmsl,
        semmns,
        semopm,
        semmni,
        semvmx: u64::from(SEMVMX),
        sets_used: info.semusz.max(0) as u64,
        semaphores_used: info.semaem.max(0) as u64,
    })
}

/// `/proc/sys/kernel/sem`: four numbers, semmsl semmns semopm semmni.
fn parse_sem_sysctl(text: &str) -> Option<[u64; 4]> {
    let mut fields = text.split_whitespace().map(|f| f.parse::<u64>().ok());
    let out = [
        fields.next()??,
        fields.next()??,
        fields.next()??,
        fields.next()??,
    ];
    fields.next().is_none().then_some(out)
}

/// A task blocked in `semop`/`semtimedop`, as `/proc/PID/task/TID/syscall` shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockedSemop {
    pub semid: i32,
    /// The address of its `struct sembuf` array, in its own memory.
    pub sops: u64,
    pub nsops: u64,
}

/// Parses one `/proc/PID/task/TID/syscall` line: the syscall number in decimal, then its six
/// arguments, the stack pointer and program counter in hex. Some only for `semtimedop` (and
/// `semop`, where the architecture has it); None for anything else (`running`, `-1 …`, another
/// call, a malformed line).
pub fn parse_blocked_semop(syscall_line: &str) -> Option<BlockedSemop> {
    let mut fields = syscall_line.split_whitespace();
    let nr: i64 = fields.next()?.parse().ok()?;
    if nr != libc::SYS_semtimedop && nr != libc::SYS_semop {
        return None;
    }
    let mut arg = || -> Option<u64> {
        let f = fields.next()?;
        u64::from_str_radix(f.strip_prefix("0x")?, 16).ok()
    };
    let semid = arg()?;
    let sops = arg()?;
    let nsops = arg()?;
    Some(BlockedSemop {
        // The kernel takes the int of the register's low half.
        semid: semid as u32 as i32,
        sops,
        nsops,
    })
}

/// A task blocked on a set, and what it waits to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Waiter {
    pub pid: u32,
    pub tid: u32,
    /// The process's command (`/proc/PID/comm`).
    pub comm: String,
    /// Its operations, in order: (semaphore number, operation, SEM_UNDO). At most
    /// [`MAX_WAITER_OPS`]; empty if they could not be read.
    pub ops: Vec<(u16, i16, bool)>,
}

/// The tasks of the calling thread's IPC namespace blocked in `semtimedop`/`semop` on set
/// `semid`, found by walking `/proc/*/task/*/syscall`, with their operations read from
/// `/proc/PID/mem` at the `sops` address (at most [`MAX_WAITER_OPS`]).
///
/// Reading a task's `syscall` and `mem` needs ptrace access to it: this sees what the calling
/// thread's credentials may trace (all, for the root daemon). Showing each caller only the
/// waiters it may trace is the filesystem layer's work, later. Tasks that cannot be read, that
/// end meanwhile or that are in another IPC namespace are left out; what `/proc` says is never
/// trusted to be well-formed.
pub fn blocked_on(semid: i32) -> io::Result<Vec<Waiter>> {
    Ok(blocked(Some(semid))?.into_iter().map(|(w, _)| w).collect())
}

/// How many tasks are blocked on each set of the calling thread's IPC namespace, from one
/// walk of `/proc` (as [`blocked_on`] for every set at once, without their operations).
pub fn blocked_counts() -> io::Result<std::collections::HashMap<i32, u64>> {
    let mut counts = std::collections::HashMap::new();
    for (_, semid) in blocked(None)? {
        *counts.entry(semid).or_insert(0) += 1;
    }
    Ok(counts)
}

/// The tasks of the calling thread's namespace in `semop` (on set `only`, with their
/// operations, if given), each with its set.
fn blocked(only: Option<i32>) -> io::Result<Vec<(Waiter, i32)>> {
    let (own_ns, _) = IpcNs::of_thread()?;
    let pids = crate::kernel::proc_read::numbered("/proc");
    let mut waiters = Vec::new();
    for (pid, tid, line) in crate::kernel::proc_read::task_syscalls(&pids) {
        let Some(blocked) = parse_blocked_semop(&line) else {
            continue;
        };
        if only.is_some_and(|semid| blocked.semid != semid) {
            continue;
        }
        // The semid means something only in the task's own namespace.
        let Ok(st) = std::fs::metadata(format!("/proc/{pid}/task/{tid}/ns/ipc")) else {
            continue;
        };
        let ns = IpcNs {
            dev: st.dev(),
            ino: st.ino(),
        };
        if ns != own_ns {
            continue;
        }
        let (comm, ops) = if only.is_some() {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .map(|c| c.trim_end_matches('\n').to_string())
                .unwrap_or_default();
            (comm, read_sops(pid, blocked).unwrap_or_default())
        } else {
            (String::new(), Vec::new())
        };
        waiters.push((
            Waiter {
                pid,
                tid,
                comm,
                ops,
            },
            blocked.semid,
        ));
    }
    Ok(waiters)
}

/// The `struct sembuf` array of a blocked task (at most [`MAX_WAITER_OPS`] of them), read
/// from `/proc/PID/mem` within `proc_read`'s bound (the read takes the process's mmap lock).
fn read_sops(pid: u32, blocked: BlockedSemop) -> io::Result<Vec<(u16, i16, bool)>> {
    let n = usize::try_from(blocked.nsops)
        .unwrap_or(usize::MAX)
        .min(MAX_WAITER_OPS);
    let bytes = crate::kernel::proc_read::bounded(pid, "mem", move || {
        let file = File::open(format!("/proc/{pid}/mem"))?;
        let mut buf = vec![0u8; n * 6];
        file.read_exact_at(&mut buf, blocked.sops)?;
        Ok(buf)
    })?;
    Ok(parse_sembufs(&bytes))
}

/// `struct sembuf { u16 sem_num; i16 sem_op; i16 sem_flg; }` in native byte order, one after
/// another; a trailing partial one is ignored.
fn parse_sembufs(bytes: &[u8]) -> Vec<(u16, i16, bool)> {
    bytes
        .chunks_exact(6)
        .map(|b| {
            let num = u16::from_ne_bytes([b[0], b[1]]);
            let op = i16::from_ne_bytes([b[2], b[3]]);
            let flg = i16::from_ne_bytes([b[4], b[5]]);
            (num, op, c_int::from(flg) & libc::SEM_UNDO != 0)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// A semaphore set of this test, removed (IPC_RMID) when dropped: tests run in parallel
    /// with others, and touch only their own sets.
    struct TestSet {
        id: i32,
    }

    impl TestSet {
        fn new(key: libc::key_t, nsems: c_int, mode: c_int) -> TestSet {
            // SAFETY: plain system call.
            let id = unsafe { libc::semget(key, nsems, libc::IPC_CREAT | libc::IPC_EXCL | mode) };
            assert!(id >= 0, "semget: {}", io::Error::last_os_error());
            TestSet { id }
        }

        fn private(nsems: c_int, mode: c_int) -> TestSet {
            TestSet::new(libc::IPC_PRIVATE, nsems, mode)
        }
    }

    impl Drop for TestSet {
        fn drop(&mut self) {
            // SAFETY: plain system call on the test's own set.
            unsafe { libc::semctl(self.id, 0, libc::IPC_RMID) };
        }
    }

    /// What the kernel records and looking must leave alone: otime and ctime (IPC_STAT) and
    /// each semaphore's sempid.
    fn recorded(id: i32, nsems: c_int) -> (i64, i64, Vec<c_int>) {
        let mut ds = zeroed_ds();
        // SAFETY: IPC_STAT writes one semid_ds through a valid pointer.
        let rc = unsafe { libc::semctl(id, 0, libc::IPC_STAT, &mut ds as *mut _) };
        assert_eq!(rc, 0, "IPC_STAT: {}", io::Error::last_os_error());
        let pids = (0..nsems)
            .map(|n| semctl_get(id, n as u16, libc::GETPID).unwrap())
            .collect();
        (ds.sem_otime, ds.sem_ctime, pids)
    }

    fn semop(id: i32, ops: &[(u16, i16, i16)]) -> io::Result<()> {
        let mut bufs: Vec<libc::sembuf> = ops
            .iter()
            .map(|&(sem_num, sem_op, sem_flg)| libc::sembuf {
                sem_num,
                sem_op,
                sem_flg,
            })
            .collect();
        // SAFETY: a valid array of bufs.len() sembufs.
        let rc = unsafe { libc::semop(id, bufs.as_mut_ptr(), bufs.len()) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn errno(r: io::Result<impl std::fmt::Debug>) -> Option<i32> {
        r.expect_err("an error").raw_os_error()
    }

    #[test]
    fn listing_and_lookups_find_the_set() {
        let s = TestSet::private(3, 0o640);
        let found = set(s.id).unwrap();
        assert_eq!(found.semid, s.id);
        assert_eq!((found.nsems, found.mode, found.key), (3, 0o640, 0));
        assert_eq!(found.meta().size, 3);
        assert!(found.ctime > 0);
        assert_eq!(found.otime, 0, "no semop yet");
        let listed = sets().unwrap();
        assert_eq!(listed.iter().filter(|x| x.semid == s.id).count(), 1);
        assert_eq!(listed.iter().find(|x| x.semid == s.id), Some(&found));
        // The same slot with another sequence number: not this set.
        assert_eq!(errno(set(s.id + 32768)), Some(libc::ENOENT));
        assert_eq!(errno(set(-1)), Some(libc::ENOENT));

        let keyed = (0..100)
            .find_map(|i| {
                let key = (std::process::id() as i32).wrapping_mul(7919) ^ (0x5e30_0000 + i);
                // SAFETY: plain system call.
                let id = unsafe { libc::semget(key, 1, libc::IPC_CREAT | libc::IPC_EXCL | 0o600) };
                (id >= 0).then_some((TestSet { id }, key))
            })
            .expect("a free key");
        assert_eq!(set_with_key(keyed.1 as u32).unwrap().semid, keyed.0.id);
        assert_eq!(errno(set_with_key(0)), Some(libc::ENOENT));
        let id = keyed.0.id;
        drop(keyed);
        assert_eq!(errno(set(id)), Some(libc::ENOENT), "gone once removed");
    }

    #[test]
    fn values_are_what_setall_and_setval_set() {
        let s = TestSet::private(3, 0o600);
        set_values(s.id, &[1, 2, 3]).unwrap();
        let v = values(s.id, 3).unwrap();
        assert_eq!(v.iter().map(|v| v.value).collect::<Vec<_>>(), [1, 2, 3]);
        let me = std::process::id() as i32;
        assert!(
            v.iter()
                .all(|v| v.pid == me && v.ncount == 0 && v.zcount == 0)
        );
        set_value(s.id, 1, 7).unwrap();
        assert_eq!(values(s.id, 3).unwrap()[1].value, 7);
        assert_eq!(errno(set_values(s.id, &[1, 2])), Some(libc::EINVAL));
        assert_eq!(errno(set_values(s.id, &[1, 2, 40000])), Some(libc::ERANGE));
        assert_eq!(errno(set_value(s.id, 1, 40000)), Some(libc::ERANGE));
        assert_eq!(errno(set_value(s.id, 3, 1)), Some(libc::EINVAL));
        assert_eq!(
            errno(values(s.id, 4)),
            Some(libc::ENOENT),
            "a set of another size is not the set meant"
        );
        assert_eq!(errno(values(s.id, 2)), Some(libc::ENOENT));
        set_perm(s.id, 0o604, 1234, 5678).unwrap();
        let after = set(s.id).unwrap();
        assert_eq!((after.mode, after.uid, after.gid), (0o604, 1234, 5678));
        remove(s.id).unwrap();
        assert_eq!(errno(set(s.id)), Some(libc::ENOENT));
    }

    #[test]
    fn limits_are_the_sysctls_and_count_this_set() {
        let _s = TestSet::private(2, 0o600);
        let l = limits().unwrap();
        assert_eq!(l.semvmx, 32767);
        assert!(l.semmsl >= 2 && l.semmni >= 1 && l.semopm >= 1);
        assert!(l.sets_used >= 1 && l.semaphores_used >= 2);
        assert_eq!(
            parse_sem_sysctl("32000\t1024000000\t500\t32000\n"),
            Some([32000, 1024000000, 500, 32000])
        );
        assert_eq!(parse_sem_sysctl("1 2 3"), None);
        assert_eq!(parse_sem_sysctl("1 2 3 4 5"), None);
        assert_eq!(parse_sem_sysctl("1 2 x 4"), None);
    }

    #[test]
    fn looking_is_not_touching() {
        let s = TestSet::private(2, 0o600);
        set_values(s.id, &[1, 1]).unwrap();
        // A semop by this thread: otime and sempid of semaphore 0 set, by a pid that is ours;
        // sempid of semaphore 1 is ours from SETALL. What matters is that nothing moves.
        semop(s.id, &[(0, 1, 0)]).unwrap();
        let before = recorded(s.id, 2);
        assert!(before.0 > 0, "otime set by the semop");
        // Past a second boundary, so that a touched time would show.
        std::thread::sleep(Duration::from_millis(1100));
        for _ in 0..20 {
            set(s.id).unwrap();
            sets().unwrap();
            values(s.id, 2).unwrap();
            limits().unwrap();
        }
        assert_eq!(recorded(s.id, 2), before);
    }

    #[test]
    fn values_need_read_permission() {
        let s = TestSet::private(2, 0o200);
        let id = s.id;
        let caller = crate::kernel::creds::Caller::new(54321, 54321, 0);
        // On a thread of its own, whose credentials change.
        let (looked, read) = std::thread::spawn(move || {
            crate::kernel::creds::as_caller(&caller, || Ok((set(id), values(id, 2)))).unwrap()
        })
        .join()
        .unwrap();
        assert_eq!(
            looked.unwrap().mode,
            0o200,
            "SEM_STAT_ANY needs no read right"
        );
        if crate::kernel::creds::daemon_is_root() {
            assert_eq!(errno(read), Some(libc::EACCES));
        }
    }

    #[test]
    fn a_blocked_semop_is_found_with_its_operations() {
        let s = TestSet::private(2, 0o600);
        let id = s.id;
        let (tx, rx) = std::sync::mpsc::channel();
        let waiter = std::thread::spawn(move || {
            // SAFETY: plain system call.
            tx.send(unsafe { libc::gettid() } as u32).unwrap();
            // Waits: semaphore 1 is 0.
            semop(id, &[(0, 0, 0), (1, -1, libc::SEM_UNDO as i16)])
        });
        let tid = rx.recv().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let found = loop {
            let found = blocked_on(id).unwrap();
            if !found.is_empty() || Instant::now() > deadline {
                break found;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(found.len(), 1, "{found:?}");
        let w = &found[0];
        assert_eq!((w.pid, w.tid), (std::process::id(), tid));
        assert!(!w.comm.is_empty());
        assert_eq!(w.ops, [(0, 0, false), (1, -1, true)]);
        assert_eq!(values(id, 2).unwrap()[1].ncount, 1);
        assert!(blocked_on(id + 32768).unwrap().is_empty(), "another semid");
        set_value(id, 1, 1).unwrap();
        waiter.join().unwrap().unwrap();
        assert!(blocked_on(id).unwrap().is_empty());
    }

    #[test]
    fn syscall_lines_of_blocked_semops() {
        let line = format!(
            "{} 0x5 0x7ffd1234 0x2 0x0 0x0 0x0 0x7ffd0000 0x7f00aaaa\n",
            libc::SYS_semtimedop
        );
        assert_eq!(
            parse_blocked_semop(&line),
            Some(BlockedSemop {
                semid: 5,
                sops: 0x7ffd1234,
                nsops: 2
            })
        );
        let semop = format!("{} 0xffffffff00000007 0x10 0x1", libc::SYS_semop);
        assert_eq!(parse_blocked_semop(&semop).map(|b| b.semid), Some(7));
        for bad in [
            "running",
            "-1 0x7ffd0000 0x7f00aaaa",
            "",
            "0 0x5 0x10 0x1 0x0 0x0 0x0 0x1 0x2",
            &format!("{} 0x5 0x10", libc::SYS_semtimedop),
            &format!("{} 5 0x10 0x1", libc::SYS_semtimedop),
            &format!("{} 0xzz 0x10 0x1", libc::SYS_semtimedop),
            &format!("{} 0x1ffffffffffffffff 0x10 0x1", libc::SYS_semtimedop),
        ] {
            assert_eq!(parse_blocked_semop(bad), None, "{bad:?}");
        }
        let mut bytes = Vec::new();
        for (n, op, flg) in [(1u16, -1i16, libc::SEM_UNDO as i16), (0, 0, 0)] {
            bytes.extend(n.to_ne_bytes());
            bytes.extend(op.to_ne_bytes());
            bytes.extend(flg.to_ne_bytes());
        }
        bytes.push(9);
        assert_eq!(parse_sembufs(&bytes), [(1, -1, true), (0, 0, false)]);
    }
}
