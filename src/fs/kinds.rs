//! The kinds of object the mount shows, in the order of their directories' inode numbers
//! (`inode::kind_dir`): adding a kind is its module here and one line in [`KINDS`].

use super::kind::Kind;

mod mqueue;
mod msg;
mod posix;
mod sem;
mod sysv;

/// Every kind, by registry index (the `kind` of an `ObjectId`, of a `Node::KindDir`).
pub static KINDS: [&dyn Kind; 5] = [
    &sysv::Segments,
    &posix::Objects,
    &sem::SemSets,
    &msg::Queues,
    &mqueue::MessageQueues,
];

// Each kind numbers its objects with its own index.
const _: () = assert!(
    sysv::INDEX == 0
        && posix::INDEX == 1
        && sem::INDEX == 2
        && msg::INDEX == 3
        && mqueue::INDEX == 4
);

/// The kind at registry index `index` (indexes come only from this registry).
pub fn kind(index: usize) -> &'static dyn Kind {
    KINDS[index]
}
