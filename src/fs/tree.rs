//! The tree: what each name and inode stands for, the attributes shown for it, directory
//! listings, and creating and removing objects with `mkdir` and `rmdir`.

use super::*;

impl ShmFs {
    /// A directory of shmfs's own (the root, `sysv/`, `posix/`, `by-key/`): root's, from the
    /// time of the mount.
    pub(super) fn dir_attr(&self, ino: u64, perm: u16) -> Attr {
        Attr {
            ino,
            kind: Kind::Dir,
            perm,
            nlink: 2,
            uid: 0,
            gid: 0,
            size: 0,
            blocks: 0,
            atime: self.mounted_at,
            mtime: self.mounted_at,
            ctime: self.mounted_at,
        }
    }

    /// The attributes of a node, using `known` (just looked up) instead of asking again.
    pub(super) fn attr(&self, who: &Caller, ino: u64, node: &Node) -> Result<Attr> {
        self.attr_with(who, ino, node, None)
    }

    /// Attributes for a request that names an open handle (fstat, ftruncate): the object as
    /// it is now, or, once it is gone, as that handle still sees it (tmpfs answers fstat on
    /// an unlinked file too).
    pub(super) fn attr_of_open(
        &self,
        who: &Caller,
        ino: u64,
        node: &Node,
        fh: Option<u64>,
    ) -> Result<Attr> {
        let result = self.attr(who, ino, node);
        let gone = matches!(&result, Err(e) if e.errno() == libc::ESTALE);
        let Node::Object(id, Part::Data) = node else {
            return result;
        };
        if !gone {
            return result;
        }
        // fstat reaches here without a handle (the kernel sends none): any open handle of this
        // very object will do, as all of them see the same object.
        let handle = fh.and_then(|fh| self.handle(fh).ok()).or_else(|| {
            self.handles()
                .values()
                .find(|h| matches!(&***h, Handle::Data { open, .. } if open.id() == id))
                .cloned()
        });
        match handle.as_deref() {
            Some(Handle::Data { open, .. }) if open.id() == id => {
                self.attr_with(who, ino, node, Some(open.object()?))
            }
            _ => result,
        }
    }

    /// The length of the text an open handle of `ino` holds (the newest, if several): what
    /// `fstat` on it must report, and it spares rendering `stat` again for every stat call
    /// while the file is open (`cat` and Python stat it twice).
    pub(super) fn open_text_len(&self, ino: u64) -> Option<usize> {
        self.handles()
            .iter()
            .filter_map(|(fh, h)| match &**h {
                Handle::Text { ino: i, text } if *i == ino => Some((*fh, text.len())),
                _ => None,
            })
            .max()
            .map(|(_, len)| len)
    }

    /// As `attr`, with the object just looked up instead of asking again.
    pub(super) fn attr_with(
        &self,
        who: &Caller,
        ino: u64,
        node: &Node,
        known: Option<Live>,
    ) -> Result<Attr> {
        let (id, part) = match node {
            Node::Root | Node::ByKeyDir(_) | Node::Namespaces | Node::Namespace(_) => {
                return Ok(self.dir_attr(ino, 0o555));
            }
            Node::KindDir(..) => return Ok(self.dir_attr(ino, 0o1777)),
            Node::Report(ns, report) => {
                let mut attr = self.dir_attr(ino, 0o444);
                attr.kind = Kind::File;
                attr.nlink = 1;
                // The reports' real lengths, so that copies guided by the size get all of
                // them; each costs one listing, as reading it does.
                attr.size = match self.open_text_len(ino) {
                    Some(len) => len,
                    None => self.report_text(who, *ns, *report)?.len(),
                } as u64;
                return Ok(attr);
            }
            Node::Object(id, part) => (id, *part),
            Node::Message(id, n) => return self.message_attr(who, ino, id, *n, known),
        };
        let live = match known {
            Some(live) => live,
            None if part == Part::KeyLink => self.live_key_link(id)?,
            None => self.live(id)?,
        };
        let meta = live.meta();
        // Blocks in use, so that `du` shows what the object holds in memory: for a segment
        // its resident bytes, for an object its allocated ones.
        let blocks = match part {
            Part::Data => live.blocks(&self.env(id.ns)?)?,
            _ => 0,
        };
        let Meta {
            mode,
            uid,
            gid,
            size,
            atime,
            mtime,
            ctime,
        } = meta;
        let (kind, perm, size, nlink) = match part {
            Part::Dir => (Kind::Dir, mode | 0o555, 0, 2),
            Part::Data => (Kind::File, mode, size, 1),
            Part::Stat => (
                Kind::File,
                0o444,
                match self.open_text_len(ino) {
                    Some(len) => len,
                    None => live.stat_text_for(&self.env(id.ns)?, who)?.len(),
                } as u64,
                1,
            ),
            Part::Perm => (Kind::File, 0o644, live.perm_text().len() as u64, 1),
            Part::Attached => (
                Kind::File,
                0o444,
                match self.open_text_len(ino) {
                    Some(len) => len,
                    None => self.attached_len(who, id, &live)?,
                } as u64,
                1,
            ),
            Part::KeyLink => (
                Kind::Symlink,
                0o777,
                Self::key_link_target(id).len() as u64,
                1,
            ),
            // Read with read permission (and `values` written with the alter right), as the
            // object's mode says: shown with its read and write bits. `queue` and `waiters`
            // cost a listing of messages or a walk of /proc: their length is known only while
            // they are open, and 0 otherwise, as for the files of /proc.
            Part::Values | Part::Queue | Part::Waiters => {
                let bits = match part {
                    Part::Values => mode & 0o666,
                    Part::Queue => mode & 0o444,
                    _ => 0o444,
                };
                let size = match (self.open_text_len(ino), part) {
                    (Some(len), _) => len,
                    (None, Part::Values) => match live.text(&self.env(id.ns)?, who, part) {
                        Ok(text) => text.len(),
                        // Who may not read it sees its mode and owner, and no length.
                        Err(e) if e.errno() == libc::EACCES => 0,
                        Err(e) => return Err(e),
                    },
                    (None, _) => 0,
                };
                (Kind::File, bits, size as u64, 1)
            }
            Part::Messages => (Kind::Dir, read_dir_bits(mode), 0, 2),
            // A namespace's files, which the table never gives an object.
            _ => return Err(errno(libc::ESTALE)),
        };
        Ok(Attr {
            ino,
            kind,
            perm: perm as u16,
            nlink,
            uid,
            gid,
            size,
            blocks,
            atime: time(atime),
            mtime: time(mtime),
            ctime: time(ctime),
        })
    }

    /// Where a `by-key/` link leads: the object's directory.
    pub(super) fn key_link_target(id: &ObjectId) -> String {
        format!(
            "../{}/{}",
            kind(id.kind).dir_name(),
            id.name.to_os_string().to_string_lossy()
        )
    }

    /// The attributes of `messages/N` of queue `id`: the message's length, read with `who`'s
    /// rights (EACCES without read permission), the queue's owner and times.
    fn message_attr(
        &self,
        who: &Caller,
        ino: u64,
        id: &ObjectId,
        n: u32,
        known: Option<Live>,
    ) -> Result<Attr> {
        let live = match known {
            Some(live) => live,
            None => self.live(id)?,
        };
        let size = match self.open_text_len(ino) {
            Some(len) => len,
            None => live.message(&self.env(id.ns)?, who, n)?.len(),
        };
        let meta = live.meta();
        Ok(Attr {
            ino,
            kind: Kind::File,
            perm: (meta.mode & 0o444) as u16,
            nlink: 1,
            uid: meta.uid,
            gid: meta.gid,
            size: size as u64,
            blocks: 0,
            atime: time(meta.atime),
            mtime: time(meta.mtime),
            ctime: time(meta.ctime),
        })
    }

    /// Finds `name` in directory `parent` (inode `parent_ino`) for `who` and returns its
    /// inode. With `count`, one lookup of it is counted (an entry for the kernel will follow).
    pub(super) fn find(
        &self,
        who: &Caller,
        parent_ino: u64,
        parent: &Node,
        name: &OsStr,
        count: bool,
    ) -> Result<(u64, Option<Live>)> {
        let number = |id: &ObjectId, part: Part| {
            let mut table = self.inodes();
            if count {
                table.lookup(id, part)
            } else {
                table.inode(id, part)
            }
        };
        // A file or directory of the scope's tree, numbered with the directory the kernel holds.
        let in_block = |part: Part| {
            self.inodes()
                .in_block(parent_ino, part, count)
                .ok_or_else(|| errno(libc::ESTALE))
        };
        match parent {
            Node::Root => {
                let ino = match name.as_bytes() {
                    b"by-key" => inode::BY_KEY_DIR,
                    b"limits" => inode::LIMITS,
                    b"index" => inode::INDEX,
                    b"index.json" => inode::INDEX_JSON,
                    b"metrics.prom" => inode::METRICS,
                    b"ns" => inode::NS_DIR,
                    name => KINDS
                        .iter()
                        .position(|k| k.dir_name().as_bytes() == name)
                        .map(inode::kind_dir)
                        .ok_or_else(enoent)?,
                };
                Ok((ino, None))
            }
            Node::Namespaces => {
                if name.as_bytes() == b"index" {
                    return Ok((inode::NS_INDEX, None));
                }
                let known = self.namespace_named(who, name)?;
                Ok((number(&namespaces::dir_id(&known), Part::Dir), None))
            }
            Node::Namespace(_) => {
                let part = scope_part(name).ok_or_else(enoent)?;
                Ok((in_block(part)?, None))
            }
            Node::KindDir(ns, k) => {
                let live = kind(*k).find(&self.env(*ns)?, name)?;
                let ino = number(&live.id(), Part::Dir);
                Ok((ino, Some(live)))
            }
            Node::ByKeyDir(ns) => {
                let env = self.env(*ns)?;
                for k in KINDS.iter().filter(|k| k.has_keys()) {
                    let Some(key) = name
                        .as_bytes()
                        .strip_prefix(k.key_prefix().as_bytes())
                        .and_then(|rest| parse_key(OsStr::from_bytes(rest)))
                    else {
                        continue;
                    };
                    match k.with_key(&env, key) {
                        Ok(Some(live)) => {
                            let ino = number(&live.id(), Part::KeyLink);
                            return Ok((ino, Some(live)));
                        }
                        Err(e) if e.errno() != libc::ENOENT => return Err(e),
                        _ => {}
                    }
                }
                Err(enoent())
            }
            Node::Object(id, Part::Dir) => {
                let part = kind(id.kind)
                    .files()
                    .iter()
                    .find(|(n, _)| n.as_bytes() == name.as_bytes())
                    .map(|(_, p)| *p)
                    .ok_or_else(enoent)?;
                let live = self.live(id)?;
                // Numbered with the directory the kernel holds, even if the object's identity
                // has since been given new numbers.
                Ok((in_block(part)?, Some(live)))
            }
            Node::Object(id, Part::Messages) => {
                let n = parse_position(name).ok_or_else(enoent)?;
                let live = self.live(id)?;
                // One look at that position (not a listing of all): ENOENT past the end.
                live.message(&self.env(id.ns)?, who, n)?;
                let ino = self
                    .inodes()
                    .message_inode(parent_ino, n, count)
                    .ok_or_else(|| errno(libc::ESTALE))?;
                Ok((ino, Some(live)))
            }
            Node::Report(..) | Node::Object(..) | Node::Message(..) => Err(errno(libc::ENOTDIR)),
        }
    }

    /// The entries of a directory, listed in one pass for `who`.
    pub(super) fn list(&self, who: &Caller, ino: u64, node: &Node) -> Result<Vec<DirEntry>> {
        let dir = Kind::Dir;
        // `..`: the directory that holds this one.
        let up = match node {
            Node::Root | Node::Namespaces => inode::ROOT,
            Node::Namespace(_) => inode::NS_DIR,
            Node::KindDir(ns, _) | Node::ByKeyDir(ns) => self.scope_inode(*ns, Part::Dir)?,
            Node::Object(id, Part::Dir) => self.scope_inode(id.ns, kind_dir_part(id.kind))?,
            Node::Object(_, Part::Messages) => self
                .inodes()
                .in_block(ino, Part::Dir, false)
                .ok_or_else(|| errno(libc::ESTALE))?,
            Node::Report(..) | Node::Object(..) | Node::Message(..) => {
                return Err(errno(libc::ENOTDIR));
            }
        };
        let mut entries = vec![
            (ino, dir, OsString::from(".")),
            (up, dir, OsString::from("..")),
        ];
        match node {
            Node::Root => {
                for (k, kind) in KINDS.iter().enumerate() {
                    entries.push((inode::kind_dir(k), dir, kind.dir_name().into()));
                }
                entries.push((inode::BY_KEY_DIR, dir, "by-key".into()));
                entries.push((inode::NS_DIR, dir, "ns".into()));
                for (ino, name) in [
                    (inode::LIMITS, "limits"),
                    (inode::INDEX, "index"),
                    (inode::INDEX_JSON, "index.json"),
                    (inode::METRICS, "metrics.prom"),
                ] {
                    entries.push((ino, Kind::File, name.into()));
                }
            }
            Node::Namespaces => {
                entries.push((inode::NS_INDEX, Kind::File, "index".into()));
                for found in self.visible_namespaces(who)? {
                    let ino = self
                        .inodes()
                        .inode(&namespaces::dir_id(&found.known), Part::Dir);
                    entries.push((ino, dir, found.known.inum.to_string().into()));
                }
            }
            Node::Namespace(_) => {
                let mut table = self.inodes();
                for (name, part) in scope_entries() {
                    let ino = table
                        .in_block(ino, part, false)
                        .ok_or_else(|| errno(libc::ESTALE))?;
                    let file = if matches!(part, Part::KindDir(_) | Part::ByKey) {
                        dir
                    } else {
                        Kind::File
                    };
                    entries.push((ino, file, name.into()));
                }
            }
            Node::KindDir(ns, k) => {
                let since = self.inodes().mark();
                let ids: Vec<ObjectId> = kind(*k)
                    .list(&self.env(*ns)?)?
                    .iter()
                    .map(|live| live.id())
                    .collect();
                let mut table = self.inodes();
                for id in &ids {
                    entries.push((table.inode(id, Part::Dir), dir, id.name.to_os_string()));
                }
                let (held, _) = table.retain(|id| id.ns == *ns && id.kind == *k, &ids, since);
                drop(table);
                self.listed_gone(held);
            }
            Node::ByKeyDir(ns) => {
                let since = self.inodes().mark();
                let keyed: Vec<usize> = (0..KINDS.len()).filter(|&k| KINDS[k].has_keys()).collect();
                let env = self.env(*ns)?;
                let mut listed = Vec::new();
                for &k in &keyed {
                    listed.extend(kind(k).list(&env)?);
                }
                let ids: Vec<ObjectId> = listed.iter().map(|live| live.id()).collect();
                let mut table = self.inodes();
                for (live, id) in listed.iter().zip(&ids) {
                    if let Some(key) = live.key() {
                        let ino = table.inode(id, Part::KeyLink);
                        entries.push((ino, Kind::Symlink, key_name(id.kind, key).into()));
                    }
                }
                let (held, _) =
                    table.retain(|id| id.ns == *ns && keyed.contains(&id.kind), &ids, since);
                drop(table);
                self.listed_gone(held);
            }
            Node::Object(id, Part::Messages) => {
                let count = self.live(id)?.message_count(&self.env(id.ns)?, who)?;
                let mut table = self.inodes();
                for n in 0..count {
                    let ino = table
                        .message_inode(ino, n, false)
                        .ok_or_else(|| errno(libc::ESTALE))?;
                    entries.push((ino, Kind::File, n.to_string().into()));
                }
            }
            Node::Object(id, _) => {
                self.live(id)?;
                let mut table = self.inodes();
                for &(name, part) in kind(id.kind).files() {
                    let ino = table
                        .in_block(ino, part, false)
                        .ok_or_else(|| errno(libc::ESTALE))?;
                    let file = if part == Part::Messages {
                        dir
                    } else {
                        Kind::File
                    };
                    entries.push((ino, file, name.into()));
                }
            }
            Node::Report(..) | Node::Message(..) => return Err(errno(libc::ENOTDIR)),
        }
        Ok(entries
            .into_iter()
            .map(|(ino, kind, name)| DirEntry { ino, kind, name })
            .collect())
    }

    /// The number of `part` of scope `ns`'s tree; ESTALE if the scope has no numbers now.
    pub(super) fn scope_inode(&self, ns: Scope, part: Part) -> Result<u64> {
        self.inodes()
            .scope_inode(ns, part)
            .ok_or_else(|| errno(libc::ESTALE))
    }

    /// `mkdir posix/NAME`: a new empty object, owned by the caller.
    pub(super) fn make_object(
        &self,
        who: &Caller,
        parent: u64,
        name: &OsStr,
        mode: u32,
    ) -> Result<Attr> {
        if self.options.read_only {
            return Err(errno(libc::EROFS));
        }
        let Ok(Node::KindDir(ns, k)) = self.node(parent) else {
            return Err(errno(libc::EPERM));
        };
        let live = kind(k).create(&self.env(ns)?, who, name, mode)?;
        let id = live.id();
        // Counted: the reply is an entry the kernel keeps.
        let ino = self.inodes().lookup(&id, Part::Dir);
        let attr = self.attr_with(who, ino, &Node::Object(id, Part::Dir), Some(live));
        if attr.is_err() {
            self.forget_inodes([(ino, 1)]);
        }
        attr
    }

    /// `rmdir sysv/ID` (IPC_RMID) or `rmdir posix/NAME` (shm_unlink), as the caller. Gives
    /// what it removed, for `removed` once the kernel has its answer.
    pub(super) fn remove_object(&self, who: &Caller, parent: u64, name: &OsStr) -> Result<Removed> {
        if self.options.read_only {
            return Err(errno(libc::EROFS));
        }
        let parent_ino = parent;
        let parent = self.node(parent)?;
        let Node::KindDir(ns, _) = parent else {
            return Err(match parent {
                Node::Object(..) | Node::Report(..) => errno(libc::ENOTDIR),
                _ => errno(libc::EPERM),
            });
        };
        let (_, live) = self.find(who, parent_ino, &parent, name, false)?;
        let live = live.ok_or_else(enoent)?;
        let env = self.env(ns)?;
        creds::as_caller(who, || live.remove(&env))?;
        Ok(Removed {
            id: live.id(),
            live,
        })
    }

    /// After a successful `rmdir`: the kernel has dropped the directory's entry itself; what
    /// is gone is forgotten, and a segment's `by-key/` link (its key is now 0) is dropped.
    pub fn removed(&self, Removed { id, live }: Removed) {
        if let Some(key) = live.key() {
            let (link, by_key) = {
                let table = self.inodes();
                (
                    table.held_inode(&id, Part::KeyLink),
                    table.scope_inode(id.ns, Part::ByKey),
                )
            };
            if let (Some(link), Some(by_key)) = (link, by_key) {
                self.notify_entry(by_key, link, key_name(id.kind, key).into());
            }
        }
        // Attached segments live on (`dest: yes`) until their last detach.
        let gone = !live.may_outlive_removal()
            || matches!(
                self.in_scope(None, id.ns, || self.live_now(&id)),
                Err(e) if e.errno() == libc::ENOENT
            );
        if gone {
            self.object_gone(&id, false);
        }
    }
}

/// The mode of a directory that may be listed by those who may read `mode`'s object: its
/// read bits, each with the search bit beside it.
fn read_dir_bits(mode: u32) -> u32 {
    let read = mode & 0o444;
    read | (read >> 2)
}

/// A message's position as `messages/` names it: a decimal number exactly as printed.
fn parse_position(name: &OsStr) -> Option<u32> {
    let s = name.to_str()?;
    let n: u32 = s.parse().ok()?;
    (n.to_string() == s).then_some(n)
}

/// The name of the `by-key/` link of an object of kind `k` with key `key`: `0xKEY` for a
/// segment, `sem.0xKEY` for a semaphore set, `msg.0xKEY` for a message queue.
pub(super) fn key_name(k: usize, key: u32) -> String {
    format!("{}0x{key:08x}", kind(k).key_prefix())
}

/// The directory of kind `k` among the files of a scope's tree.
fn kind_dir_part(k: usize) -> Part {
    Part::KindDir(u8::try_from(k).unwrap_or(u8::MAX))
}

/// The entries of a namespace's directory `ns/N/`, in listing order.
fn scope_entries() -> Vec<(&'static str, Part)> {
    let mut entries = vec![("members", Part::Members), ("container", Part::Container)];
    entries.extend(
        KINDS
            .iter()
            .enumerate()
            .map(|(k, kind)| (kind.dir_name(), kind_dir_part(k))),
    );
    entries.extend([
        ("by-key", Part::ByKey),
        ("limits", Part::Limits),
        ("index", Part::Index),
        ("index.json", Part::IndexJson),
    ]);
    entries
}

/// Which entry of a namespace's directory `name` is.
fn scope_part(name: &OsStr) -> Option<Part> {
    scope_entries()
        .into_iter()
        .find(|(n, _)| n.as_bytes() == name.as_bytes())
        .map(|(_, part)| part)
}
