//! Inode numbers: stable while the kernel holds them, unique, and never reused.
//!
//! Each object (a segment or a POSIX object) gets a block of `SLOTS` numbers from a counter
//! that only grows: the directory, then its files. An object is known by its identity, not
//! by its name alone, so a new segment that reuses a shmid (or a new file that reuses a
//! name) gets fresh numbers and the kernel never confuses it with the old one.
//!
//! The table counts the kernel's lookups of each number (every entry reply adds one, FORGET
//! takes its count away). A block goes when the kernel holds none of its numbers any more,
//! or, for a block only a listing gave out, when its object is known to be gone. An object
//! known to be gone whose numbers the kernel still holds (an open `data`, a cached entry)
//! keeps its block until the kernel forgets them, but a new lookup of its identity gets new
//! numbers. So the table holds what the kernel holds plus what the last listings showed.

use std::collections::HashMap;
use std::ffi::OsString;
use std::sync::Arc;

/// The mount's root directory.
pub const ROOT: u64 = 1;
/// The directories of the kinds of object, in the order of their registry (`fs::kinds`):
/// `sysv/` is 2 and `posix/` 3, as they always were; room for six kinds.
const KIND_DIRS: [u64; 6] = [2, 3, 9, 10, 11, 12];
/// `by-key/`.
pub const BY_KEY_DIR: u64 = 4;
/// `limits`.
pub const LIMITS: u64 = 5;
/// `index`.
pub const INDEX: u64 = 6;
/// `index.json`.
pub const INDEX_JSON: u64 = 7;
/// `metrics.prom`.
pub const METRICS: u64 = 8;
/// `ns/`, the directory of every IPC namespace on the host.
pub const NS_DIR: u64 = 13;
/// `ns/index`.
pub const NS_INDEX: u64 = 14;

/// The scope of the mount's root: its `sysv/`, `posix/`, `by-key/` and reports, of the
/// daemon's own IPC namespace. Every other scope is a directory `ns/N/`, named in the table by
/// its namespace's 64-bit id (`NS_GET_ID`, never 0 and never reused).
pub const HOME: Scope = 0;

/// Which tree a node belongs to: [`HOME`] (the root's) or the id (`NS_GET_ID`) of the IPC
/// namespace of a directory `ns/N/`.
pub type Scope = u64;

/// The `kind` of the identity of a namespace's own directory `ns/N/` (not an object of any
/// kind of the registry): its block numbers the directory and what it holds.
pub const NAMESPACE: usize = usize::MAX;

/// The inode number of the directory of the kind at `index` in the registry.
pub const fn kind_dir(index: usize) -> u64 {
    KIND_DIRS[index]
}

const FIRST_OBJECT: u64 = 16;
const SLOTS: u64 = 16;

/// The bit that marks the number of a message file `messages/N` of a queue: the rest is the
/// queue's block (shifted by [`MESSAGE_SHIFT`]) and N. The kernel's lookups of a queue's
/// message files are counted together in the block's [`MESSAGE_FILES`] slot, so the block
/// stays while the kernel holds any of them.
const MESSAGE_BIT: u64 = 1 << 62;
const MESSAGE_SHIFT: u32 = 16;
/// The slot of a queue's block that counts the kernel's lookups of its message files.
const MESSAGE_FILES: u64 = 10;
/// The most message files a queue's `messages/` may number (`messages/0` to
/// `messages/65535`).
pub const MAX_MESSAGE_FILES: u32 = 1 << MESSAGE_SHIFT;

/// Which file of an object's directory an inode is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Part {
    Dir,
    Data,
    Stat,
    Perm,
    /// Who has the object mapped or open.
    Attached,
    /// A semaphore set's `values`.
    Values,
    /// Who is blocked on a semaphore set or a message queue.
    Waiters,
    /// A message queue's `queue`: its messages' types and sizes.
    Queue,
    /// A message queue's directory `messages/`.
    Messages,
    /// The `by-key/` symlink of an object with a key.
    KeyLink,
    /// In a namespace's block: `members`.
    Members,
    /// In a namespace's block: `container`.
    Container,
    /// In a namespace's block: `limits`.
    Limits,
    /// In a namespace's block: `index`.
    Index,
    /// In a namespace's block: `index.json`.
    IndexJson,
    /// In a namespace's block: `by-key/`.
    ByKey,
    /// In a namespace's block: the directory of the kind at this index of the registry.
    KindDir(u8),
}

impl Part {
    fn slot(self) -> u64 {
        match self {
            Part::Dir => 0,
            Part::Data => 1,
            Part::Stat => 2,
            Part::Perm => 3,
            Part::Attached => 4,
            Part::Values => 5,
            Part::Waiters => 6,
            Part::KeyLink => 7,
            Part::Queue => 8,
            Part::Messages => 9,
            Part::Members => 1,
            Part::Container => 2,
            Part::Limits => 3,
            Part::Index => 4,
            Part::IndexJson => 5,
            Part::ByKey => 6,
            Part::KindDir(k) => 8 + u64::from(k).min(KIND_DIRS.len() as u64 - 1),
        }
    }

    fn from_slot(slot: u64) -> Option<Part> {
        Some(match slot {
            0 => Part::Dir,
            1 => Part::Data,
            2 => Part::Stat,
            3 => Part::Perm,
            4 => Part::Attached,
            5 => Part::Values,
            6 => Part::Waiters,
            7 => Part::KeyLink,
            8 => Part::Queue,
            9 => Part::Messages,
            _ => return None,
        })
    }
}

/// What identifies one object for its whole life: its scope, its kind, its name in its kind's directory,
/// and facts that never change while it lives (its `stamp`: a segment's creator and size, a
/// POSIX object's inode number), so that an object that reuses a name is another object.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ObjectId {
    /// The tree it is shown in: [`HOME`] or the id of the namespace of `ns/N/`.
    pub ns: Scope,
    /// The index of its kind in the registry (`fs::kinds`), or [`NAMESPACE`].
    pub kind: usize,
    /// Its name in its kind's directory.
    pub name: Name,
    /// What tells it from a later object of the same name; each kind fills it its own way.
    pub stamp: [u64; 3],
}

/// An object's name in its kind's directory: a number (a shmid), kept without an allocation
/// since thousands of segments may be numbered at once, or a file name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Name {
    Number(u32),
    Text(OsString),
}

impl Name {
    /// The name as a directory entry shows it.
    pub fn to_os_string(&self) -> OsString {
        match self {
            Name::Number(n) => n.to_string().into(),
            Name::Text(name) => name.clone(),
        }
    }
}

/// What an inode number stands for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    Root,
    /// `ns/`: a directory per IPC namespace on the host.
    Namespaces,
    /// `ns/N/`: the namespace with this id (`NS_GET_ID`).
    Namespace(Scope),
    /// The directory of one kind of object (`sysv/`, `posix/`) in a scope: the kind's index
    /// in the registry (`fs::kinds`).
    KindDir(Scope, usize),
    /// `by-key/` of a scope.
    ByKeyDir(Scope),
    /// A read-only file that reports on a scope's objects (or, for `ns/index`, on every
    /// namespace).
    Report(Scope, Report),
    Object(ObjectId, Part),
    /// `messages/N` of a message queue: the message at position N.
    Message(ObjectId, u32),
}

impl Node {
    /// The scope the node belongs to: where its objects are, and which namespace a request
    /// on it enters. The root, `ns/` and `ns/index` are [`HOME`]'s.
    pub fn scope(&self) -> Scope {
        match self {
            Node::Root | Node::Namespaces => HOME,
            Node::Namespace(ns) | Node::KindDir(ns, _) | Node::ByKeyDir(ns) => *ns,
            Node::Report(ns, _) => *ns,
            Node::Object(id, _) | Node::Message(id, _) => id.ns,
        }
    }
}

/// The read-only files at the root.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Report {
    /// `limits`: system-wide limits and usage.
    Limits,
    /// `index`: every object in one table.
    Index,
    /// `index.json`: the same as JSON.
    IndexJson,
    /// `metrics.prom`: the same and the totals, for Prometheus (node_exporter's textfile
    /// collector).
    Metrics,
    /// `ns/index`: one row per IPC namespace.
    Namespaces,
    /// `ns/N/members`: the processes of the namespace.
    Members,
    /// `ns/N/container`: what the namespace belongs to.
    Container,
}

/// One object's block of numbers.
#[derive(Debug)]
struct Block {
    /// Shared with `by_object`'s key: one copy of the identity per block, since the table may
    /// hold hundreds of thousands of blocks of gone objects the kernel still holds.
    id: Arc<ObjectId>,
    /// The kernel's lookup count of each number of the block (saturating: a count that
    /// large is never reached).
    lookups: [u32; SLOTS as usize],
}

/// What is known of an object's huge pages, kept beside its block (only segments have any, and
/// the table may hold hundreds of thousands of blocks of gone objects the kernel still holds).
#[derive(Clone, Copy, Debug, Default)]
struct HugePages {
    /// Whether the object is backed by huge pages, once learned from an open of its memory.
    known: Option<bool>,
    /// What a segment's attachers' maps told of huge pages (or that they told nothing), at
    /// attach record (`lpid`, `atime`): not asked again until the record changes, and never
    /// taken for good, since an attacher may hold a look-alike of another namespace.
    looked: Option<((i32, i64), Option<bool>)>,
}

impl Block {
    fn held(&self) -> bool {
        self.lookups.iter().any(|&n| n > 0)
    }
}

/// A block that left the table: the per-object state kept elsewhere for it can go too.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dropped {
    pub id: ObjectId,
    /// The inode number of the object's `data`.
    pub data_ino: u64,
}

/// The two-way map between objects and their inode blocks, with the kernel's lookup counts.
#[derive(Debug)]
pub struct InodeTable {
    by_object: HashMap<Arc<ObjectId>, u64>,
    blocks: HashMap<u64, Block>,
    /// What is known of huge pages, by block.
    huge_pages: HashMap<u64, HugePages>,
    /// The block of each namespace's directory `ns/N/` that its identity leads to, by scope:
    /// `by_object`'s entries of kind [`NAMESPACE`], found without the directory's name.
    scopes: HashMap<Scope, u64>,
    next_base: u64,
}

impl Default for InodeTable {
    fn default() -> Self {
        InodeTable {
            by_object: HashMap::new(),
            blocks: HashMap::new(),
            huge_pages: HashMap::new(),
            scopes: HashMap::new(),
            next_base: FIRST_OBJECT,
        }
    }
}

/// What number `slot` of the block of namespace `ns`'s directory stands for.
fn namespace_node(ns: Scope, slot: u64) -> Option<Node> {
    Some(match slot {
        0 => Node::Namespace(ns),
        1 => Node::Report(ns, Report::Members),
        2 => Node::Report(ns, Report::Container),
        3 => Node::Report(ns, Report::Limits),
        4 => Node::Report(ns, Report::Index),
        5 => Node::Report(ns, Report::IndexJson),
        6 => Node::ByKeyDir(ns),
        8.. if slot - 8 < KIND_DIRS.len() as u64 => Node::KindDir(ns, (slot - 8) as usize),
        _ => return None,
    })
}

fn base_of(ino: u64) -> Option<(u64, usize)> {
    if ino & MESSAGE_BIT != 0 {
        // A message file counts in its queue's block.
        let base = (ino & !MESSAGE_BIT) >> MESSAGE_SHIFT;
        return (base >= FIRST_OBJECT && (base - FIRST_OBJECT).is_multiple_of(SLOTS))
            .then_some((base, MESSAGE_FILES as usize));
    }
    (ino >= FIRST_OBJECT).then(|| {
        let slot = (ino - FIRST_OBJECT) % SLOTS;
        (ino - slot, slot as usize)
    })
}

impl InodeTable {
    /// The inode of `part` of the object, giving the object a new block if it has none.
    /// Counts no lookup: for listings, whose entries the kernel does not keep.
    pub fn inode(&mut self, id: &ObjectId, part: Part) -> u64 {
        let base = match self.by_object.get(id) {
            Some(&base) => base,
            None => {
                let base = self.next_base;
                self.next_base += SLOTS;
                let id = Arc::new(id.clone());
                if id.kind == NAMESPACE {
                    self.scopes.insert(id.ns, base);
                }
                self.by_object.insert(id.clone(), base);
                self.blocks.insert(
                    base,
                    Block {
                        id,
                        lookups: [0; SLOTS as usize],
                    },
                );
                base
            }
        };
        base + part.slot()
    }

    /// As `inode`, and counts one lookup of it: for an entry about to be sent to the kernel.
    /// If the entry cannot be sent after all, `forget(ino, 1)` takes the count back.
    pub fn lookup(&mut self, id: &ObjectId, part: Part) -> u64 {
        let ino = self.inode(id, part);
        self.count(ino);
        ino
    }

    /// `part` of the same block as the directory `dir`: the files of a directory are
    /// numbered with it, even once its object is gone. With `count`, one lookup is counted.
    /// None if the table does not know `dir`.
    pub fn in_block(&mut self, dir: u64, part: Part, count: bool) -> Option<u64> {
        let (base, _) = base_of(dir)?;
        let block = self.blocks.get_mut(&base)?;
        if count {
            block.lookups[part.slot() as usize] =
                block.lookups[part.slot() as usize].saturating_add(1);
        }
        Some(base + part.slot())
    }

    /// The number of `messages/N` of the queue whose directory `messages/` is `dir`, with one
    /// lookup counted if `count`. None if the table does not know `dir` or N is too large.
    pub fn message_inode(&mut self, dir: u64, n: u32, count: bool) -> Option<u64> {
        if n >= MAX_MESSAGE_FILES {
            return None;
        }
        let (base, _) = base_of(dir)?;
        // A base too large to encode beside the bit and N (never reached: 2^46 numbers).
        if base >= MESSAGE_BIT >> MESSAGE_SHIFT {
            return None;
        }
        let block = self.blocks.get_mut(&base)?;
        if count {
            let slot = MESSAGE_FILES as usize;
            block.lookups[slot] = block.lookups[slot].saturating_add(1);
        }
        Some(MESSAGE_BIT | (base << MESSAGE_SHIFT) | u64::from(n))
    }

    /// Whether the object uses huge pages, if that was learned while it had its block.
    pub fn hugetlb(&self, id: &ObjectId) -> Option<bool> {
        let base = self.by_object.get(id)?;
        self.huge_pages.get(base)?.known
    }

    /// Remembers whether the object uses huge pages, in its block (nothing if it has none:
    /// what is kept per object lives exactly as long as its numbers).
    pub fn set_hugetlb(&mut self, id: &ObjectId, yes: bool) {
        if let Some(&base) = self.by_object.get(id)
            && self.blocks.contains_key(&base)
        {
            self.huge_pages.entry(base).or_default().known = Some(yes);
        }
    }

    /// What the object's attachers' maps told of huge pages, and at which attach record.
    pub fn hugetlb_looked(&self, id: &ObjectId) -> Option<((i32, i64), Option<bool>)> {
        let base = self.by_object.get(id)?;
        self.huge_pages.get(base)?.looked
    }

    /// Remembers, in the object's block, what its attachers' maps told of huge pages
    /// (`answer`, None for nothing) at attach record `record` (`lpid`, `atime`).
    pub fn set_hugetlb_looked(&mut self, id: &ObjectId, record: (i32, i64), answer: Option<bool>) {
        if let Some(&base) = self.by_object.get(id)
            && self.blocks.contains_key(&base)
        {
            self.huge_pages.entry(base).or_default().looked = Some((record, answer));
        }
    }

    /// The number of `part` of the object if the kernel holds it (has looked it up).
    pub fn held_inode(&self, id: &ObjectId, part: Part) -> Option<u64> {
        let base = *self.by_object.get(id)?;
        let block = self.blocks.get(&base)?;
        (block.lookups[part.slot() as usize] > 0).then_some(base + part.slot())
    }

    fn count(&mut self, ino: u64) {
        if let Some((base, slot)) = base_of(ino)
            && let Some(block) = self.blocks.get_mut(&base)
        {
            block.lookups[slot] = block.lookups[slot].saturating_add(1);
        }
    }

    /// What the inode number stands for, if anything. A gone object's numbers that the
    /// kernel still holds still stand for it: fstat of an open `data` needs them.
    pub fn node(&self, ino: u64) -> Option<Node> {
        Some(match ino {
            ROOT => Node::Root,
            _ if KIND_DIRS.contains(&ino) => {
                Node::KindDir(HOME, KIND_DIRS.iter().position(|&d| d == ino)?)
            }
            BY_KEY_DIR => Node::ByKeyDir(HOME),
            LIMITS => Node::Report(HOME, Report::Limits),
            INDEX => Node::Report(HOME, Report::Index),
            INDEX_JSON => Node::Report(HOME, Report::IndexJson),
            METRICS => Node::Report(HOME, Report::Metrics),
            NS_DIR => Node::Namespaces,
            NS_INDEX => Node::Report(HOME, Report::Namespaces),
            _ if ino & MESSAGE_BIT != 0 => {
                let (base, _) = base_of(ino)?;
                let id = &self.blocks.get(&base)?.id;
                let n = (ino & ((1 << MESSAGE_SHIFT) - 1)) as u32;
                Node::Message(ObjectId::clone(id), n)
            }
            _ => {
                let (base, slot) = base_of(ino)?;
                let id = &self.blocks.get(&base)?.id;
                if id.kind == NAMESPACE {
                    return namespace_node(id.ns, slot as u64);
                }
                let part = Part::from_slot(slot as u64)?;
                Node::Object(ObjectId::clone(id), part)
            }
        })
    }

    /// The number of `part` of scope `ns`'s tree: the fixed numbers of the root's for
    /// [`HOME`]; for a namespace, in the block its directory has now (None if it has none).
    pub fn scope_inode(&self, ns: Scope, part: Part) -> Option<u64> {
        if ns == HOME {
            return match part {
                Part::Dir => Some(ROOT),
                Part::ByKey => Some(BY_KEY_DIR),
                Part::Limits => Some(LIMITS),
                Part::Index => Some(INDEX),
                Part::IndexJson => Some(INDEX_JSON),
                Part::KindDir(k) => KIND_DIRS.get(usize::from(k)).copied(),
                _ => None,
            };
        }
        Some(self.scopes.get(&ns)? + part.slot())
    }

    /// The kernel forgot `n` lookups of `ino`. Gives the block back if that was the last
    /// number of it the kernel held. The fixed numbers are never forgotten.
    pub fn forget(&mut self, ino: u64, n: u64) -> Option<Dropped> {
        let (base, slot) = base_of(ino)?;
        let block = self.blocks.get_mut(&base)?;
        let n = u32::try_from(n).unwrap_or(u32::MAX);
        if block.lookups[slot] < n {
            log::warn!(
                "kernel forgets {n} lookups of inode {ino}, which had {}",
                block.lookups[slot]
            );
        }
        block.lookups[slot] = block.lookups[slot].saturating_sub(n);
        if block.held() {
            return None;
        }
        self.drop_block(base)
    }

    fn drop_block(&mut self, base: u64) -> Option<Dropped> {
        let block = self.blocks.remove(&base)?;
        self.huge_pages.remove(&base);
        if self.by_object.get(&block.id) == Some(&base) {
            self.by_object.remove(&block.id);
        }
        if self.scopes.get(&block.id.ns) == Some(&base) {
            self.scopes.remove(&block.id.ns);
        }
        Some(Dropped {
            id: Arc::unwrap_or_clone(block.id),
            data_ino: base + Part::Data.slot(),
        })
    }

    /// The object is gone (or must no longer be reached through its numbers' identity): the
    /// next lookup of `id` gets new numbers; the block goes now if the kernel holds none of
    /// it, else when the kernel forgets the last. Gives the directory's number if the kernel
    /// holds some of the block (it should be told), or what went.
    pub fn gone(&mut self, id: &ObjectId) -> (Option<u64>, Option<Dropped>) {
        let Some(base) = self.by_object.remove(id) else {
            return (None, None);
        };
        if id.kind == NAMESPACE && self.scopes.get(&id.ns) == Some(&base) {
            self.scopes.remove(&id.ns);
        }
        match self.blocks.get(&base) {
            Some(block) if block.held() => (Some(base + Part::Dir.slot()), None),
            Some(_) => (None, self.drop_block(base)),
            None => (None, None),
        }
    }

    /// A mark to pass to `retain` after a listing: objects numbered after it (looked up while
    /// the listing was being taken) are kept even if the listing missed them.
    pub fn mark(&self) -> u64 {
        self.next_base
    }

    /// Marks the objects of one kind that are not in `live` (a full listing begun at `since`)
    /// gone, as `gone` does, so that churn does not grow the table. Returns the objects the
    /// kernel still holds numbers of, with their directory's number (it should be told), and
    /// the blocks that went.
    pub fn retain(
        &mut self,
        is_of_kind: impl Fn(&ObjectId) -> bool,
        live: &[ObjectId],
        since: u64,
    ) -> (Vec<(ObjectId, u64)>, Vec<Dropped>) {
        let live: std::collections::HashSet<&ObjectId> = live.iter().collect();
        let vanished: Vec<ObjectId> = self
            .by_object
            .iter()
            .filter(|(id, base)| is_of_kind(id) && **base < since && !live.contains(&***id))
            .map(|(id, _)| ObjectId::clone(id))
            .collect();
        self.forget_all(vanished)
    }

    /// `gone` for each of `ids`, gathered.
    pub fn forget_all(&mut self, ids: Vec<ObjectId>) -> (Vec<(ObjectId, u64)>, Vec<Dropped>) {
        let mut held = Vec::new();
        let mut dropped = Vec::new();
        for id in ids {
            match self.gone(&id) {
                (Some(dir), _) => held.push((id, dir)),
                (None, Some(d)) => dropped.push(d),
                (None, None) => {}
            }
        }
        (held, dropped)
    }

    /// The identities numbered before `since` (a `mark`) that `is_live` says are gone: what a
    /// sweep forgets. Objects numbered later are left alone, since a listing taken after the
    /// mark may have missed them.
    pub fn gone_since(&self, since: u64, is_live: impl Fn(&ObjectId) -> bool) -> Vec<ObjectId> {
        self.by_object
            .iter()
            .filter(|(id, base)| **base < since && !is_live(id))
            .map(|(id, _)| ObjectId::clone(id))
            .collect()
    }

    /// The identities that still lead to a block, each with whether the kernel holds some of
    /// its numbers: what a sweep checks for objects gone behind shmfs's back.
    pub fn objects(&self) -> Vec<(ObjectId, bool)> {
        self.by_object
            .iter()
            .map(|(id, base)| {
                let held = self.blocks.get(base).is_some_and(Block::held);
                (ObjectId::clone(id), held)
            })
            .collect()
    }

    /// The kinds (registry indexes) of which the table numbers at least one object of scope
    /// `ns`.
    pub fn kinds(&self, ns: Scope) -> std::collections::BTreeSet<usize> {
        self.by_object
            .keys()
            .filter(|id| id.ns == ns && id.kind != NAMESPACE)
            .map(|id| id.kind)
            .collect()
    }

    /// The directory that holds `id`'s directory: its kind's directory in its scope (or
    /// `ns/` for a namespace), if its scope still has numbers.
    pub fn parent_of(&self, id: &ObjectId) -> Option<u64> {
        if id.kind == NAMESPACE {
            return Some(NS_DIR);
        }
        self.scope_inode(id.ns, Part::KindDir(u8::try_from(id.kind).ok()?))
    }

    /// How many blocks the table holds.
    pub fn len(&self) -> usize {
        self.blocks.len()
    }

    /// True if the table holds no object.
    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(shmid: i32, cpid: i32) -> ObjectId {
        ObjectId {
            ns: HOME,
            kind: 0,
            name: Name::Number(shmid as u32),
            stamp: [0, cpid as u64, 4096],
        }
    }

    #[test]
    fn same_object_same_numbers() {
        let mut t = InodeTable::default();
        let a = t.inode(&seg(0, 1), Part::Dir);
        assert_eq!(t.inode(&seg(0, 1), Part::Dir), a);
        assert_eq!(t.inode(&seg(0, 1), Part::Stat), a + 2);
        assert_eq!(t.node(a + 2), Some(Node::Object(seg(0, 1), Part::Stat)));
        assert_eq!(t.node(a + 11), None);
    }

    #[test]
    fn message_files_are_numbered_with_their_queue_and_keep_its_block() {
        let mut t = InodeTable::default();
        let queue = ObjectId {
            ns: HOME,
            kind: 3,
            name: Name::Number(65543),
            stamp: [1, 2, 0],
        };
        let dir = t.lookup(&queue, Part::Dir);
        let messages = t.in_block(dir, Part::Messages, true).unwrap();
        assert_eq!(
            t.node(messages),
            Some(Node::Object(queue.clone(), Part::Messages))
        );
        let m0 = t.message_inode(messages, 0, true).unwrap();
        let m7 = t.message_inode(messages, 7, false).unwrap();
        assert_ne!(m0, m7);
        assert_eq!(t.message_inode(messages, MAX_MESSAGE_FILES, false), None);
        assert_eq!(t.node(m0), Some(Node::Message(queue.clone(), 0)));
        assert_eq!(t.node(m7), Some(Node::Message(queue.clone(), 7)));
        // The kernel forgets the directories: the block stays for the message it holds.
        assert_eq!(t.forget(dir, 1), None);
        assert_eq!(t.forget(messages, 1), None);
        assert_eq!(t.node(m0), Some(Node::Message(queue.clone(), 0)));
        assert!(t.forget(m0, 1).is_some(), "the last number held");
        assert_eq!(t.node(m0), None);
        // A number that never was a block's: nothing.
        assert_eq!(t.node(MESSAGE_BIT | (17 << MESSAGE_SHIFT)), None);
    }

    #[test]
    fn reused_shmid_gets_new_numbers_and_old_are_not_reused() {
        let mut t = InodeTable::default();
        let old = t.inode(&seg(7, 1), Part::Data);
        let mark = t.mark();
        t.retain(|id| id.kind == 0, &[], mark);
        assert_eq!(t.node(old), None);
        let new = t.inode(&seg(7, 2), Part::Data);
        assert_ne!(old, new);
        let again = t.inode(&seg(7, 1), Part::Data);
        assert_ne!(again, old);
    }

    #[test]
    fn block_goes_when_the_kernel_forgets_its_last_number() {
        let mut t = InodeTable::default();
        let dir = t.lookup(&seg(1, 1), Part::Dir);
        let data = t.in_block(dir, Part::Data, true).unwrap();
        assert_eq!(data, dir + 1);
        t.lookup(&seg(1, 1), Part::Dir);
        assert_eq!(t.forget(dir, 2), None);
        assert!(t.node(data).is_some());
        let dropped = t.forget(data, 1).unwrap();
        assert_eq!(dropped.id, seg(1, 1));
        assert_eq!(dropped.data_ino, data);
        assert_eq!(t.node(dir), None);
        assert!(t.is_empty());
        // Forgetting numbers the table no longer knows, or the fixed ones, changes nothing.
        assert_eq!(t.forget(dir, 1), None);
        assert_eq!(t.forget(ROOT, 1), None);
        assert_eq!(t.forget(kind_dir(0), 3), None);
        let fresh = t.lookup(&seg(1, 1), Part::Dir);
        assert!(fresh > data, "numbers are never handed out twice");
    }

    #[test]
    fn listing_keeps_what_the_kernel_holds() {
        let mut t = InodeTable::default();
        let held = t.lookup(&seg(1, 1), Part::Data);
        let listed = t.inode(&seg(2, 1), Part::Dir);
        let mark = t.mark();
        let (told, dropped) = t.retain(|id| id.kind == 0, &[], mark);
        assert_eq!(told, vec![(seg(1, 1), held - 1)]);
        assert_eq!(dropped.len(), 1);
        assert_eq!(dropped[0].id, seg(2, 1));
        assert_eq!(t.node(listed), None);
        // The held number still means the gone object (fstat of an open data)...
        assert_eq!(t.node(held), Some(Node::Object(seg(1, 1), Part::Data)));
        // ...but its identity leads to new numbers.
        let again = t.inode(&seg(1, 1), Part::Data);
        assert_ne!(again, held);
        assert_eq!(t.objects().len(), 1);
        // The old block goes with the kernel's last forget; the new one stays.
        assert_eq!(t.forget(held, 1).map(|d| d.data_ino), Some(held));
        assert_eq!(t.node(again), Some(Node::Object(seg(1, 1), Part::Data)));
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn gone_drops_unheld_blocks_at_once() {
        let mut t = InodeTable::default();
        t.inode(&seg(3, 1), Part::Dir);
        let (held, dropped) = t.gone(&seg(3, 1));
        assert_eq!(held, None);
        assert!(dropped.is_some());
        assert!(t.is_empty());
        assert_eq!(t.gone(&seg(3, 1)), (None, None));
    }

    #[test]
    fn fixed_nodes() {
        let t = InodeTable::default();
        assert_eq!(t.node(ROOT), Some(Node::Root));
        assert_eq!(t.node(LIMITS), Some(Node::Report(HOME, Report::Limits)));
        assert_eq!(t.node(kind_dir(0)), Some(Node::KindDir(HOME, 0)));
        assert_eq!(t.node(kind_dir(5)), Some(Node::KindDir(HOME, 5)));
        assert_eq!(t.node(NS_DIR), Some(Node::Namespaces));
        assert_eq!(
            t.node(NS_INDEX),
            Some(Node::Report(HOME, Report::Namespaces))
        );
        assert_eq!(t.node(15), None);
        assert_eq!(t.node(FIRST_OBJECT), None);
    }

    fn namespace(ns: Scope, inum: u32) -> ObjectId {
        ObjectId {
            ns,
            kind: NAMESPACE,
            name: Name::Number(inum),
            stamp: [0; 3],
        }
    }

    #[test]
    fn a_namespace_block_numbers_its_tree() {
        let mut t = InodeTable::default();
        let dir = t.lookup(&namespace(77, 4026532456), Part::Dir);
        assert_eq!(t.node(dir), Some(Node::Namespace(77)));
        assert_eq!(t.scope_inode(77, Part::Dir), Some(dir));
        let sysv = t.scope_inode(77, Part::KindDir(0)).unwrap();
        assert_eq!(t.node(sysv), Some(Node::KindDir(77, 0)));
        let by_key = t.scope_inode(77, Part::ByKey).unwrap();
        assert_eq!(t.node(by_key), Some(Node::ByKeyDir(77)));
        let members = t.in_block(dir, Part::Members, true).unwrap();
        assert_eq!(t.node(members), Some(Node::Report(77, Report::Members)));
        // An object of that namespace is not the root's object of the same name.
        let mut inside = seg(1, 1);
        inside.ns = 77;
        assert_ne!(t.inode(&inside, Part::Dir), t.inode(&seg(1, 1), Part::Dir));
        assert_eq!(t.parent_of(&inside), Some(sysv));
        assert_eq!(t.parent_of(&seg(1, 1)), Some(kind_dir(0)));
        assert_eq!(t.kinds(77).into_iter().collect::<Vec<_>>(), [0]);
        // The namespace is gone: its scope has no numbers for new lookups, while the kernel's
        // still mean the old namespace.
        t.gone(&namespace(77, 4026532456));
        assert_eq!(t.scope_inode(77, Part::Dir), None);
        assert_eq!(t.node(dir), Some(Node::Namespace(77)));
        // A new namespace that got the same inode number is another scope, with new numbers.
        let again = t.lookup(&namespace(78, 4026532456), Part::Dir);
        assert_ne!(again, dir);
        assert_eq!(t.node(again), Some(Node::Namespace(78)));
        assert_eq!(t.scope_inode(HOME, Part::Dir), Some(ROOT));
    }

    #[test]
    fn what_is_known_of_an_object_goes_with_its_block() {
        let mut t = InodeTable::default();
        let id = seg(7, 1);
        t.set_hugetlb(&id, true);
        assert_eq!(
            t.hugetlb(&id),
            None,
            "nothing is kept for an object without numbers"
        );
        let data = t.lookup(&id, Part::Data);
        t.set_hugetlb(&id, true);
        assert_eq!(t.hugetlb(&id), Some(true));
        t.set_hugetlb_looked(&id, (7, 100), None);
        assert_eq!(t.hugetlb_looked(&id), Some(((7, 100), None)));
        t.forget(data, 1);
        assert_eq!(t.hugetlb(&id), None, "forgotten with the block");
        assert_eq!(t.hugetlb_looked(&id), None, "forgotten with the block");
    }
}
