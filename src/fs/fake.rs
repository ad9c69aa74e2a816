//! A fake [`Source`] for unit tests: segments and objects kept in memory, so that the
//! filesystem's decisions can be tested without root, `/dev/fuse` or the machine's shared
//! memory.
//!
//! A [`Fake`] is a cheap handle on shared state: give one clone to [`ShmFs::with_source`]
//! and keep another to add, change and remove segments and objects behind the filesystem's
//! back, as other processes would, and to look at what the filesystem changed.
//!
//! Each segment and object has a memory file (a memfd) holding its bytes, sized to the
//! segment: `attach_segment` and `open_object` hand out a new open file description of it,
//! reopened through `/proc/self/fd` with the access mode asked for (so a read-only open
//! cannot write), as the kernel's would be.
//!
//! The fake checks no permissions: the real source leaves that to the kernel, which acts on
//! the calling thread's credentials, and the fake does not know who the caller is (as an
//! ordinary user `creds::as_caller` changes nothing; as root it switches the test thread's
//! credentials around each call, which the fake does not look at). A test stands in for the
//! kernel's verdict with [`Fake::refuse`]: every later call of that operation fails with the
//! errno given. For the same reason, objects created through the filesystem (`mkdir`) are
//! owned by [`Fake::set_creator`]'s ids, not by the caller.

use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use super::{DirSpace, Options, SegmentMemory, ShmFs, Source, SysvLimits};
use crate::kernel::attach::{Holder, Target};
use crate::kernel::memory;
use crate::kernel::posix::{FileTime, Object};
use crate::kernel::sysv::{Segment, Totals, Usage};

/// An operation of [`Source`] that a test can make fail ([`Fake::refuse`]) or count
/// ([`Fake::calls`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    SetSegmentPerm,
    RemoveSegment,
    AttachSegment,
    AttachedMemory,
    OpenObject,
    ChmodObject,
    ChownObject,
    CreateObject,
    RemoveObject,
    SetObjectTimes,
    TruncateObject,
}

/// The time the fake's segments and objects are created at, unless a test says otherwise.
pub const CREATED: i64 = 1_763_899_000;

/// The page size the fake counts totals in.
const PAGE: u64 = 4096;

struct FakeSegment {
    seg: Segment,
    usage: Usage,
    memory: File,
}

struct FakeObject {
    /// Size and allocation are taken from `memory` whenever the object is asked for.
    obj: Object,
    memory: File,
}

struct State {
    segments: BTreeMap<i32, FakeSegment>,
    objects: BTreeMap<OsString, FakeObject>,
    next_shmid: i32,
    next_cpid: i32,
    next_ino: u64,
    creator: (u32, u32),
    limits: SysvLimits,
    space: DirSpace,
    refusals: HashMap<Op, i32>,
    calls: HashMap<Op, u64>,
}

/// Segments and objects in memory; clones share them.
#[derive(Clone)]
pub struct Fake {
    state: Arc<Mutex<State>>,
}

impl Default for Fake {
    fn default() -> Self {
        Fake::new()
    }
}

fn error(code: i32) -> io::Error {
    io::Error::from_raw_os_error(code)
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn seconds(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(before) => -(before.duration().as_secs() as i64),
    }
}

/// A new anonymous memory file of `size` bytes, as /dev/shm's files and segments are.
fn memory_file(size: u64) -> File {
    let file = memory::anonymous_file(c"shmfs-fake").expect("memfd_create");
    file.set_len(size).expect("sizing a memfd");
    file
}

/// A new open of `file` with open(2) `flags`' access mode (and O_APPEND), as a fresh open
/// of the same inode would be.
fn reopen(file: &File, flags: i32) -> io::Result<File> {
    let mode = flags & libc::O_ACCMODE;
    OpenOptions::new()
        .read(mode != libc::O_WRONLY)
        .write(mode != libc::O_RDONLY)
        .custom_flags(flags & libc::O_APPEND)
        .open(format!("/proc/self/fd/{}", file.as_raw_fd()))
}

/// Every byte of `file`.
fn contents(file: &File) -> Vec<u8> {
    let len = file.metadata().map_or(0, |m| m.len());
    let mut buf = vec![0; len as usize];
    file.read_exact_at(&mut buf, 0).expect("reading a memfd");
    buf
}

impl FakeObject {
    /// The object as `fstat` would show it now.
    fn now(&self) -> Object {
        let mut obj = self.obj.clone();
        if let Ok(meta) = self.memory.metadata() {
            obj.size = meta.len();
            obj.allocated = meta.blocks() * 512;
        }
        obj
    }
}

impl Fake {
    /// No segments, no objects; shmids are handed out from 0.
    pub fn new() -> Fake {
        Fake {
            state: Arc::new(Mutex::new(State {
                segments: BTreeMap::new(),
                objects: BTreeMap::new(),
                next_shmid: 0,
                next_cpid: 4000,
                next_ino: 100,
                creator: (1000, 1000),
                limits: SysvLimits {
                    shmmax: 18_446_744_073_692_774_399,
                    shmall: 18_446_744_073_692_774_399,
                    shmmni: 4096,
                    shm_rmid_forced: 0,
                },
                space: DirSpace {
                    block_size: 4096,
                    blocks: 1000,
                    blocks_free: 900,
                    files: 5000,
                    files_free: 4990,
                },
                refusals: HashMap::new(),
                calls: HashMap::new(),
            })),
        }
    }

    /// A filesystem over this fake (a clone of it), writable or `read_only`.
    pub fn fs(&self, read_only: bool) -> ShmFs {
        self.fs_with(Options {
            read_only,
            metrics: Default::default(),
        })
    }

    /// A filesystem over this fake (a clone of it), with these options.
    pub fn fs_with(&self, options: Options) -> ShmFs {
        ShmFs::with_source(std::sync::Arc::new(self.clone()), options)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A test that panicked while holding the lock left plain maps behind: still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A segment as `shmget` by `uid`/`gid` would make it: created by them, unattached,
    /// never attached, with the next free shmid and a creating pid no other segment of the
    /// fake has (so that a segment made later with the same shmid is a new one).
    pub fn segment(&self, key: u32, size: u64, mode: u32, uid: u32, gid: u32) -> Segment {
        let mut state = self.state();
        let cpid = state.next_cpid;
        state.next_cpid += 1;
        let mut shmid = state.next_shmid;
        while state.segments.contains_key(&shmid) {
            shmid += 1;
        }
        Segment {
            shmid,
            key,
            size,
            mode: mode & 0o777,
            uid,
            gid,
            cuid: uid,
            cgid: gid,
            cpid,
            lpid: 0,
            nattch: 0,
            atime: 0,
            dtime: 0,
            ctime: CREATED,
            dest: false,
            locked: false,
        }
    }

    /// Creates a segment as [`Fake::segment`] describes it (zero-filled); gives its shmid.
    pub fn add_segment(&self, key: u32, size: u64, mode: u32, uid: u32, gid: u32) -> i32 {
        let seg = self.segment(key, size, mode, uid, gid);
        self.insert_segment(seg)
    }

    /// Creates exactly `seg` (zero-filled, no pages resident), replacing any segment with
    /// its shmid; gives its shmid.
    pub fn insert_segment(&self, seg: Segment) -> i32 {
        let shmid = seg.shmid;
        let memory = memory_file(seg.size);
        let mut state = self.state();
        state.next_shmid = state.next_shmid.max(shmid.saturating_add(1));
        state.segments.insert(
            shmid,
            FakeSegment {
                seg,
                usage: Usage::default(),
                memory,
            },
        );
        shmid
    }

    /// Changes a segment's facts behind the filesystem's back (its memory stays as it is).
    pub fn change_segment(&self, shmid: i32, change: impl FnOnce(&mut Segment)) {
        let mut state = self.state();
        let seg = state.segments.get_mut(&shmid).expect("no such segment");
        change(&mut seg.seg);
    }

    /// Sets a segment's resident and swapped bytes, as page faults and swapping would.
    pub fn set_usage(&self, shmid: i32, usage: Usage) {
        let mut state = self.state();
        state
            .segments
            .get_mut(&shmid)
            .expect("no such segment")
            .usage = usage;
    }

    /// The segment as it is now, if it exists.
    pub fn segment_now(&self, shmid: i32) -> Option<Segment> {
        self.state().segments.get(&shmid).map(|s| s.seg.clone())
    }

    /// Makes a segment vanish at once (`ipcrm` of a segment nobody has attached, or its
    /// last detach after IPC_RMID).
    pub fn drop_segment(&self, shmid: i32) {
        self.state().segments.remove(&shmid);
    }

    /// Writes into a segment's memory, as a process that has it attached would.
    pub fn write_segment(&self, shmid: i32, offset: u64, data: &[u8]) {
        let state = self.state();
        let seg = state.segments.get(&shmid).expect("no such segment");
        assert!(offset + data.len() as u64 <= seg.seg.size, "past the end");
        seg.memory
            .write_all_at(data, offset)
            .expect("writing a memfd");
    }

    /// Every byte of a segment's memory.
    pub fn segment_bytes(&self, shmid: i32) -> Vec<u8> {
        contents(
            &self
                .state()
                .segments
                .get(&shmid)
                .expect("no such segment")
                .memory,
        )
    }

    /// Creates an object holding `data`, as `shm_open` and `write` by `uid`/`gid` would;
    /// gives its inode number (never one an earlier object of the fake had).
    pub fn add_object(&self, name: &str, data: &[u8], mode: u32, uid: u32, gid: u32) -> u64 {
        let memory = memory_file(0);
        memory.write_all_at(data, 0).expect("writing a memfd");
        let mut state = self.state();
        let ino = state.next_ino;
        state.next_ino += 1;
        let obj = Object {
            name: name.into(),
            size: 0,
            mode: mode & 0o7777,
            uid,
            gid,
            atime: CREATED,
            mtime: CREATED,
            ctime: CREATED,
            allocated: 0,
            ino,
        };
        state
            .objects
            .insert(name.into(), FakeObject { obj, memory });
        ino
    }

    /// Changes an object's mode, owner or times behind the filesystem's back (its size is
    /// its memory's: use [`Fake::write_object`]).
    pub fn change_object(&self, name: &str, change: impl FnOnce(&mut Object)) {
        let mut state = self.state();
        let obj = state
            .objects
            .get_mut(OsStr::new(name))
            .expect("no such object");
        change(&mut obj.obj);
    }

    /// The object as `fstat` shows it now, if it exists.
    pub fn object_now(&self, name: &str) -> Option<Object> {
        self.state()
            .objects
            .get(OsStr::new(name))
            .map(FakeObject::now)
    }

    /// Unlinks an object behind the filesystem's back (`rm /dev/shm/NAME`).
    pub fn drop_object(&self, name: &str) {
        self.state().objects.remove(OsStr::new(name));
    }

    /// Writes into an object, extending it if need be, as another process would.
    pub fn write_object(&self, name: &str, offset: u64, data: &[u8]) {
        let state = self.state();
        let obj = state.objects.get(OsStr::new(name)).expect("no such object");
        obj.memory
            .write_all_at(data, offset)
            .expect("writing a memfd");
    }

    /// Every byte of an object.
    pub fn object_bytes(&self, name: &str) -> Vec<u8> {
        contents(
            &self
                .state()
                .objects
                .get(OsStr::new(name))
                .expect("no such object")
                .memory,
        )
    }

    /// From now on, every call of `op` fails with `errno`, as the kernel would refuse it.
    pub fn refuse(&self, op: Op, errno: i32) {
        self.state().refusals.insert(op, errno);
    }

    /// How many times `op` was called (refused calls included).
    pub fn calls(&self, op: Op) -> u64 {
        self.state().calls.get(&op).copied().unwrap_or(0)
    }

    /// The owner of objects that `create_object` makes.
    pub fn set_creator(&self, uid: u32, gid: u32) {
        self.state().creator = (uid, gid);
    }

    /// Counts a call of `op` and gives the state, or the refusal a test asked for.
    fn call(&self, op: Op) -> io::Result<MutexGuard<'_, State>> {
        let mut state = self.state();
        *state.calls.entry(op).or_insert(0) += 1;
        match state.refusals.get(&op) {
            Some(&errno) => Err(error(errno)),
            None => Ok(state),
        }
    }
}

impl State {
    fn segment(&mut self, shmid: i32) -> io::Result<&mut FakeSegment> {
        self.segments
            .get_mut(&shmid)
            .ok_or_else(|| error(libc::ENOENT))
    }

    /// The object `name` if it is still the one with inode `ino`.
    fn object(&mut self, name: &OsStr, ino: u64) -> io::Result<&mut FakeObject> {
        match self.objects.get_mut(name) {
            Some(obj) if obj.obj.ino == ino => Ok(obj),
            _ => Err(error(libc::ENOENT)),
        }
    }
}

impl Source for Fake {
    fn segment(&self, shmid: i32) -> io::Result<Segment> {
        Ok(self.state().segment(shmid)?.seg.clone())
    }

    fn segments(&self) -> io::Result<Vec<Segment>> {
        Ok(self
            .state()
            .segments
            .values()
            .map(|s| s.seg.clone())
            .collect())
    }

    fn segment_with_key(&self, key: u32) -> io::Result<i32> {
        if key == 0 {
            return Err(error(libc::ENOENT));
        }
        self.state()
            .segments
            .values()
            .find(|s| s.seg.key == key)
            .map(|s| s.seg.shmid)
            .ok_or_else(|| error(libc::ENOENT))
    }

    fn segment_usage(&self, shmid: i32) -> io::Result<Usage> {
        Ok(self.state().segment(shmid)?.usage)
    }

    fn segments_usage(&self) -> io::Result<HashMap<i32, Usage>> {
        Ok(self
            .state()
            .segments
            .iter()
            .map(|(&shmid, s)| (shmid, s.usage))
            .collect())
    }

    fn sysv_totals(&self) -> io::Result<Totals> {
        let state = self.state();
        let mut totals = Totals::default();
        for s in state.segments.values() {
            totals.segments += 1;
            totals.pages_allocated += s.seg.size.div_ceil(PAGE);
            totals.pages_resident += s.usage.rss / PAGE;
            totals.pages_swapped += s.usage.swap / PAGE;
        }
        Ok(totals)
    }

    fn sysv_limits(&self) -> io::Result<SysvLimits> {
        Ok(self.state().limits)
    }

    fn set_segment_perm(&self, shmid: i32, mode: u32, uid: u32, gid: u32) -> io::Result<()> {
        let mut state = self.call(Op::SetSegmentPerm)?;
        let seg = &mut state.segment(shmid).map_err(|_| error(libc::EINVAL))?.seg;
        seg.mode = mode & 0o777;
        seg.uid = uid;
        seg.gid = gid;
        seg.ctime = now();
        Ok(())
    }

    /// IPC_RMID: gone at once if nobody has it attached; else kept until the last detach,
    /// with key 0 and `dest`, as the kernel does.
    fn remove_segment(&self, shmid: i32) -> io::Result<()> {
        let mut state = self.call(Op::RemoveSegment)?;
        let seg = &mut state.segment(shmid).map_err(|_| error(libc::EINVAL))?.seg;
        if seg.nattch == 0 {
            state.segments.remove(&shmid);
        } else {
            seg.key = 0;
            seg.dest = true;
            seg.ctime = now();
        }
        Ok(())
    }

    /// The segment's memory file, opened for reading (and writing); no attachment is
    /// counted, as for the kernel source's memory-file route. EIDRM if the segment is gone
    /// or is another one now.
    fn attach_segment(&self, seg: &Segment, writable: bool) -> io::Result<SegmentMemory> {
        let mut state = self.call(Op::AttachSegment)?;
        let now = state.segment(seg.shmid).map_err(|_| error(libc::EIDRM))?;
        if now.seg.incarnation() != seg.incarnation() {
            return Err(error(libc::EIDRM));
        }
        let flags = if writable {
            libc::O_RDWR
        } else {
            libc::O_RDONLY
        };
        Ok(SegmentMemory::File(reopen(&now.memory, flags)?))
    }

    /// The segment's memory file if some process has it attached (nattch > 0), as the
    /// kernel source reaches it through that process's mapping; None otherwise.
    fn attached_memory(&self, seg: &Segment, writable: bool) -> io::Result<Option<File>> {
        let mut state = self.call(Op::AttachedMemory)?;
        let Ok(now) = state.segment(seg.shmid) else {
            return Ok(None);
        };
        if now.seg.nattch == 0 || now.seg.incarnation() != seg.incarnation() {
            return Ok(None);
        }
        let flags = if writable {
            libc::O_RDWR
        } else {
            libc::O_RDONLY
        };
        reopen(&now.memory, flags).map(Some)
    }

    fn segment_memory(
        &self,
        memory: SegmentMemory,
        _writable: bool,
    ) -> io::Result<(SegmentMemory, Option<bool>)> {
        Ok((memory, Some(false)))
    }

    fn object(&self, name: &OsStr) -> io::Result<Object> {
        self.state()
            .objects
            .get(name)
            .map(FakeObject::now)
            .ok_or_else(|| error(libc::ENOENT))
    }

    fn objects(&self) -> io::Result<Vec<Object>> {
        Ok(self.state().objects.values().map(FakeObject::now).collect())
    }

    fn open_object(&self, name: &OsStr, ino: u64, flags: i32) -> io::Result<File> {
        let mut state = self.call(Op::OpenObject)?;
        reopen(&state.object(name, ino)?.memory, flags)
    }

    fn chmod_object(&self, name: &OsStr, ino: u64, mode: u32) -> io::Result<()> {
        let mut state = self.call(Op::ChmodObject)?;
        let obj = &mut state.object(name, ino)?.obj;
        obj.mode = mode & 0o7777;
        obj.ctime = now();
        Ok(())
    }

    fn chown_object(
        &self,
        name: &OsStr,
        ino: u64,
        uid: Option<u32>,
        gid: Option<u32>,
    ) -> io::Result<()> {
        let mut state = self.call(Op::ChownObject)?;
        let obj = &mut state.object(name, ino)?.obj;
        obj.uid = uid.unwrap_or(obj.uid);
        obj.gid = gid.unwrap_or(obj.gid);
        obj.ctime = now();
        Ok(())
    }

    /// O_CREAT|O_EXCL with exactly `mode` (permission bits), owned by the fake's creator.
    fn create_object(&self, name: &OsStr, mode: u32) -> io::Result<Object> {
        let mut state = self.call(Op::CreateObject)?;
        let bytes = name.as_encoded_bytes();
        if bytes.is_empty() || bytes == b"." || bytes == b".." || bytes.contains(&b'/') {
            return Err(error(libc::EINVAL));
        }
        if state.objects.contains_key(name) {
            return Err(error(libc::EEXIST));
        }
        let ino = state.next_ino;
        state.next_ino += 1;
        let (uid, gid) = state.creator;
        let t = now();
        let obj = Object {
            name: name.to_owned(),
            size: 0,
            mode: mode & 0o777,
            uid,
            gid,
            atime: t,
            mtime: t,
            ctime: t,
            allocated: 0,
            ino,
        };
        state.objects.insert(
            name.to_owned(),
            FakeObject {
                obj: obj.clone(),
                memory: memory_file(0),
            },
        );
        Ok(obj)
    }

    fn remove_object(&self, name: &OsStr, ino: u64) -> io::Result<()> {
        let mut state = self.call(Op::RemoveObject)?;
        state.object(name, ino)?;
        state.objects.remove(name);
        Ok(())
    }

    fn set_object_times(
        &self,
        name: &OsStr,
        ino: u64,
        atime: FileTime,
        mtime: FileTime,
    ) -> io::Result<()> {
        let mut state = self.call(Op::SetObjectTimes)?;
        let obj = &mut state.object(name, ino)?.obj;
        let t = now();
        for (slot, time) in [(&mut obj.atime, atime), (&mut obj.mtime, mtime)] {
            match time {
                FileTime::Keep => {}
                FileTime::Now => *slot = t,
                FileTime::At(at) => *slot = seconds(at),
            }
        }
        obj.ctime = t;
        Ok(())
    }

    fn truncate_object(&self, name: &OsStr, ino: u64, size: u64) -> io::Result<()> {
        let mut state = self.call(Op::TruncateObject)?;
        state.object(name, ino)?.memory.set_len(size)
    }

    fn shm_dev(&self) -> u64 {
        0xfa4e
    }

    fn shm_space(&self) -> io::Result<DirSpace> {
        Ok(self.state().space)
    }

    /// A fake has no processes: nobody holds anything.
    fn holders(&self, _target: &Target) -> io::Result<Vec<Holder>> {
        Ok(Vec::new())
    }
}
