//! POSIX message queues as a kind: `mqueue/NAME/` with `stat` and `perm`, the queues of the
//! IPC namespace's mqueue filesystem (reached by the daemon itself: no mount of it is needed
//! on the host). Their messages cannot be read without receiving them, so only attributes are
//! shown (`mq_getattr` on a descriptor of the queue, which changes nothing).

use std::ffi::OsStr;
use std::io;

use crate::fs::error::{Error, Result};
use crate::fs::inode::{Name, ObjectId, Part, Scope};
use crate::fs::kind::{Env, Kind, Object, Space};
use crate::fs::types::SetTime;
use crate::kernel::creds::{self, Caller};
use crate::kernel::mqueue::MqInfo;
use crate::kernel::object::Meta;
use crate::render::index::{self, Owners};
use crate::render::ipc;
use crate::render::metrics::{self, Detail};

/// This kind's index in the registry (`fs::kinds`).
pub(super) const INDEX: usize = 4;

const FILES: [(&str, Part); 2] = [("stat", Part::Stat), ("perm", Part::Perm)];

/// The kind: every POSIX message queue of the namespace.
pub(super) struct MessageQueues;

/// A queue as looked up now.
struct Mq(MqInfo, Scope);

fn errno(code: i32) -> Error {
    Error::refused(code)
}

fn id_of(q: &MqInfo, ns: Scope) -> ObjectId {
    ObjectId {
        ns,
        kind: INDEX,
        name: Name::Text(q.name.clone()),
        stamp: [q.ino, 0, 0],
    }
}

impl Kind for MessageQueues {
    fn dir_name(&self) -> &'static str {
        "mqueue"
    }

    fn files(&self) -> &'static [(&'static str, Part)] {
        &FILES
    }

    fn list(&self, env: &Env) -> Result<Vec<Box<dyn Object>>> {
        Ok(env
            .source
            .mqueues()?
            .into_iter()
            .map(|q| Box::new(Mq(q, env.ns)) as Box<dyn Object>)
            .collect())
    }

    fn ids(&self, env: &Env) -> io::Result<Vec<ObjectId>> {
        Ok(env
            .source
            .mqueues()?
            .iter()
            .map(|q| id_of(q, env.ns))
            .collect())
    }

    fn find(&self, env: &Env, name: &OsStr) -> Result<Box<dyn Object>> {
        Ok(Box::new(Mq(env.source.mqueue(name)?, env.ns)))
    }

    fn get(&self, env: &Env, id: &ObjectId) -> Result<Box<dyn Object>> {
        let Name::Text(name) = &id.name else {
            return Err(errno(libc::ENOENT));
        };
        let q = env.source.mqueue(name)?;
        if id_of(&q, env.ns) != *id {
            return Err(errno(libc::ENOENT));
        }
        Ok(Box::new(Mq(q, env.ns)))
    }

    fn index_rows(&self, env: &Env, who: &Caller, owners: &mut Owners) -> Result<Vec<index::Row>> {
        Ok(readable_by(who, env.source.mqueues()?)
            .iter()
            .map(|q| index::Row::mqueue(q, owners.name(q.uid)))
            .collect())
    }

    fn metrics(
        &self,
        env: &Env,
        who: &Caller,
        detail: Detail,
        owners: &mut Owners,
        namespace: Option<u64>,
        series: &mut metrics::Out,
        _totals: Option<&mut metrics::Out>,
    ) -> Result<()> {
        if detail == Detail::All {
            let queues = readable_by(who, env.source.mqueues()?);
            let owners = owners.names_of(queues.iter().map(|q| q.uid));
            metrics::mqueue_series_in(series, namespace, &queues, owners);
        }
        Ok(())
    }

    fn limits(&self, env: &Env) -> Result<Option<String>> {
        let l = env.source.mqueue_limits()?;
        let queues = env.source.mqueues().map(|q| q.len() as u64).unwrap_or(0);
        Ok(Some(ipc::mqueue_limits(
            l.queues_max,
            l.msg_max,
            l.msgsize_max,
            queues,
        )))
    }

    fn space(&self, _env: &Env) -> Result<Space> {
        Ok(Space::default())
    }
}

impl Object for Mq {
    fn id(&self) -> ObjectId {
        id_of(&self.0, self.1)
    }

    /// Its file's mode, owner and times (its messages count is for readers only).
    fn meta(&self) -> Meta {
        let q = &self.0;
        Meta {
            mode: q.mode,
            uid: q.uid,
            gid: q.gid,
            size: 0,
            atime: q.atime,
            mtime: q.mtime,
            ctime: q.ctime,
        }
    }

    /// Its mode, owner and times, as `ls -l` of the queue's file shows them to anyone.
    fn stat_text(&self, _env: &Env) -> Result<String> {
        Ok(without_attributes(&ipc::mqueue_stat(&self.0)))
    }

    /// With its attributes (maxmsg, msgsize, curmsgs) for those who may open it for reading,
    /// as `mq_getattr` needs: looked up again as the caller, so the kernel decides.
    fn stat_text_for(&self, env: &Env, who: &Caller) -> Result<String> {
        match creds::as_caller(who, || env.source.mqueue(&self.0.name)) {
            Ok(q) if id_of(&q, self.1) == self.id() => Ok(ipc::mqueue_stat(&q)),
            _ => self.stat_text(env),
        }
    }

    /// A queue is a file of its filesystem: chmod by its owner or CAP_FOWNER, chown with
    /// CAP_CHOWN (or to a group of the owner's own), judged by the kernel.
    fn may_change_perm(&self, who: &Caller) -> bool {
        who.uid == self.0.uid || who.has_cap(creds::cap::FOWNER) || who.has_cap(creds::cap::CHOWN)
    }

    fn perm_changers(&self) -> &'static str {
        ", CAP_FOWNER or CAP_CHOWN"
    }

    fn change_perm(
        &self,
        env: &Env,
        _op: &str,
        who: &Caller,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
    ) -> Result<()> {
        let name = &self.0.name;
        // Nothing is changed for what already holds (a chown to the same owner is a no-op).
        let uid = uid.filter(|&u| u != self.0.uid);
        let gid = gid.filter(|&g| g != self.0.gid);
        creds::as_caller(who, || {
            env.source
                .set_mqueue_perm(name, mode.map(|m| m & 0o7777), uid, gid)
        })
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ENOENT) => Error::stale(),
            _ => Error::from(e),
        })
    }

    /// Accepted without effect for its owner or CAP_FOWNER (the kernel moves its times
    /// itself as messages come and go).
    fn set_times(
        &self,
        _env: &Env,
        who: &Caller,
        _atime: Option<SetTime>,
        _mtime: Option<SetTime>,
    ) -> Result<()> {
        if who.uid == self.0.uid || who.has_cap(creds::cap::FOWNER) {
            Ok(())
        } else {
            Err(errno(libc::EACCES))
        }
    }

    fn remove(&self, env: &Env) -> io::Result<()> {
        env.source.remove_mqueue(&self.0.name)
    }
}

/// The queues `who` may open for reading (their file's mode bits, or CAP_DAC_OVERRIDE or
/// CAP_DAC_READ_SEARCH): only they have attributes `who` may know (`ls -l` of an mqueue
/// filesystem shows none), so `index` and `metrics.prom` list only them.
fn readable_by(who: &Caller, queues: Vec<MqInfo>) -> Vec<MqInfo> {
    if who.has_cap(creds::cap::DAC_OVERRIDE) || who.has_cap(creds::cap::DAC_READ_SEARCH) {
        return queues;
    }
    queues
        .into_iter()
        .filter(|q| {
            let bits = if who.uid == q.uid {
                q.mode >> 6
            } else if who.in_group(q.gid) {
                q.mode >> 3
            } else {
                q.mode
            };
            bits & 4 != 0
        })
        .collect()
}

/// A queue's `stat` without the lines only a reader may see.
fn without_attributes(text: &str) -> String {
    text.lines()
        .filter(|l| {
            !["maxmsg:", "msgsize:", "curmsgs:"]
                .iter()
                .any(|p| l.starts_with(p))
        })
        .flat_map(|l| [l, "\n"])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_are_left_out_for_others() {
        let text = "kind: mqueue\nname: q\nmaxmsg: 10\nmsgsize: 64\ncurmsgs: 2\natime: 1\n";
        assert_eq!(
            without_attributes(text),
            "kind: mqueue\nname: q\natime: 1\n"
        );
    }
}
