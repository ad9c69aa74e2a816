//! System V shared memory: a small safe API over `shmctl`, `shmget`, `shmat` and
//! `/proc/sys/kernel/shm*`.
//!
//! Looking up one segment is one `shmctl(SHM_STAT_ANY)`; listing is one pass over the
//! kernel's index table. Neither attaches a segment, so neither changes what `ipcs` shows.
//!
//! Every call that names a segment, or counts or limits them, acts in the IPC namespace of the
//! calling thread: those are visible to the kernel layer only, and the rest of shmfs makes them
//! through a `kernel::context::IpcContext`, which says which namespace. An attachment's memory,
//! once attached, and the huge-page helpers belong to no namespace.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::time::Instant;

use libc::c_int;

/// `shmctl` command: status by index, without a permission check (Linux ≥ 4.17).
pub const SHM_STAT_ANY: c_int = 15;
/// `shmctl` command: system-wide usage, returns the highest used index.
pub const SHM_INFO: c_int = 14;
/// Mode bit: the segment is marked for removal and goes when its last user detaches.
pub const SHM_DEST: u32 = 0o1000;
/// Mode bit: the segment's pages are locked in memory.
pub const SHM_LOCKED: u32 = 0o2000;
/// Filesystem magic of hugetlbfs, the home of `SHM_HUGETLB` segments.
const HUGETLBFS_MAGIC: i64 = 0x958458f6;

/// What the kernel knows of one segment, as `shmctl(IPC_STAT)` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    pub shmid: i32,
    /// The key as the unsigned 32-bit value that `ipcs` prints in hex.
    pub key: u32,
    pub size: u64,
    /// Permission bits only (0o777).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub cuid: u32,
    pub cgid: u32,
    pub cpid: i32,
    pub lpid: i32,
    pub nattch: u64,
    pub atime: i64,
    pub dtime: i64,
    pub ctime: i64,
    /// `SHM_DEST`: removal pending until the last detach.
    pub dest: bool,
    /// `SHM_LOCKED`.
    pub locked: bool,
}

impl Segment {
    /// Its mode, owner, size and times as a file shows them: a segment keeps no time of
    /// its last change of contents, so its last change (`ctime`) stands for it.
    pub fn meta(&self) -> crate::kernel::object::Meta {
        crate::kernel::object::Meta {
            mode: self.mode,
            uid: self.uid,
            gid: self.gid,
            size: self.size,
            atime: self.atime,
            mtime: self.ctime,
            ctime: self.ctime,
        }
    }

    /// Facts that never change during a segment's life, used to tell a segment from a
    /// later one that reuses its shmid.
    pub fn incarnation(&self) -> (u32, u32, i32, u64) {
        (self.cuid, self.cgid, self.cpid, self.size)
    }

    fn from_ds(shmid: i32, ds: &libc::shmid_ds) -> Segment {
        let mode = u32::from(ds.shm_perm.mode);
        Segment {
            shmid,
            key: ds.shm_perm.__key as u32,
            size: ds.shm_segsz as u64,
            mode: mode & 0o777,
            uid: ds.shm_perm.uid,
            gid: ds.shm_perm.gid,
            cuid: ds.shm_perm.cuid,
            cgid: ds.shm_perm.cgid,
            cpid: ds.shm_cpid,
            lpid: ds.shm_lpid,
            nattch: ds.shm_nattch,
            atime: ds.shm_atime,
            dtime: ds.shm_dtime,
            ctime: ds.shm_ctime,
            dest: mode & SHM_DEST != 0,
            locked: mode & SHM_LOCKED != 0,
        }
    }
}

/// The mode-bit half of the kernel's `ipcperms` rule: owner rights for the owner and the
/// creator, group rights for the group and the creator's group (`in_group` answers for the
/// caller's gid and supplementary groups), others' rights otherwise. `want` holds permission
/// bits in the "other" position (4 read, 2 write). A caller refused here may still pass with
/// CAP_IPC_OWNER, which the caller of this function weighs.
pub fn ipc_permits(seg: &Segment, uid: u32, in_group: impl Fn(u32) -> bool, want: u32) -> bool {
    IpcPerm {
        mode: seg.mode,
        uid: seg.uid,
        gid: seg.gid,
        cuid: seg.cuid,
        cgid: seg.cgid,
    }
    .permits(uid, in_group, want)
}

/// The permission of any System V object (segment, semaphore set, message queue): what the
/// kernel's `ipcperms` weighs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpcPerm {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub cuid: u32,
    pub cgid: u32,
}

impl IpcPerm {
    /// As [`ipc_permits`], for any System V object.
    pub fn permits(&self, uid: u32, in_group: impl Fn(u32) -> bool, want: u32) -> bool {
        let granted = if uid == self.uid || uid == self.cuid {
            self.mode >> 6
        } else if in_group(self.gid) || in_group(self.cgid) {
            self.mode >> 3
        } else {
            self.mode
        };
        want & !granted & 0o7 == 0
    }

    /// Whether `uid` owns or created the object: who may change or remove it (with
    /// CAP_SYS_ADMIN, which the caller of this function weighs).
    pub fn is_owner(&self, uid: u32) -> bool {
        uid == self.uid || uid == self.cuid
    }
}

/// Resident and swapped bytes of one segment: only `/proc/sysvipc/shm` knows them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub rss: u64,
    pub swap: u64,
}

/// The IPC namespace's usage, as `shmctl(SHM_INFO)` and `ipcs -m -u` report it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub segments: u64,
    pub pages_allocated: u64,
    pub pages_resident: u64,
    pub pages_swapped: u64,
}

#[repr(C)]
#[derive(Default)]
struct ShmInfo {
    used_ids: c_int,
    // `unsigned long` in the kernel's struct: 64 bits on the 64-bit targets shmfs supports.
    shm_tot: u64,
    shm_rss: u64,
    shm_swp: u64,
    swap_attempts: u64,
    swap_successes: u64,
}

fn zeroed_ds() -> libc::shmid_ds {
    // SAFETY: shmid_ds is plain old data; all-zero is a valid value.
    unsafe { std::mem::zeroed() }
}

/// `SHM_STAT_ANY` on an index or shmid: the segment in that slot and its full shmid.
fn stat_slot(index_or_id: c_int) -> io::Result<(i32, libc::shmid_ds)> {
    let mut ds = zeroed_ds();
    // SAFETY: ds is a valid, writable shmid_ds.
    let id = unsafe { libc::shmctl(index_or_id, SHM_STAT_ANY, &mut ds) };
    if id < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((id, ds))
}

/// The segment with this shmid, or `ENOENT`. One system call; no attach, no permission needed.
pub(in crate::kernel) fn lookup(shmid: i32) -> io::Result<Segment> {
    if shmid < 0 {
        return Err(io::Error::from_raw_os_error(libc::ENOENT));
    }
    match stat_slot(shmid) {
        Ok((id, ds)) if id == shmid => Ok(Segment::from_ds(id, &ds)),
        Ok(_) => Err(io::Error::from_raw_os_error(libc::ENOENT)),
        // EINVAL: no segment in that slot; EIDRM: removed while we asked.
        Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::EIDRM)) => {
            Err(io::Error::from_raw_os_error(libc::ENOENT))
        }
        Err(e) => Err(e),
    }
}

/// Every segment of the IPC namespace, in index order: what `ipcs -m` lists.
pub(in crate::kernel) fn list() -> io::Result<Vec<Segment>> {
    let mut info = ShmInfo::default();
    // SAFETY: SHM_INFO writes a struct shm_info, which ShmInfo mirrors.
    let max_index = unsafe {
        libc::shmctl(
            0,
            SHM_INFO,
            &mut info as *mut ShmInfo as *mut libc::shmid_ds,
        )
    };
    if max_index < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut segments = Vec::with_capacity(usize::try_from(info.used_ids).unwrap_or(0));
    for index in 0..=max_index {
        match stat_slot(index) {
            Ok((id, ds)) => segments.push(Segment::from_ds(id, &ds)),
            // An empty slot, or a segment removed since SHM_INFO.
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::EIDRM)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(segments)
}

/// The IPC namespace's totals (`ipcs -m -u`).
pub(in crate::kernel) fn totals() -> io::Result<Totals> {
    let mut info = ShmInfo::default();
    // SAFETY: as in `list`.
    let rc = unsafe {
        libc::shmctl(
            0,
            SHM_INFO,
            &mut info as *mut ShmInfo as *mut libc::shmid_ds,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(Totals {
        segments: info.used_ids.max(0) as u64,
        pages_allocated: info.shm_tot,
        pages_resident: info.shm_rss,
        pages_swapped: info.shm_swp,
    })
}

/// The shmid of the live segment with this (non-private) key, or `ENOENT`.
/// `shmget(key, 0, 0)` asks for no access, so the kernel answers any caller.
pub(in crate::kernel) fn id_for_key(key: u32) -> io::Result<i32> {
    if key == 0 {
        return Err(io::Error::from_raw_os_error(libc::ENOENT));
    }
    // SAFETY: plain system call.
    let id = unsafe { libc::shmget(key as libc::key_t, 0, 0) };
    if id < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(id)
}

/// Changes mode bits and owner (`shmctl(IPC_SET)`); the kernel checks the calling thread's
/// credentials, so call it as the requesting user.
pub(in crate::kernel) fn set_perm(shmid: i32, mode: u32, uid: u32, gid: u32) -> io::Result<()> {
    let mut ds = zeroed_ds();
    ds.shm_perm.mode = (mode & 0o777) as u16;
    ds.shm_perm.uid = uid;
    ds.shm_perm.gid = gid;
    // SAFETY: ds is a valid shmid_ds; IPC_SET only reads it.
    let rc = unsafe { libc::shmctl(shmid, libc::IPC_SET, &mut ds) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Marks the segment for removal (`shmctl(IPC_RMID)`); the kernel checks the calling
/// thread's credentials (owner, creator or CAP_SYS_ADMIN).
pub(in crate::kernel) fn remove(shmid: i32) -> io::Result<()> {
    // SAFETY: IPC_RMID does not use the buffer.
    let rc = unsafe { libc::shmctl(shmid, libc::IPC_RMID, std::ptr::null_mut()) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The limits of System V shared memory (`/proc/sys/kernel/shm*`), which are the IPC
/// namespace's own.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    pub shmmax: u64,
    pub shmall: u64,
    pub shmmni: u64,
    pub shm_rmid_forced: u64,
}

/// The limits of the calling thread's IPC namespace: `/proc/sys/kernel` shows the reader's.
pub(in crate::kernel) fn limits() -> io::Result<Limits> {
    let read = |name: &str| -> io::Result<u64> {
        let path = format!("/proc/sys/kernel/{name}");
        let text = std::fs::read_to_string(&path)?;
        text.trim()
            .parse()
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, format!("{path}: {text:?}")))
    };
    Ok(Limits {
        shmmax: read("shmmax")?,
        shmall: read("shmall")?,
        shmmni: read("shmmni")?,
        shm_rmid_forced: read("shm_rmid_forced")?,
    })
}

/// One attachment of a segment to the daemon's address space, detached on drop. Its length
/// is the attached segment's own size, asked of the kernel once attached (never a size
/// looked up before, which may belong to another segment if the shmid was reused meanwhile),
/// and only an attachment made writable can be written through (see [`Attachment::writer`]).
pub struct Attachment {
    addr: *mut u8,
    len: usize,
    writable: bool,
    /// The attached segment, as the kernel described it once attached.
    segment: Option<Segment>,
}

// SAFETY: the mapping is shared memory owned by this struct; access goes through
// volatile-free byte copies that are valid from any thread.
unsafe impl Send for Attachment {}
unsafe impl Sync for Attachment {}

/// Proof that an attachment is writable: the only way to write through one.
pub struct Writer<'a>(&'a Attachment);

impl Attachment {
    /// `shmat` of the segment `shmid` of the calling thread's IPC namespace: the kernel checks
    /// the thread's credentials against the segment's mode (read, or read and write).
    pub(in crate::kernel) fn attach(shmid: i32, writable: bool) -> io::Result<Attachment> {
        let flags = if writable { 0 } else { libc::SHM_RDONLY };
        // SAFETY: the kernel picks the address; failure is reported as (void*)-1.
        let addr = unsafe { libc::shmat(shmid, std::ptr::null(), flags) };
        if addr as isize == -1 {
            return Err(io::Error::last_os_error());
        }
        let mut attachment = Attachment {
            addr: addr as *mut u8,
            len: 0,
            writable,
            segment: None,
        };
        // While attached, the shmid names the attached segment (even if removed meanwhile,
        // its id lives until the last detach): its size is the length of this mapping.
        let segment = lookup(shmid)?;
        attachment.len =
            usize::try_from(segment.size).map_err(|_| io::Error::from_raw_os_error(libc::EFBIG))?;
        attachment.segment = Some(segment);
        Ok(attachment)
    }

    /// The attached segment as the kernel described it once attached: the one whose memory
    /// this is, even if its shmid is looked up again later and names another segment.
    pub fn segment(&self) -> Option<&Segment> {
        self.segment.as_ref()
    }

    /// The attached segment's size in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the attachment has no bytes (never, for a segment).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// What writes through the attachment, if it was made writable.
    pub fn writer(&self) -> Option<Writer<'_>> {
        self.writable.then_some(Writer(self))
    }

    /// Opens the segment's own memory file through `/proc/self/map_files` (needs
    /// CAP_SYS_ADMIN). The file stays valid after this attachment is gone.
    pub fn memory_file(&self, writable: bool) -> io::Result<File> {
        let start = self.addr as usize;
        let maps = std::fs::read_to_string("/proc/self/maps")?;
        let prefix = format!("{start:x}-");
        let range = maps
            .lines()
            .find(|l| l.starts_with(&prefix))
            .and_then(|l| l.split_whitespace().next())
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))?;
        let path = format!("/proc/self/map_files/{range}");
        std::fs::OpenOptions::new()
            .read(true)
            .write(writable)
            .open(path)
    }

    /// Copies bytes out of the segment; returns 0 at or past its end. A page the kernel
    /// cannot provide (a huge page punched out while the pool is empty) ends the read there,
    /// or fails it with EIO if it is the first: never a SIGBUS (see [`copy_in_memory`]).
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let Some(n) = clamp(self.len, offset, buf.len()) else {
            return Ok(0);
        };
        // SAFETY: offset+n is within the attached mapping, which cannot shrink, and `buf` is
        // ours to write.
        unsafe { copy_in_memory(self.addr.add(offset as usize), buf.as_mut_ptr(), n) }
            .map_err(|e| lacking_page(e, libc::EIO))
    }
}

impl Writer<'_> {
    /// Copies bytes into the segment; returns how many fit before its end (0 at or past it).
    /// A page the kernel cannot provide ends the write there, or fails it with ENOSPC if it is
    /// the first (see [`copy_in_memory`]).
    pub fn write_at(&self, data: &[u8], offset: u64) -> io::Result<usize> {
        let a = self.0;
        let Some(n) = clamp(a.len, offset, data.len()) else {
            return Ok(0);
        };
        // SAFETY: as in read_at; a Writer exists only for an attachment made writable.
        unsafe { copy_in_memory(data.as_ptr(), a.addr.add(offset as usize), n) }
            .map_err(|e| lacking_page(e, libc::ENOSPC))
    }
}

/// Copies `len` bytes from `src` to `dst`, both in the daemon's own memory, with
/// process_vm_writev on the daemon itself rather than memcpy. One of the two is a mapping of
/// shared memory whose pages anyone who may write it can free at any moment (MADV_REMOVE,
/// fallocate PUNCH_HOLE); touching such a hole makes the kernel find a page again, and for a
/// huge-page segment with the pool empty it has none: a memcpy would get SIGBUS and the daemon
/// would die, where the kernel copying on our behalf fails with EFAULT (or ENOMEM) instead.
/// Returns how many bytes were copied before the first page that could not be had, an error
/// if that was the first.
///
/// # Safety
/// Both ranges must lie in mappings of the daemon that nothing unmaps meanwhile, `dst` one it
/// may write; a range whose pages cannot be had is allowed.
unsafe fn copy_in_memory(src: *const u8, dst: *mut u8, len: usize) -> io::Result<usize> {
    let mut done = 0;
    while done < len {
        let from = libc::iovec {
            iov_base: src.wrapping_add(done) as *mut libc::c_void,
            iov_len: len - done,
        };
        let to = libc::iovec {
            iov_base: dst.wrapping_add(done) as *mut libc::c_void,
            iov_len: len - done,
        };
        // SAFETY: one iovec each, describing memory of ours as the caller promised; the
        // kernel checks every page and reports one it cannot have as an error.
        let n = unsafe { libc::process_vm_writev(libc::getpid(), &from, 1, &to, 1, 0) };
        match n {
            n if n > 0 => done += n as usize,
            0 => break,
            _ => {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return if done > 0 { Ok(done) } else { Err(e) };
            }
        }
    }
    Ok(done)
}

/// The errno a copy that met a page the kernel could not provide gives its caller: `errno`
/// (ENOSPC for a write, as fallocate answers when the pool is out of huge pages; EIO for a
/// read) instead of EFAULT, which would blame the caller's buffer. Others pass unchanged.
fn lacking_page(e: io::Error, errno: i32) -> io::Error {
    match e.raw_os_error() {
        Some(libc::EFAULT | libc::ENOMEM) => io::Error::from_raw_os_error(errno),
        _ => e,
    }
}

impl Drop for Attachment {
    fn drop(&mut self) {
        // SAFETY: addr came from shmat and is detached once.
        if unsafe { libc::shmdt(self.addr as *const libc::c_void) } != 0 {
            log::warn!("shmdt: {}", io::Error::last_os_error());
        }
    }
}

/// How many bytes of a request of `want` at `offset` fall inside `len`; None if none do.
fn clamp(len: usize, offset: u64, want: usize) -> Option<usize> {
    let offset = usize::try_from(offset).ok()?;
    if offset >= len {
        return None;
    }
    Some(want.min(len - offset))
}

/// True if any huge pages exist or are reserved system-wide (`Hugetlb:` in /proc/meminfo
/// counts every pool size). When none do, no segment can be backed by huge pages.
///
/// Asked for every `stat` of a segment nobody has attached, so the answer is kept for a
/// second: pools are sized by an administrator, not by the moment, and parsing all of
/// /proc/meminfo each time was most of the cost of a `stat`.
pub fn system_has_huge_pages() -> bool {
    use procfs::Current;
    use std::sync::Mutex;
    use std::time::Duration;
    static LAST: Mutex<Option<(Instant, bool)>> = Mutex::new(None);
    let mut last = LAST.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((at, answer)) = *last
        && at.elapsed() < Duration::from_secs(1)
    {
        return answer;
    }
    let answer = match procfs::Meminfo::current() {
        Ok(meminfo) => meminfo.hugetlb.is_none_or(|bytes| bytes != 0),
        Err(_) => true,
    };
    *last = Some((Instant::now(), answer));
    answer
}

/// True if the file lives on hugetlbfs (an `SHM_HUGETLB` segment), where pwrite does not work.
pub fn is_hugetlb_file(file: &File) -> bool {
    // SAFETY: statfs is plain old data.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: valid fd and out-pointer.
    let rc = unsafe { libc::fstatfs(file.as_raw_fd(), &mut st) };
    rc == 0 && st.f_type as i64 == HUGETLBFS_MAGIC
}

/// The huge page size of a file on hugetlbfs (its block size), if it is on one.
pub fn hugetlb_page_size(file: &File) -> Option<u64> {
    // SAFETY: statfs is plain old data.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: valid fd and out-pointer.
    let rc = unsafe { libc::fstatfs(file.as_raw_fd(), &mut st) };
    (rc == 0 && st.f_type as i64 == HUGETLBFS_MAGIC)
        .then_some(st.f_bsize as u64)
        .filter(|size| size.is_power_of_two())
}

/// The device of the kernel's internal hugetlbfs for pages of `page_size`, where huge-page
/// segments (and memfds) live: a user's own hugetlbfs mount has another device. Learned from a
/// memfd of that page size, which allocates nothing.
pub fn internal_hugetlb_dev(page_size: u64) -> io::Result<u64> {
    use std::os::unix::fs::MetadataExt;
    const MFD_HUGE_SHIFT: u32 = 26;
    let flags =
        libc::MFD_CLOEXEC | libc::MFD_HUGETLB | (page_size.trailing_zeros() << MFD_HUGE_SHIFT);
    // SAFETY: a constant NUL-terminated name; the result is checked.
    let fd = unsafe { libc::memfd_create(c"shmfs-hugetlb-probe".as_ptr(), flags) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a descriptor just returned to us and owned by nothing else.
    let file = unsafe { <File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    Ok(file.metadata()?.dev())
}

/// Writes `data` at `offset` of a huge-page segment's memory file, which write(2) refuses:
/// the huge pages under the range are allocated first (fallocate: a machine out of huge pages
/// answers ENOSPC), then the range is mapped, copied into and unmapped. Mapping the file
/// directly goes around the segment's attach accounting: nothing `ipcs` shows moves.
///
/// Anyone who may write the segment can punch its pages out again between the fallocate and
/// the copy; with the pool empty the copy then meets a page the kernel cannot provide. It is
/// made with [`copy_in_memory`], so that this ends the write (ENOSPC if nothing was copied,
/// else the count copied) instead of the daemon. Returns how many bytes were written.
pub fn write_hugetlb(file: &File, data: &[u8], offset: u64) -> io::Result<usize> {
    if data.is_empty() {
        return Ok(0);
    }
    let page = hugetlb_page_size(file).ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
    let end = offset
        .checked_add(data.len() as u64)
        .ok_or_else(|| io::Error::from_raw_os_error(libc::EFBIG))?;
    let start = offset & !(page - 1);
    let map_end = end.div_ceil(page) * page;
    let len =
        usize::try_from(map_end - start).map_err(|_| io::Error::from_raw_os_error(libc::EFBIG))?;
    let fd = file.as_raw_fd();
    let (Ok(off), Ok(flen)) = (libc::off_t::try_from(start), libc::off_t::try_from(len)) else {
        return Err(io::Error::from_raw_os_error(libc::EFBIG));
    };
    // SAFETY: plain syscall on a valid descriptor.
    if unsafe { libc::fallocate(fd, libc::FALLOC_FL_KEEP_SIZE, off, flen) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new shared mapping of our own descriptor, checked for failure below.
    let addr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd,
            off,
        )
    };
    if addr == libc::MAP_FAILED {
        // ENOMEM: a page punched out since the fallocate, which the pool cannot reserve again.
        return Err(lacking_page(io::Error::last_os_error(), libc::ENOSPC));
    }
    // SAFETY: [offset, end) lies within [start, map_end), all mapped, writable and ours
    // alone until the munmap right after; `data` is ours to read.
    let copied = unsafe {
        let copied = copy_in_memory(
            data.as_ptr(),
            (addr as *mut u8).add((offset - start) as usize),
            data.len(),
        );
        libc::munmap(addr, len);
        copied
    };
    copied.map_err(|e| lacking_page(e, libc::ENOSPC))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipcperms_rules() {
        let mut seg = Segment {
            shmid: 1,
            key: 0,
            size: 1,
            mode: 0o640,
            uid: 10,
            gid: 20,
            cuid: 11,
            cgid: 21,
            cpid: 0,
            lpid: 0,
            nattch: 0,
            atime: 0,
            dtime: 0,
            ctime: 0,
            dest: false,
            locked: false,
        };
        let groups = |list: &'static [u32]| move |gid: u32| list.contains(&gid);
        assert!(ipc_permits(&seg, 10, groups(&[]), 6));
        assert!(
            ipc_permits(&seg, 11, groups(&[]), 6),
            "creator has owner rights"
        );
        assert!(
            ipc_permits(&seg, 99, groups(&[21]), 4),
            "creator's group has group rights"
        );
        assert!(!ipc_permits(&seg, 99, groups(&[20]), 2));
        assert!(!ipc_permits(&seg, 99, groups(&[]), 4));
        assert!(
            !ipc_permits(&seg, 0, groups(&[]), 4),
            "uid 0 is no one special: CAP_IPC_OWNER is weighed apart"
        );
        seg.mode = 0o604;
        assert!(
            !ipc_permits(&seg, 99, groups(&[20]), 4),
            "group class does not fall back to other"
        );
        assert!(ipc_permits(&seg, 99, groups(&[]), 4));
    }

    #[test]
    fn clamp_stops_at_end() {
        assert_eq!(clamp(10, 0, 4), Some(4));
        assert_eq!(clamp(10, 8, 4), Some(2));
        assert_eq!(clamp(10, 10, 4), None);
        assert_eq!(clamp(10, u64::MAX, 4), None);
    }

    fn shmget(size: usize) -> i32 {
        // SAFETY: plain system call.
        let id = unsafe { libc::shmget(libc::IPC_PRIVATE, size, libc::IPC_CREAT | 0o600) };
        assert!(id >= 0, "shmget: {}", io::Error::last_os_error());
        id
    }

    fn rmid(id: i32) {
        // SAFETY: plain system call.
        unsafe { libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()) };
    }

    #[test]
    fn an_attachment_has_its_segments_length_and_writes_only_if_writable() {
        let id = shmget(5000);
        let ro = Attachment::attach(id, false).unwrap();
        assert_eq!(ro.len(), 5000);
        assert!(
            ro.writer().is_none(),
            "a read-only attachment has no writer"
        );
        let rw = Attachment::attach(id, true).unwrap();
        let writer = rw.writer().expect("a writable attachment has a writer");
        assert_eq!(writer.write_at(b"abcd", 4998).unwrap(), 2);
        let mut buf = [0; 4];
        assert_eq!(ro.read_at(&mut buf, 4998).unwrap(), 2);
        assert_eq!(&buf[..2], b"ab");
        assert_eq!(ro.read_at(&mut buf, 5000).unwrap(), 0);
        rmid(id);
    }

    /// A shmid looked up, removed and reused by a smaller segment before the attach: the
    /// attachment is as long as the segment it attached, not as the one looked up.
    #[test]
    fn a_reused_shmid_gives_the_new_segments_length() {
        // On a thread of its own, whatever thread the harness runs tests on: it leaves the
        // machine's IPC namespace.
        std::thread::spawn(reuse_a_shmid).join().unwrap();
    }

    fn reuse_a_shmid() {
        // A private IPC namespace for this thread, so that shm_next_id is ours alone.
        // SAFETY: plain system call, affecting this test's thread only.
        if unsafe { libc::unshare(libc::CLONE_NEWIPC) } != 0 {
            eprintln!(
                "skipped: unshare(CLONE_NEWIPC): {}",
                io::Error::last_os_error()
            );
            return;
        }
        let old = shmget(8192);
        let looked_up = lookup(old).unwrap();
        assert_eq!(looked_up.size, 8192);
        rmid(old);
        std::fs::write("/proc/sys/kernel/shm_next_id", old.to_string()).unwrap();
        let new = shmget(4096);
        assert_eq!(new, old, "shm_next_id reuses the shmid");
        let a = Attachment::attach(looked_up.shmid, false).unwrap();
        assert_eq!(a.len(), 4096);
        let mut buf = vec![0; 8192];
        assert_eq!(a.read_at(&mut buf, 0).unwrap(), 4096);
        assert_eq!(
            a.read_at(&mut buf, 4096).unwrap(),
            0,
            "nothing past the new segment's end"
        );
        drop(a);
        rmid(new);
    }
}
