//! The filesystem: what each name and inode of the mount stands for, and every operation on
//! it, on plain types (inode numbers, handles, [`Attr`], [`Opened`], [`Error`]). It knows
//! nothing of FUSE: `crate::fuse` translates requests into calls of [`ShmFs`]'s operations
//! (`ops.rs`). The knowledge of shared memory lives in `sysv`, `posix`, `attach` and `creds`.
//! Every failure is an [`Error`] with its errno and log level, never a panic.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::fs::fdshare::{FdShare, FdShares};
use crate::kernel::attach;
use crate::kernel::context::IpcContext;
use crate::kernel::creds::{self, Caller};
use crate::kernel::object::Meta;
use crate::kernel::posix::{self, Object};
use crate::kernel::sysv::{self, Segment};
use crate::render::index;
use crate::render::metrics;
use crate::render::text::{self, PermChange};
use inode::{InodeTable, Node, ObjectId, Part, Report};

pub use error::{Error, Result};
pub use reports::SpaceUsage;
pub use source::{DirSpace, Kernel, SegmentMemory, Source, SysvLimits};
pub use tree::Removed;
pub use types::{Attr, DirEntry, How, KernelCache, Kind, Opened, SetAttr, SetTime};

mod data;
mod error;
#[cfg(test)]
mod fake;
pub mod fdshare;
mod forget;
mod held;
pub mod inode;
mod ops;
#[cfg(test)]
mod ops_tests;
pub mod refusals;
mod reports;
mod source;
mod tree;
mod types;

/// How the filesystem was asked to behave.
#[derive(Clone, Debug)]
pub struct Options {
    /// Refuse every change (`-o ro`); the kernel refuses most, this covers the rest.
    pub read_only: bool,
    /// What `metrics.prom` holds (`-o metrics=…`).
    pub metrics: crate::render::metrics::Detail,
}

/// One live object, as looked up now.
enum Live {
    Sysv(Segment),
    Posix(Object),
}

impl Live {
    /// Mode, owner, size and times, whatever the kind.
    fn meta(&self) -> Meta {
        match self {
            Live::Sysv(seg) => seg.meta(),
            Live::Posix(obj) => obj.meta(),
        }
    }

    /// Removes it (IPC_RMID, or unlink in the shm dir), with the calling thread's rights.
    fn remove(&self, source: &dyn Source) -> io::Result<()> {
        match self {
            Live::Sysv(seg) => source.remove_segment(seg.shmid),
            Live::Posix(obj) => source.remove_object(&obj.name, obj.ino),
        }
    }

    /// What `attached` looks for in `/proc`.
    fn holders_target(&self, source: &dyn Source) -> attach::Target {
        match self {
            Live::Sysv(seg) => attach::Target::Sysv { shmid: seg.shmid },
            Live::Posix(obj) => attach::Target::Posix {
                dev: source.shm_dev(),
                ino: obj.ino,
            },
        }
    }

    /// What identifies it for its whole life.
    fn id(&self) -> ObjectId {
        match self {
            Live::Sysv(seg) => ShmFs::sysv_id(seg),
            Live::Posix(obj) => ShmFs::posix_id(obj),
        }
    }
}

/// What an open file handle holds.
enum Handle {
    /// `stat`, `attached` or a report: the text rendered at open, so that reads at any
    /// offset agree.
    Text { ino: u64, text: held::HeldText },
    /// `perm`: the text at open, the object that writes change, and, for an open for
    /// writing, who opened it: writes are applied with the opener's rights, never the
    /// writer's (as /proc and sysfs do), so a descriptor handed to a privileged process
    /// cannot change more than its opener could.
    Perm {
        text: held::HeldText,
        id: ObjectId,
        opener: Option<Caller>,
    },
    SysvData {
        /// The segment as it was at open: what fstat answers once it is gone.
        seg: Segment,
        size: u64,
        access: SegmentMemory,
        /// The descriptor this open holds, counted against the opener's share.
        _share: FdShare,
    },
    /// An open POSIX object.
    PosixData {
        id: ObjectId,
        file: File,
        _share: FdShare,
    },
    /// A directory listing taken at opendir.
    Dir(held::Held<Vec<DirEntry>>),
}

/// The filesystem.
pub struct ShmFs {
    /// Where segments and objects come from.
    source: Arc<dyn Source>,
    options: Options,
    inodes: Arc<Mutex<InodeTable>>,
    handles: Mutex<HashMap<u64, Arc<Handle>>>,
    next_handle: AtomicU64,
    mounted_at: SystemTime,
    /// Tells the kernel to drop page cache that a write served here made stale (splice and
    /// sendfile read through it even on direct-I/O opens), and entries of gone objects. Set
    /// once the session exists.
    kernel_cache: Arc<OnceLock<Box<dyn KernelCache>>>,
    /// Held for each read-modify-write of an object's mode and owner (`perm`, chmod, chown),
    /// so that two concurrent changes of different fields cannot undo each other.
    perm_changes: Mutex<()>,
    /// Whose account each caller's uid is charged to.
    accounts: crate::kernel::account::Accounts,
    /// Each account's share of the daemon's descriptors, held by its open `data` files.
    fd_shares: Arc<FdShares>,
    /// The text and listings open files and directories hold, and each account's share.
    texts: held::Texts,
    /// The queue of notices to the kernel about gone objects, and the sweep's schedule.
    forgetting: forget::Forgetting,
    /// The length of each SysV segment's `attached` as last rendered, and for whom and which
    /// attachment record (see [`ShmFs::attached_len`]).
    attached_lengths: Mutex<HashMap<i32, (AttachedKey, usize)>>,
}

/// What an `attached` text depends on, as far as it can be known without scanning `/proc`:
/// the segment's attachment record (any attach, detach, fork or exit of an attacher changes
/// `nattch`, `lpid`, `atime` or `dtime`) and who reads it (which holders they may see).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct AttachedKey {
    incarnation: (u32, u32, i32, u64),
    nattch: u64,
    lpid: i32,
    atime: i64,
    dtime: i64,
    reader: (u32, u32, u64),
}

fn enoent() -> Error {
    Error::refused(libc::ENOENT)
}

/// A refusal shmfs makes itself.
fn errno(code: i32) -> Error {
    Error::refused(code)
}

/// How an object is named in the log: `sysv/SHMID` or `posix/NAME` (escaped as `index` does).
fn shown(id: &ObjectId) -> String {
    match id {
        ObjectId::Sysv { shmid, .. } => format!("sysv/{shmid}"),
        ObjectId::Posix { name, .. } => format!("posix/{}", index::escape_name(name.as_bytes())),
    }
}

/// A request refused because of what the user wrote or asked for (not because of who they
/// are): EINVAL, with the reason logged at info, which the default log level shows, so that
/// an operator can tell the user why. One line per refused request, within each user's share
/// of lines, quoting only the start of what the user wrote (`logging::refusals`).
fn refused_input(op: &str, who: &Caller, id: &ObjectId, reason: &str) -> Error {
    crate::fs::refusals::refused(who.uid, || {
        format!(
            "{op} refused for uid {} on {}: {}",
            who.uid,
            shown(id),
            crate::fs::refusals::tame(reason)
        )
    });
    errno(libc::EINVAL)
}

fn time(secs: i64) -> SystemTime {
    if secs <= 0 {
        UNIX_EPOCH
    } else {
        UNIX_EPOCH + Duration::from_secs(secs as u64)
    }
}

impl ShmFs {
    /// A filesystem showing the SysV segments of the IPC namespace of `ctx` and the regular
    /// files of its shm dir.
    pub fn new(ctx: IpcContext, options: Options) -> ShmFs {
        ShmFs::with_source(Arc::new(Kernel::new(ctx)), options)
    }

    /// A filesystem showing what `source` holds (the kernel's shared memory, or a fake).
    pub fn with_source(source: Arc<dyn Source>, options: Options) -> ShmFs {
        ShmFs {
            source,
            options,
            inodes: Arc::new(Mutex::new(InodeTable::default())),
            handles: Mutex::new(HashMap::new()),
            next_handle: AtomicU64::new(1),
            mounted_at: SystemTime::now(),
            perm_changes: Mutex::new(()),
            accounts: crate::kernel::account::Accounts::new(),
            fd_shares: Arc::new(FdShares::default()),
            texts: held::Texts::default(),
            kernel_cache: Arc::new(OnceLock::new()),
            forgetting: forget::Forgetting::default(),
            attached_lengths: Mutex::new(HashMap::new()),
        }
    }

    /// Where the adapter puts its way to tell the kernel what to drop, once the mount exists.
    pub fn kernel_cache_slot(&self) -> Arc<OnceLock<Box<dyn KernelCache>>> {
        self.kernel_cache.clone()
    }

    fn inodes(&self) -> MutexGuard<'_, InodeTable> {
        // A poisoned lock only means another thread panicked mid-update of a plain map;
        // the map is still usable.
        self.inodes.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn handles(&self) -> MutexGuard<'_, HashMap<u64, Arc<Handle>>> {
        self.handles.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn add_handle(&self, handle: Handle) -> u64 {
        let fh = self.next_handle.fetch_add(1, Ordering::Relaxed);
        self.handles().insert(fh, Arc::new(handle));
        fh
    }

    fn handle(&self, fh: u64) -> Result<Arc<Handle>> {
        self.handles()
            .get(&fh)
            .cloned()
            .ok_or_else(|| errno(libc::EBADF))
    }

    /// What an inode number stands for. A number shmfs no longer knows answers ESTALE, so
    /// that the kernel drops its cached entry and looks the name up again; numbers the kernel
    /// holds are known until it forgets them.
    fn node(&self, ino: u64) -> Result<Node> {
        self.inodes().node(ino).ok_or_else(|| errno(libc::ESTALE))
    }

    fn sysv_id(seg: &Segment) -> ObjectId {
        ObjectId::Sysv {
            shmid: seg.shmid,
            incarnation: seg.incarnation(),
        }
    }

    fn posix_id(obj: &Object) -> ObjectId {
        ObjectId::Posix {
            name: obj.name.clone(),
            ino: obj.ino,
        }
    }

    /// The object as it is now, if it is still the one the inode was given to; ESTALE if it
    /// is gone, so that a path walk through a cached entry is retried with fresh lookups.
    /// Learning that it is gone forgets it, and tells the kernel to drop its entry.
    fn live(&self, id: &ObjectId) -> Result<Live> {
        self.live_now(id).map_err(|e| match e.errno() {
            libc::ENOENT => {
                self.object_gone(id, true);
                errno(libc::ESTALE)
            }
            _ => e,
        })
    }

    /// The segment behind a `by-key/` link, while it still has a key: IPC_RMID sets it to 0,
    /// and then the link is gone even though the segment lives on.
    fn live_key_link(&self, id: &ObjectId) -> Result<Live> {
        match self.live(id)? {
            Live::Sysv(seg) if seg.key == 0 => Err(errno(libc::ESTALE)),
            live => Ok(live),
        }
    }

    fn live_now(&self, id: &ObjectId) -> Result<Live> {
        match id {
            ObjectId::Sysv { shmid, incarnation } => {
                let seg = self.source.segment(*shmid)?;
                if seg.incarnation() != *incarnation {
                    return Err(enoent());
                }
                Ok(Live::Sysv(seg))
            }
            ObjectId::Posix { name, ino } => {
                let obj = self.source.object(name)?;
                if obj.ino != *ino {
                    return Err(enoent());
                }
                Ok(Live::Posix(obj))
            }
        }
    }

    fn open_node(&self, who: &Caller, ino: u64, node: &Node, flags: i32) -> Result<Handle> {
        let writable = flags & libc::O_ACCMODE != libc::O_RDONLY;
        match node {
            Node::Report(_) | Node::Object(_, Part::Stat | Part::Attached) if writable => {
                Err(errno(libc::EACCES))
            }
            Node::Report(report) => Ok(Handle::Text {
                ino,
                text: self.hold_text(who, ino, self.report_text(*report)?)?,
            }),
            Node::Object(id, Part::Stat) => Ok(Handle::Text {
                ino,
                text: self.hold_text(who, ino, self.stat_text(&self.live(id)?)?)?,
            }),
            Node::Object(id, Part::Attached) => Ok(Handle::Text {
                ino,
                text: self.hold_text(who, ino, self.attached_text_noted(who, &self.live(id)?)?)?,
            }),
            Node::Object(id, Part::Perm) => {
                if writable && self.options.read_only {
                    return Err(errno(libc::EROFS));
                }
                let live = self.live(id)?;
                let opener = if writable {
                    // EPERM, the kernel's answer to IPC_SET, chmod or chown by someone who
                    // may not change the object.
                    if !may_change_perm(who, &live) {
                        log::info!(
                            "perm open for writing refused for uid {} on {}: not its owner{}",
                            who.uid,
                            shown(id),
                            match live {
                                Live::Sysv(_) => ", creator or CAP_SYS_ADMIN",
                                Live::Posix(_) => ", CAP_FOWNER or CAP_CHOWN",
                            }
                        );
                        return Err(errno(libc::EPERM));
                    }
                    // Groups and capabilities as they are now, for the writes to come.
                    Some(who.resolved())
                } else {
                    None
                };
                Ok(Handle::Perm {
                    text: self.hold_text(who, ino, Self::perm_text(&live))?,
                    id: id.clone(),
                    opener,
                })
            }
            Node::Object(id, Part::Data) => self.open_data(who, id, flags),
            _ => Err(errno(libc::EISDIR)),
        }
    }

    /// Applies a mode/owner change to an object, as the caller, for `op` (`chmod`, `perm
    /// write`, named in the log line of a refusal). `None` keeps a value.
    ///
    /// Set-user-ID, set-group-ID and sticky bits: a POSIX object is a file and holds them
    /// (the kernel's chmod rules apply, as for any file); a segment cannot (IPC_SET keeps only
    /// 0777), so a mode with any of them is refused with EINVAL rather than cut silently.
    fn change_perm(
        &self,
        op: &str,
        who: &Caller,
        id: &ObjectId,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
    ) -> Result<()> {
        if self.options.read_only {
            return Err(errno(libc::EROFS));
        }
        if mode.is_none() && uid.is_none() && gid.is_none() {
            return Ok(());
        }
        // IPC_SET takes all three fields: the ones not named come from a lookup, which must
        // not be overtaken by another change before the IPC_SET lands.
        let _serial = self.perm_changes.lock().unwrap_or_else(|p| p.into_inner());
        let live = self.live(id)?;
        match live {
            Live::Sysv(_) if mode.is_some_and(|m| m & !0o777 != 0) => {
                // Someone who may not change the segment gets the kernel's answer to that.
                if !may_change_perm(who, &live) {
                    return Err(errno(libc::EPERM));
                }
                let mode = mode.unwrap_or_default();
                Err(refused_input(
                    op,
                    who,
                    id,
                    &format!(
                        "mode 0{mode:o} has set-user-ID, set-group-ID or sticky bits, which a \
                         System V segment cannot hold (only 0777)"
                    ),
                ))
            }
            Live::Sysv(seg) => Ok(creds::as_caller(who, || {
                self.source.set_segment_perm(
                    seg.shmid,
                    mode.unwrap_or(seg.mode) & 0o777,
                    uid.unwrap_or(seg.uid),
                    gid.unwrap_or(seg.gid),
                )
            })?),
            Live::Posix(obj) => {
                let changed = creds::as_caller(who, || {
                    if uid.is_some() || gid.is_some() {
                        self.source.chown_object(&obj.name, obj.ino, uid, gid)?;
                    }
                    if let Some(mode) = mode {
                        self.source.chmod_object(&obj.name, obj.ino, mode)?;
                    }
                    Ok(())
                });
                match (changed, mode) {
                    (Err(e), Some(mode))
                        if e.raw_os_error() == Some(libc::EPERM)
                            && uid.is_none()
                            && gid.is_none()
                            && drops_only_setid_bits(obj.mode, mode) =>
                    {
                        self.kill_setid_bits(who, &obj, mode)
                    }
                    (changed, _) => Ok(changed?),
                }
            }
        }
    }

    /// Clears set-user-ID and set-group-ID as the kernel does when someone who is not the
    /// owner writes to or truncates the file: the kernel asks the filesystem for this mode
    /// change on the writer's behalf (FUSE without `handle_killpriv`), and it is allowed to
    /// anyone who may write the object, as a forced change, not a chmod by the writer.
    fn kill_setid_bits(&self, who: &Caller, obj: &Object, mode: u32) -> Result<()> {
        // Anyone else is refused as a chmod by a non-owner is.
        creds::as_caller(who, || {
            self.source
                .open_object(&obj.name, obj.ino, libc::O_WRONLY)
                .map(drop)
        })
        .map_err(|_| errno(libc::EPERM))?;
        // Judged again on the mode as it is now, not as it was looked up: a change its owner
        // made meanwhile (04777 to 0600) must not be undone with the daemon's rights.
        let now = self.source.object(&obj.name)?;
        if now.ino != obj.ino || !drops_only_setid_bits(now.mode, mode) {
            return Err(errno(libc::EPERM));
        }
        log::debug!(
            "clearing set-id bits of {:?} for a write by uid {}",
            obj.name,
            who.uid
        );
        Ok(self.source.chmod_object(&obj.name, obj.ino, mode)?)
    }

    /// Applies a write of `perm` with the rights of `opener`, who opened it for writing.
    fn write_perm(&self, opener: &Caller, id: &ObjectId, data: &[u8]) -> Result<()> {
        let change = text::parse_perm(
            data,
            &crate::kernel::names::user_id,
            &crate::kernel::names::group_id,
        )
        .map_err(|e| refused_input("perm write", opener, id, &e.to_string()))?;
        self.change_perm(
            "perm write",
            opener,
            id,
            change.mode,
            change.uid,
            change.gid,
        )
    }

    fn setattr_node(
        &self,
        who: &Caller,
        node: &Node,
        change: PermChange,
        size: Option<u64>,
        fh: Option<u64>,
    ) -> Result<()> {
        let PermChange { mode, uid, gid } = change;
        let owner_change = mode.is_some() || uid.is_some() || gid.is_some();
        let Node::Object(id, part) = node else {
            return match node {
                // A read-only file answers a truncate as it answers an open for writing.
                Node::Report(_) if !owner_change && size.is_some() => Err(errno(libc::EACCES)),
                _ if owner_change || size.is_some() => Err(errno(libc::EPERM)),
                _ => Ok(()),
            };
        };
        match part {
            Part::Dir | Part::Data => {
                self.change_perm("chmod", who, id, mode.map(|m| m & 0o7777), uid, gid)?;
                match (part, size) {
                    (Part::Data, Some(size)) => self.truncate(who, id, size, fh),
                    (_, Some(_)) => Err(errno(libc::EISDIR)),
                    (_, None) => Ok(()),
                }
            }
            // `echo 600 > perm` truncates to 0 before it writes: accepted, changes nothing.
            // Any other size would claim a change that does not happen: EINVAL, as for a
            // SysV `data` truncated to a size it cannot take.
            Part::Perm if !owner_change => match size {
                None | Some(0) => Ok(()),
                Some(size) => Err(refused_input(
                    "perm truncate",
                    who,
                    id,
                    &format!("size {size}: perm takes only a truncate to 0 before a write"),
                )),
            },
            Part::Stat | Part::Attached | Part::KeyLink if !owner_change => match size {
                Some(_) => Err(errno(libc::EACCES)),
                None => Ok(()),
            },
            _ => Err(errno(libc::EPERM)),
        }
    }

    /// `touch` and friends: a POSIX object's times are set as the caller would set them; a
    /// segment's times are the kernel's own and cannot be set, so the call succeeds without
    /// effect for those who may write the segment (as `touch` would for a file) and fails
    /// with EACCES for others. The read-only files (`stat`, `attached`, `limits`, `index`,
    /// `index.json`, the `by-key/` links) refuse with EACCES, as they refuse an open for
    /// writing; `perm` succeeds without effect for who may write it, EACCES for others.
    fn set_times(
        &self,
        who: &Caller,
        node: &Node,
        atime: Option<SetTime>,
        mtime: Option<SetTime>,
    ) -> Result<()> {
        let id = match node {
            Node::Object(id, Part::Dir | Part::Data) => id,
            Node::Report(_) | Node::Object(_, Part::Stat | Part::Attached | Part::KeyLink) => {
                return Err(errno(libc::EACCES));
            }
            Node::Object(id, Part::Perm) => {
                return if may_change_perm(who, &self.live(id)?) {
                    Ok(())
                } else {
                    Err(errno(libc::EACCES))
                };
            }
            // shmfs's own directories: nothing to set, as before.
            Node::Root | Node::SysvDir | Node::PosixDir | Node::ByKeyDir => return Ok(()),
        };
        if self.options.read_only {
            return Err(errno(libc::EROFS));
        }
        match self.live(id)? {
            Live::Sysv(seg) => {
                // As utimensat(UTIME_NOW) on a file: its owner (or CAP_FOWNER), or a writer.
                let owner = who.uid == seg.uid || who.uid == seg.cuid;
                if owner || sysv_permits(who, &seg, 2) || who.has_cap(creds::cap::FOWNER) {
                    Ok(())
                } else {
                    Err(errno(libc::EACCES))
                }
            }
            Live::Posix(obj) => {
                let (atime, mtime) = (file_time(atime), file_time(mtime));
                Ok(creds::as_caller(who, || {
                    self.source
                        .set_object_times(&obj.name, obj.ino, atime, mtime)
                })?)
            }
        }
    }

    /// access(2) of a node for `mask` (`R_OK`, `W_OK`, `X_OK` bits).
    fn access_node(&self, who: &Caller, node: &Node, mask: i32) -> Result<()> {
        let want_w = mask & libc::W_OK != 0;
        let want_x = mask & libc::X_OK != 0;
        match node {
            Node::Root | Node::ByKeyDir | Node::SysvDir | Node::PosixDir => {
                if want_w && matches!(node, Node::Root | Node::ByKeyDir) {
                    return Err(errno(libc::EACCES));
                }
                Ok(())
            }
            Node::Report(_) => {
                if want_w || want_x {
                    return Err(errno(libc::EACCES));
                }
                Ok(())
            }
            Node::Object(id, part) => {
                let live = self.live(id)?;
                let denied = match part {
                    Part::Dir => want_w,
                    Part::Stat | Part::Attached => want_w || want_x,
                    // Writable only by who may change the object, as opening it for writing.
                    Part::Perm => want_x || (want_w && !may_change_perm(who, &live)),
                    Part::KeyLink => false,
                    Part::Data => {
                        if want_x {
                            true
                        } else {
                            let want = (if mask & libc::R_OK != 0 { 4 } else { 0 })
                                | (if want_w { 2 } else { 0 });
                            match &live {
                                Live::Sysv(seg) => !sysv_permits(who, seg, want),
                                Live::Posix(obj) => {
                                    return Ok(creds::as_caller(who, || {
                                        self.source
                                            .open_object(&obj.name, obj.ino, access_mode(want))
                                            .map(drop)
                                    })?);
                                }
                            }
                        }
                    }
                };
                if denied {
                    Err(errno(libc::EACCES))
                } else {
                    Ok(())
                }
            }
        }
    }
}

/// A time for the object's file: as given, now, or left alone.
fn file_time(time: Option<SetTime>) -> posix::FileTime {
    match time {
        None => posix::FileTime::Keep,
        Some(SetTime::Now) => posix::FileTime::Now,
        Some(SetTime::At(at)) => posix::FileTime::At(at),
    }
}

/// The kernel's ipcperms verdict for the caller: its mode bits (uid, gid and supplementary
/// groups), or CAP_IPC_OWNER, looked up only when the mode bits refuse.
fn sysv_permits(who: &Caller, seg: &Segment, want: u32) -> bool {
    sysv::ipc_permits(seg, who.uid, |gid| who.in_group(gid), want)
        || who.has_cap(creds::cap::IPC_OWNER)
}

/// Whether `who` may change the object's mode or owner at all, as the kernel would let it
/// try: for a segment its owner, its creator or CAP_SYS_ADMIN (IPC_SET); for an object its
/// owner, CAP_FOWNER (chmod) or CAP_CHOWN (chown). Asked when `perm` is opened for writing.
fn may_change_perm(who: &Caller, live: &Live) -> bool {
    match live {
        Live::Sysv(seg) => {
            who.uid == seg.uid || who.uid == seg.cuid || who.has_cap(creds::cap::SYS_ADMIN)
        }
        Live::Posix(obj) => {
            who.uid == obj.uid || who.has_cap(creds::cap::FOWNER) || who.has_cap(creds::cap::CHOWN)
        }
    }
}

/// True if `requested` is `current` with some of the bits cleared that the kernel clears when
/// a non-owner writes to a file (set-user-ID, and set-group-ID if group execute is set) and
/// nothing else changed: the change it then asks the filesystem for. A request that adds any
/// bit is a chmod, never this.
fn drops_only_setid_bits(current: u32, requested: u32) -> bool {
    let (current, requested) = (current & 0o7777, requested & 0o7777);
    let mut killed = libc::S_ISUID;
    if current & libc::S_IXGRP != 0 {
        killed |= libc::S_ISGID;
    }
    requested != current && requested & !current == 0 && (current & !requested) & !killed == 0
}

/// The open flags that test the access `want` (4 read, 2 write) asks for.
fn access_mode(want: u32) -> i32 {
    match want {
        6 => libc::O_RDWR,
        2 => libc::O_WRONLY,
        _ => libc::O_RDONLY,
    }
}

/// A shmid exactly as the kernel would print it (no sign, no leading zeros).
fn parse_shmid(name: &OsStr) -> Option<i32> {
    let s = name.to_str()?;
    let id: i32 = s.parse().ok()?;
    (id >= 0 && id.to_string() == s).then_some(id)
}

/// A key as `by-key/` names it: `0x` and eight lower-case hex digits.
fn parse_key(name: &OsStr) -> Option<u32> {
    let hex = name.to_str()?.strip_prefix("0x")?;
    if hex.len() != 8
        || !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    u32::from_str_radix(hex, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shmid_names_are_canonical() {
        assert_eq!(parse_shmid(OsStr::new("0")), Some(0));
        assert_eq!(parse_shmid(OsStr::new("32769")), Some(32769));
        assert_eq!(parse_shmid(OsStr::new("007")), None);
        assert_eq!(parse_shmid(OsStr::new("+7")), None);
        assert_eq!(parse_shmid(OsStr::new("-1")), None);
        assert_eq!(parse_shmid(OsStr::new("99999999999")), None);
    }

    #[test]
    fn only_clearing_set_id_bits_counts_as_the_writers_kill_priv() {
        // What the kernel asks for when a non-owner writes: bits go, none come.
        assert!(drops_only_setid_bits(0o4777, 0o777));
        assert!(drops_only_setid_bits(0o6775, 0o775));
        assert!(drops_only_setid_bits(0o6775, 0o4775));
        assert!(drops_only_setid_bits(0o2775, 0o775));
        // Adding set-id or sticky bits, or any other change, is a chmod.
        assert!(!drops_only_setid_bits(0o777, 0o4777));
        assert!(!drops_only_setid_bits(0o666, 0o2666));
        assert!(!drops_only_setid_bits(0o4777, 0o2777));
        assert!(!drops_only_setid_bits(0o777, 0o1777));
        assert!(!drops_only_setid_bits(0o4777, 0o755));
        assert!(!drops_only_setid_bits(0o1777, 0o777));
        assert!(!drops_only_setid_bits(0o4777, 0o4777));
        // Set-group-ID without group execute is not a set-id bit the kernel clears.
        assert!(!drops_only_setid_bits(0o2664, 0o664));
        assert!(drops_only_setid_bits(0o6764, 0o2764));
    }

    #[test]
    fn key_names_are_canonical() {
        assert_eq!(parse_key(OsStr::new("0x0000162e")), Some(0x162e));
        assert_eq!(parse_key(OsStr::new("0xdeadbeef")), Some(0xdeadbeef));
        assert_eq!(parse_key(OsStr::new("0x162e")), None);
        assert_eq!(parse_key(OsStr::new("0xDEADBEEF")), None);
    }
}
