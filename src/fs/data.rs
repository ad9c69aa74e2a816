//! `data`: opening a segment's or object's memory, reading and writing it, truncation.

use super::*;

impl ShmFs {
    /// Drops the kernel's cached pages of `ino` in a range just written here.
    pub(super) fn invalidate_cache(&self, ino: u64, offset: u64, len: u64) {
        if let Some(cache) = self.kernel_cache.get() {
            // ENOENT: the kernel holds no such inode any more; nothing to drop.
            let _ = cache.invalidate(ino, offset, len);
        }
    }

    pub(super) fn open_data(&self, who: &Caller, id: &ObjectId, flags: i32) -> Result<Handle> {
        let writable = flags & libc::O_ACCMODE != libc::O_RDONLY;
        if writable && self.options.read_only {
            return Err(errno(libc::EROFS));
        }
        // EMFILE past the account's share: logged there, routine here.
        let share = self
            .fd_shares
            .take(self.accounts.of(who.uid))
            .map_err(|e| errno(e.raw_os_error().unwrap_or(libc::EMFILE)))?;
        match self.live(id)? {
            Live::Sysv(seg) => {
                if let Some(file) = self.attached_memory(who, &seg, writable)? {
                    let hugetlb = sysv::is_hugetlb_file(&file);
                    self.remember_hugetlb(id.clone(), hugetlb);
                    let access = if hugetlb {
                        SegmentMemory::HugeFile(file)
                    } else {
                        SegmentMemory::File(file)
                    };
                    return Ok(Handle::SysvData {
                        size: seg.size,
                        seg,
                        access,
                        _share: share,
                    });
                }
                let attachment =
                    creds::as_caller(who, || self.source.attach_segment(&seg, writable)).map_err(
                        |e| match e.raw_os_error() {
                            // Removed between the lookup and the attach.
                            Some(libc::EINVAL | libc::EIDRM) => errno(libc::ESTALE),
                            _ => Error::from(e),
                        },
                    )?;
                let (access, hugetlb) = self
                    .source
                    .segment_memory(attachment, writable)
                    .map_err(Error::unexpected)?;
                if let Some(yes) = hugetlb {
                    self.remember_hugetlb(id.clone(), yes);
                }
                Ok(Handle::SysvData {
                    size: seg.size,
                    seg,
                    access,
                    _share: share,
                })
            }
            Live::Posix(obj) => {
                let file =
                    creds::as_caller(who, || self.source.open_object(&obj.name, obj.ino, flags))?;
                Ok(Handle::PosixData {
                    id: id.clone(),
                    file,
                    _share: share,
                })
            }
        }
    }

    /// The segment's memory reached through another process's mapping, with no `shmat`
    /// (nothing of what `ipcs` shows moves), once the caller's right is checked as `shmat`
    /// would check it (read, or read and write: EACCES). None if no mapping is proved to be
    /// this segment (none at all, no fingerprint yet, huge pages: see [`Source::attached_memory`])
    /// or the segment changed meanwhile: then it is attached briefly.
    fn attached_memory(&self, who: &Caller, seg: &Segment, writable: bool) -> Result<Option<File>> {
        let file = match self.source.attached_memory(seg, writable) {
            Ok(Some(file)) => file,
            Ok(None) => return Ok(None),
            Err(e) => {
                log::debug!("segment {} through another mapping: {e}", seg.shmid);
                return Ok(None);
            }
        };
        let want = if writable { 6 } else { 4 };
        if !sysv_permits(who, seg, want) {
            return Err(errno(libc::EACCES));
        }
        // The file is the segment with this shmid; a shmid reused since the lookup would be
        // another segment than the one the caller's right was checked on.
        match self.source.segment(seg.shmid) {
            Ok(now) if now.incarnation() == seg.incarnation() => Ok(Some(file)),
            _ => Ok(None),
        }
    }

    pub(super) fn truncate(
        &self,
        who: &Caller,
        id: &ObjectId,
        size: u64,
        fh: Option<u64>,
    ) -> Result<()> {
        if self.options.read_only {
            return Err(errno(libc::EROFS));
        }
        // ftruncate and O_TRUNC act on the open object, even if it is gone from the directory.
        if let Some(handle) = fh.and_then(|fh| self.handle(fh).ok()) {
            match &*handle {
                Handle::PosixData { file, .. } => return Ok(file.set_len(size)?),
                Handle::SysvData { size: seg_size, .. } => {
                    return if size == 0 || size == *seg_size {
                        Ok(())
                    } else {
                        Err(fixed_size(who, id, size, *seg_size))
                    };
                }
                _ => {}
            }
        }
        match self.live(id)? {
            Live::Sysv(seg) => {
                // truncate(2) needs write permission, as for any file; an open handle (O_TRUNC,
                // ftruncate) was checked when it was opened for writing.
                if fh.is_none() && !sysv_permits(who, &seg, 2) {
                    return Err(errno(libc::EACCES));
                }
                // A segment's size is fixed: truncating to 0 (O_TRUNC, `>`) or to its own size
                // is accepted and changes nothing, like a block device.
                if size == 0 || size == seg.size {
                    Ok(())
                } else {
                    Err(fixed_size(who, id, size, seg.size))
                }
            }
            Live::Posix(obj) => Ok(creds::as_caller(who, || {
                self.source.truncate_object(&obj.name, obj.ino, size)
            })?),
        }
    }

    /// Reads from an open file and hands the bytes to `send`, through a buffer reused by
    /// each worker thread (a fresh megabyte per request would cost page faults every time).
    pub(super) fn read_handle(
        &self,
        handle: &Handle,
        offset: u64,
        size: u32,
        send: impl FnOnce(&[u8]),
    ) -> Result<()> {
        let (source, len) = match handle {
            Handle::Text { text: t, .. } | Handle::Perm { text: t, .. } => {
                let start = usize::try_from(offset).unwrap_or(usize::MAX).min(t.len());
                let end = start.saturating_add(size as usize).min(t.len());
                send(&t[start..end]);
                return Ok(());
            }
            Handle::SysvData {
                size: seg_size,
                access,
                ..
            } => {
                let len = seg_size.saturating_sub(offset).min(u64::from(size)) as usize;
                (Ok(access), len)
            }
            Handle::PosixData { file, .. } => (Err(file), size as usize),
            Handle::Dir(_) => return Err(errno(libc::EISDIR)),
        };
        with_read_buffer(len, |buf| {
            let n = match source {
                Ok(SegmentMemory::File(f) | SegmentMemory::HugeFile(f)) | Err(f) => {
                    read_full(f, buf, offset)?
                }
                Ok(SegmentMemory::Attached(a)) => a.read_at(buf, offset)?,
            };
            send(&buf[..n]);
            Ok(())
        })
    }

    pub(super) fn write_handle(&self, handle: &Handle, offset: u64, data: &[u8]) -> Result<u32> {
        let len = u32::try_from(data.len()).map_err(|_| errno(libc::EINVAL))?;
        match handle {
            Handle::Perm { id, opener, .. } => {
                // A read-only open never gets here: the kernel refuses write() on it.
                let opener = opener.as_ref().ok_or_else(|| errno(libc::EBADF))?;
                self.write_perm(opener, id, data)?;
                Ok(len)
            }
            Handle::SysvData { size, access, .. } => {
                if offset >= *size {
                    return Err(errno(libc::ENOSPC));
                }
                let mut n = (data.len() as u64).min(size - offset) as usize;
                match access {
                    SegmentMemory::File(f) => f.write_all_at(&data[..n], offset)?,
                    SegmentMemory::HugeFile(f) => n = sysv::write_hugetlb(f, &data[..n], offset)?,
                    // A read-only open never gets here (the kernel refuses write() on it);
                    // should one, it is refused, not a write into read-only memory.
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
            Handle::PosixData { file: f, .. } => {
                f.write_all_at(data, offset)?;
                Ok(len)
            }
            Handle::Text { .. } | Handle::Dir(_) => Err(errno(libc::EBADF)),
        }
    }
}

thread_local! {
    static READ_BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `f` on this thread's read buffer, grown to at least `len` bytes.
fn with_read_buffer<R>(len: usize, f: impl FnOnce(&mut [u8]) -> R) -> R {
    READ_BUFFER.with_borrow_mut(|buf| {
        if buf.len() < len {
            buf.resize(len, 0);
        }
        f(&mut buf[..len])
    })
}

/// pread until `buf` is full or the end of the file.
fn read_full(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
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

/// A truncate of a segment's `data` to a size it cannot take: EINVAL, with the reason logged.
fn fixed_size(who: &Caller, id: &ObjectId, size: u64, seg_size: u64) -> Error {
    refused_input(
        "truncate",
        who,
        id,
        &format!(
            "size {size}: a segment's size is fixed ({seg_size}); only 0 or {seg_size} are accepted"
        ),
    )
}
