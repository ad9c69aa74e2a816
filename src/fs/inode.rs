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

/// The inode number of the directory of the kind at `index` in the registry.
pub const fn kind_dir(index: usize) -> u64 {
    KIND_DIRS[index]
}

const FIRST_OBJECT: u64 = 16;
const SLOTS: u64 = 8;

/// Which file of an object's directory an inode is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Part {
    Dir,
    Data,
    Stat,
    Perm,
    /// Who has the object mapped or open.
    Attached,
    /// The `by-key/0x…` symlink of a segment.
    KeyLink,
}

impl Part {
    fn slot(self) -> u64 {
        match self {
            Part::Dir => 0,
            Part::Data => 1,
            Part::Stat => 2,
            Part::Perm => 3,
            Part::Attached => 4,
            Part::KeyLink => 7,
        }
    }

    fn from_slot(slot: u64) -> Option<Part> {
        Some(match slot {
            0 => Part::Dir,
            1 => Part::Data,
            2 => Part::Stat,
            3 => Part::Perm,
            4 => Part::Attached,
            7 => Part::KeyLink,
            _ => return None,
        })
    }
}

/// What identifies one object for its whole life: its kind, its name in its kind's directory,
/// and facts that never change while it lives (its `stamp`: a segment's creator and size, a
/// POSIX object's inode number), so that an object that reuses a name is another object.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ObjectId {
    /// The index of its kind in the registry (`fs::kinds`).
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
    /// The directory of one kind of object (`sysv/`, `posix/`): the kind's index in the
    /// registry (`fs::kinds`).
    KindDir(usize),
    ByKeyDir,
    /// A read-only file of the root that reports on everything.
    Report(Report),
    Object(ObjectId, Part),
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
}

/// One object's block of numbers.
#[derive(Debug)]
struct Block {
    /// Shared with `by_object`'s key: one copy of the identity per block, since the table may
    /// hold hundreds of thousands of blocks of gone objects the kernel still holds.
    id: Arc<ObjectId>,
    /// The kernel's lookup count of each number of the block.
    lookups: [u64; SLOTS as usize],
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
    next_base: u64,
}

impl Default for InodeTable {
    fn default() -> Self {
        InodeTable {
            by_object: HashMap::new(),
            blocks: HashMap::new(),
            huge_pages: HashMap::new(),
            next_base: FIRST_OBJECT,
        }
    }
}

fn base_of(ino: u64) -> Option<(u64, usize)> {
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
            block.lookups[part.slot() as usize] += 1;
        }
        Some(base + part.slot())
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
            block.lookups[slot] += 1;
        }
    }

    /// What the inode number stands for, if anything. A gone object's numbers that the
    /// kernel still holds still stand for it: fstat of an open `data` needs them.
    pub fn node(&self, ino: u64) -> Option<Node> {
        Some(match ino {
            ROOT => Node::Root,
            _ if KIND_DIRS.contains(&ino) => {
                Node::KindDir(KIND_DIRS.iter().position(|&d| d == ino)?)
            }
            BY_KEY_DIR => Node::ByKeyDir,
            LIMITS => Node::Report(Report::Limits),
            INDEX => Node::Report(Report::Index),
            INDEX_JSON => Node::Report(Report::IndexJson),
            METRICS => Node::Report(Report::Metrics),
            _ => {
                let (base, slot) = base_of(ino)?;
                let part = Part::from_slot(slot as u64)?;
                Node::Object(ObjectId::clone(&self.blocks.get(&base)?.id), part)
            }
        })
    }

    /// The kernel forgot `n` lookups of `ino`. Gives the block back if that was the last
    /// number of it the kernel held. The fixed numbers are never forgotten.
    pub fn forget(&mut self, ino: u64, n: u64) -> Option<Dropped> {
        let (base, slot) = base_of(ino)?;
        let block = self.blocks.get_mut(&base)?;
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

    /// The kinds (registry indexes) of which the table numbers at least one object.
    pub fn kinds(&self) -> std::collections::BTreeSet<usize> {
        self.by_object.keys().map(|id| id.kind).collect()
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
        assert_eq!(t.node(a + 5), None);
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
        assert_eq!(t.node(LIMITS), Some(Node::Report(Report::Limits)));
        assert_eq!(t.node(kind_dir(0)), Some(Node::KindDir(0)));
        assert_eq!(t.node(kind_dir(5)), Some(Node::KindDir(5)));
        assert_eq!(t.node(13), None);
        assert_eq!(t.node(FIRST_OBJECT), None);
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
