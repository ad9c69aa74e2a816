//! System V message queues as a kind: `msg/MSQID/` with `stat`, `perm`, `queue`, `messages/N`
//! and `waiters`, and `by-key/msg.0xKEY`. Messages are read with `MSG_COPY | IPC_NOWAIT`, which
//! receives nothing and changes nothing the kernel records (stime, rtime, lspid, lrpid, qnum,
//! cbytes); each read of position N walks N messages under the queue's lock, so `queue` and
//! `messages/` show at most the first [`SHOWN`] messages.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io;

use crate::fs::error::{Error, Result};
use crate::fs::inode::{Name, ObjectId, Part, Scope};
use crate::fs::kind::{Env, Kind, Object, Space, parse_ipc_id, refuse_bits_beyond_0777, shown};
use crate::fs::reports::traceable_by;
use crate::fs::types::SetTime;
use crate::kernel::creds::{self, Caller};
use crate::kernel::msg::Queue;
use crate::kernel::object::Meta;
use crate::kernel::sysv::IpcPerm;
use crate::render::index::{self, Owners};
use crate::render::ipc;
use crate::render::metrics::{self, Detail};

/// This kind's index in the registry (`fs::kinds`).
pub(super) const INDEX: usize = 3;

/// The most messages `queue` lists and `messages/` holds: the first ones in queue order.
/// Listing them costs O(n²) steps under the queue's lock (about 6 ms for 1,024 here).
pub const SHOWN: usize = 1024;

/// The files of a queue's directory.
const FILES: [(&str, Part); 5] = [
    ("stat", Part::Stat),
    ("perm", Part::Perm),
    ("queue", Part::Queue),
    ("messages", Part::Messages),
    ("waiters", Part::Waiters),
];

/// The kind: every message queue of the namespace.
pub(super) struct Queues;

/// A queue as looked up now.
struct Q(Queue, Scope);

fn errno(code: i32) -> Error {
    Error::refused(code)
}

fn id_of(q: &Queue, ns: Scope) -> ObjectId {
    ObjectId {
        ns,
        kind: INDEX,
        name: Name::Number(q.msqid as u32),
        stamp: [
            (u64::from(q.cuid) << 32) | u64::from(q.cgid),
            u64::from(q.key),
            0,
        ],
    }
}

fn perm_of(q: &Queue) -> IpcPerm {
    IpcPerm {
        mode: q.mode,
        uid: q.uid,
        gid: q.gid,
        cuid: q.cuid,
        cgid: q.cgid,
    }
}

fn permits(who: &Caller, q: &Queue, want: u32) -> bool {
    perm_of(q).permits(who.uid, |gid| who.in_group(gid), want) || who.has_cap(creds::cap::IPC_OWNER)
}

/// A queue gone between its lookup and a call on it (EINVAL, EIDRM; ENOENT for a msqid
/// reused meanwhile); ENOSYS, a kernel without `MSG_COPY`, is said once in the log.
fn kernel_error(e: io::Error) -> Error {
    match e.raw_os_error() {
        Some(libc::EINVAL | libc::EIDRM | libc::ENOENT) => Error::stale(),
        Some(libc::ENOSYS) => {
            static TOLD: std::sync::Once = std::sync::Once::new();
            TOLD.call_once(|| {
                log::warn!(
                    "this kernel has no MSG_COPY (CONFIG_CHECKPOINT_RESTORE): messages of \
                     System V queues cannot be shown without receiving them"
                )
            });
            Error::from(e)
        }
        _ => Error::from(e),
    }
}

/// The longest message shown: `messages/N` of a longer one is EFBIG, and `queue` stops
/// before it. The kernel allocates and copies the whole buffer of each `MSG_COPY`, so its
/// size must not follow a sysctl that the owner of a namespace may set as high as 2 GiB.
pub const LONGEST: usize = 1 << 20;

/// The buffer bound of a `MSG_COPY`: the namespace's msgmax, at most [`LONGEST`].
fn longest(env: &Env) -> Result<usize> {
    let max = env.source.msg_limits()?.msgmax;
    Ok(usize::try_from(max).unwrap_or(usize::MAX).clamp(1, LONGEST))
}

impl Kind for Queues {
    fn dir_name(&self) -> &'static str {
        "msg"
    }

    fn files(&self) -> &'static [(&'static str, Part)] {
        &FILES
    }

    fn list(&self, env: &Env) -> Result<Vec<Box<dyn Object>>> {
        Ok(env
            .source
            .queues()?
            .into_iter()
            .map(|q| Box::new(Q(q, env.ns)) as Box<dyn Object>)
            .collect())
    }

    fn ids(&self, env: &Env) -> io::Result<Vec<ObjectId>> {
        Ok(env
            .source
            .queues()?
            .iter()
            .map(|q| id_of(q, env.ns))
            .collect())
    }

    fn find(&self, env: &Env, name: &OsStr) -> Result<Box<dyn Object>> {
        let msqid = parse_ipc_id(name).ok_or_else(|| errno(libc::ENOENT))?;
        Ok(Box::new(Q(env.source.queue(msqid)?, env.ns)))
    }

    fn get(&self, env: &Env, id: &ObjectId) -> Result<Box<dyn Object>> {
        let Name::Number(msqid) = id.name else {
            return Err(errno(libc::ENOENT));
        };
        let msqid = i32::try_from(msqid).map_err(|_| errno(libc::ENOENT))?;
        let q = env.source.queue(msqid)?;
        if id_of(&q, env.ns) != *id {
            return Err(errno(libc::ENOENT));
        }
        Ok(Box::new(Q(q, env.ns)))
    }

    fn has_keys(&self) -> bool {
        true
    }

    fn key_prefix(&self) -> &'static str {
        "msg."
    }

    fn with_key(&self, env: &Env, key: u32) -> Result<Option<Box<dyn Object>>> {
        let q = env.source.queue_with_key(key)?;
        if q.key != key {
            return Err(errno(libc::ENOENT));
        }
        Ok(Some(Box::new(Q(q, env.ns))))
    }

    fn index_rows(&self, env: &Env, _who: &Caller, owners: &mut Owners) -> Result<Vec<index::Row>> {
        Ok(env
            .source
            .queues()?
            .iter()
            .map(|q| index::Row::msg(q, owners.name(q.uid)))
            .collect())
    }

    /// One listing of the queues; with [`Detail::All`] one walk of `/proc` for the waiters of
    /// all of them, counted only for the queues `who` may read; the limits and use.
    fn metrics(
        &self,
        env: &Env,
        who: &Caller,
        detail: Detail,
        owners: &mut Owners,
        namespace: Option<u64>,
        series: &mut metrics::Out,
        totals: Option<&mut metrics::Out>,
    ) -> Result<()> {
        if detail == Detail::All {
            let queues = env.source.queues()?;
            let mut waiters = env.source.queue_waiter_counts().unwrap_or_else(|e| {
                log::warn!("counting the tasks blocked on message queues: {e}");
                HashMap::new()
            });
            // Counted only for the queues `who` may read.
            let readable: Vec<i32> = queues
                .iter()
                .filter(|q| permits(who, q, 4))
                .map(|q| q.msqid)
                .collect();
            waiters.retain(|msqid, _| readable.contains(msqid));
            for msqid in readable {
                waiters.entry(msqid).or_insert(0);
            }
            let owners = owners.names_of(queues.iter().map(|q| q.uid));
            metrics::msg_series_in(series, namespace, &queues, &waiters, owners);
        }
        if let Some(totals) = totals {
            metrics::msg_totals(totals, &env.source.msg_limits()?);
        }
        Ok(())
    }

    fn limits(&self, env: &Env) -> Result<Option<String>> {
        Ok(Some(ipc::msg_limits(&env.source.msg_limits()?)))
    }

    fn space(&self, env: &Env) -> Result<Space> {
        Ok(Space {
            files: env.source.msg_limits()?.queues_used,
            ..Space::default()
        })
    }
}

impl Q {
    fn name(&self) -> String {
        shown("msg", OsStr::new(&self.0.msqid.to_string()))
    }

    /// The type and size of the first [`SHOWN`] messages, read with `who`'s rights (read
    /// permission).
    fn listing(&self, env: &Env, who: &Caller) -> Result<Vec<(i64, usize)>> {
        let max = longest(env)?;
        creds::as_caller(who, || env.source.messages(self.0.msqid, max, SHOWN))
            .map_err(kernel_error)
    }

    fn waiters_text(&self, env: &Env, who: &Caller) -> Result<String> {
        let waiters = env.source.queue_waiters(self.0.msqid)?;
        let pids: Vec<u32> = waiters.iter().map(|w| w.pid).collect();
        let visible = traceable_by(who, &pids);
        let (shown, hidden): (Vec<_>, Vec<_>) =
            waiters.into_iter().partition(|w| visible.contains(&w.pid));
        Ok(ipc::msg_waiters(&shown, hidden.len()))
    }
}

impl Object for Q {
    fn id(&self) -> ObjectId {
        id_of(&self.0, self.1)
    }

    /// Its mode, owner and times as a file shows them: the size is the bytes queued, the
    /// last receive stands for the last access, the last send for the last change of its
    /// content.
    fn meta(&self) -> Meta {
        let q = &self.0;
        Meta {
            mode: q.mode,
            uid: q.uid,
            gid: q.gid,
            size: q.cbytes,
            // Never received or sent: its creation.
            atime: if q.rtime != 0 { q.rtime } else { q.ctime },
            mtime: if q.stime != 0 { q.stime } else { q.ctime },
            ctime: q.ctime,
        }
    }

    fn key(&self) -> Option<u32> {
        (self.0.key != 0).then_some(self.0.key)
    }

    fn stat_text(&self, _env: &Env) -> Result<String> {
        Ok(ipc::msg_stat(&self.0))
    }

    fn perm_text(&self) -> String {
        let q = &self.0;
        ipc::msg_perm(q.mode, q.uid, q.gid, q.qbytes)
    }

    fn may_change_perm(&self, who: &Caller) -> bool {
        perm_of(&self.0).is_owner(who.uid) || who.has_cap(creds::cap::SYS_ADMIN)
    }

    fn perm_changers(&self) -> &'static str {
        ", creator or CAP_SYS_ADMIN"
    }

    fn change_perm(
        &self,
        env: &Env,
        op: &str,
        who: &Caller,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
    ) -> Result<()> {
        self.set(env, op, who, (mode, uid, gid), None)
    }

    fn change_perm_and_qbytes(
        &self,
        env: &Env,
        op: &str,
        who: &Caller,
        perm: (Option<u32>, Option<u32>, Option<u32>),
        qbytes: u64,
    ) -> Result<()> {
        self.set(env, op, who, perm, Some(qbytes))
    }

    /// A queue's times are the kernel's own: accepted without effect for who may change it.
    fn set_times(
        &self,
        _env: &Env,
        who: &Caller,
        _atime: Option<SetTime>,
        _mtime: Option<SetTime>,
    ) -> Result<()> {
        if perm_of(&self.0).is_owner(who.uid)
            || permits(who, &self.0, 2)
            || who.has_cap(creds::cap::FOWNER)
        {
            Ok(())
        } else {
            Err(errno(libc::EACCES))
        }
    }

    fn remove(&self, env: &Env) -> io::Result<()> {
        env.source.remove_queue(self.0.msqid)
    }

    fn text(&self, env: &Env, who: &Caller, part: Part) -> Result<String> {
        match part {
            Part::Queue => {
                let listing = self.listing(env, who)?;
                Ok(ipc::msg_queue(&listing, self.0.qnum))
            }
            Part::Waiters => self.waiters_text(env, who),
            _ => Err(errno(libc::ENOENT)),
        }
    }

    fn message_count(&self, env: &Env, who: &Caller) -> Result<u32> {
        Ok(self.listing(env, who)?.len() as u32)
    }

    fn message(&self, env: &Env, who: &Caller, n: u32) -> Result<Vec<u8>> {
        let n = n as usize;
        if n >= SHOWN {
            return Err(errno(libc::ENOENT));
        }
        let max = longest(env)?;
        match creds::as_caller(who, || env.source.message(self.0.msqid, n, max)) {
            Ok(message) => Ok(message.bytes),
            // Received meanwhile: that position holds no message now.
            Err(e) if e.raw_os_error() == Some(libc::ENOMSG) => Err(errno(libc::ENOENT)),
            Err(e) if e.raw_os_error() == Some(libc::E2BIG) => Err(errno(libc::EFBIG)),
            Err(e) => Err(kernel_error(e)),
        }
    }
}

impl Q {
    /// IPC_SET of mode, owner and (if given) qbytes, as `who`. A mode with bits beyond 0777
    /// is refused with EINVAL; qbytes above msgmnb needs CAP_SYS_RESOURCE, which the kernel
    /// weighs for the caller (the daemon keeps none of it): EPERM.
    fn set(
        &self,
        env: &Env,
        op: &str,
        who: &Caller,
        (mode, uid, gid): (Option<u32>, Option<u32>, Option<u32>),
        qbytes: Option<u64>,
    ) -> Result<()> {
        let q = &self.0;
        refuse_bits_beyond_0777(self, op, who, &self.name(), "message queue", mode)?;
        creds::as_caller(who, || {
            env.source.set_queue_perm(
                q.msqid,
                mode.unwrap_or(q.mode) & 0o777,
                uid.unwrap_or(q.uid),
                gid.unwrap_or(q.gid),
                // IPC_SET always sets qbytes: the one looked up, if none is asked for.
                Some(qbytes.unwrap_or(q.qbytes)),
            )
        })
        .map_err(kernel_error)
    }
}
