//! The FUSE adapter: translates requests into calls of `sysv`, `posix` and `text`, and
//! their errors into errnos. Every failure is an errno plus a log line, never a panic.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    AccessFlags, BackingId, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags,
    Generation, INodeNo, InitFlags, KernelConfig, LockOwner, Notifier, OpenAccMode, OpenFlags,
    RenameFlags, ReplyAttr, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen,
    ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};

use crate::attach;
use crate::creds::{self, Caller};
use crate::fdshare::{FdShare, FdShares};
use crate::index;
use crate::inode::{self, InodeTable, Node, ObjectId, Part, Report};
use crate::posix::{self, Object, ShmDir};
use crate::sysv::{self, Attachment, Segment};
use crate::text::{self, PermChange};

pub use error::{Error, Result};

mod data;
mod error;
mod forget;
mod reports;
mod tree;

/// Attributes are never cached by the kernel: every stat, open and access asks shmfs, which
/// asks the kernel's IPC and tmpfs, so every call sees the present.
const TTL: Duration = Duration::ZERO;
/// How long the kernel may keep a name → inode entry without asking again. Safe because the
/// inode itself is checked on every use: an inode whose object is gone (or was replaced by a
/// new one of the same name) answers ESTALE, and the VFS then walks the path again with fresh
/// lookups. It spares `ls -l` and friends one LOOKUP per name and per system call (a zero TTL
/// made `ls -l` of 3,000 objects 3.5 times slower). The kernel would keep such entries until
/// memory pressure, so shmfs tells it about objects it learns are gone (see `forget`).
const ENTRY_TTL: Duration = Duration::from_secs(10);
const BLOCK_SIZE: u32 = 4096;

/// How the filesystem was asked to behave.
#[derive(Clone, Debug)]
pub struct Options {
    /// Refuse every change (`-o ro`); the kernel refuses most, this covers the rest.
    pub read_only: bool,
}

/// One live object, as looked up now.
enum Live {
    Sysv(Segment),
    Posix(Object),
}

/// How an open SysV `data` reaches the segment's memory.
enum SysvAccess {
    /// The segment's own memory file, from `/proc/self/map_files` (root only): no attachment
    /// is kept, untouched pages are not allocated by reads.
    File(File),
    /// A kept attachment (non-root daemon, or hugetlb segments, where pwrite does not work).
    Attached(Attachment),
}

/// What an open file handle holds.
enum Handle {
    /// `stat` or `limits`: the text rendered at open, so that reads at any offset agree.
    Text { ino: u64, text: Vec<u8> },
    /// `perm`: the text at open, the object that writes change, and, for an open for
    /// writing, who opened it: writes are applied with the opener's rights, never the
    /// writer's (as /proc and sysfs do), so a descriptor handed to a privileged process
    /// cannot change more than its opener could.
    Perm {
        text: Vec<u8>,
        id: ObjectId,
        opener: Option<Caller>,
    },
    SysvData {
        /// The segment as it was at open: what fstat answers once it is gone.
        seg: Segment,
        size: u64,
        access: SysvAccess,
        /// The descriptor this open holds, counted against the opener's share.
        _share: FdShare,
    },
    /// An open POSIX object.
    PosixData {
        id: ObjectId,
        file: File,
        _share: FdShare,
    },
    /// A directory listing taken at opendir: (inode, type, name).
    Dir(Vec<(u64, FileType, OsString)>),
}

/// A registered passthrough backing and the identity of the memory file behind it.
struct Backing {
    id: Weak<BackingId>,
    file_identity: Option<Vec<u8>>,
}

/// The filesystem.
pub struct ShmFs {
    shm: ShmDir,
    options: Options,
    inodes: Mutex<InodeTable>,
    handles: Mutex<HashMap<u64, Arc<Handle>>>,
    next_handle: AtomicU64,
    mounted_at: SystemTime,
    /// Whether the kernel agreed to FUSE passthrough (root, Linux ≥ 6.9): `data` is then read
    /// (and for POSIX objects written) by the kernel directly, at tmpfs speed.
    passthrough: bool,
    /// The passthrough backing of each open `data` inode: the kernel wants one per inode,
    /// shared by all its opens, gone with the last.
    backings: Mutex<HashMap<u64, Backing>>,
    /// The backing each passthrough open holds, dropped at release.
    handle_backings: Mutex<HashMap<u64, Arc<BackingId>>>,
    /// Tells the kernel to drop page cache that a write served here made stale (splice and
    /// sendfile read through it even on direct-I/O opens). Set once the session exists.
    notifier: Arc<OnceLock<Notifier>>,
    /// What is known of segments' huge-page backing, learned from attachers or opens.
    /// Pruned with the object's inode block.
    hugetlb: Mutex<HashMap<ObjectId, bool>>,
    /// Held for each read-modify-write of an object's mode and owner (`perm`, chmod, chown),
    /// so that two concurrent changes of different fields cannot undo each other.
    perm_changes: Mutex<()>,
    /// Each uid's share of the daemon's descriptors, held by its open `data` files.
    fd_shares: Arc<FdShares>,
    /// The queue of notices to the kernel about gone objects, and the sweep's schedule.
    forgetting: forget::Forgetting,
}

fn errno_of(e: &Error) -> Errno {
    Errno::from_i32(e.errno())
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

fn caller(req: &Request) -> Caller {
    Caller::new(req.uid(), req.gid(), req.pid())
}

/// Logs a failed request at its level and gives the errno to answer it with.
fn failure(op: &str, what: &dyn std::fmt::Debug, e: &Error) -> Errno {
    e.log(op, what);
    errno_of(e)
}

impl ShmFs {
    /// A filesystem showing the SysV segments of the daemon's IPC namespace and the regular
    /// files of `shm`.
    pub fn new(shm: ShmDir, options: Options) -> ShmFs {
        ShmFs {
            shm,
            options,
            inodes: Mutex::new(InodeTable::default()),
            handles: Mutex::new(HashMap::new()),
            next_handle: AtomicU64::new(1),
            mounted_at: SystemTime::now(),
            hugetlb: Mutex::new(HashMap::new()),
            perm_changes: Mutex::new(()),
            fd_shares: Arc::new(FdShares::default()),
            notifier: Arc::new(OnceLock::new()),
            passthrough: false,
            backings: Mutex::new(HashMap::new()),
            handle_backings: Mutex::new(HashMap::new()),
            forgetting: forget::Forgetting::default(),
        }
    }

    /// Where main puts the session's notifier once the mount exists.
    pub fn notifier_slot(&self) -> Arc<OnceLock<Notifier>> {
        self.notifier.clone()
    }

    fn inodes(&self) -> MutexGuard<'_, InodeTable> {
        // A poisoned lock only means another thread panicked mid-update of a plain map;
        // the map is still usable.
        self.inodes.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn handles(&self) -> MutexGuard<'_, HashMap<u64, Arc<Handle>>> {
        self.handles.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn add_handle(&self, handle: Handle) -> FileHandle {
        let fh = self.next_handle.fetch_add(1, Ordering::Relaxed);
        self.handles().insert(fh, Arc::new(handle));
        FileHandle(fh)
    }

    fn handle_backings(&self) -> MutexGuard<'_, HashMap<u64, Arc<BackingId>>> {
        self.handle_backings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    fn handle(&self, fh: FileHandle) -> Result<Arc<Handle>> {
        self.handles()
            .get(&fh.0)
            .cloned()
            .ok_or_else(|| errno(libc::EBADF))
    }

    /// What an inode number stands for. A number shmfs no longer knows answers ESTALE, so
    /// that the kernel drops its cached entry and looks the name up again; numbers the kernel
    /// holds are known until it forgets them.
    fn node(&self, ino: INodeNo) -> Result<Node> {
        self.inodes().node(ino.0).ok_or_else(|| errno(libc::ESTALE))
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
                let seg = sysv::lookup(*shmid)?;
                if seg.incarnation() != *incarnation {
                    return Err(enoent());
                }
                Ok(Live::Sysv(seg))
            }
            ObjectId::Posix { name, ino } => {
                let obj = self.shm.lookup(name)?;
                if obj.ino != *ino {
                    return Err(enoent());
                }
                Ok(Live::Posix(obj))
            }
        }
    }

    fn open_node(&self, who: &Caller, ino: u64, node: &Node, flags: OpenFlags) -> Result<Handle> {
        let writable = flags.acc_mode() != OpenAccMode::O_RDONLY;
        match node {
            Node::Report(_) | Node::Object(_, Part::Stat | Part::Attached) if writable => {
                Err(errno(libc::EACCES))
            }
            Node::Report(report) => Ok(Handle::Text {
                ino,
                text: self.report_text(*report)?.into_bytes(),
            }),
            Node::Object(id, Part::Stat) => Ok(Handle::Text {
                ino,
                text: self.stat_text(&self.live(id)?)?.into_bytes(),
            }),
            Node::Object(id, Part::Attached) => Ok(Handle::Text {
                ino,
                text: self.attached_text(who, &self.live(id)?)?.into_bytes(),
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
                        return Err(errno(libc::EPERM));
                    }
                    // Groups and capabilities as they are now, for the writes to come.
                    Some(who.resolved())
                } else {
                    None
                };
                Ok(Handle::Perm {
                    text: Self::perm_text(&live).into_bytes(),
                    id: id.clone(),
                    opener,
                })
            }
            Node::Object(id, Part::Data) => self.open_data(who, id, flags),
            _ => Err(errno(libc::EISDIR)),
        }
    }

    /// Applies a mode/owner change to an object, as the caller. `None` keeps a value.
    fn change_perm(
        &self,
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
        match self.live(id)? {
            Live::Sysv(seg) => Ok(creds::as_caller(who, || {
                sysv::set_perm(
                    seg.shmid,
                    mode.unwrap_or(seg.mode) & 0o777,
                    uid.unwrap_or(seg.uid),
                    gid.unwrap_or(seg.gid),
                )
            })?),
            Live::Posix(obj) => {
                let changed = creds::as_caller(who, || {
                    if uid.is_some() || gid.is_some() {
                        self.shm.chown(&obj.name, obj.ino, uid, gid)?;
                    }
                    if let Some(mode) = mode {
                        self.shm.chmod(&obj.name, obj.ino, mode)?;
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
            self.shm
                .open_object(&obj.name, obj.ino, libc::O_WRONLY)
                .map(drop)
        })
        .map_err(|_| errno(libc::EPERM))?;
        log::debug!(
            "clearing set-id bits of {:?} for a write by uid {}",
            obj.name,
            who.uid
        );
        Ok(self.shm.chmod(&obj.name, obj.ino, mode)?)
    }

    /// Applies a write of `perm` with the rights of `opener`, who opened it for writing.
    fn write_perm(&self, opener: &Caller, id: &ObjectId, data: &[u8]) -> Result<()> {
        let change = text::parse_perm(data, &crate::names::user_id, &crate::names::group_id)
            .map_err(|e| {
                log::debug!("perm write refused: {e}");
                errno(libc::EINVAL)
            })?;
        self.change_perm(opener, id, change.mode, change.uid, change.gid)
    }

    fn setattr_node(
        &self,
        who: &Caller,
        node: &Node,
        change: PermChange,
        size: Option<u64>,
        fh: Option<FileHandle>,
    ) -> Result<()> {
        let PermChange { mode, uid, gid } = change;
        let Node::Object(id, part) = node else {
            return if mode.is_some() || uid.is_some() || gid.is_some() || size.is_some() {
                Err(errno(libc::EPERM))
            } else {
                Ok(())
            };
        };
        match part {
            Part::Dir | Part::Data => {
                self.change_perm(who, id, mode.map(|m| m & 0o7777), uid, gid)?;
                match (part, size) {
                    (Part::Data, Some(size)) => self.truncate(who, id, size, fh),
                    (_, Some(_)) => Err(errno(libc::EISDIR)),
                    (_, None) => Ok(()),
                }
            }
            // `echo 600 > perm` truncates to 0 before it writes: accepted, changes nothing.
            // Any other size would claim a change that does not happen: EINVAL, as for a
            // SysV `data` truncated to a size it cannot take.
            Part::Perm if mode.is_none() && uid.is_none() && gid.is_none() => match size {
                None | Some(0) => Ok(()),
                Some(_) => Err(errno(libc::EINVAL)),
            },
            _ => Err(errno(libc::EPERM)),
        }
    }

    /// `touch` and friends: a POSIX object's times are set as the caller would set them; a
    /// segment's times are the kernel's own and cannot be set, so the call succeeds without
    /// effect for those who may write the segment (as `touch` would for a file) and fails
    /// with EACCES for others.
    fn set_times(
        &self,
        who: &Caller,
        node: &Node,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
    ) -> Result<()> {
        let Node::Object(id, Part::Dir | Part::Data) = node else {
            return Ok(());
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
                let times = [timespec_of(atime), timespec_of(mtime)];
                Ok(creds::as_caller(who, || {
                    self.shm.set_times(&obj.name, obj.ino, times)
                })?)
            }
        }
    }

    /// Refuses a change of the tree that shmfs does not offer (`op` of `name`), logged like
    /// every failed request.
    fn refuse_change(&self, op: &str, name: &dyn std::fmt::Debug) -> Errno {
        let code = if self.options.read_only {
            libc::EROFS
        } else {
            libc::EPERM
        };
        failure(op, name, &errno(code))
    }

    fn access_node(&self, who: &Caller, node: &Node, mask: AccessFlags) -> Result<()> {
        let want_w = mask.contains(AccessFlags::W_OK);
        let want_x = mask.contains(AccessFlags::X_OK);
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
                    Part::Perm => want_x,
                    Part::KeyLink => false,
                    Part::Data => {
                        if want_x {
                            true
                        } else {
                            let want = (if mask.contains(AccessFlags::R_OK) {
                                4
                            } else {
                                0
                            }) | (if want_w { 2 } else { 0 });
                            match &live {
                                Live::Sysv(seg) => !sysv_permits(who, seg, want),
                                Live::Posix(obj) => {
                                    return Ok(creds::as_caller(who, || {
                                        self.shm
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

/// A time for utimensat: as given, now, or left alone.
fn timespec_of(time: Option<TimeOrNow>) -> libc::timespec {
    let (tv_sec, tv_nsec) = match time {
        None => (0, libc::UTIME_OMIT),
        Some(TimeOrNow::Now) => (0, libc::UTIME_NOW),
        Some(TimeOrNow::SpecificTime(t)) => match t.duration_since(UNIX_EPOCH) {
            Ok(d) => (d.as_secs() as libc::time_t, i64::from(d.subsec_nanos())),
            Err(before) => {
                let d = before.duration();
                (-(d.as_secs() as libc::time_t), 0)
            }
        },
    };
    libc::timespec { tv_sec, tv_nsec }
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

/// True if `requested` is `current` with only set-user-ID and/or set-group-ID cleared: the
/// change the kernel asks for when a non-owner writes to a set-id file.
fn drops_only_setid_bits(current: u32, requested: u32) -> bool {
    let setid = libc::S_ISUID | libc::S_ISGID;
    let (current, requested) = (current & 0o7777, requested & 0o7777);
    requested != current
        && requested & setid != current & setid
        && requested | setid == current | setid
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

impl Filesystem for ShmFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> io::Result<()> {
        if creds::daemon_is_root() {
            match config.add_capabilities(InitFlags::FUSE_PASSTHROUGH) {
                Ok(()) => {
                    // Backing files live on tmpfs (depth 0); this mount sits one above.
                    self.passthrough = config.set_max_stack_depth(1).is_ok();
                }
                Err(_) => log::info!("kernel without FUSE passthrough: POSIX data uses direct I/O"),
            }
        }
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        // The lookup is counted when the number is found, under the same lock, so that a
        // FORGET racing with it cannot take the block away; a failure takes it back.
        let mut counted = None;
        let result = self.node(parent).and_then(|p| {
            let (ino, live) = self.find(parent.0, &p, name, true)?;
            counted = Some(ino);
            let node = self.node(INodeNo(ino))?;
            self.attr_with(ino, &node, live)
        });
        match result {
            Ok(attr) => reply.entry_with_ttls(&TTL, &ENTRY_TTL, &attr, Generation(0)),
            Err(e) => {
                if let Some(ino) = counted {
                    self.forget_inodes([(ino, 1)]);
                }
                reply.error(failure("lookup", &name, &e))
            }
        }
        self.sweep_if_due();
    }

    // BATCH_FORGET reaches here too: fuser 0.18's default `batch_forget` calls `forget` for
    // each node (and its element type is not exported, so it cannot be overridden).
    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.forget_inodes([(ino.0, nlookup)]);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, fh: Option<FileHandle>, reply: ReplyAttr) {
        match self
            .node(ino)
            .and_then(|n| self.attr_of_open(ino.0, &n, fh))
        {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(failure("getattr", &ino, &e)),
        }
    }

    fn setattr(
        &self,
        req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let who = caller(req);
        let result = self.node(ino).and_then(|node| {
            self.setattr_node(&who, &node, PermChange { mode, uid, gid }, size, fh)?;
            if atime.is_some() || mtime.is_some() {
                self.set_times(&who, &node, atime, mtime)?;
            }
            self.attr_of_open(ino.0, &node, fh)
        });
        match result {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(failure("setattr", &ino, &e)),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let target = self.node(ino).and_then(|node| match node {
            Node::Object(id, Part::KeyLink) => {
                self.live_key_link(&id)?;
                Ok(Self::key_link_target(&id))
            }
            _ => Err(errno(libc::EINVAL)),
        });
        match target {
            Ok(target) => reply.data(target.as_bytes()),
            Err(e) => reply.error(failure("readlink", &ino, &e)),
        }
    }

    fn mknod(
        &self,
        _req: &Request,
        _parent: INodeNo,
        name: &OsStr,
        _mode: u32,
        _umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        reply.error(self.refuse_change("mknod", &name));
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        let who = caller(req);
        match self.make_object(&who, parent, name, mode) {
            Ok(attr) => reply.entry_with_ttls(&TTL, &ENTRY_TTL, &attr, Generation(0)),
            Err(e) => reply.error(failure("mkdir", &name, &e)),
        }
        self.sweep_if_due();
    }

    fn unlink(&self, _req: &Request, _parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        // Objects go with `rmdir` of their directory (as in cgroupfs); files inside stay.
        reply.error(self.refuse_change("unlink", &name));
    }

    fn rmdir(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let who = caller(req);
        match self.remove_object(&who, parent, name) {
            Ok(removed) => {
                reply.ok();
                // After the reply: the kernel holds the parent's lock until it has it.
                self.removed(removed);
            }
            Err(e) => reply.error(failure("rmdir", &name, &e)),
        }
    }

    fn symlink(
        &self,
        _req: &Request,
        _parent: INodeNo,
        link_name: &OsStr,
        _target: &std::path::Path,
        reply: ReplyEntry,
    ) {
        reply.error(self.refuse_change("symlink", &link_name));
    }

    fn rename(
        &self,
        _req: &Request,
        _parent: INodeNo,
        name: &OsStr,
        _newparent: INodeNo,
        _newname: &OsStr,
        _flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        reply.error(self.refuse_change("rename", &name));
    }

    fn link(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        reply.error(self.refuse_change("link", &newname));
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let who = caller(req);
        let result = self
            .node(ino)
            .and_then(|node| self.open_node(&who, ino.0, &node, flags));
        let handle = match result {
            Ok(handle) => handle,
            Err(e) => return reply.error(failure("open", &ino, &e)),
        };
        // With passthrough every open of a `data` inode must name the same backing file, or
        // the kernel refuses it. Reads of read-only opens then go straight to the memory; opens
        // that shmfs must serve itself (SysV writes, clamped at the segment's end; kept
        // attachments) add FOPEN_DIRECT_IO, which routes their reads and writes here.
        let (memory, served_here) = match &handle {
            Handle::PosixData { file, .. } => (Some(file), false),
            Handle::SysvData {
                access: SysvAccess::File(file),
                ..
            } => (Some(file), flags.acc_mode() != OpenAccMode::O_RDONLY),
            Handle::SysvData { .. } => (None, true),
            _ => return reply.opened(self.add_handle(handle), FopenFlags::FOPEN_DIRECT_IO),
        };
        if self.passthrough {
            let backing = self.backing(ino.0, memory, || match memory {
                Some(file) => Ok(reply.open_backing(file)?),
                None => Err(errno(libc::ENOTSUP)),
            });
            match backing {
                Ok(backing) => {
                    let fh = self.add_handle(handle);
                    let open_flags = if served_here {
                        FopenFlags::FOPEN_DIRECT_IO
                    } else {
                        FopenFlags::empty()
                    };
                    self.handle_backings().insert(fh.0, backing.clone());
                    return reply.opened_passthrough(fh, open_flags, &backing);
                }
                Err(e) if e.errno() == libc::ENOTSUP => {}
                Err(e) if e.errno() == libc::ESTALE => {
                    if let Ok(Node::Object(id, _)) = self.node(ino) {
                        // Not gone, but its identity must lead to new numbers.
                        self.object_gone(&id, false);
                    }
                    return reply.error(failure("open", &ino, &e));
                }
                Err(e) => log::warn!("passthrough for {ino}: {e}; using direct I/O"),
            }
        }
        reply.opened(self.add_handle(handle), FopenFlags::FOPEN_DIRECT_IO)
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let mut reply = Some(reply);
        let result = self.handle(fh).and_then(|h| {
            self.read_handle(&h, offset, size, |data| {
                if let Some(reply) = reply.take() {
                    reply.data(data);
                }
            })
        });
        if let (Err(e), Some(reply)) = (result, reply) {
            reply.error(failure("read", &ino, &e));
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        match self.handle(fh).and_then(|h| {
            let written = self.write_handle(&h, offset, data)?;
            if matches!(&*h, Handle::SysvData { .. } | Handle::PosixData { .. }) {
                self.invalidate_cache(ino.0, offset, written as usize);
            }
            Ok(written)
        }) {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(failure("write", &ino, &e)),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lo: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.handles().remove(&fh.0);
        self.handle_backings().remove(&fh.0);
        reply.ok();
    }

    fn fsync(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _ds: bool, reply: ReplyEmpty) {
        // Shared memory has nothing to flush to.
        reply.ok();
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.node(ino).and_then(|node| self.list(ino.0, &node)) {
            Ok(entries) => reply.opened(self.add_handle(Handle::Dir(entries)), FopenFlags::empty()),
            Err(e) => reply.error(failure("opendir", &ino, &e)),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let handle = match self.handle(fh) {
            Ok(h) => h,
            Err(e) => return reply.error(failure("readdir", &fh, &e)),
        };
        let Handle::Dir(entries) = &*handle else {
            return reply.error(failure("readdir", &fh, &errno(libc::ENOTDIR)));
        };
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        for (i, (ino, kind, name)) in entries.iter().enumerate().skip(start) {
            if reply.add(INodeNo(*ino), (i + 1) as u64, *kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _f: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.handles().remove(&fh.0);
        self.handle_backings().remove(&fh.0);
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        match self.usage_totals() {
            Ok(st) => reply.statfs(
                st.blocks,
                st.free,
                st.free,
                st.files,
                st.files_free,
                st.block_size,
                255,
                st.block_size,
            ),
            Err(e) => reply.error(failure("statfs", &self.shm.path(), &e)),
        }
    }

    fn access(&self, req: &Request, ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        let who = Caller::for_access(req.uid(), req.gid(), req.pid());
        match self
            .node(ino)
            .and_then(|node| self.access_node(&who, &node, mask))
        {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(failure("access", &ino, &e)),
        }
    }

    fn ioctl(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: fuser::IoctlFlags,
        _cmd: u32,
        _in_data: &[u8],
        _out_size: u32,
        reply: fuser::ReplyIoctl,
    ) {
        // No ioctls: ENOTTY is what isatty() and friends expect of a plain file.
        reply.error(Errno::ENOTTY);
    }

    fn getxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &OsStr,
        _size: u32,
        reply: ReplyXattr,
    ) {
        // No extended attributes. ENOSYS makes the kernel stop asking (ls -l asks for ACLs
        // and labels of every file), which it would not for ENODATA.
        reply.error(Errno::ENOSYS);
    }

    fn listxattr(&self, _req: &Request, _ino: INodeNo, _size: u32, reply: ReplyXattr) {
        reply.error(Errno::ENOSYS);
    }

    fn create(
        &self,
        _req: &Request,
        _parent: INodeNo,
        name: &OsStr,
        _mode: u32,
        _umask: u32,
        _flags: i32,
        reply: fuser::ReplyCreate,
    ) {
        reply.error(self.refuse_change("create", &name));
    }
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
    fn key_names_are_canonical() {
        assert_eq!(parse_key(OsStr::new("0x0000162e")), Some(0x162e));
        assert_eq!(parse_key(OsStr::new("0xdeadbeef")), Some(0xdeadbeef));
        assert_eq!(parse_key(OsStr::new("0x162e")), None);
        assert_eq!(parse_key(OsStr::new("0xDEADBEEF")), None);
    }
}
