//! The filesystem: what each name and inode of the mount stands for, and every operation on
//! it, on plain types (inode numbers, handles, [`Attr`], [`Opened`], [`Error`]). It knows
//! nothing of FUSE: `crate::fuse` translates requests into calls of [`ShmFs`]'s operations
//! (`ops.rs`). What differs between kinds of object lives in `kinds/`, behind `kind.rs`.
//! Every failure is an [`Error`] with its errno and log level, never a panic.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::fs::fdshare::{FdShare, FdShares};
use crate::kernel::attach;
use crate::kernel::context::IpcContext;
use crate::kernel::creds::{self, Caller};
use crate::kernel::object::Meta;
use crate::render::index;
use crate::render::metrics;
use crate::render::text::{self, PermChange};
use inode::{HOME, InodeTable, Node, ObjectId, Part, Report, Scope};
use kind::{Env, Object, OpenData};
use kinds::{KINDS, kind};

pub use error::{Error, Result};
pub use kind::Removed;
pub use source::{DirSpace, Kernel, SegmentMemory, Source, SysvLimits};
pub use types::{Attr, DirEntry, How, KernelCache, Kind, Opened, SetAttr, SetTime, SpaceUsage};

mod charge;
mod data;
mod error;
#[cfg(test)]
mod fake;
pub mod fdshare;
mod forget;
mod gone;
mod held;
pub mod inode;
pub mod kind;
mod kinds;
mod namespaces;
mod ns_view;
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

/// One live object, as looked up now, whatever its kind.
type Live = Box<dyn Object>;

/// What an open file handle holds.
enum Handle {
    /// `stat`, `attached` or a report: the text rendered at open, so that reads at any
    /// offset agree.
    Text { ino: u64, text: held::HeldText },
    /// A file that writes change (`perm`, `values`): the text at open, which file of which
    /// object writes change, and, for an open for writing, who opened it: writes are applied
    /// with the opener's rights, never the writer's (as /proc and sysfs do), so a descriptor
    /// handed to a privileged process cannot change more than its opener could.
    Perm {
        text: held::HeldText,
        id: ObjectId,
        part: Part,
        opener: Option<Caller>,
    },
    /// An open `data`, of any kind.
    Data {
        open: Box<dyn OpenData>,
        /// The descriptor this open holds, counted against the opener's share.
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
    attached_lengths: Mutex<HashMap<ObjectId, (AttachedKey, usize)>>,
    /// The IPC namespaces of `ns/`; None over a source other than the kernel (the unit tests'
    /// fake), where `ns/` is empty.
    namespaces: Option<namespaces::Namespaces>,
}

/// What an `attached` text depends on, as far as it can be known without scanning `/proc`:
/// the segment's attachment record (any attach, detach, fork or exit of an attacher changes
/// `nattch`, `lpid`, `atime` or `dtime`) and who reads it (which holders they may see).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct AttachedKey {
    record: kind::AttachRecord,
    reader: (u32, u32, u64),
}

fn enoent() -> Error {
    Error::refused(libc::ENOENT)
}

/// A refusal shmfs makes itself.
fn errno(code: i32) -> Error {
    Error::refused(code)
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
        let home = Arc::new(Kernel::new(ctx));
        let mut fs = ShmFs::with_source(home.clone(), options);
        fs.namespaces = Some(namespaces::Namespaces::new(home));
        fs
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
            namespaces: None,
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
        match self.inodes().node(ino) {
            // The room for kinds not registered: no such directory.
            Some(Node::KindDir(_, k)) if k >= KINDS.len() => Err(errno(libc::ESTALE)),
            Some(node) => Ok(node),
            None => Err(errno(libc::ESTALE)),
        }
    }

    /// What the kinds' operations may use, in scope `ns`: the root's, or, inside
    /// [`ShmFs::in_scope`] for `ns`, that namespace's. Asked for another namespace than the
    /// worker is in, it refuses (EIO, logged): the root's objects are never shown for a
    /// namespace's, nor the other way round.
    fn env(&self, ns: Scope) -> Result<Env<'_>> {
        let source = if ns == HOME && namespaces::current_scope() == HOME {
            self.source.clone()
        } else {
            namespaces::current_source(ns).ok_or_else(|| {
                log::error!(
                    "a request asked for the objects of scope {ns} from scope {}",
                    namespaces::current_scope()
                );
                errno(libc::EIO)
            })?
        };
        Ok(Env {
            source,
            inodes: &self.inodes,
            ns,
        })
    }

    /// Runs `f`, a request on a node of scope `ns`, in that scope: for a namespace of `ns/`,
    /// after checking that `who` (if given; requests on an open handle were checked at open)
    /// may see it, inside that namespace, coming back on every path. A namespace that is gone
    /// is ESTALE, one the caller may not see ENOENT.
    fn in_scope<T>(
        &self,
        who: Option<&Caller>,
        ns: Scope,
        f: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        if ns == HOME {
            return f();
        }
        let registry = self.namespaces.as_ref().ok_or_else(Error::stale)?;
        let known = registry.get(ns).ok_or_else(Error::stale)?;
        if let Some(who) = who
            && !registry.may_see_known(who, &known)
        {
            return Err(enoent());
        }
        registry.run_in(&known, f)
    }

    /// How an object is named in the log: `sysv/SHMID` or `posix/NAME` (escaped as `index`
    /// does).
    fn shown(id: &ObjectId) -> String {
        kind::shown(kind(id.kind).dir_name(), &id.name.to_os_string())
    }

    /// A request refused because of what the user wrote or asked for: EINVAL, with the
    /// reason logged (see [`kind::refused_input`]).
    fn refused_input(op: &str, who: &Caller, id: &ObjectId, reason: &str) -> Error {
        kind::refused_input(op, who, &Self::shown(id), reason)
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
        let live = self.live(id)?;
        if live.key().is_none() {
            return Err(errno(libc::ESTALE));
        }
        Ok(live)
    }

    fn live_now(&self, id: &ObjectId) -> Result<Live> {
        kind(id.kind).get(&self.env(id.ns)?, id)
    }

    fn open_node(&self, who: &Caller, ino: u64, node: &Node, flags: i32) -> Result<Handle> {
        let writable = flags & libc::O_ACCMODE != libc::O_RDONLY;
        match node {
            Node::Report(..) | Node::Object(_, Part::Stat | Part::Attached) if writable => {
                Err(errno(libc::EACCES))
            }
            Node::Report(ns, report) => Ok(Handle::Text {
                ino,
                text: self.hold_text(who, ino, self.report_text(who, *ns, *report)?)?,
            }),
            Node::Object(id, Part::Stat) => Ok(Handle::Text {
                ino,
                text: self.hold_text(
                    who,
                    ino,
                    self.live(id)?.stat_text_for(&self.env(id.ns)?, who)?,
                )?,
            }),
            Node::Object(id, Part::Attached) => Ok(Handle::Text {
                ino,
                text: self.hold_text(
                    who,
                    ino,
                    self.attached_text_noted(who, id, &self.live(id)?)?,
                )?,
            }),
            Node::Object(id, Part::Perm) => {
                if writable && self.options.read_only {
                    return Err(errno(libc::EROFS));
                }
                let live = self.live(id)?;
                let opener = if writable {
                    // EPERM, the kernel's answer to IPC_SET, chmod or chown by someone who
                    // may not change the object.
                    if !live.may_change_perm(who) {
                        log::info!(
                            "perm open for writing refused for uid {} on {}: not its owner{}",
                            who.uid,
                            Self::shown(id),
                            live.perm_changers(),
                        );
                        return Err(errno(libc::EPERM));
                    }
                    // Groups and capabilities as they are now, for the writes to come.
                    Some(who.resolved())
                } else {
                    None
                };
                Ok(Handle::Perm {
                    text: self.hold_text(who, ino, live.perm_text())?,
                    id: id.clone(),
                    part: Part::Perm,
                    opener,
                })
            }
            Node::Object(id, Part::Data) => self.open_data(who, id, flags),
            Node::Object(id, part @ Part::Values) if writable => {
                if self.options.read_only {
                    return Err(errno(libc::EROFS));
                }
                let live = self.live(id)?;
                if !live.may_write(who, *part) {
                    return Err(errno(libc::EACCES));
                }
                // A write-only open (`echo … >`) needs no read permission, and holds no text.
                let text = if flags & libc::O_ACCMODE == libc::O_RDWR {
                    live.text(&self.env(id.ns)?, who, *part)?
                } else {
                    String::new()
                };
                Ok(Handle::Perm {
                    text: self.hold_text(who, ino, text)?,
                    id: id.clone(),
                    part: *part,
                    opener: Some(who.resolved()),
                })
            }
            Node::Object(_, Part::Queue | Part::Waiters) | Node::Message(..) if writable => {
                Err(errno(libc::EACCES))
            }
            Node::Object(id, part @ (Part::Values | Part::Queue | Part::Waiters)) => {
                let text = self.live(id)?.text(&self.env(id.ns)?, who, *part)?;
                Ok(Handle::Text {
                    ino,
                    text: self.hold_text(who, ino, text)?,
                })
            }
            Node::Message(id, n) => {
                let bytes = self.live(id)?.message(&self.env(id.ns)?, who, *n)?;
                Ok(Handle::Text {
                    ino,
                    text: self.hold_bytes(who, ino, bytes)?,
                })
            }
            _ => Err(errno(libc::EISDIR)),
        }
    }

    /// Applies a mode/owner change to an object, as the caller, for `op` (`chmod`, `perm
    /// write`, named in the log line of a refusal). `None` keeps a value.
    ///
    /// What the kernel allows is the kind's to say (a segment holds no set-id bits; an object
    /// is a file).
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
        self.live(id)?
            .change_perm(&self.env(id.ns)?, op, who, mode, uid, gid)
    }

    /// Applies a write of another writable file (`values`) with the rights of `opener`, who
    /// opened it for writing.
    fn write_text(&self, opener: &Caller, id: &ObjectId, part: Part, data: &[u8]) -> Result<()> {
        if self.options.read_only {
            return Err(errno(libc::EROFS));
        }
        self.live(id)?
            .write_text(&self.env(id.ns)?, opener, part, data)
    }

    /// Applies a write of `perm` with the rights of `opener`, who opened it for writing.
    fn write_perm(&self, opener: &Caller, id: &ObjectId, data: &[u8]) -> Result<()> {
        let change = text::parse_perm(
            data,
            &crate::kernel::names::user_id,
            &crate::kernel::names::group_id,
        )
        .map_err(|e| Self::refused_input("perm write", opener, id, &e.to_string()))?;
        let Some(qbytes) = change.qbytes else {
            return self.change_perm(
                "perm write",
                opener,
                id,
                change.mode,
                change.uid,
                change.gid,
            );
        };
        // A message queue's qbytes goes in the same IPC_SET as its mode and owner.
        if self.options.read_only {
            return Err(errno(libc::EROFS));
        }
        let _serial = self.perm_changes.lock().unwrap_or_else(|p| p.into_inner());
        self.live(id)?.change_perm_and_qbytes(
            &self.env(id.ns)?,
            "perm write",
            opener,
            (change.mode, change.uid, change.gid),
            qbytes,
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
        let PermChange { mode, uid, gid, .. } = change;
        let owner_change = mode.is_some() || uid.is_some() || gid.is_some();
        let Node::Object(id, part) = node else {
            return match node {
                // A read-only file answers a truncate as it answers an open for writing.
                Node::Report(..) | Node::Message(..) if !owner_change && size.is_some() => {
                    Err(errno(libc::EACCES))
                }
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
                Some(size) => Err(Self::refused_input(
                    "perm truncate",
                    who,
                    id,
                    &format!("size {size}: perm takes only a truncate to 0 before a write"),
                )),
            },
            // `echo '0 1' > values` truncates first, as for `perm`.
            Part::Values if !owner_change => match size {
                None | Some(0) => Ok(()),
                Some(size) => Err(Self::refused_input(
                    "values truncate",
                    who,
                    id,
                    &format!("size {size}: values takes only a truncate to 0 before a write"),
                )),
            },
            Part::Stat | Part::Attached | Part::KeyLink | Part::Queue | Part::Waiters
                if !owner_change =>
            {
                match size {
                    Some(_) => Err(errno(libc::EACCES)),
                    None => Ok(()),
                }
            }
            Part::Messages if !owner_change => match size {
                Some(_) => Err(errno(libc::EISDIR)),
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
            Node::Report(..)
            | Node::Message(..)
            | Node::Object(
                _,
                Part::Stat | Part::Attached | Part::KeyLink | Part::Queue | Part::Waiters,
            ) => {
                return Err(errno(libc::EACCES));
            }
            Node::Object(id, Part::Perm) => {
                return if self.live(id)?.may_change_perm(who) {
                    Ok(())
                } else {
                    Err(errno(libc::EACCES))
                };
            }
            // As for `perm`: without effect for who may write it.
            Node::Object(id, Part::Values) => {
                return if self.live(id)?.may_write(who, Part::Values) {
                    Ok(())
                } else {
                    Err(errno(libc::EACCES))
                };
            }
            // shmfs's own directories: nothing to set, as before.
            Node::Root
            | Node::KindDir(..)
            | Node::ByKeyDir(_)
            | Node::Namespaces
            | Node::Namespace(_) => return Ok(()),
            Node::Object(..) => return Err(errno(libc::EPERM)),
        };
        if self.options.read_only {
            return Err(errno(libc::EROFS));
        }
        self.live(id)?
            .set_times(&self.env(id.ns)?, who, atime, mtime)
    }

    /// access(2) of a node for `mask` (`R_OK`, `W_OK`, `X_OK` bits).
    fn access_node(&self, who: &Caller, node: &Node, mask: i32) -> Result<()> {
        let want_w = mask & libc::W_OK != 0;
        let want_x = mask & libc::X_OK != 0;
        match node {
            Node::KindDir(..) => Ok(()),
            Node::Root | Node::ByKeyDir(_) | Node::Namespaces | Node::Namespace(_) => {
                if want_w {
                    return Err(errno(libc::EACCES));
                }
                Ok(())
            }
            Node::Report(..) => {
                if want_w || want_x {
                    return Err(errno(libc::EACCES));
                }
                Ok(())
            }
            Node::Message(id, n) => {
                if want_w || want_x {
                    return Err(errno(libc::EACCES));
                }
                self.live(id)?.message(&self.env(id.ns)?, who, *n).map(drop)
            }
            Node::Object(id, part) => {
                let live = self.live(id)?;
                // Whether `who` may read the file `part`: the kernel's answer to reading it.
                let readable = |part: Part| -> Result<bool> {
                    let env = self.env(id.ns)?;
                    let read = match part {
                        Part::Messages => live.message_count(&env, who).map(drop),
                        _ => live.text(&env, who, part).map(drop),
                    };
                    match read {
                        Ok(()) => Ok(true),
                        Err(e) if e.errno() == libc::EACCES => Ok(false),
                        Err(e) => Err(e),
                    }
                };
                let want_r = mask & libc::R_OK != 0;
                let denied = match part {
                    Part::Dir => want_w,
                    Part::Waiters => want_w || want_x,
                    Part::Values => {
                        want_x
                            || (want_w && !live.may_write(who, Part::Values))
                            || (want_r && !readable(Part::Values)?)
                    }
                    Part::Queue => want_w || want_x || (want_r && !readable(Part::Queue)?),
                    Part::Messages => want_w || ((want_r || want_x) && !readable(Part::Messages)?),
                    Part::Stat | Part::Attached => want_w || want_x,
                    // Writable only by who may change the object, as opening it for writing.
                    Part::Perm => want_x || (want_w && !live.may_change_perm(who)),
                    Part::KeyLink => false,
                    Part::Data => {
                        if want_x {
                            true
                        } else {
                            let want = (if mask & libc::R_OK != 0 { 4 } else { 0 })
                                | (if want_w { 2 } else { 0 });
                            return live.check_data_access(&self.env(id.ns)?, who, want);
                        }
                    }
                    // A namespace's files, which the table never gives an object.
                    _ => true,
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
    fn key_names_are_canonical() {
        assert_eq!(parse_key(OsStr::new("0x0000162e")), Some(0x162e));
        assert_eq!(parse_key(OsStr::new("0xdeadbeef")), Some(0xdeadbeef));
        assert_eq!(parse_key(OsStr::new("0x162e")), None);
        assert_eq!(parse_key(OsStr::new("0xDEADBEEF")), None);
    }
}
