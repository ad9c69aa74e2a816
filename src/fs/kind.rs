//! What the core asks of every kind of object (System V segments, POSIX objects, and the
//! kinds to come): [`Kind`] lists and looks them up, [`Object`] describes, changes, removes and
//! opens one, [`OpenData`] is an open `data`. The core's operations go through these and never
//! ask which kind they hold; each kind is one module under `fs/kinds/`, registered in
//! `fs/kinds.rs`.
//!
//! Calls that the kernel permission-checks are made by the kind with the calling thread acting
//! as the caller (`creds::as_caller`); the core checks nothing a kind decides.

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::sync::{Arc, Mutex};

use super::error::{Error, Result};
use super::inode::{InodeTable, ObjectId, Part, Scope};
use super::refusals;
use super::source::Source;
use super::types::{How, SetTime};
use crate::kernel::attach;
use crate::kernel::creds::Caller;
use crate::kernel::object::Meta;
use crate::render::index::{self, Owners};
use crate::render::metrics::{self, Detail};
use crate::render::text;

/// The files of the directory of an object that is memory (a segment, a POSIX object): its
/// bytes, its description, its mode and owner, and who has it mapped or open.
pub const MEMORY_FILES: [(&str, Part); 4] = [
    ("data", Part::Data),
    ("stat", Part::Stat),
    ("perm", Part::Perm),
    ("attached", Part::Attached),
];

/// What a kind's operations may use of the filesystem: where objects come from, and the
/// inode table, which keeps per-object facts for as long as the kernel holds the object.
#[derive(Clone)]
pub struct Env<'a> {
    pub source: Arc<dyn Source>,
    pub inodes: &'a Mutex<InodeTable>,
    /// The scope whose objects `source` holds: part of every identity the kind makes.
    pub ns: Scope,
}

/// One kind of object: its directory at the root and how its objects are found.
pub trait Kind: Send + Sync {
    /// The name of its directory at the root (`sysv`, `posix`).
    fn dir_name(&self) -> &'static str;
    /// The files of each object's directory, with their names, in listing order.
    fn files(&self) -> &'static [(&'static str, Part)];
    /// Every object now, in the kernel's order.
    fn list(&self, env: &Env) -> Result<Vec<Box<dyn Object>>>;
    /// The identity of every object now: a cheaper listing, for finding which are gone.
    fn ids(&self, env: &Env) -> io::Result<Vec<ObjectId>>;
    /// The object named `name` in its directory, or ENOENT.
    fn find(&self, env: &Env, name: &OsStr) -> Result<Box<dyn Object>>;
    /// The object `id` names, if it is still that very object; ENOENT if it is gone.
    fn get(&self, env: &Env, id: &ObjectId) -> Result<Box<dyn Object>>;
    /// Whether its objects have System V keys, which `by-key/` shows.
    fn has_keys(&self) -> bool {
        false
    }
    /// What its `by-key/` links' names begin with before `0xKEY` (`sem.`, `msg.`; nothing
    /// for segments, whose links were there first).
    fn key_prefix(&self) -> &'static str {
        ""
    }
    /// The object with System V key `key` (for `by-key/`), or ENOENT; kinds without keys
    /// have none.
    fn with_key(&self, _env: &Env, _key: u32) -> Result<Option<Box<dyn Object>>> {
        Ok(None)
    }
    /// Its rows of `index` and `index.json` for `who`, in the kernel's order.
    fn index_rows(&self, env: &Env, who: &Caller, owners: &mut Owners) -> Result<Vec<index::Row>>;
    /// Its part of `metrics.prom` for `who`: with [`Detail::All`] the series of each of its objects
    /// into `series` (labelled with `namespace`, for the objects of a namespace of `ns/`
    /// other than the daemon's own), and, if given, its totals into `totals`.
    #[allow(clippy::too_many_arguments)] // What one report needs of every kind, in one call.
    fn metrics(
        &self,
        env: &Env,
        who: &Caller,
        detail: Detail,
        owners: &mut Owners,
        namespace: Option<u64>,
        series: &mut metrics::Out,
        totals: Option<&mut metrics::Out>,
    ) -> Result<()>;
    /// Its part of `limits`, if it has limits.
    fn limits(&self, _env: &Env) -> Result<Option<String>> {
        Ok(None)
    }
    /// Its part of what `df` shows.
    fn space(&self, env: &Env) -> Result<Space>;
    /// `mkdir`: a new empty object of exactly `mode`, made as the caller. EPERM for kinds
    /// that are not made by `mkdir`.
    fn create(
        &self,
        _env: &Env,
        _who: &Caller,
        _name: &OsStr,
        _mode: u32,
    ) -> Result<Box<dyn Object>> {
        Err(Error::refused(libc::EPERM))
    }
}

/// A kind's part of what `df` shows, in bytes: its objects' memory as capacity and use, and
/// its objects as files. The kind whose objects are files of a filesystem (the shm dir) gives
/// that filesystem's block size, which `df`'s numbers are counted in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Space {
    pub bytes: u64,
    pub used: u64,
    pub files: u64,
    pub files_free: u64,
    pub block_size: Option<u64>,
}

/// What the attachment count of an object was at one moment, for an object that has a public
/// one (a segment's `nattch`, with its last attach record): `attached` shows the attachments
/// the caller may not see as `+N hidden`, and its length is known while the record stands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct AttachRecord {
    /// How many attachments.
    pub count: u64,
    /// What changes with any attach, detach, fork or exit of an attacher.
    pub stamp: (i32, i64, i64),
}

/// What an `rmdir` removed, for `ShmFs::removed` once the caller has its answer.
pub struct Removed {
    pub(super) id: ObjectId,
    pub(super) live: Box<dyn Object>,
}

/// One object as looked up now.
pub trait Object: Send + Sync {
    /// What identifies it for its whole life.
    fn id(&self) -> ObjectId;
    /// Its mode, owner, size and times.
    fn meta(&self) -> Meta;
    /// Its System V key, if it has one that `by-key/` shows (not 0).
    fn key(&self) -> Option<u32> {
        None
    }
    /// 512-byte blocks it holds in memory (what `du` shows of its `data`); none for an
    /// object without `data`.
    fn blocks(&self, _env: &Env) -> Result<u64> {
        Ok(0)
    }
    /// The text of its `stat`, as anyone may see it.
    fn stat_text(&self, env: &Env) -> Result<String>;
    /// The text of its `stat` as `who` sees it: more than [`Object::stat_text`] for those
    /// who may read what only a reader may know (a POSIX semaphore's value, a POSIX queue's
    /// messages count).
    fn stat_text_for(&self, env: &Env, _who: &Caller) -> Result<String> {
        self.stat_text(env)
    }
    /// The text of its `perm`.
    fn perm_text(&self) -> String {
        let meta = self.meta();
        text::perm(meta.mode, meta.uid, meta.gid)
    }
    /// Whether `who` may change its mode or owner at all, as the kernel would let it try.
    fn may_change_perm(&self, who: &Caller) -> bool;
    /// Who may change it, for the log line of a refusal (", creator or CAP_SYS_ADMIN").
    fn perm_changers(&self) -> &'static str;
    /// Applies a mode/owner change as `who` (for `op`, named in a refusal's log line);
    /// `None` keeps a value. The core holds the lock that serialises such changes.
    fn change_perm(
        &self,
        env: &Env,
        op: &str,
        who: &Caller,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
    ) -> Result<()>;
    /// `touch`: sets its times as `who` would, or accepts without effect where the kernel
    /// keeps them itself.
    fn set_times(
        &self,
        env: &Env,
        who: &Caller,
        atime: Option<SetTime>,
        mtime: Option<SetTime>,
    ) -> Result<()>;
    /// Whether `who` may read (4) and/or write (2) its `data`: EACCES if not.
    fn check_data_access(&self, _env: &Env, _who: &Caller, _want: u32) -> Result<()> {
        Err(Error::refused(libc::EACCES))
    }
    /// Removes it, with the calling thread's rights.
    fn remove(&self, env: &Env) -> io::Result<()>;
    /// Whether it may outlive its removal (a segment still attached lives until its last
    /// detach).
    fn may_outlive_removal(&self) -> bool {
        false
    }
    /// What `attached` looks for in `/proc`, for an object that has `attached`.
    fn holders(&self, _env: &Env) -> Option<attach::Target> {
        None
    }
    /// Its public attachment count and record, if it has one.
    fn attach_record(&self) -> Option<AttachRecord> {
        None
    }
    /// Opens its `data` for `who` with open(2) `flags`.
    fn open_data(&self, _env: &Env, _who: &Caller, _flags: i32) -> Result<Box<dyn OpenData>> {
        Err(Error::refused(libc::ENOENT))
    }
    /// Truncates its `data` by path as `who` (`checked`: an open for writing already passed
    /// the kernel's check).
    fn truncate(&self, _env: &Env, _who: &Caller, _size: u64, _checked: bool) -> Result<()> {
        Err(Error::refused(libc::EPERM))
    }
    /// The text of one of its files other than `stat`, `perm` and `attached` (`values`,
    /// `waiters`, `queue`) as `who` may read it, read with `who`'s rights where the kernel
    /// checks them (EACCES without read permission).
    fn text(&self, _env: &Env, _who: &Caller, _part: Part) -> Result<String> {
        Err(Error::refused(libc::ENOENT))
    }
    /// Whether `who` may open its file `part` for writing (`values`: the alter right, as the
    /// kernel's `ipcperms` grants it). The kernel checks again at each write.
    fn may_write(&self, _who: &Caller, _part: Part) -> bool {
        false
    }
    /// Applies a write of `data` to its file `part` (`values`) with the rights of `who`, who
    /// opened it for writing.
    fn write_text(&self, _env: &Env, _who: &Caller, _part: Part, _data: &[u8]) -> Result<()> {
        Err(Error::refused(libc::EBADF))
    }
    /// How many messages its `messages/` shows to `who` (read with `who`'s rights): ENOTDIR
    /// for an object without messages.
    fn message_count(&self, _env: &Env, _who: &Caller) -> Result<u32> {
        Err(Error::refused(libc::ENOTDIR))
    }
    /// The bytes of the message at position `n`, read with `who`'s rights, without
    /// receiving it; ENOENT past the end.
    fn message(&self, _env: &Env, _who: &Caller, _n: u32) -> Result<Vec<u8>> {
        Err(Error::refused(libc::ENOENT))
    }
    /// Applies a `perm` write that names `qbytes` (with mode and owner, `None` keeping one)
    /// as `who`: only a message queue has it.
    fn change_perm_and_qbytes(
        &self,
        _env: &Env,
        op: &str,
        who: &Caller,
        _perm: (Option<u32>, Option<u32>, Option<u32>),
        _qbytes: u64,
    ) -> Result<()> {
        Err(refused_input(
            op,
            who,
            &self.id().name.to_os_string().to_string_lossy(),
            "qbytes: only a message queue has a qbytes to set",
        ))
    }
}

/// An open `data`.
pub trait OpenData: Send + Sync {
    /// The object it is of.
    fn id(&self) -> &ObjectId;
    /// The object as this open sees it, even once it is gone (fstat of an unlinked file).
    fn object(&self) -> Result<Box<dyn Object>>;
    /// How the kernel may reach its bytes, for an open with `flags`.
    fn how(&self, flags: i32) -> How;
    /// The memory file the kernel may reach directly, if any.
    fn memory_file(&self) -> Option<&File>;
    /// Reads into `buf` (sized to at most `size` wanted bytes by [`OpenData::read_len`]) at
    /// `offset`; the count read.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    /// How many bytes a read of `size` at `offset` may give at most.
    fn read_len(&self, offset: u64, size: u32) -> usize;
    /// Writes `data` at `offset` as far as it goes; the count written.
    fn write_at(&self, data: &[u8], offset: u64) -> Result<u32>;
    /// ftruncate or O_TRUNC as `who`, on the open object even if it is gone.
    fn truncate(&self, who: &Caller, size: u64) -> Result<()>;
}

/// pread until `buf` is full or the end of the file.
pub fn read_full(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    use std::os::unix::fs::FileExt;
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// How an object is named in the log: `sysv/SHMID` or `posix/NAME` (escaped as `index` does).
pub fn shown(dir: &str, name: &OsStr) -> String {
    use std::os::unix::ffi::OsStrExt;
    format!(
        "{dir}/{}",
        crate::render::index::escape_name(name.as_bytes())
    )
}

/// A request refused because of what the user wrote or asked for (not because of who they
/// are): EINVAL, with the reason logged at info, which the default log level shows, so that
/// an operator can tell the user why. One line per refused request, within each user's share
/// of lines, quoting only the start of what the user wrote (`fs::refusals`).
pub fn refused_input(op: &str, who: &Caller, what: &str, reason: &str) -> Error {
    refusals::refused(who.uid, || {
        format!(
            "{op} refused for uid {} on {what}: {}",
            who.uid,
            refusals::tame(reason)
        )
    });
    Error::refused(libc::EINVAL)
}

/// A System V id (shmid, semid, msqid) exactly as the kernel prints it: no sign, no leading
/// zeros.
pub fn parse_ipc_id(name: &OsStr) -> Option<i32> {
    let s = name.to_str()?;
    let id: i32 = s.parse().ok()?;
    (id >= 0 && id.to_string() == s).then_some(id)
}

/// IPC_SET keeps only the 0777 bits of a System V object's mode: a mode with set-user-ID,
/// set-group-ID or sticky bits is refused (EINVAL, its reason logged) rather than cut silently,
/// and someone who may not change the object at all gets the kernel's EPERM instead. `what`
/// names the kind in the reason ("segment").
pub fn refuse_bits_beyond_0777(
    live: &dyn Object,
    op: &str,
    who: &Caller,
    shown_as: &str,
    what: &str,
    mode: Option<u32>,
) -> Result<()> {
    let Some(mode) = mode.filter(|m| m & !0o777 != 0) else {
        return Ok(());
    };
    if !live.may_change_perm(who) {
        return Err(Error::refused(libc::EPERM));
    }
    Err(refused_input(
        op,
        who,
        shown_as,
        &format!(
            "mode 0{mode:o} has set-user-ID, set-group-ID or sticky bits, which a {what} cannot \
             hold (only 0777)"
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipc_ids_are_canonical() {
        assert_eq!(parse_ipc_id(OsStr::new("0")), Some(0));
        assert_eq!(parse_ipc_id(OsStr::new("32769")), Some(32769));
        assert_eq!(parse_ipc_id(OsStr::new("007")), None);
        assert_eq!(parse_ipc_id(OsStr::new("+7")), None);
        assert_eq!(parse_ipc_id(OsStr::new("-1")), None);
        assert_eq!(parse_ipc_id(OsStr::new("99999999999")), None);
    }
}
