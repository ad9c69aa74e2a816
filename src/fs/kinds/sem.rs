//! System V semaphore sets as a kind: `sem/SEMID/` with `stat`, `perm`, `values` and
//! `waiters`, and `by-key/sem.0xKEY`. Looking changes nothing the kernel records: `stat` is
//! `SEM_STAT_ANY`, `values` one `GETALL` (and GETNCNT/GETZCNT/GETPID), `waiters` a walk of
//! `/proc`; writing `values` is `SETVAL`/`SETALL` with the opener's rights.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io;

use crate::fs::error::{Error, Result};
use crate::fs::inode::{Name, ObjectId, Part, Scope};
use crate::fs::kind::{
    Env, Kind, Object, Space, parse_ipc_id, refuse_bits_beyond_0777, refused_input, shown,
};
use crate::fs::reports::traceable_by;
use crate::fs::types::SetTime;
use crate::kernel::creds::{self, Caller};
use crate::kernel::object::Meta;
use crate::kernel::sem::{self, SemSet};
use crate::kernel::sysv::IpcPerm;
use crate::render::index::{self, Owners};
use crate::render::ipc::{self, ValuesWrite};
use crate::render::metrics::{self, Detail};

/// This kind's index in the registry (`fs::kinds`).
pub(super) const INDEX: usize = 2;

/// The files of a set's directory.
const FILES: [(&str, Part); 4] = [
    ("stat", Part::Stat),
    ("perm", Part::Perm),
    ("values", Part::Values),
    ("waiters", Part::Waiters),
];

/// The kind: every semaphore set of the namespace.
pub(super) struct SemSets;

/// A set as looked up now.
struct Set(SemSet, Scope);

fn errno(code: i32) -> Error {
    Error::refused(code)
}

fn id_of(set: &SemSet, ns: Scope) -> ObjectId {
    ObjectId {
        ns,
        kind: INDEX,
        name: Name::Number(set.semid as u32),
        // A semid reused by another set (after the kernel's sequence wraps) has, as a rule,
        // another creator, key or size.
        stamp: [
            (u64::from(set.cuid) << 32) | u64::from(set.cgid),
            u64::from(set.key),
            set.nsems,
        ],
    }
}

fn perm_of(set: &SemSet) -> IpcPerm {
    IpcPerm {
        mode: set.mode,
        uid: set.uid,
        gid: set.gid,
        cuid: set.cuid,
        cgid: set.cgid,
    }
}

/// The kernel's `ipcperms` verdict for the caller: its mode bits, or CAP_IPC_OWNER.
fn permits(who: &Caller, set: &SemSet, want: u32) -> bool {
    perm_of(set).permits(who.uid, |gid| who.in_group(gid), want)
        || who.has_cap(creds::cap::IPC_OWNER)
}

/// A set that went between its lookup and a call on it: the kernel says EINVAL or EIDRM
/// (ENOENT for a semid reused meanwhile).
fn gone_as_stale(e: io::Error) -> Error {
    match e.raw_os_error() {
        Some(libc::EINVAL | libc::EIDRM | libc::ENOENT) => Error::stale(),
        _ => Error::from(e),
    }
}

impl Kind for SemSets {
    fn dir_name(&self) -> &'static str {
        "sem"
    }

    fn files(&self) -> &'static [(&'static str, Part)] {
        &FILES
    }

    fn list(&self, env: &Env) -> Result<Vec<Box<dyn Object>>> {
        Ok(env
            .source
            .sem_sets()?
            .into_iter()
            .map(|set| Box::new(Set(set, env.ns)) as Box<dyn Object>)
            .collect())
    }

    fn ids(&self, env: &Env) -> io::Result<Vec<ObjectId>> {
        Ok(env
            .source
            .sem_sets()?
            .iter()
            .map(|set| id_of(set, env.ns))
            .collect())
    }

    fn find(&self, env: &Env, name: &OsStr) -> Result<Box<dyn Object>> {
        let semid = parse_ipc_id(name).ok_or_else(|| errno(libc::ENOENT))?;
        Ok(Box::new(Set(env.source.sem_set(semid)?, env.ns)))
    }

    fn get(&self, env: &Env, id: &ObjectId) -> Result<Box<dyn Object>> {
        let Name::Number(semid) = id.name else {
            return Err(errno(libc::ENOENT));
        };
        let semid = i32::try_from(semid).map_err(|_| errno(libc::ENOENT))?;
        let set = env.source.sem_set(semid)?;
        if id_of(&set, env.ns) != *id {
            return Err(errno(libc::ENOENT));
        }
        Ok(Box::new(Set(set, env.ns)))
    }

    fn has_keys(&self) -> bool {
        true
    }

    fn key_prefix(&self) -> &'static str {
        "sem."
    }

    fn with_key(&self, env: &Env, key: u32) -> Result<Option<Box<dyn Object>>> {
        let set = env.source.sem_set_with_key(key)?;
        if set.key != key {
            return Err(errno(libc::ENOENT));
        }
        Ok(Some(Box::new(Set(set, env.ns))))
    }

    fn index_rows(&self, env: &Env, _who: &Caller, owners: &mut Owners) -> Result<Vec<index::Row>> {
        Ok(env
            .source
            .sem_sets()?
            .iter()
            .map(|s| index::Row::sem(s, owners.name(s.uid)))
            .collect())
    }

    /// One listing of the sets; with [`Detail::All`] one walk of `/proc` for the tasks
    /// blocked on them, counted only for the sets `who` may read (as the kernel's NCOUNT and
    /// ZCOUNT are); the limits and use.
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
            let sets = env.source.sem_sets()?;
            let mut waiters = env.source.sem_waiter_counts().unwrap_or_else(|e| {
                log::warn!("counting the tasks blocked on semaphore sets: {e}");
                HashMap::new()
            });
            let readable: Vec<i32> = sets
                .iter()
                .filter(|s| permits(who, s, 4))
                .map(|s| s.semid)
                .collect();
            waiters.retain(|semid, _| readable.contains(semid));
            for semid in readable {
                waiters.entry(semid).or_insert(0);
            }
            let owners = owners.names_of(sets.iter().map(|s| s.uid));
            metrics::sem_series_in(series, namespace, &sets, &waiters, owners);
        }
        if let Some(totals) = totals {
            metrics::sem_totals(totals, &env.source.sem_limits()?);
        }
        Ok(())
    }

    fn limits(&self, env: &Env) -> Result<Option<String>> {
        Ok(Some(ipc::sem_limits(&env.source.sem_limits()?)))
    }

    /// Sets hold no memory of their own that `df` would count; each is a file.
    fn space(&self, env: &Env) -> Result<Space> {
        Ok(Space {
            files: env.source.sem_limits()?.sets_used,
            ..Space::default()
        })
    }
}

impl Set {
    fn name(&self) -> String {
        shown("sem", OsStr::new(&self.0.semid.to_string()))
    }

    /// `values`, read with `who`'s rights: the kernel's GETALL needs read permission.
    fn values_text(&self, env: &Env, who: &Caller) -> Result<String> {
        let set = &self.0;
        let values = creds::as_caller(who, || env.source.sem_values(set.semid, set.nsems))
            .map_err(gone_as_stale)?;
        Ok(ipc::sem_values(&values))
    }

    /// `waiters`: the tasks blocked on the set that `who` may trace, and how many others.
    fn waiters_text(&self, env: &Env, who: &Caller) -> Result<String> {
        let waiters = env.source.sem_waiters(self.0.semid)?;
        let pids: Vec<u32> = waiters.iter().map(|w| w.pid).collect();
        let visible = traceable_by(who, &pids);
        let (shown, hidden): (Vec<_>, Vec<_>) =
            waiters.into_iter().partition(|w| visible.contains(&w.pid));
        Ok(ipc::sem_waiters(&shown, hidden.len()))
    }
}

impl Object for Set {
    fn id(&self) -> ObjectId {
        id_of(&self.0, self.1)
    }

    fn meta(&self) -> Meta {
        self.0.meta()
    }

    fn key(&self) -> Option<u32> {
        (self.0.key != 0).then_some(self.0.key)
    }

    fn stat_text(&self, _env: &Env) -> Result<String> {
        Ok(ipc::sem_stat(&self.0))
    }

    fn may_change_perm(&self, who: &Caller) -> bool {
        perm_of(&self.0).is_owner(who.uid) || who.has_cap(creds::cap::SYS_ADMIN)
    }

    fn perm_changers(&self) -> &'static str {
        ", creator or CAP_SYS_ADMIN"
    }

    /// As for a segment: IPC_SET keeps only 0777, so other bits are refused with EINVAL.
    fn change_perm(
        &self,
        env: &Env,
        op: &str,
        who: &Caller,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
    ) -> Result<()> {
        let set = &self.0;
        refuse_bits_beyond_0777(self, op, who, &self.name(), "semaphore set", mode)?;
        creds::as_caller(who, || {
            env.source.set_sem_perm(
                set.semid,
                mode.unwrap_or(set.mode) & 0o777,
                uid.unwrap_or(set.uid),
                gid.unwrap_or(set.gid),
            )
        })
        .map_err(gone_as_stale)
    }

    /// A set's times are the kernel's own: accepted without effect for its owner, who may
    /// alter it, or CAP_FOWNER (as `touch` of a file they may write).
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
        env.source.remove_sem_set(self.0.semid)
    }

    fn text(&self, env: &Env, who: &Caller, part: Part) -> Result<String> {
        match part {
            Part::Values => self.values_text(env, who),
            Part::Waiters => self.waiters_text(env, who),
            _ => Err(errno(libc::ENOENT)),
        }
    }

    /// `values` is written with the alter right (the write bit, as `ipcperms` weighs it).
    fn may_write(&self, who: &Caller, part: Part) -> bool {
        part == Part::Values && permits(who, &self.0, 2)
    }

    /// A whole list is one SETALL; `N V` lines are one SETVAL each, once every line is known
    /// to be valid (so a bad line changes nothing).
    fn write_text(&self, env: &Env, who: &Caller, part: Part, data: &[u8]) -> Result<()> {
        if part != Part::Values {
            return Err(errno(libc::EBADF));
        }
        let set = &self.0;
        let nsems = usize::try_from(set.nsems).unwrap_or(usize::MAX);
        let write = ipc::parse_sem_values(data, nsems, sem::SEMVMX)
            .map_err(|reason| refused_input("values write", who, &self.name(), &reason))?;
        creds::as_caller(who, || match &write {
            ValuesWrite::All(values) => env.source.set_sem_values(set.semid, values),
            ValuesWrite::Each(pairs) => pairs
                .iter()
                .try_for_each(|&(num, value)| env.source.set_sem_value(set.semid, num, value)),
        })
        .map_err(gone_as_stale)
    }
}
