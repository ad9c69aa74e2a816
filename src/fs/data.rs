//! `data`: opening a segment's or object's memory, reading and writing it, truncation, and
//! the passthrough backings that let the kernel reach the memory directly.

use super::*;

impl ShmFs {
    /// Drops the kernel's cached pages of `ino` in a range just written here.
    pub(super) fn invalidate_cache(&self, ino: u64, offset: u64, len: usize) {
        if let Some(notifier) = self.notifier.get() {
            // ENOENT: the kernel holds no such inode any more; nothing to drop.
            let _ = notifier.inval_inode(INodeNo(ino), offset as i64, len as i64);
        }
    }

    pub(super) fn open_data(
        &self,
        who: &Caller,
        id: &ObjectId,
        flags: OpenFlags,
    ) -> Result<Handle> {
        let writable = flags.acc_mode() != OpenAccMode::O_RDONLY;
        if writable && self.options.read_only {
            return Err(errno(libc::EROFS));
        }
        let share = self.fd_shares.take(who.uid)?;
        match self.live(id)? {
            Live::Sysv(seg) => {
                let attachment =
                    creds::as_caller(who, || Attachment::attach(seg.shmid, seg.size, writable))
                        .map_err(|e| match e.raw_os_error() {
                            // Removed between the lookup and the attach.
                            Some(libc::EINVAL | libc::EIDRM) => errno(libc::ESTALE),
                            _ => Error::from(e),
                        })?;
                let access = if creds::daemon_is_root() {
                    match attachment.memory_file(writable) {
                        Ok(file) if !sysv::is_hugetlb_file(&file) => {
                            self.remember_hugetlb(id.clone(), false);
                            SysvAccess::File(file)
                        }
                        Ok(_) => {
                            self.remember_hugetlb(id.clone(), true);
                            SysvAccess::Attached(attachment)
                        }
                        // Out of descriptors: an error, not an attachment kept open that would
                        // show in nattch until close.
                        Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) => {
                            return Err(Error::unexpected(e));
                        }
                        Err(e) => {
                            log::debug!("map_files of shmid {}: {e}; keeping attached", seg.shmid);
                            SysvAccess::Attached(attachment)
                        }
                    }
                } else {
                    SysvAccess::Attached(attachment)
                };
                Ok(Handle::SysvData {
                    size: seg.size,
                    seg,
                    access,
                    _share: share,
                })
            }
            Live::Posix(obj) => {
                let file =
                    creds::as_caller(who, || self.shm.open_object(&obj.name, obj.ino, flags.0))?;
                Ok(Handle::PosixData {
                    id: id.clone(),
                    file,
                    _share: share,
                })
            }
        }
    }

    pub(super) fn truncate(
        &self,
        who: &Caller,
        id: &ObjectId,
        size: u64,
        fh: Option<FileHandle>,
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
                        Err(errno(libc::EINVAL))
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
                    Err(errno(libc::EINVAL))
                }
            }
            Live::Posix(obj) => Ok(creds::as_caller(who, || {
                self.shm.truncate(&obj.name, obj.ino, size)
            })?),
        }
    }

    /// The shared passthrough backing of a `data` inode, registering `file` if it has none.
    pub(super) fn backing(
        &self,
        ino: u64,
        memory: Option<&File>,
        register: impl FnOnce() -> Result<BackingId>,
    ) -> Result<Arc<BackingId>> {
        let identity = memory.and_then(file_identity);
        let mut backings = self.backings.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(existing) = backings.get(&ino)
            && let Some(id) = existing.id.upgrade()
        {
            // Two objects can share an identity for the inode table (a segment recreated with
            // the same shmid, creator and size, as CRIU does): never let the new one read
            // through the old one's memory. Its inode is forgotten, and ESTALE makes the
            // kernel look it up again and get fresh numbers.
            if identity.is_some()
                && existing.file_identity.is_some()
                && identity != existing.file_identity
            {
                return Err(errno(libc::ESTALE));
            }
            return Ok(id);
        }
        backings.retain(|_, b| b.id.strong_count() > 0);
        let backing = Arc::new(register()?);
        backings.insert(
            ino,
            Backing {
                id: Arc::downgrade(&backing),
                file_identity: identity,
            },
        );
        Ok(backing)
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
                Ok(SysvAccess::File(f)) | Err(f) => read_full(f, buf, offset)?,
                Ok(SysvAccess::Attached(a)) => a.read_at(buf, offset),
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
                let n = (data.len() as u64).min(size - offset) as usize;
                match access {
                    SysvAccess::File(f) => f.write_all_at(&data[..n], offset)?,
                    SysvAccess::Attached(a) => {
                        a.write_at(&data[..n], offset);
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

/// What tells one memory file from another even when their inode numbers agree (a SysV
/// memory file's is its shmid): the kernel's file handle, which carries a generation.
fn file_identity(file: &File) -> Option<Vec<u8>> {
    use std::os::fd::AsRawFd;
    const MAX_HANDLE: usize = 128;
    // struct file_handle: u32 handle_bytes, i32 handle_type, then the handle.
    let mut buf = vec![0u8; 8 + MAX_HANDLE];
    buf[..4].copy_from_slice(&(MAX_HANDLE as u32).to_ne_bytes());
    let mut mount_id: libc::c_int = 0;
    // SAFETY: buf is a file_handle with room for MAX_HANDLE bytes; AT_EMPTY_PATH names the
    // fd itself.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_name_to_handle_at,
            file.as_raw_fd(),
            c"".as_ptr(),
            buf.as_mut_ptr(),
            &mut mount_id,
            libc::AT_EMPTY_PATH,
        )
    };
    if rc != 0 {
        return None;
    }
    let len = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    buf.truncate(8 + len.min(MAX_HANDLE));
    Some(buf)
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
