//! The filesystem's operations, one per request a FUSE adapter (or a test) can make, on
//! plain types: inode numbers, handles, [`Attr`], [`Opened`], [`Error`].

use super::*;

impl ShmFs {
    /// The entry `name` of directory `parent`. The lookup is counted (the kernel now holds the
    /// number until it forgets it): under the same lock as the number is found, so that a
    /// FORGET racing with it cannot take the block away; a failure takes it back.
    pub fn lookup(&self, who: &Caller, parent: u64, name: &OsStr) -> Result<Attr> {
        let mut counted = None;
        let result = self.node(parent).and_then(|p| {
            self.in_scope(Some(who), p.scope(), || {
                let (ino, live) = self.find(who, parent, &p, name, true)?;
                counted = Some(ino);
                let node = self.node(ino)?;
                self.attr_with(who, ino, &node, live)
            })
        });
        if result.is_err()
            && let Some(ino) = counted
        {
            self.forget_inodes([(ino, 1)]);
        }
        self.sweep_if_due();
        result
    }

    /// The kernel forgets `nlookup` lookups of `ino`.
    pub fn forget(&self, ino: u64, nlookup: u64) {
        self.forget_inodes([(ino, nlookup)]);
    }

    /// The attributes of `ino`; with `fh`, of the object that open handle refers to (fstat
    /// works on a removed object).
    pub fn getattr(&self, who: &Caller, ino: u64, fh: Option<u64>) -> Result<Attr> {
        let node = self.node(ino)?;
        self.in_scope(Some(who), node.scope(), || {
            self.attr_of_open(who, ino, &node, fh)
        })
    }

    /// `chmod`, `chown`, `truncate` and `touch`, as `who`.
    pub fn setattr(
        &self,
        who: &Caller,
        ino: u64,
        change: SetAttr,
        fh: Option<u64>,
    ) -> Result<Attr> {
        let node = self.node(ino)?;
        let perm = PermChange {
            mode: change.mode,
            uid: change.uid,
            gid: change.gid,
            qbytes: None,
        };
        self.in_scope(Some(who), node.scope(), || {
            self.setattr_node(who, &node, perm, change.size, fh)?;
            if change.atime.is_some() || change.mtime.is_some() {
                self.set_times(who, &node, change.atime, change.mtime)?;
            }
            self.attr_of_open(who, ino, &node, fh)
        })
    }

    /// Where a `by-key/` link points, for `who`.
    pub fn readlink(&self, who: &Caller, ino: u64) -> Result<String> {
        match self.node(ino)? {
            Node::Object(id, Part::KeyLink) => self.in_scope(Some(who), id.ns, || {
                self.live_key_link(&id)?;
                Ok(Self::key_link_target(&id))
            }),
            _ => Err(errno(libc::EINVAL)),
        }
    }

    /// `mkdir posix/NAME`: a new empty object of `mode`, owned by `who`.
    pub fn mkdir(&self, who: &Caller, parent: u64, name: &OsStr, mode: u32) -> Result<Attr> {
        let result = self.scope_of(parent).and_then(|ns| {
            self.in_scope(Some(who), ns, || self.make_object(who, parent, name, mode))
        });
        self.sweep_if_due();
        result
    }

    /// `rmdir sysv/ID` or `rmdir posix/NAME`, as `who`. Call [`ShmFs::removed`] with the
    /// result once the caller has its answer.
    pub fn rmdir(&self, who: &Caller, parent: u64, name: &OsStr) -> Result<Removed> {
        let ns = self.scope_of(parent)?;
        self.in_scope(Some(who), ns, || self.remove_object(who, parent, name))
    }

    /// Refuses a change of the tree that shmfs does not offer (mknod, unlink, symlink,
    /// rename, link, create): EPERM, or EROFS on a read-only mount.
    pub fn refuse_change(&self) -> Error {
        errno(if self.options.read_only {
            libc::EROFS
        } else {
            libc::EPERM
        })
    }

    /// Opens `ino` with open(2) `flags`, as `who`.
    pub fn open(&self, who: &Caller, ino: u64, flags: i32) -> Result<Opened> {
        let node = self.node(ino)?;
        let handle = self.in_scope(Some(who), node.scope(), || {
            self.open_node(who, ino, &node, flags)
        })?;
        // Reads of read-only opens of `data` may go straight to the memory; opens that shmfs
        // must serve itself (SysV writes, clamped at the segment's end) still get their reads
        // and writes here. Kept attachments and text files are always served here.
        let how = match &handle {
            Handle::Data { open, .. } => open.how(flags),
            _ => How::DirectIo,
        };
        Ok(Opened {
            handle: self.add_handle(handle),
            how,
        })
    }

    /// Runs `f` on the memory file behind open handle `fh` (for an adapter that lets the
    /// kernel reach it directly); None if the handle has none.
    pub fn with_memory<R>(&self, fh: u64, f: impl FnOnce(&File) -> R) -> Option<R> {
        let handle = self.handle(fh).ok()?;
        match &*handle {
            Handle::Data { open, .. } => open.memory_file().map(f),
            _ => None,
        }
    }

    /// The object behind `ino` must get new numbers (its memory file turned out not to be
    /// the one an earlier open of the same numbers had), so that the kernel looks it up again.
    pub fn renumber(&self, ino: u64) {
        if let Ok(Node::Object(id, _)) = self.node(ino) {
            self.object_gone(&id, false);
        }
    }

    /// Reads up to `size` bytes at `offset` of open handle `fh` and hands them to `send`.
    pub fn read(&self, fh: u64, offset: u64, size: u32, send: impl FnOnce(&[u8])) -> Result<()> {
        let handle = self.handle(fh)?;
        self.read_handle(&handle, offset, size, send)
    }

    /// Writes `data` at `offset` of open handle `fh` (of inode `ino`); returns the count.
    pub fn write(&self, ino: u64, fh: u64, offset: u64, data: &[u8]) -> Result<u32> {
        let handle = self.handle(fh)?;
        // A `perm` write changes the object in its namespace (checked at open: no caller).
        let ns = match &*handle {
            Handle::Perm { id, .. } => id.ns,
            _ => HOME,
        };
        let written = self.in_scope(None, ns, || self.write_handle(&handle, offset, data))?;
        if matches!(&*handle, Handle::Data { .. }) {
            self.invalidate_cache(ino, offset, u64::from(written));
        }
        Ok(written)
    }

    /// Closes open handle (or directory handle) `fh`.
    pub fn release(&self, fh: u64) {
        self.handles().remove(&fh);
    }

    /// Lists directory `ino` for `who` and returns a handle on the listing (charged to
    /// `who`'s account: ENOMEM past its share).
    pub fn opendir(&self, who: &Caller, ino: u64) -> Result<u64> {
        let node = self.node(ino)?;
        let entries = self.in_scope(Some(who), node.scope(), || self.list(who, ino, &node))?;
        let listing = self.hold_listing(who, ino, entries)?;
        Ok(self.add_handle(Handle::Dir(listing)))
    }

    /// Hands the entries of listing `fh` from `offset` on to `add` (with the offset of the
    /// entry after each) until it returns true (full).
    pub fn readdir(
        &self,
        fh: u64,
        offset: u64,
        mut add: impl FnMut(&DirEntry, u64) -> bool,
    ) -> Result<()> {
        let handle = self.handle(fh)?;
        let Handle::Dir(entries) = &*handle else {
            return Err(errno(libc::ENOTDIR));
        };
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        for (i, entry) in entries.iter().enumerate().skip(start) {
            if add(entry, (i + 1) as u64) {
                break;
            }
        }
        Ok(())
    }

    /// What `df` shows.
    pub fn statfs(&self) -> Result<SpaceUsage> {
        self.usage_totals()
    }

    /// access(2) of `ino` for `mask` (`libc::R_OK`, `W_OK`, `X_OK`), as `who`.
    pub fn access(&self, who: &Caller, ino: u64, mask: i32) -> Result<()> {
        let node = self.node(ino)?;
        self.in_scope(Some(who), node.scope(), || {
            self.access_node(who, &node, mask)
        })
    }

    /// The scope of directory `ino`.
    fn scope_of(&self, ino: u64) -> Result<Scope> {
        Ok(self.node(ino)?.scope())
    }
}
