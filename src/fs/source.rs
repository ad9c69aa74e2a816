//! Where segments and objects come from: the kernel (System V IPC and the shm dir), or, in
//! unit tests, a fake that keeps them in memory. The filesystem asks only through [`Source`],
//! so that its decisions can be tested without root, `/dev/fuse` or shared memory.
//!
//! Operations that the kernel permission-checks are called with the calling thread already
//! acting as the caller (see `creds::as_caller`); a source checks nothing itself.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::io;

use crate::kernel::attach::{Holder, Target};
use crate::kernel::context::IpcContext;
use crate::kernel::fingerprint::incarnation_of;
use crate::kernel::mqueue::{MqInfo, MqLimits};
use crate::kernel::msg::{self, MsgLimits, Queue};
use crate::kernel::posix::{self, FileTime, Object};
use crate::kernel::posix_sem::{self, SemState};
use crate::kernel::sem::{self, SemLimits, SemSet, SemValue};
use crate::kernel::sysv::{self, Attachment, Segment, Totals, Usage};

/// Limits of System V shared memory (`/proc/sys/kernel/shm*`).
pub use crate::kernel::sysv::Limits as SysvLimits;

/// How an open SysV `data` reaches the segment's memory.
pub enum SegmentMemory {
    /// The segment's own memory file (from `/proc/self/map_files`, root only): no attachment
    /// is kept, untouched pages are not allocated by reads.
    File(File),
    /// A huge-page segment's own memory file: read with pread, written through a mapping of
    /// the file (write(2) does not work on hugetlbfs); no attachment is kept either.
    HugeFile(File),
    /// A kept attachment (a non-root daemon, which cannot open `map_files`).
    Attached(Attachment),
}

/// Capacity and use of the shm dir's filesystem, in blocks of `block_size` bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DirSpace {
    pub block_size: u64,
    pub blocks: u64,
    pub blocks_free: u64,
    pub files: u64,
    pub files_free: u64,
}

/// The segments and objects the filesystem shows.
pub trait Source: Send + Sync {
    /// The segment with this shmid, or ENOENT.
    fn segment(&self, shmid: i32) -> io::Result<Segment>;
    /// Every segment, in the kernel's index order.
    fn segments(&self) -> io::Result<Vec<Segment>>;
    /// The shmid of the live segment with this key, or ENOENT.
    fn segment_with_key(&self, key: u32) -> io::Result<i32>;
    /// Resident and swapped bytes of one segment.
    fn segment_usage(&self, shmid: i32) -> io::Result<Usage>;
    /// Resident and swapped bytes of every segment.
    fn segments_usage(&self) -> io::Result<HashMap<i32, Usage>>;
    /// System-wide usage (`ipcs -m -u`).
    fn sysv_totals(&self) -> io::Result<Totals>;
    /// System-wide limits.
    fn sysv_limits(&self) -> io::Result<SysvLimits>;
    /// IPC_SET (as the caller).
    fn set_segment_perm(&self, shmid: i32, mode: u32, uid: u32, gid: u32) -> io::Result<()>;
    /// IPC_RMID (as the caller).
    fn remove_segment(&self, shmid: i32) -> io::Result<()>;
    /// Reaches the segment's memory (as the caller: the kernel checks read, or read and
    /// write): for the kernel, an attachment.
    fn attach_segment(&self, seg: &Segment, writable: bool) -> io::Result<SegmentMemory>;
    /// The segment's memory file reached, as the daemon and with no `shmat`, through a
    /// mapping of it that some other process already has (for the kernel: root only, through
    /// `/proc/PID/map_files`, read-write even from a read-only mapping), proved to be this
    /// segment by the fingerprint taken when the daemon attached it itself (see
    /// [`crate::kernel::fingerprint`]). None when there is no such mapping or no fingerprint yet (the
    /// daemon has not attached this segment since it started, or it is backed by huge pages);
    /// the caller's right is not checked here.
    fn attached_memory(&self, seg: &Segment, writable: bool) -> io::Result<Option<File>>;
    /// The memory reached by `attach_segment`, turned (as the daemon) into what an open keeps:
    /// for the kernel, the segment's memory file instead of the attachment where it can, so
    /// that nothing stays attached, and the file's fingerprint recorded for `attached_memory`.
    /// Also says whether it is backed by huge pages, if known.
    fn segment_memory(
        &self,
        memory: SegmentMemory,
        writable: bool,
    ) -> io::Result<(SegmentMemory, Option<bool>)>;

    /// The object `name`, or ENOENT (also for what is not a regular file).
    fn object(&self, name: &OsStr) -> io::Result<Object>;
    /// Every object.
    fn objects(&self) -> io::Result<Vec<Object>>;
    /// The name and inode number of every object: a cheaper listing, for checking which
    /// objects are gone.
    fn object_keys(&self) -> io::Result<Vec<(std::ffi::OsString, u64)>> {
        Ok(self
            .objects()?
            .into_iter()
            .map(|o| (o.name, o.ino))
            .collect())
    }
    /// Opens the object with inode `ino` (as the caller) with open(2) `flags`.
    fn open_object(&self, name: &OsStr, ino: u64, flags: i32) -> io::Result<File>;
    /// chmod (as the caller).
    fn chmod_object(&self, name: &OsStr, ino: u64, mode: u32) -> io::Result<()>;
    /// chown (as the caller); `None` keeps that id.
    fn chown_object(
        &self,
        name: &OsStr,
        ino: u64,
        uid: Option<u32>,
        gid: Option<u32>,
    ) -> io::Result<()>;
    /// Creates an empty object of exactly `mode` (as the caller).
    fn create_object(&self, name: &OsStr, mode: u32) -> io::Result<Object>;
    /// Unlinks the object (as the caller).
    fn remove_object(&self, name: &OsStr, ino: u64) -> io::Result<()>;
    /// Sets its times (as the caller).
    fn set_object_times(
        &self,
        name: &OsStr,
        ino: u64,
        atime: FileTime,
        mtime: FileTime,
    ) -> io::Result<()>;
    /// Truncates or extends it (as the caller).
    fn truncate_object(&self, name: &OsStr, ino: u64, size: u64) -> io::Result<()>;
    /// The device of the shm dir's filesystem (to find holders by device and inode).
    fn shm_dev(&self) -> u64;
    /// Capacity and use of the shm dir's filesystem.
    fn shm_space(&self) -> io::Result<DirSpace>;

    /// Every process that maps `target` (or, for a POSIX object, holds it open), sorted by
    /// pid: for a segment, only processes of the source's IPC namespace.
    fn holders(&self, target: &Target) -> io::Result<Vec<Holder>>;

    /// The id (`NS_GET_ID`) of the IPC namespace the source shows, if known.
    fn ipc_ns_id(&self) -> Option<u64> {
        None
    }

    // Semaphore sets, message queues and POSIX queues: a source without them (the unit
    // tests' fake) has none.

    /// Every semaphore set, in the kernel's index order.
    fn sem_sets(&self) -> io::Result<Vec<SemSet>> {
        Ok(Vec::new())
    }
    /// The semaphore set `semid`, or ENOENT.
    fn sem_set(&self, _semid: i32) -> io::Result<SemSet> {
        Err(io::Error::from_raw_os_error(libc::ENOENT))
    }
    /// The semaphore set with this key, or ENOENT.
    fn sem_set_with_key(&self, _key: u32) -> io::Result<SemSet> {
        Err(io::Error::from_raw_os_error(libc::ENOENT))
    }
    /// The values of a set (as the caller: read permission).
    fn sem_values(&self, _semid: i32, _nsems: u64) -> io::Result<Vec<SemValue>> {
        Err(io::Error::from_raw_os_error(libc::ENOENT))
    }
    /// SETALL (as the caller).
    fn set_sem_values(&self, _semid: i32, _values: &[u16]) -> io::Result<()> {
        Err(io::Error::from_raw_os_error(libc::ENOENT))
    }
    /// SETVAL (as the caller).
    fn set_sem_value(&self, _semid: i32, _num: u16, _value: u16) -> io::Result<()> {
        Err(io::Error::from_raw_os_error(libc::ENOENT))
    }
    /// IPC_SET of a set (as the caller).
    fn set_sem_perm(&self, _semid: i32, _mode: u32, _uid: u32, _gid: u32) -> io::Result<()> {
        Err(io::Error::from_raw_os_error(libc::ENOENT))
    }
    /// IPC_RMID of a set (as the caller).
    fn remove_sem_set(&self, _semid: i32) -> io::Result<()> {
        Err(io::Error::from_raw_os_error(libc::ENOENT))
    }
    /// Semaphore limits and use.
    fn sem_limits(&self) -> io::Result<SemLimits> {
        Ok(SemLimits::default())
    }
    /// The tasks blocked on a set (every one the daemon may read).
    fn sem_waiters(&self, _semid: i32) -> io::Result<Vec<sem::Waiter>> {
        Ok(Vec::new())
    }
    /// How many tasks are blocked on each set.
    fn sem_waiter_counts(&self) -> io::Result<HashMap<i32, u64>> {
        Ok(HashMap::new())
    }
    /// Every message queue, in the kernel's index order.
    fn queues(&self) -> io::Result<Vec<Queue>> {
        Ok(Vec::new())
    }
    /// The message queue `msqid`, or ENOENT.
    fn queue(&self, _msqid: i32) -> io::Result<Queue> {
        Err(io::Error::from_raw_os_error(libc::ENOENT))
    }
    /// The message queue with this key, or ENOENT.
    fn queue_with_key(&self, _key: u32) -> io::Result<Queue> {
        Err(io::Error::from_raw_os_error(libc::ENOENT))
    }
    /// A copy of the message at `position` (as the caller: read permission).
    fn message(&self, _msqid: i32, _position: usize, _longest: usize) -> io::Result<msg::Message> {
        Err(io::Error::from_raw_os_error(libc::ENOMSG))
    }
    /// The type and size of the first `most` messages (as the caller).
    fn messages(
        &self,
        _msqid: i32,
        _longest: usize,
        _most: usize,
    ) -> io::Result<Vec<(i64, usize)>> {
        Ok(Vec::new())
    }
    /// IPC_SET of a queue (as the caller).
    fn set_queue_perm(
        &self,
        _msqid: i32,
        _mode: u32,
        _uid: u32,
        _gid: u32,
        _qbytes: Option<u64>,
    ) -> io::Result<()> {
        Err(io::Error::from_raw_os_error(libc::ENOENT))
    }
    /// IPC_RMID of a queue (as the caller).
    fn remove_queue(&self, _msqid: i32) -> io::Result<()> {
        Err(io::Error::from_raw_os_error(libc::ENOENT))
    }
    /// Message queue limits and use.
    fn msg_limits(&self) -> io::Result<MsgLimits> {
        Ok(MsgLimits::default())
    }
    /// The tasks blocked on a queue (every one the daemon may read).
    fn queue_waiters(&self, _msqid: i32) -> io::Result<Vec<msg::Waiter>> {
        Ok(Vec::new())
    }
    /// How many tasks are blocked on each queue.
    fn queue_waiter_counts(&self) -> io::Result<HashMap<i32, u64>> {
        Ok(HashMap::new())
    }
    /// Every POSIX message queue.
    fn mqueues(&self) -> io::Result<Vec<MqInfo>> {
        Ok(Vec::new())
    }
    /// The POSIX message queue `name`, or ENOENT.
    fn mqueue(&self, _name: &OsStr) -> io::Result<MqInfo> {
        Err(io::Error::from_raw_os_error(libc::ENOENT))
    }
    /// mq_unlink (as the caller).
    fn remove_mqueue(&self, _name: &OsStr) -> io::Result<()> {
        Err(io::Error::from_raw_os_error(libc::ENOENT))
    }
    /// Limits of POSIX message queues.
    fn mqueue_limits(&self) -> io::Result<MqLimits> {
        Ok(MqLimits::default())
    }
    /// chmod/chown of a POSIX message queue (as the caller); `None` keeps one.
    fn set_mqueue_perm(
        &self,
        _name: &OsStr,
        _mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
    ) -> io::Result<()> {
        Err(io::Error::from_raw_os_error(libc::ENOENT))
    }
    /// The tasks waiting on the POSIX semaphore whose file is `dev`/`ino`.
    fn posix_sem_waiters(&self, _dev: u64, _ino: u64) -> io::Result<Vec<posix_sem::Waiter>> {
        Ok(Vec::new())
    }
    /// The state of the POSIX semaphore `name` of the shm dir, if it is still inode `ino`
    /// (read without moving its atime).
    fn posix_sem_state(&self, _name: &OsStr, _ino: u64) -> io::Result<SemState> {
        Err(io::Error::from_raw_os_error(libc::EINVAL))
    }
}

/// The kernel's segments and the shm dir's regular files, of one [`IpcContext`] (the daemon's
/// IPC namespace and shm dir), through which every call goes.
pub struct Kernel {
    ctx: IpcContext,
    /// Whether the daemon may open `/proc/self/map_files` (root).
    map_files: bool,
    /// The device of the kernel's internal tmpfs of SysV segments, if `map_files` and known:
    /// without it, no other process's mapping is trusted.
    segment_dev: Option<u64>,
    /// Fingerprints of the segments the daemon attached itself: the only proof that lets
    /// another process's mapping be used.
    prints: crate::kernel::fingerprint::Fingerprints,
}

impl Kernel {
    /// The kernel's shared memory, of the IPC namespace and shm dir of `ctx`.
    pub fn new(ctx: IpcContext) -> Kernel {
        let map_files = crate::kernel::creds::daemon_is_root();
        let segment_dev = if map_files {
            crate::kernel::attach::sysv_shm_dev()
                .inspect_err(|e| log::warn!("memfd_create: {e}; reading segments attaches them"))
                .ok()
        } else {
            None
        };
        Kernel {
            ctx,
            map_files,
            segment_dev,
            prints: Default::default(),
        }
    }

    /// The kernel's shared memory of another context (another IPC namespace), with the same
    /// rights as this one (the internal tmpfs of segments is one for every namespace) and no
    /// fingerprint yet.
    pub fn sibling(&self, ctx: IpcContext) -> Kernel {
        Kernel {
            ctx,
            map_files: self.map_files,
            segment_dev: self.segment_dev,
            prints: Default::default(),
        }
    }
}

impl Kernel {
    /// Records the fingerprint of `file`, the memory of the segment that `attachment` (the
    /// daemon's own `shmat` of it) holds.
    fn record_fingerprint(&self, attachment: &Attachment, file: &File) {
        let Some(seg) = attachment.segment() else {
            return;
        };
        let print = file
            .metadata()
            .ok()
            .and_then(|st| crate::kernel::fingerprint::Fingerprint::of(file, &st));
        let Some(print) = print else {
            log::debug!("segment {}: no fingerprint of its memory file", seg.shmid);
            return;
        };
        self.prints.record(
            seg.shmid,
            incarnation_of(seg),
            print,
            |shmid, incarnation| {
                self.ctx
                    .segment(shmid)
                    .is_ok_and(|now| incarnation_of(&now) == *incarnation)
            },
        );
    }
}

impl Source for Kernel {
    fn segment(&self, shmid: i32) -> io::Result<Segment> {
        self.ctx.segment(shmid)
    }
    fn segments(&self) -> io::Result<Vec<Segment>> {
        self.ctx.segments()
    }
    fn segment_with_key(&self, key: u32) -> io::Result<i32> {
        self.ctx.segment_with_key(key)
    }
    fn segment_usage(&self, shmid: i32) -> io::Result<Usage> {
        self.ctx.segment_usage(shmid)
    }
    fn segments_usage(&self) -> io::Result<HashMap<i32, Usage>> {
        self.ctx.segments_usage()
    }
    fn sysv_totals(&self) -> io::Result<Totals> {
        self.ctx.sysv_totals()
    }
    fn sysv_limits(&self) -> io::Result<SysvLimits> {
        self.ctx.sysv_limits()
    }
    fn set_segment_perm(&self, shmid: i32, mode: u32, uid: u32, gid: u32) -> io::Result<()> {
        self.ctx.set_segment_perm(shmid, mode, uid, gid)
    }
    fn remove_segment(&self, shmid: i32) -> io::Result<()> {
        self.ctx.remove_segment(shmid)
    }
    fn attach_segment(&self, seg: &Segment, writable: bool) -> io::Result<SegmentMemory> {
        self.ctx
            .attach(seg.shmid, writable)
            .map(SegmentMemory::Attached)
    }
    fn attached_memory(&self, seg: &Segment, writable: bool) -> io::Result<Option<File>> {
        let Some(dev) = self.segment_dev else {
            return Ok(None);
        };
        let Some(print) = self.prints.get(seg.shmid, &incarnation_of(seg)) else {
            return Ok(None);
        };
        Ok(self.ctx.open_mapped_segment(seg, writable, dev, &print))
    }
    fn segment_memory(
        &self,
        memory: SegmentMemory,
        writable: bool,
    ) -> io::Result<(SegmentMemory, Option<bool>)> {
        let attachment = match memory {
            SegmentMemory::Attached(attachment) if self.map_files => attachment,
            other => return Ok((other, None)),
        };
        match attachment.memory_file(writable) {
            Ok(file) if !sysv::is_hugetlb_file(&file) => {
                self.record_fingerprint(&attachment, &file);
                Ok((SegmentMemory::File(file), Some(false)))
            }
            Ok(file) => Ok((SegmentMemory::HugeFile(file), Some(true))),
            // Out of descriptors: an error, not an attachment kept open that would show in
            // nattch until close.
            Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) => Err(e),
            Err(e) => {
                log::debug!("map_files: {e}; keeping attached");
                Ok((SegmentMemory::Attached(attachment), None))
            }
        }
    }

    fn object(&self, name: &OsStr) -> io::Result<Object> {
        self.ctx.shm_dir().lookup(name)
    }
    fn objects(&self) -> io::Result<Vec<Object>> {
        self.ctx.shm_dir().list()
    }
    fn object_keys(&self) -> io::Result<Vec<(std::ffi::OsString, u64)>> {
        self.ctx.shm_dir().regular_entries()
    }
    fn open_object(&self, name: &OsStr, ino: u64, flags: i32) -> io::Result<File> {
        self.ctx.shm_dir().open_object(name, ino, flags)
    }
    fn chmod_object(&self, name: &OsStr, ino: u64, mode: u32) -> io::Result<()> {
        self.ctx.shm_dir().chmod(name, ino, mode)
    }
    fn chown_object(
        &self,
        name: &OsStr,
        ino: u64,
        uid: Option<u32>,
        gid: Option<u32>,
    ) -> io::Result<()> {
        self.ctx.shm_dir().chown(name, ino, uid, gid)
    }
    fn create_object(&self, name: &OsStr, mode: u32) -> io::Result<Object> {
        self.ctx.shm_dir().create(name, mode)
    }
    fn remove_object(&self, name: &OsStr, ino: u64) -> io::Result<()> {
        self.ctx.shm_dir().remove(name, ino)
    }
    fn set_object_times(
        &self,
        name: &OsStr,
        ino: u64,
        atime: FileTime,
        mtime: FileTime,
    ) -> io::Result<()> {
        self.ctx.shm_dir().set_times(name, ino, atime, mtime)
    }
    fn truncate_object(&self, name: &OsStr, ino: u64, size: u64) -> io::Result<()> {
        self.ctx.shm_dir().truncate(name, ino, size)
    }
    fn shm_dev(&self) -> u64 {
        self.ctx.shm_dir().dev()
    }
    fn shm_space(&self) -> io::Result<DirSpace> {
        let st = posix::fstatvfs(self.ctx.shm_dir())?;
        Ok(DirSpace {
            block_size: st.f_frsize.max(1),
            blocks: st.f_blocks,
            blocks_free: st.f_bfree,
            files: st.f_files,
            files_free: st.f_ffree,
        })
    }
    fn holders(&self, target: &Target) -> io::Result<Vec<Holder>> {
        self.ctx.holders(target)
    }
    fn ipc_ns_id(&self) -> Option<u64> {
        self.ctx.ipc_ns_id()
    }
    fn sem_sets(&self) -> io::Result<Vec<SemSet>> {
        self.ctx.sem_sets()
    }
    fn sem_set(&self, semid: i32) -> io::Result<SemSet> {
        self.ctx.sem_set(semid)
    }
    fn sem_set_with_key(&self, key: u32) -> io::Result<SemSet> {
        self.ctx.sem_set_with_key(key)
    }
    fn sem_values(&self, semid: i32, nsems: u64) -> io::Result<Vec<SemValue>> {
        self.ctx.sem_values(semid, nsems)
    }
    fn set_sem_values(&self, semid: i32, values: &[u16]) -> io::Result<()> {
        self.ctx.set_sem_values(semid, values)
    }
    fn set_sem_value(&self, semid: i32, num: u16, value: u16) -> io::Result<()> {
        self.ctx.set_sem_value(semid, num, value)
    }
    fn set_sem_perm(&self, semid: i32, mode: u32, uid: u32, gid: u32) -> io::Result<()> {
        self.ctx.set_sem_perm(semid, mode, uid, gid)
    }
    fn remove_sem_set(&self, semid: i32) -> io::Result<()> {
        self.ctx.remove_sem_set(semid)
    }
    fn sem_limits(&self) -> io::Result<SemLimits> {
        self.ctx.sem_limits()
    }
    fn sem_waiters(&self, semid: i32) -> io::Result<Vec<sem::Waiter>> {
        self.ctx.sem_waiters(semid)
    }
    fn sem_waiter_counts(&self) -> io::Result<HashMap<i32, u64>> {
        self.ctx.sem_waiter_counts()
    }
    fn queues(&self) -> io::Result<Vec<Queue>> {
        self.ctx.queues()
    }
    fn queue(&self, msqid: i32) -> io::Result<Queue> {
        self.ctx.queue(msqid)
    }
    fn queue_with_key(&self, key: u32) -> io::Result<Queue> {
        self.ctx.queue_with_key(key)
    }
    fn message(&self, msqid: i32, position: usize, longest: usize) -> io::Result<msg::Message> {
        self.ctx.message(msqid, position, longest)
    }
    fn messages(&self, msqid: i32, longest: usize, most: usize) -> io::Result<Vec<(i64, usize)>> {
        self.ctx.messages(msqid, longest, most)
    }
    fn set_queue_perm(
        &self,
        msqid: i32,
        mode: u32,
        uid: u32,
        gid: u32,
        qbytes: Option<u64>,
    ) -> io::Result<()> {
        self.ctx.set_queue_perm(msqid, mode, uid, gid, qbytes)
    }
    fn remove_queue(&self, msqid: i32) -> io::Result<()> {
        self.ctx.remove_queue(msqid)
    }
    fn msg_limits(&self) -> io::Result<MsgLimits> {
        self.ctx.msg_limits()
    }
    fn queue_waiters(&self, msqid: i32) -> io::Result<Vec<msg::Waiter>> {
        self.ctx.queue_waiters(msqid)
    }
    fn queue_waiter_counts(&self) -> io::Result<HashMap<i32, u64>> {
        self.ctx.queue_waiter_counts()
    }
    fn mqueues(&self) -> io::Result<Vec<MqInfo>> {
        self.ctx.mqueues()
    }
    fn mqueue(&self, name: &OsStr) -> io::Result<MqInfo> {
        self.ctx.mqueue(name)
    }
    fn remove_mqueue(&self, name: &OsStr) -> io::Result<()> {
        self.ctx.remove_mqueue(name)
    }
    fn mqueue_limits(&self) -> io::Result<MqLimits> {
        self.ctx.mqueue_limits()
    }
    fn set_mqueue_perm(
        &self,
        name: &OsStr,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
    ) -> io::Result<()> {
        self.ctx.set_mqueue_perm(name, mode, uid, gid)
    }
    fn posix_sem_state(&self, name: &OsStr, ino: u64) -> io::Result<SemState> {
        self.ctx
            .shm_dir()
            .with_fd(|dir| posix_sem::read_state_of(dir, name, Some(ino)))
    }
    fn posix_sem_waiters(&self, dev: u64, ino: u64) -> io::Result<Vec<posix_sem::Waiter>> {
        posix_sem::waiters(dev, ino)
    }
}
