//! System V segments as a kind: `sysv/SHMID/` and `by-key/0xKEY`. Their memory is reached
//! through an attacher's mapping proved to be the segment, or by a brief attach
//! (docs/design.md "What touches a segment").

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use crate::fs::error::{Error, Result};
use crate::fs::inode::{Name, ObjectId, Part, Scope};
use crate::fs::kind::{
    AttachRecord, Env, Kind, MEMORY_FILES, Object, OpenData, Space, parse_ipc_id, read_full,
    refuse_bits_beyond_0777, refused_input, shown,
};
use crate::fs::source::SegmentMemory;
use crate::fs::types::{How, SetTime};
use crate::kernel::attach;
use crate::kernel::creds::{self, Caller};
use crate::kernel::memory;
use crate::kernel::object::Meta;
use crate::kernel::sysv::{self, Segment};
use crate::render::index::{self, Owners};
use crate::render::metrics::{self, Detail};
use crate::render::text;

/// This kind's index in the registry (`fs::kinds`).
pub(super) const INDEX: usize = 0;

/// The kind: every segment of the namespace.
pub(super) struct Segments;

/// A segment as looked up now.
struct Seg(Segment, Scope);

fn errno(code: i32) -> Error {
    Error::refused(code)
}

fn id_of(seg: &Segment, ns: Scope) -> ObjectId {
    let (cuid, cgid, cpid, size) = seg.incarnation();
    ObjectId {
        ns,
        kind: INDEX,
        name: Name::Number(seg.shmid as u32),
        stamp: [
            (u64::from(cuid) << 32) | u64::from(cgid),
            cpid as u32 as u64,
            size,
        ],
    }
}

impl Kind for Segments {
    fn dir_name(&self) -> &'static str {
        "sysv"
    }

    fn files(&self) -> &'static [(&'static str, Part)] {
        &MEMORY_FILES
    }

    fn list(&self, env: &Env) -> Result<Vec<Box<dyn Object>>> {
        Ok(env
            .source
            .segments()?
            .into_iter()
            .map(|seg| Box::new(Seg(seg, env.ns)) as Box<dyn Object>)
            .collect())
    }

    fn ids(&self, env: &Env) -> io::Result<Vec<ObjectId>> {
        Ok(env
            .source
            .segments()?
            .iter()
            .map(|seg| id_of(seg, env.ns))
            .collect())
    }

    fn find(&self, env: &Env, name: &OsStr) -> Result<Box<dyn Object>> {
        let shmid = parse_ipc_id(name).ok_or_else(|| errno(libc::ENOENT))?;
        Ok(Box::new(Seg(env.source.segment(shmid)?, env.ns)))
    }

    fn get(&self, env: &Env, id: &ObjectId) -> Result<Box<dyn Object>> {
        let Name::Number(shmid) = id.name else {
            return Err(errno(libc::ENOENT));
        };
        let shmid = i32::try_from(shmid).map_err(|_| errno(libc::ENOENT))?;
        let seg = env.source.segment(shmid)?;
        if id_of(&seg, env.ns) != *id {
            return Err(errno(libc::ENOENT));
        }
        Ok(Box::new(Seg(seg, env.ns)))
    }

    fn has_keys(&self) -> bool {
        true
    }

    fn index_rows(&self, env: &Env, _who: &Caller, owners: &mut Owners) -> Result<Vec<index::Row>> {
        let usage = env
            .source
            .segments_usage()
            .inspect_err(|e| log::warn!("reading /proc/sysvipc/shm: {e}"))?;
        Ok(env
            .source
            .segments()?
            .iter()
            .map(|s| {
                let u = usage.get(&s.shmid).copied().unwrap_or_default();
                index::Row::sysv(s, u, owners.name(s.uid))
            })
            .collect())
    }

    /// One listing of segments (and with [`Detail::All`] one fresh reading of their usage,
    /// which then serves `stat` too), no attach; plus the system's limits and totals. With
    /// [`Detail::Totals`] the usage and the owners' names are not read.
    fn metrics(
        &self,
        env: &Env,
        _who: &Caller,
        detail: Detail,
        owners: &mut Owners,
        namespace: Option<u64>,
        series: &mut metrics::Out,
        totals: Option<&mut metrics::Out>,
    ) -> Result<()> {
        let segments = env.source.segments()?;
        if detail == Detail::All {
            let usage = env
                .source
                .segments_usage()
                .inspect_err(|e| log::warn!("reading /proc/sysvipc/shm: {e}"))?;
            let owners = owners.names_of(segments.iter().map(|s| s.uid));
            metrics::segment_series_in(series, namespace, &segments, &usage, owners);
        }
        match totals {
            Some(totals) => self.totals(env, &segments, totals),
            None => Ok(()),
        }
    }

    fn limits(&self, env: &Env) -> Result<Option<String>> {
        let limits = env.source.sysv_limits()?;
        Ok(Some(text::limits(&text::Limits {
            shmmax: limits.shmmax,
            shmall: limits.shmall,
            shmmni: limits.shmmni,
            shm_rmid_forced: limits.shm_rmid_forced,
            totals: env.source.sysv_totals()?,
        })))
    }

    /// Segments' sizes count as capacity, their resident pages as used (pages of 4 KiB, as
    /// SHM_INFO counts them on the systems shmfs runs on).
    fn space(&self, env: &Env) -> Result<Space> {
        const PAGE: u64 = 4096;
        let totals = env.source.sysv_totals()?;
        Ok(Space {
            bytes: totals.pages_allocated.saturating_mul(PAGE),
            used: totals.pages_resident.saturating_mul(PAGE),
            files: totals.segments,
            files_free: 0,
            block_size: None,
        })
    }

    fn with_key(&self, env: &Env, key: u32) -> Result<Option<Box<dyn Object>>> {
        let seg = env.source.segment(env.source.segment_with_key(key)?)?;
        if seg.key != key {
            return Err(errno(libc::ENOENT));
        }
        Ok(Some(Box::new(Seg(seg, env.ns))))
    }
}

impl Segments {
    /// The System V totals of `metrics.prom`.
    fn totals(&self, env: &Env, segments: &[Segment], out: &mut metrics::Out) -> Result<()> {
        let limits = env.source.sysv_limits()?;
        let totals = env.source.sysv_totals()?;
        let system = metrics::System {
            shmmax: limits.shmmax,
            shmall: limits.shmall,
            shmmni: limits.shmmni,
            pages_allocated: totals.pages_allocated,
            pages_resident: totals.pages_resident,
            pages_swapped: totals.pages_swapped,
            page_size: memory::page_size(),
            ..metrics::System::default()
        };
        metrics::sysv_totals(out, segments, &system);
        Ok(())
    }
}

/// The kernel's ipcperms verdict for the caller: its mode bits (uid, gid and supplementary
/// groups), or CAP_IPC_OWNER, looked up only when the mode bits refuse.
fn permits(who: &Caller, seg: &Segment, want: u32) -> bool {
    sysv::ipc_permits(seg, who.uid, |gid| who.in_group(gid), want)
        || who.has_cap(creds::cap::IPC_OWNER)
}

impl Object for Seg {
    fn id(&self) -> ObjectId {
        id_of(&self.0, self.1)
    }

    fn meta(&self) -> Meta {
        self.0.meta()
    }

    fn key(&self) -> Option<u32> {
        (self.0.key != 0).then_some(self.0.key)
    }

    fn blocks(&self, env: &Env) -> Result<u64> {
        Ok(env.source.segment_usage(self.0.shmid)?.rss / 512)
    }

    fn stat_text(&self, env: &Env) -> Result<String> {
        let seg = &self.0;
        let usage = env.source.segment_usage(seg.shmid).inspect_err(|e| {
            log::warn!("reading /proc/sysvipc/shm for shmid {}: {e}", seg.shmid)
        })?;
        Ok(text::sysv_stat(seg, usage, hugetlb(env, seg)))
    }

    fn may_change_perm(&self, who: &Caller) -> bool {
        let seg = &self.0;
        who.uid == seg.uid || who.uid == seg.cuid || who.has_cap(creds::cap::SYS_ADMIN)
    }

    fn perm_changers(&self) -> &'static str {
        ", creator or CAP_SYS_ADMIN"
    }

    /// A segment cannot hold set-user-ID, set-group-ID or sticky bits (IPC_SET keeps only
    /// 0777): a mode with any of them is refused with EINVAL rather than cut silently.
    fn change_perm(
        &self,
        env: &Env,
        op: &str,
        who: &Caller,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
    ) -> Result<()> {
        let seg = &self.0;
        refuse_bits_beyond_0777(
            self,
            op,
            who,
            &shown("sysv", &self.id().name.to_os_string()),
            "System V segment",
            mode,
        )?;
        Ok(creds::as_caller(who, || {
            env.source.set_segment_perm(
                seg.shmid,
                mode.unwrap_or(seg.mode) & 0o777,
                uid.unwrap_or(seg.uid),
                gid.unwrap_or(seg.gid),
            )
        })?)
    }

    /// A segment's times are the kernel's own and cannot be set: as utimensat(UTIME_NOW) on a
    /// file, it succeeds without effect for its owner (or CAP_FOWNER) or a writer.
    fn set_times(
        &self,
        _env: &Env,
        who: &Caller,
        _atime: Option<SetTime>,
        _mtime: Option<SetTime>,
    ) -> Result<()> {
        let seg = &self.0;
        let owner = who.uid == seg.uid || who.uid == seg.cuid;
        if owner || permits(who, seg, 2) || who.has_cap(creds::cap::FOWNER) {
            Ok(())
        } else {
            Err(errno(libc::EACCES))
        }
    }

    fn check_data_access(&self, _env: &Env, who: &Caller, want: u32) -> Result<()> {
        if permits(who, &self.0, want) {
            Ok(())
        } else {
            Err(errno(libc::EACCES))
        }
    }

    fn remove(&self, env: &Env) -> io::Result<()> {
        env.source.remove_segment(self.0.shmid)
    }

    fn may_outlive_removal(&self) -> bool {
        true
    }

    fn holders(&self, _env: &Env) -> Option<attach::Target> {
        Some(attach::Target::Sysv {
            shmid: self.0.shmid,
        })
    }

    fn attach_record(&self) -> Option<AttachRecord> {
        let seg = &self.0;
        Some(AttachRecord {
            count: seg.nattch,
            stamp: (seg.lpid, seg.atime, seg.dtime),
        })
    }

    fn open_data(&self, env: &Env, who: &Caller, flags: i32) -> Result<Box<dyn OpenData>> {
        let writable = flags & libc::O_ACCMODE != libc::O_RDONLY;
        let seg = self.0.clone();
        let id = self.id();
        if let Some(file) = attached_memory(env, who, &seg, writable)? {
            let hugetlb = sysv::is_hugetlb_file(&file);
            remember_hugetlb(env, &id, hugetlb);
            let access = if hugetlb {
                SegmentMemory::HugeFile(file)
            } else {
                SegmentMemory::File(file)
            };
            return Ok(Box::new(OpenSegment { id, seg, access }));
        }
        let attachment = creds::as_caller(who, || env.source.attach_segment(&seg, writable))
            .map_err(|e| match e.raw_os_error() {
                // Removed between the lookup and the attach.
                Some(libc::EINVAL | libc::EIDRM) => errno(libc::ESTALE),
                _ => Error::from(e),
            })?;
        let (access, hugetlb) = env
            .source
            .segment_memory(attachment, writable)
            .map_err(Error::unexpected)?;
        if let Some(yes) = hugetlb {
            remember_hugetlb(env, &id, yes);
        }
        Ok(Box::new(OpenSegment { id, seg, access }))
    }

    fn truncate(&self, _env: &Env, who: &Caller, size: u64, checked: bool) -> Result<()> {
        let seg = &self.0;
        // truncate(2) needs write permission, as for any file; an open handle (O_TRUNC,
        // ftruncate) was checked when it was opened for writing.
        if !checked && !permits(who, seg, 2) {
            return Err(errno(libc::EACCES));
        }
        fixed_size(who, &self.id(), size, seg.size)
    }
}

/// A segment's size is fixed: truncating to 0 (O_TRUNC, `>`) or to its own size is accepted
/// and changes nothing, like a block device; any other size is EINVAL, with the reason logged.
fn fixed_size(who: &Caller, id: &ObjectId, size: u64, seg_size: u64) -> Result<()> {
    if size == 0 || size == seg_size {
        return Ok(());
    }
    Err(refused_input(
        "truncate",
        who,
        &shown("sysv", &id.name.to_os_string()),
        &format!(
            "size {size}: a segment's size is fixed ({seg_size}); only 0 or {seg_size} are accepted"
        ),
    ))
}

/// The segment's memory reached through another process's mapping, with no `shmat`
/// (nothing of what `ipcs` shows moves), once the caller's right is checked as `shmat`
/// would check it (read, or read and write: EACCES). None if no mapping is proved to be
/// this segment (none at all, no fingerprint yet, huge pages: see `Source::attached_memory`)
/// or the segment changed meanwhile: then it is attached briefly.
fn attached_memory(env: &Env, who: &Caller, seg: &Segment, writable: bool) -> Result<Option<File>> {
    let file = match env.source.attached_memory(seg, writable) {
        Ok(Some(file)) => file,
        Ok(None) => return Ok(None),
        Err(e) => {
            log::debug!("segment {} through another mapping: {e}", seg.shmid);
            return Ok(None);
        }
    };
    let want = if writable { 6 } else { 4 };
    if !permits(who, seg, want) {
        return Err(errno(libc::EACCES));
    }
    // The file is the segment with this shmid; a shmid reused since the lookup would be
    // another segment than the one the caller's right was checked on.
    match env.source.segment(seg.shmid) {
        Ok(now) if now.incarnation() == seg.incarnation() => Ok(Some(file)),
        _ => Ok(None),
    }
}

/// Remembers in the object's block (while the kernel holds it) whether it uses huge pages.
fn remember_hugetlb(env: &Env, id: &ObjectId, yes: bool) {
    env.inodes
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .set_hugetlb(id, yes);
}

/// Whether a segment uses huge pages: learned from an open of its memory, or "no" when the
/// system has no huge pages at all, or read from an attacher's maps (its last and creating
/// pids first, each read bounded in time: see `crate::kernel::proc_read`). What the maps told
/// (or that they told nothing) is remembered until the segment's attach record (`lpid`,
/// `atime`) changes, so that a stalled attacher is not asked again at every `stat`, and not
/// for longer, so that an attacher holding a look-alike cannot fix the answer.
fn hugetlb(env: &Env, seg: &Segment) -> Option<bool> {
    let inodes = || env.inodes.lock().unwrap_or_else(|p| p.into_inner());
    let id = id_of(seg, env.ns);
    let known = inodes().hugetlb(&id);
    if known.is_some() {
        return known;
    }
    if !sysv::system_has_huge_pages() {
        return Some(false);
    }
    if seg.nattch == 0 {
        return None;
    }
    let record = (seg.lpid, seg.atime);
    if let Some((at, answer)) = inodes().hugetlb_looked(&id)
        && at == record
    {
        return answer;
    }
    let candidates: Vec<u32> = [seg.lpid, seg.cpid]
        .iter()
        .filter_map(|&p| u32::try_from(p).ok())
        .collect();
    let found = attach::sysv_hugetlb(seg.shmid, &candidates).or_else(|| {
        let mut pids: Vec<u32> = env
            .source
            .holders(&attach::Target::Sysv { shmid: seg.shmid })
            .unwrap_or_default()
            .iter()
            .map(|h| h.pid)
            .filter(|pid| !candidates.contains(pid))
            .collect();
        pids.dedup();
        attach::sysv_hugetlb(seg.shmid, &pids)
    });
    inodes().set_hugetlb_looked(&id, record, found);
    found
}

/// An open segment `data`.
struct OpenSegment {
    id: ObjectId,
    /// The segment as it was at open: what fstat answers once it is gone.
    seg: Segment,
    access: SegmentMemory,
}

impl OpenData for OpenSegment {
    fn id(&self) -> &ObjectId {
        &self.id
    }

    fn object(&self) -> Result<Box<dyn Object>> {
        Ok(Box::new(Seg(self.seg.clone(), self.id.ns)))
    }

    /// Reads of read-only opens of a segment's memory file may go straight to the memory;
    /// writes are served here, clamped at the segment's end. Kept attachments and huge-page
    /// files are always served here.
    fn how(&self, flags: i32) -> How {
        match self.access {
            SegmentMemory::File(_) => How::Passthrough {
                served_here: flags & libc::O_ACCMODE != libc::O_RDONLY,
            },
            _ => How::DirectIo,
        }
    }

    fn memory_file(&self) -> Option<&File> {
        match &self.access {
            SegmentMemory::File(file) => Some(file),
            _ => None,
        }
    }

    fn read_len(&self, offset: u64, size: u32) -> usize {
        self.seg.size.saturating_sub(offset).min(u64::from(size)) as usize
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        match &self.access {
            SegmentMemory::File(f) | SegmentMemory::HugeFile(f) => read_full(f, buf, offset),
            SegmentMemory::Attached(a) => a.read_at(buf, offset),
        }
    }

    fn write_at(&self, data: &[u8], offset: u64) -> Result<u32> {
        let size = self.seg.size;
        if offset >= size {
            return Err(errno(libc::ENOSPC));
        }
        let mut n = (data.len() as u64).min(size - offset) as usize;
        match &self.access {
            SegmentMemory::File(f) => f.write_all_at(&data[..n], offset)?,
            SegmentMemory::HugeFile(f) => n = sysv::write_hugetlb(f, &data[..n], offset)?,
            // A read-only open never gets here (the kernel refuses write() on it); should
            // one, it is refused, not a write into read-only memory.
            SegmentMemory::Attached(a) => {
                let writer = a.writer().ok_or_else(|| errno(libc::EBADF))?;
                n = writer.write_at(&data[..n], offset)?;
                if n == 0 {
                    return Err(errno(libc::ENOSPC));
                }
            }
        }
        Ok(n as u32)
    }

    fn truncate(&self, who: &Caller, size: u64) -> Result<()> {
        fixed_size(who, &self.id, size, self.seg.size)
    }
}
