//! The FUSE adapter: translates fuser's requests into the filesystem's operations
//! ([`crate::fs::ShmFs`]) and their answers and errors into replies. It decides nothing about
//! shared memory; what it owns is FUSE's own business: time-to-live values, passthrough
//! backings, and the session's notifier.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, SystemTime};

use fuser::{
    AccessFlags, BackingId, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags,
    Generation, INodeNo, InitFlags, KernelConfig, LockOwner, Notifier, OpenFlags, RenameFlags,
    ReplyAttr, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs,
    ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};

use crate::fs::{Attr, Error, How, KernelCache, Kind, SetAttr, SetTime, ShmFs};
use crate::kernel::creds::{self, Caller};
use crate::kernel::posix;

/// Attributes are never cached by the kernel: every stat, open and access asks shmfs, which
/// asks the kernel's IPC and tmpfs, so every call sees the present.
const TTL: Duration = Duration::ZERO;
/// How long the kernel may keep a name → inode entry without asking again. Safe because the
/// inode itself is checked on every use: an inode whose object is gone (or was replaced by a
/// new one of the same name) answers ESTALE, and the VFS then walks the path again with fresh
/// lookups. It spares `ls -l` and friends one LOOKUP per name and per system call (a zero TTL
/// made `ls -l` of 3,000 objects 3.5 times slower). The kernel would keep such entries until
/// memory pressure, so shmfs tells it about objects it learns are gone (see `fs::forget`).
const ENTRY_TTL: Duration = Duration::from_secs(10);
const BLOCK_SIZE: u32 = 4096;

/// A registered passthrough backing and the identity of the memory file behind it.
struct Backing {
    id: Weak<BackingId>,
    file_identity: Option<Vec<u8>>,
}

/// shmfs as a fuser filesystem.
pub struct Fuse {
    fs: ShmFs,
    /// Whether the kernel agreed to FUSE passthrough (root, Linux ≥ 6.9): `data` is then read
    /// (and for POSIX objects written) by the kernel directly, at tmpfs speed.
    passthrough: bool,
    /// The passthrough backing of each open `data` inode: the kernel wants one per inode,
    /// shared by all its opens, gone with the last.
    backings: Mutex<HashMap<u64, Backing>>,
    /// The backing each passthrough open holds, dropped at release.
    handle_backings: Mutex<HashMap<u64, Arc<BackingId>>>,
}

/// The session's notifier, as the filesystem's way to tell the kernel what to drop.
struct Notices(Notifier);

impl KernelCache for Notices {
    fn invalidate(&self, ino: u64, offset: u64, len: u64) -> io::Result<()> {
        let offset = i64::try_from(offset).unwrap_or(i64::MAX);
        let len = i64::try_from(len).unwrap_or(i64::MAX);
        self.0.inval_inode(INodeNo(ino), offset, len)
    }

    fn delete(&self, parent: u64, child: u64, name: &OsStr) -> io::Result<()> {
        self.0.delete(INodeNo(parent), INodeNo(child), name)
    }
}

impl Fuse {
    /// The adapter around `fs`.
    pub fn new(fs: ShmFs) -> Fuse {
        Fuse {
            fs,
            passthrough: false,
            backings: Mutex::new(HashMap::new()),
            handle_backings: Mutex::new(HashMap::new()),
        }
    }

    /// Where main puts the session's notifier once the mount exists.
    pub fn notifier_slot(&self) -> impl FnOnce(Notifier) + Send + 'static {
        let slot = self.fs.kernel_cache_slot();
        move |notifier| {
            let _ = slot.set(Box::new(Notices(notifier)));
        }
    }

    fn handle_backings(&self) -> MutexGuard<'_, HashMap<u64, Arc<BackingId>>> {
        self.handle_backings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// The shared passthrough backing of a `data` inode, registering the memory file of open
    /// handle `fh` if the inode has none.
    fn backing(&self, ino: u64, fh: u64, reply: &ReplyOpen) -> Result<Arc<BackingId>, Error> {
        let identity = self.fs.with_memory(fh, posix::file_identity).flatten();
        let mut backings = self.backings.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(existing) = backings.get(&ino)
            && let Some(id) = existing.id.upgrade()
        {
            // Two objects can share an identity for the inode table (a segment recreated with
            // the same shmid, creator and size, as CRIU does): never let the new one read
            // through the old one's memory. Its inode gets new numbers, and ESTALE makes the
            // kernel look it up again.
            if identity.is_some()
                && existing.file_identity.is_some()
                && identity != existing.file_identity
            {
                self.fs.renumber(ino);
                return Err(Error::stale());
            }
            return Ok(id);
        }
        backings.retain(|_, b| b.id.strong_count() > 0);
        let registered = self
            .fs
            .with_memory(fh, |file| reply.open_backing(file))
            .ok_or_else(Error::unsupported)??;
        let backing = Arc::new(registered);
        backings.insert(
            ino,
            Backing {
                id: Arc::downgrade(&backing),
                file_identity: identity,
            },
        );
        Ok(backing)
    }
}

fn caller(req: &Request) -> Caller {
    Caller::new(req.uid(), req.gid(), req.pid())
}

/// Logs a failed request at its level and gives the errno to answer it with.
fn failure(op: &str, what: &dyn std::fmt::Debug, e: &Error) -> Errno {
    e.log(op, what);
    Errno::from_i32(e.errno())
}

fn file_type(kind: Kind) -> FileType {
    match kind {
        Kind::File => FileType::RegularFile,
        Kind::Dir => FileType::Directory,
        Kind::Symlink => FileType::Symlink,
    }
}

fn file_attr(attr: &Attr) -> FileAttr {
    FileAttr {
        ino: INodeNo(attr.ino),
        size: attr.size,
        blocks: attr.blocks,
        atime: attr.atime,
        mtime: attr.mtime,
        ctime: attr.ctime,
        crtime: attr.ctime,
        kind: file_type(attr.kind),
        perm: attr.perm,
        nlink: attr.nlink,
        uid: attr.uid,
        gid: attr.gid,
        rdev: 0,
        blksize: BLOCK_SIZE,
        flags: 0,
    }
}

fn set_time(time: Option<TimeOrNow>) -> Option<SetTime> {
    time.map(|t| match t {
        TimeOrNow::Now => SetTime::Now,
        TimeOrNow::SpecificTime(at) => SetTime::At(at),
    })
}

/// Operations shmfs does not offer, answered ENOSYS without the WARN line of fuser's defaults
/// (which any user could repeat at will). ENOSYS makes the kernel stop sending each for the
/// rest of the mount and fall back as it does for any filesystem without it: fallocate and
/// setxattr/removexattr fail with EOPNOTSUPP (posix_fallocate then writes), SEEK_DATA and
/// SEEK_HOLE see one extent of data, copy_file_range copies through read and write, poll
/// reports readable and writable, fsync of a directory succeeds, close returns 0 without a
/// FLUSH, and no extended attributes are asked for again.
macro_rules! not_offered {
    ($($op:ident($($arg:ty),* $(,)?) -> $reply:ty;)*) => {$(
        fn $op(&self, _: &Request, $(_: $arg,)* reply: $reply) {
            reply.error(Errno::ENOSYS);
        }
    )*};
}

/// Changes of names, which shmfs refuses (EPERM, or EROFS on a read-only mount): objects are
/// made with `mkdir` and removed with `rmdir` of their directory, and nothing is renamed or
/// linked. Each failure is logged with the name asked for (`logging`).
macro_rules! refused {
    ($($op:ident($($arg:ident: $ty:ty),* $(,)?) -> $reply:ty, logging $name:ident;)*) => {$(
        fn $op(&self, _: &Request, $($arg: $ty,)* reply: $reply) {
            reply.error(failure(stringify!($op), &$name, &self.fs.refuse_change()));
        }
    )*};
}

impl Filesystem for Fuse {
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

    fn lookup(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match self.fs.lookup(&caller(req), parent.0, name) {
            Ok(attr) => reply.entry_with_ttls(&TTL, &ENTRY_TTL, &file_attr(&attr), Generation(0)),
            Err(e) => reply.error(failure("lookup", &name, &e)),
        }
    }

    // BATCH_FORGET reaches here too: fuser 0.18's default `batch_forget` calls `forget` for
    // each node (and its element type is not exported, so it cannot be overridden).
    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.fs.forget(ino.0, nlookup);
    }

    fn getattr(&self, req: &Request, ino: INodeNo, fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.fs.getattr(&caller(req), ino.0, fh.map(|fh| fh.0)) {
            Ok(attr) => reply.attr(&TTL, &file_attr(&attr)),
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
        let change = SetAttr {
            mode,
            uid,
            gid,
            size,
            atime: set_time(atime),
            mtime: set_time(mtime),
        };
        match self
            .fs
            .setattr(&caller(req), ino.0, change, fh.map(|fh| fh.0))
        {
            Ok(attr) => reply.attr(&TTL, &file_attr(&attr)),
            Err(e) => reply.error(failure("setattr", &ino, &e)),
        }
    }

    fn readlink(&self, req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.fs.readlink(&caller(req), ino.0) {
            Ok(target) => reply.data(target.as_bytes()),
            Err(e) => reply.error(failure("readlink", &ino, &e)),
        }
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
        match self.fs.mkdir(&caller(req), parent.0, name, mode) {
            Ok(attr) => reply.entry_with_ttls(&TTL, &ENTRY_TTL, &file_attr(&attr), Generation(0)),
            Err(e) => reply.error(failure("mkdir", &name, &e)),
        }
    }

    fn rmdir(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self.fs.rmdir(&caller(req), parent.0, name) {
            Ok(removed) => {
                reply.ok();
                // After the reply: the kernel holds the parent's lock until it has it.
                self.fs.removed(removed);
            }
            Err(e) => reply.error(failure("rmdir", &name, &e)),
        }
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let opened = match self.fs.open(&caller(req), ino.0, flags.0) {
            Ok(opened) => opened,
            Err(e) => return reply.error(failure("open", &ino, &e)),
        };
        let fh = FileHandle(opened.handle);
        // With passthrough every open of a `data` inode must name the same backing file, or
        // the kernel refuses it. FOPEN_DIRECT_IO routes an open's reads and writes here.
        let How::Passthrough { served_here } = opened.how else {
            return reply.opened(fh, FopenFlags::FOPEN_DIRECT_IO);
        };
        if self.passthrough {
            match self.backing(ino.0, opened.handle, &reply) {
                Ok(backing) => {
                    let open_flags = if served_here {
                        FopenFlags::FOPEN_DIRECT_IO
                    } else {
                        FopenFlags::empty()
                    };
                    self.handle_backings().insert(fh.0, backing.clone());
                    return reply.opened_passthrough(fh, open_flags, &backing);
                }
                Err(e) if e.is_unsupported() => {}
                Err(e) if e.is_stale() => {
                    self.fs.release(opened.handle);
                    return reply.error(failure("open", &ino, &e));
                }
                Err(e) => log::warn!("passthrough for {ino}: {e}; using direct I/O"),
            }
        }
        reply.opened(fh, FopenFlags::FOPEN_DIRECT_IO)
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
        let result = self.fs.read(fh.0, offset, size, |data| {
            if let Some(reply) = reply.take() {
                reply.data(data);
            }
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
        match self.fs.write(ino.0, fh.0, offset, data) {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(failure("write", &ino, &e)),
        }
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
        self.fs.release(fh.0);
        self.handle_backings().remove(&fh.0);
        reply.ok();
    }

    fn fsync(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _ds: bool, reply: ReplyEmpty) {
        // Shared memory has nothing to flush to.
        reply.ok();
    }

    fn opendir(&self, req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.fs.opendir(&caller(req), ino.0) {
            Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
            Err(e) => reply.error(failure("opendir", &ino, &e)),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let listed = self.fs.readdir(fh.0, offset, |entry, next| {
            reply.add(INodeNo(entry.ino), next, file_type(entry.kind), &entry.name)
        });
        match listed {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(failure("readdir", &ino, &e)),
        }
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _f: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.fs.release(fh.0);
        reply.ok();
    }

    fn statfs(&self, _req: &Request, ino: INodeNo, reply: ReplyStatfs) {
        match self.fs.statfs() {
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
            Err(e) => reply.error(failure("statfs", &ino, &e)),
        }
    }

    fn access(&self, req: &Request, ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        let who = Caller::for_access(req.uid(), req.gid(), req.pid());
        match self.fs.access(&who, ino.0, mask.bits()) {
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

    refused! {
        mknod(_parent: INodeNo, name: &OsStr, _mode: u32, _umask: u32, _rdev: u32) -> ReplyEntry,
            logging name;
        create(_parent: INodeNo, name: &OsStr, _mode: u32, _umask: u32, _flags: i32)
            -> fuser::ReplyCreate, logging name;
        // An object goes with `rmdir` of its directory (as in cgroupfs); the files inside stay.
        unlink(_parent: INodeNo, name: &OsStr) -> ReplyEmpty, logging name;
        symlink(_parent: INodeNo, name: &OsStr, _target: &std::path::Path) -> ReplyEntry,
            logging name;
        rename(_parent: INodeNo, name: &OsStr, _newparent: INodeNo, _newname: &OsStr,
            _flags: RenameFlags) -> ReplyEmpty, logging name;
        link(_ino: INodeNo, _newparent: INodeNo, name: &OsStr) -> ReplyEntry, logging name;
    }

    not_offered! {
        // Nothing is buffered here, so a close has nothing to flush: one round trip less for
        // every close, which walks such as `grep … sysv/*/stat` do thousands of.
        flush(INodeNo, FileHandle, LockOwner) -> ReplyEmpty;
        // No extended attributes: `ls -l` asks for ACLs and labels of every file, and would
        // keep asking if answered ENODATA.
        getxattr(INodeNo, &OsStr, u32) -> ReplyXattr;
        listxattr(INodeNo, u32) -> ReplyXattr;
        fallocate(INodeNo, FileHandle, u64, u64, i32) -> ReplyEmpty;
        lseek(INodeNo, FileHandle, i64, i32) -> fuser::ReplyLseek;
        copy_file_range(INodeNo, FileHandle, u64, INodeNo, FileHandle, u64, u64,
            fuser::CopyFileRangeFlags) -> ReplyWrite;
        setxattr(INodeNo, &OsStr, &[u8], i32, u32) -> ReplyEmpty;
        removexattr(INodeNo, &OsStr) -> ReplyEmpty;
        poll(INodeNo, FileHandle, fuser::PollNotifier, fuser::PollEvents, fuser::PollFlags)
            -> fuser::ReplyPoll;
        fsyncdir(INodeNo, FileHandle, bool) -> ReplyEmpty;
        bmap(INodeNo, u32, u64) -> fuser::ReplyBmap;
    }
}
