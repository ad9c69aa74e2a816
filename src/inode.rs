//! Inode numbers: stable for the life of an object, unique, and never reused.
//!
//! Each object (a segment or a POSIX object) gets a block of `SLOTS` numbers from a counter
//! that only grows: the directory, then its files. An object is known by its identity, not
//! by its name alone, so a new segment that reuses a shmid (or a new file that reuses a
//! name) gets fresh numbers and the kernel never confuses it with the old one.

use std::collections::HashMap;
use std::ffi::OsString;

/// The mount's root directory.
pub const ROOT: u64 = 1;
/// `sysv/`.
pub const SYSV_DIR: u64 = 2;
/// `posix/`.
pub const POSIX_DIR: u64 = 3;
/// `by-key/`.
pub const BY_KEY_DIR: u64 = 4;
/// `limits`.
pub const LIMITS: u64 = 5;
/// `index`.
pub const INDEX: u64 = 6;
/// `index.json`.
pub const INDEX_JSON: u64 = 7;

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

    /// The files inside an object's directory, with their names.
    pub const FILES: [(&'static str, Part); 4] = [
        ("data", Part::Data),
        ("stat", Part::Stat),
        ("perm", Part::Perm),
        ("attached", Part::Attached),
    ];
}

/// What identifies one object for its whole life.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ObjectId {
    /// A segment: its shmid plus facts that never change while it lives.
    Sysv {
        shmid: i32,
        incarnation: (u32, u32, i32, u64),
    },
    /// A POSIX object: its name and inode number in the shm dir.
    Posix { name: OsString, ino: u64 },
}

/// What an inode number stands for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    Root,
    SysvDir,
    PosixDir,
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
}

/// The two-way map between objects and their inode blocks.
#[derive(Debug)]
pub struct InodeTable {
    by_object: HashMap<ObjectId, u64>,
    by_base: HashMap<u64, ObjectId>,
    next_base: u64,
}

impl Default for InodeTable {
    fn default() -> Self {
        InodeTable {
            by_object: HashMap::new(),
            by_base: HashMap::new(),
            next_base: FIRST_OBJECT,
        }
    }
}

impl InodeTable {
    /// The inode of `part` of the object, giving the object a new block if it has none.
    pub fn inode(&mut self, id: &ObjectId, part: Part) -> u64 {
        let base = match self.by_object.get(id) {
            Some(&base) => base,
            None => {
                let base = self.next_base;
                self.next_base += SLOTS;
                self.by_object.insert(id.clone(), base);
                self.by_base.insert(base, id.clone());
                base
            }
        };
        base + part.slot()
    }

    /// What the inode number stands for, if anything.
    pub fn node(&self, ino: u64) -> Option<Node> {
        Some(match ino {
            ROOT => Node::Root,
            SYSV_DIR => Node::SysvDir,
            POSIX_DIR => Node::PosixDir,
            BY_KEY_DIR => Node::ByKeyDir,
            LIMITS => Node::Report(Report::Limits),
            INDEX => Node::Report(Report::Index),
            INDEX_JSON => Node::Report(Report::IndexJson),
            _ if ino >= FIRST_OBJECT => {
                let base = ino - (ino - FIRST_OBJECT) % SLOTS;
                let part = Part::from_slot(ino - base)?;
                Node::Object(self.by_base.get(&base)?.clone(), part)
            }
            _ => return None,
        })
    }

    /// Forgets one object: its numbers are not handed out again, and the next lookup of it
    /// gets new ones.
    pub fn forget(&mut self, id: &ObjectId) {
        if let Some(base) = self.by_object.remove(id) {
            self.by_base.remove(&base);
        }
    }

    /// A mark to pass to `retain` after a listing: objects numbered after it (looked up while
    /// the listing was being taken) are kept even if the listing missed them.
    pub fn mark(&self) -> u64 {
        self.next_base
    }

    /// Forgets the objects of one kind that are not in `live` (a full listing begun at
    /// `since`), so that churn does not grow the table. Their numbers are not handed out again.
    pub fn retain(
        &mut self,
        is_of_kind: impl Fn(&ObjectId) -> bool,
        live: &[ObjectId],
        since: u64,
    ) {
        let live: std::collections::HashSet<&ObjectId> = live.iter().collect();
        let keep = |id: &ObjectId, base: u64| !is_of_kind(id) || base >= since || live.contains(id);
        self.by_object.retain(|id, base| keep(id, *base));
        self.by_base.retain(|base, id| keep(id, *base));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(shmid: i32, cpid: i32) -> ObjectId {
        ObjectId::Sysv {
            shmid,
            incarnation: (0, 0, cpid, 4096),
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
        t.retain(|id| matches!(id, ObjectId::Sysv { .. }), &[], mark);
        assert_eq!(t.node(old), None);
        let new = t.inode(&seg(7, 2), Part::Data);
        assert_ne!(old, new);
        let again = t.inode(&seg(7, 1), Part::Data);
        assert_ne!(again, old);
    }

    #[test]
    fn fixed_nodes() {
        let t = InodeTable::default();
        assert_eq!(t.node(ROOT), Some(Node::Root));
        assert_eq!(t.node(LIMITS), Some(Node::Report(Report::Limits)));
        assert_eq!(t.node(9), None);
        assert_eq!(t.node(FIRST_OBJECT), None);
    }
}
