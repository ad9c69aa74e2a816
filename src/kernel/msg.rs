//! System V message queues: a small safe API over `msgctl`, `msgget`, `msgrcv(MSG_COPY)` and
//! `/proc/sys/kernel/msg*` (issue 24; groundwork, not yet used by the mount).
//!
//! Looking up one queue is one `msgctl(MSG_STAT_ANY)`; listing is one pass over the kernel's
//! index table, as [`crate::kernel::sysv`] does for segments. Reading a message is a
//! `msgrcv(MSG_COPY | IPC_NOWAIT)`, which copies it out without receiving it. None of these
//! changes what `ipcs -q -i` shows (stime, rtime, lspid, lrpid, qnum, cbytes).
//!
//! Every call acts in the IPC namespace of the calling thread and with the calling thread's
//! credentials: the kernel checks read permission for [`peek`] and [`listing`], owner or
//! creator (or CAP_SYS_ADMIN) for [`set_perm`] and [`remove`]. Looking up and listing need no
//! permission, as `/proc/sysvipc/msg` and `ipcs` need none.

use std::io;

use libc::{c_int, c_long};

/// `msgctl` command: system-wide usage, returns the highest used index.
pub const MSG_INFO: c_int = 12;
/// `msgctl` command: status by index, without a permission check (Linux ≥ 4.17).
pub const MSG_STAT_ANY: c_int = 13;
/// `msgrcv` flag: copy the message at position `msgtyp` without removing it (needs
/// CONFIG_CHECKPOINT_RESTORE, and IPC_NOWAIT).
pub const MSG_COPY: c_int = 0o40000;

/// What the kernel knows of one queue: every field `ipcs -q -i` shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Queue {
    pub msqid: i32,
    /// The key as the unsigned 32-bit value that `ipcs` prints in hex.
    pub key: u32,
    /// Permission bits only (0o777).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub cuid: u32,
    pub cgid: u32,
    /// Bytes of the messages now queued.
    pub cbytes: u64,
    /// The most bytes the queue may hold (`/proc/sysvipc/msg` does not show it).
    pub qbytes: u64,
    /// Messages now queued.
    pub qnum: u64,
    /// The last sender's pid, as the queue's namespace numbers it.
    pub lspid: i32,
    /// The last receiver's pid.
    pub lrpid: i32,
    pub stime: i64,
    pub rtime: i64,
    pub ctime: i64,
}

impl Queue {
    fn from_ds(msqid: i32, ds: &libc::msqid_ds) -> Queue {
        Queue {
            msqid,
            key: ds.msg_perm.__key as u32,
            mode: u32::from(ds.msg_perm.mode) & 0o777,
            uid: ds.msg_perm.uid,
            gid: ds.msg_perm.gid,
            cuid: ds.msg_perm.cuid,
            cgid: ds.msg_perm.cgid,
            cbytes: ds.__msg_cbytes,
            qbytes: ds.msg_qbytes,
            qnum: ds.msg_qnum,
            lspid: ds.msg_lspid,
            lrpid: ds.msg_lrpid,
            stime: ds.msg_stime,
            rtime: ds.msg_rtime,
            ctime: ds.msg_ctime,
        }
    }
}

/// The kernel's `struct msginfo`, as `MSG_INFO` fills it: `msgpool` is the number of queues,
/// `msgmap` of messages and `msgtql` of bytes queued in the namespace.
#[repr(C)]
#[derive(Default)]
struct MsgInfo {
    msgpool: c_int,
    msgmap: c_int,
    msgmax: c_int,
    msgmnb: c_int,
    msgmni: c_int,
    msgssz: c_int,
    msgtql: c_int,
    msgseg: u16,
}

fn zeroed_ds() -> libc::msqid_ds {
    // SAFETY: msqid_ds is plain old data; all-zero is a valid value.
    unsafe { std::mem::zeroed() }
}

fn enoent() -> io::Error {
    io::Error::from_raw_os_error(libc::ENOENT)
}

/// `MSG_STAT_ANY` on an index or msqid: the queue in that slot and its full msqid.
fn stat_slot(index_or_id: c_int) -> io::Result<(i32, libc::msqid_ds)> {
    let mut ds = zeroed_ds();
    // SAFETY: ds is a valid, writable msqid_ds.
    let id = unsafe { libc::msgctl(index_or_id, MSG_STAT_ANY, &mut ds) };
    if id < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((id, ds))
}

/// `MSG_INFO`: the highest used index and the namespace's usage.
fn info() -> io::Result<(c_int, MsgInfo)> {
    let mut info = MsgInfo::default();
    // SAFETY: MSG_INFO writes a struct msginfo, which MsgInfo mirrors.
    let max_index = unsafe {
        libc::msgctl(
            0,
            MSG_INFO,
            &mut info as *mut MsgInfo as *mut libc::msqid_ds,
        )
    };
    if max_index < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((max_index, info))
}

/// The queue with this msqid, or `ENOENT` (none, or its slot now holds another queue). One
/// system call; no permission needed, nothing changed.
pub fn queue(msqid: i32) -> io::Result<Queue> {
    if msqid < 0 {
        return Err(enoent());
    }
    match stat_slot(msqid) {
        Ok((id, ds)) if id == msqid => Ok(Queue::from_ds(id, &ds)),
        Ok(_) => Err(enoent()),
        // EINVAL: no queue in that slot; EIDRM: removed while we asked.
        Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::EIDRM)) => Err(enoent()),
        Err(e) => Err(e),
    }
}

/// Every queue of the IPC namespace, in index order: what `ipcs -q` lists.
pub fn queues() -> io::Result<Vec<Queue>> {
    let (max_index, info) = info()?;
    let mut queues = Vec::with_capacity(usize::try_from(info.msgpool).unwrap_or(0));
    for index in 0..=max_index {
        match stat_slot(index) {
            Ok((id, ds)) => queues.push(Queue::from_ds(id, &ds)),
            // An empty slot, or a queue removed since MSG_INFO.
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::EIDRM)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(queues)
}

/// The live queue with this (non-private) key, or `ENOENT`. `msgget(key, 0)` asks for no
/// access, so the kernel answers any caller.
pub fn queue_with_key(key: u32) -> io::Result<Queue> {
    if key == 0 {
        return Err(enoent());
    }
    // SAFETY: plain system call.
    let id = unsafe { libc::msgget(key as libc::key_t, 0) };
    if id < 0 {
        return Err(io::Error::last_os_error());
    }
    queue(id)
}

/// One message, copied out of its queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub mtype: i64,
    pub bytes: Vec<u8>,
}

/// A buffer for `msgrcv`: the `long mtype` header, then room for `msgmax` bytes, aligned as
/// the kernel's `struct msgbuf` is.
struct MsgBuf {
    words: Vec<u64>,
    /// The room for a message's bytes now.
    size: usize,
    /// The most it may grow to.
    most: usize,
}

/// The room a copy starts with: the kernel's default msgmax, which holds most messages.
const FIRST_SIZE: usize = 8192;

impl MsgBuf {
    fn new(most: usize) -> MsgBuf {
        let size = FIRST_SIZE.min(most.max(1));
        MsgBuf {
            words: vec![0; 1 + size.div_ceil(8)],
            size,
            most: most.max(1),
        }
    }

    /// `msgrcv(msqid, self, size, position, MSG_COPY | IPC_NOWAIT)`: the type and length of
    /// the message at `position`, whose bytes are then [`MsgBuf::bytes`]. The kernel allocates
    /// and copies a buffer of the size asked for before it looks at the message, so the room
    /// starts small and doubles, up to `most`, only for a message that does not fit (E2BIG).
    fn copy(&mut self, msqid: i32, position: usize) -> io::Result<(i64, usize)> {
        // A position beyond what a long holds is past any queue's end.
        let position =
            c_long::try_from(position).map_err(|_| io::Error::from_raw_os_error(libc::ENOMSG))?;
        loop {
            // SAFETY: `words` holds the 8-byte mtype and at least `size` bytes after it,
            // aligned for a long; the kernel writes at most that.
            let n = unsafe {
                libc::msgrcv(
                    msqid,
                    self.words.as_mut_ptr() as *mut libc::c_void,
                    self.size,
                    position,
                    MSG_COPY | libc::IPC_NOWAIT,
                )
            };
            if n >= 0 {
                let len = usize::try_from(n).unwrap_or(0).min(self.size);
                return Ok((self.words[0] as i64, len));
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::E2BIG) if self.size < self.most => {
                    self.size = self.size.saturating_mul(2).min(self.most);
                    self.words.resize(1 + self.size.div_ceil(8), 0);
                }
                // EINVAL: no such queue (its msqid is stale); EIDRM: removed meanwhile.
                Some(libc::EINVAL | libc::EIDRM) => return Err(enoent()),
                _ => return Err(e),
            }
        }
    }

    fn bytes(&self, len: usize) -> Vec<u8> {
        self.words[1..]
            .iter()
            .flat_map(|w| w.to_ne_bytes())
            .take(len)
            .collect()
    }
}

/// The message at `position` (0 is the first, in queue order) of queue `msqid`, copied without
/// being received: `msgrcv(…, MSG_COPY | IPC_NOWAIT)`. **It changes nothing** the kernel
/// records: the queue's stime, rtime, lspid, lrpid, qnum and cbytes stay as they were, and the
/// message stays queued.
///
/// `most` bounds the bytes copied: a message longer than it gives `E2BIG` (the buffer starts
/// at 8 KiB and grows only for a longer message). Errors, as the kernel gives them:
/// - `ENOMSG`: no message at that position (past the end);
/// - `EACCES`: the calling thread may not read the queue;
/// - `ENOENT`: no such queue (gone, or a stale msqid);
/// - `E2BIG`: the message is longer than `most`;
/// - `ENOSYS`: the kernel lacks CONFIG_CHECKPOINT_RESTORE, so messages cannot be read
///   without receiving them: say that messages cannot be shown.
///
/// Peeking at position n walks n messages under the queue's lock (see [`listing`]).
pub fn peek(msqid: i32, position: usize, most: usize) -> io::Result<Message> {
    let mut buf = MsgBuf::new(most);
    let (mtype, len) = buf.copy(msqid, position)?;
    Ok(Message {
        mtype,
        bytes: buf.bytes(len),
    })
}

/// The type and size of the first `most` messages of queue `msqid`, in queue order, each read
/// as [`peek`] reads it with `longest` as its bound (nothing changes; same errors, but the end
/// of the queue, a message longer than `longest`, or [`LISTING_BUDGET`] bytes copied just end
/// the list).
///
/// Cost: position n is found by walking n messages under the queue's lock, so a listing of n
/// messages costs O(n²) steps, and holds the lock against senders and receivers for each
/// step. Measured here (kernel 6.18, a loaded 2-core machine; the time is the kernel's): 1,000
/// messages of 2 bytes took 4–6 ms and 4,000 took 55–75 ms (t(4000)/t(1000) ≈ 12–13; see the
/// `listing_cost` test of `tests/msg_kernel.rs`, `-- --nocapture`); the issue measured 0.62 s
/// for 10,000. A caller should bound `most`: 1024 keeps one listing near 6 ms.
///
/// Messages sent or received while listing may be missed or seen twice: each position is
/// looked at in its own moment.
pub fn listing(msqid: i32, longest: usize, most: usize) -> io::Result<Vec<(i64, usize)>> {
    let mut buf = MsgBuf::new(longest);
    let mut messages = Vec::new();
    // What the kernel allocates and copies for the listing, bounded as a whole.
    let mut copied = 0usize;
    for position in 0..most {
        if copied > LISTING_BUDGET {
            break;
        }
        copied = copied.saturating_add(buf.size);
        match buf.copy(msqid, position) {
            Ok(found) => messages.push(found),
            // The end; or a message longer than `longest`, where the listing stops.
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOMSG | libc::E2BIG)) => break,
            Err(e) => return Err(e),
        }
    }
    Ok(messages)
}

/// The most bytes of buffers one [`listing`] has the kernel copy: past it the listing stops
/// (its caller says how many messages it did not list).
pub const LISTING_BUDGET: usize = 64 << 20;

/// Changes mode bits, owner and, if given, the most bytes the queue may hold
/// (`msgctl(IPC_SET)`); the kernel checks the calling thread's credentials (owner, creator or
/// CAP_SYS_ADMIN), and allows a `qbytes` above `msgmnb` only with CAP_SYS_RESOURCE (`EPERM`).
/// IPC_SET always sets qbytes: without one, the queue's current qbytes is read first and set
/// again (a change of qbytes by someone else in between would be undone).
pub fn set_perm(msqid: i32, mode: u32, uid: u32, gid: u32, qbytes: Option<u64>) -> io::Result<()> {
    let qbytes = match qbytes {
        Some(q) => q,
        None => queue(msqid)?.qbytes,
    };
    let mut ds = zeroed_ds();
    ds.msg_perm.mode = (mode & 0o777) as u16;
    ds.msg_perm.uid = uid;
    ds.msg_perm.gid = gid;
    ds.msg_qbytes = qbytes;
    // SAFETY: ds is a valid msqid_ds; IPC_SET only reads it.
    let rc = unsafe { libc::msgctl(msqid, libc::IPC_SET, &mut ds) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Removes the queue at once (`msgctl(IPC_RMID)`), waking its waiters with EIDRM; the kernel
/// checks the calling thread's credentials (owner, creator or CAP_SYS_ADMIN).
pub fn remove(msqid: i32) -> io::Result<()> {
    // SAFETY: IPC_RMID does not use the buffer.
    let rc = unsafe { libc::msgctl(msqid, libc::IPC_RMID, std::ptr::null_mut()) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The limits of message queues (`/proc/sys/kernel/msg*`, the IPC namespace's own) and their
/// use (`MSG_INFO`): what `ipcs -q -l` and `ipcs -q -u` show.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MsgLimits {
    /// The most bytes of one message.
    pub msgmax: u64,
    /// The default (and, without CAP_SYS_RESOURCE, highest) qbytes of a queue.
    pub msgmnb: u64,
    /// The most queues.
    pub msgmni: u64,
    pub queues_used: u64,
    pub messages_used: u64,
    pub bytes_used: u64,
}

/// The limits and usage of the calling thread's IPC namespace.
pub fn limits() -> io::Result<MsgLimits> {
    let read = |name: &str| -> io::Result<u64> {
        let path = format!("/proc/sys/kernel/{name}");
        let text = std::fs::read_to_string(&path)?;
        text.trim()
            .parse()
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, format!("{path}: {text:?}")))
    };
    let (_, info) = info()?;
    let count = |n: c_int| u64::try_from(n).unwrap_or(0);
    Ok(MsgLimits {
        msgmax: read("msgmax")?,
        msgmnb: read("msgmnb")?,
        msgmni: read("msgmni")?,
        queues_used: count(info.msgpool),
        messages_used: count(info.msgmap),
        bytes_used: count(info.msgtql),
    })
}

pub use waiters::{Blocked, Waiter, blocked_counts, blocked_on, parse_blocked};

/// Who is blocked in `msgsnd` or `msgrcv` on a queue, from `/proc/PID/task/TID/syscall`.
mod waiters {
    use std::io;
    use std::os::unix::fs::MetadataExt;

    use crate::kernel::namespace::IpcNs;
    use crate::kernel::proc_read;

    /// What one task's `syscall` line says of a `msgsnd` or `msgrcv` it is in.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Blocked {
        pub msqid: i32,
        /// In `msgsnd` (else `msgrcv`).
        pub sending: bool,
        /// The type a receiver asks for (0 any, > 0 that type, < 0 the lowest type up to its
        /// absolute value); None for a sender, whose message's type is in its own memory.
        pub mtype: Option<i64>,
        /// A sender's message size, or a receiver's buffer size.
        pub size: u64,
    }

    /// Parses one `/proc/PID/task/TID/syscall` line: `NR ARG1 … ARG6 SP PC` (arguments in
    /// hex) of a task in a system call. Some only for `msgsnd` and `msgrcv` (this
    /// architecture's numbers; the multiplexed `ipc(2)` of 32-bit programs is not read);
    /// None for anything else (`running`, `-1 …`, another call, a malformed line).
    pub fn parse_blocked(line: &str) -> Option<Blocked> {
        let mut fields = line.split_whitespace();
        let nr: i64 = fields.next()?.parse().ok()?;
        let mut args = [0u64; 6];
        for arg in &mut args {
            let field = fields.next()?;
            *arg = u64::from_str_radix(field.strip_prefix("0x")?, 16).ok()?;
        }
        // The msqid is an int: the low 32 bits of its register.
        let msqid = args[0] as u32 as i32;
        if nr == libc::SYS_msgsnd {
            Some(Blocked {
                msqid,
                sending: true,
                mtype: None,
                size: args[2],
            })
        } else if nr == libc::SYS_msgrcv {
            Some(Blocked {
                msqid,
                sending: false,
                mtype: Some(args[3] as i64),
                size: args[2],
            })
        } else {
            None
        }
    }

    /// One task blocked on a queue.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct Waiter {
        /// As the calling process's `/proc` numbers it.
        pub pid: u32,
        pub tid: u32,
        pub comm: String,
        pub sending: bool,
        /// See [`Blocked::mtype`].
        pub mtype: Option<i64>,
        /// See [`Blocked::size`].
        pub size: u64,
    }

    /// The tasks in `msgsnd` or `msgrcv` on queue `msqid` of the calling thread's IPC
    /// namespace, from one walk of `/proc`: only tasks of that namespace count (a msqid means
    /// another queue elsewhere), and only those the calling thread may read the `syscall` file
    /// of (ptrace access); tasks that vanish or cannot be read are left out. A task that is in
    /// the call but about to return (woken, not yet run) may still be listed.
    pub fn blocked_on(msqid: i32) -> io::Result<Vec<Waiter>> {
        Ok(blocked(Some(msqid))?.into_iter().map(|(w, _)| w).collect())
    }

    /// How many tasks are blocked on each queue of the calling thread's IPC namespace, from
    /// one walk of `/proc` (as [`blocked_on`] for every queue at once).
    pub fn blocked_counts() -> io::Result<std::collections::HashMap<i32, u64>> {
        let mut counts = std::collections::HashMap::new();
        for waiter in blocked(None)? {
            *counts.entry(waiter.1).or_insert(0) += 1;
        }
        Ok(counts)
    }

    /// The tasks of the calling thread's namespace in `msgsnd`/`msgrcv` (on `only`, if
    /// given), each with its queue.
    fn blocked(only: Option<i32>) -> io::Result<Vec<(Waiter, i32)>> {
        let (ours, _) = IpcNs::of_thread()?;
        let pids = proc_read::numbered("/proc");
        let mut waiters = Vec::new();
        for (pid, tid, line) in proc_read::task_syscalls(&pids) {
            let Some(blocked) = parse_blocked(&line) else {
                continue;
            };
            let task = format!("/proc/{pid}/task/{tid}");
            let same_ns = std::fs::metadata(format!("{task}/ns/ipc"))
                .is_ok_and(|st| st.dev() == ours.dev && st.ino() == ours.ino);
            if !same_ns || only.is_some_and(|msqid| blocked.msqid != msqid) {
                continue;
            }
            let comm = std::fs::read_to_string(format!("{task}/comm")).unwrap_or_default();
            waiters.push((
                Waiter {
                    pid,
                    tid,
                    comm: comm.trim_end_matches('\n').to_string(),
                    sending: blocked.sending,
                    mtype: blocked.mtype,
                    size: blocked.size,
                },
                blocked.msqid,
            ));
        }
        Ok(waiters)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syscall_lines_of_msgsnd_and_msgrcv_are_read() {
        let snd = format!(
            "{} 0x8001 0x7ffd1000 0x20 0x0 0x0 0x0 0x7ffd0ff8 0x7f0012345678",
            libc::SYS_msgsnd
        );
        assert_eq!(
            parse_blocked(&snd),
            Some(Blocked {
                msqid: 0x8001,
                sending: true,
                mtype: None,
                size: 0x20
            })
        );
        let rcv = format!(
            "{} 0x3 0x7ffd1000 0x2000 0xfffffffffffffffb 0x0 0x0 0x7ffd0ff8 0x7f00",
            libc::SYS_msgrcv
        );
        assert_eq!(
            parse_blocked(&rcv),
            Some(Blocked {
                msqid: 3,
                sending: false,
                mtype: Some(-5),
                size: 0x2000
            })
        );
    }

    #[test]
    fn other_syscall_lines_are_nothing_and_never_a_panic() {
        for line in [
            "",
            "running",
            "-1 0x7ffd0ff8 0x7f00",
            "0 0x3 0x7ffd1000 0x10 0x0 0x0 0x0 0x1 0x2",
            &format!("{} 0x3 0x1", libc::SYS_msgrcv),
            &format!("{} 3 0x1 0x2 0x3 0x4 0x5 0x6 0x7", libc::SYS_msgrcv),
            &format!("{} 0xzz 0x1 0x2 0x3 0x4 0x5", libc::SYS_msgsnd),
            &format!(
                "{} 0x1ffffffffffffffff 0x1 0x2 0x3 0x4 0x5",
                libc::SYS_msgsnd
            ),
            "99999999999999999999 0x1 0x1 0x1 0x1 0x1 0x1",
            "\u{fffd} 0x1",
        ] {
            assert_eq!(parse_blocked(line), None, "{line:?}");
        }
        // The msqid is the register's low 32 bits, whatever garbage is above them.
        let line = format!("{} 0xdead00000007 0x1 0x2 0x3 0x4 0x5", libc::SYS_msgsnd);
        assert_eq!(parse_blocked(&line).map(|b| b.msqid), Some(7));
    }
}
