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
        let open = self.live(id)?.open_data(&self.env(id.ns)?, who, flags)?;
        Ok(Handle::Data {
            open,
            _share: share,
        })
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
        if let Some(handle) = fh.and_then(|fh| self.handle(fh).ok())
            && let Handle::Data { open, .. } = &*handle
        {
            return open.truncate(who, size);
        }
        self.live(id)?
            .truncate(&self.env(id.ns)?, who, size, fh.is_some())
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
        let open = match handle {
            Handle::Text { text: t, .. } | Handle::Perm { text: t, .. } => {
                let start = usize::try_from(offset).unwrap_or(usize::MAX).min(t.len());
                let end = start.saturating_add(size as usize).min(t.len());
                send(&t[start..end]);
                return Ok(());
            }
            Handle::Data { open, .. } => open,
            Handle::Dir(_) => return Err(errno(libc::EISDIR)),
        };
        with_read_buffer(open.read_len(offset, size), |buf| {
            let n = open.read_at(buf, offset)?;
            send(&buf[..n]);
            Ok(())
        })
    }

    pub(super) fn write_handle(&self, handle: &Handle, offset: u64, data: &[u8]) -> Result<u32> {
        let len = u32::try_from(data.len()).map_err(|_| errno(libc::EINVAL))?;
        match handle {
            Handle::Perm {
                id, part, opener, ..
            } => {
                // A read-only open never gets here: the kernel refuses write() on it.
                let opener = opener.as_ref().ok_or_else(|| errno(libc::EBADF))?;
                match part {
                    Part::Perm => self.write_perm(opener, id, data)?,
                    _ => self.write_text(opener, id, *part, data)?,
                }
                Ok(len)
            }
            Handle::Data { open, .. } => open.write_at(data, offset),
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
