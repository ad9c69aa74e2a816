//! The kinds of object the mount shows, in the order of their directories' inode numbers
//! (`inode::kind_dir`): adding a kind is its module here and one line in [`KINDS`].

use super::kind::Kind;

mod posix;
mod sysv;

/// Every kind, by registry index (the `kind` of an `ObjectId`, of a `Node::KindDir`).
pub static KINDS: [&dyn Kind; 2] = [&sysv::Segments, &posix::Objects];

// Each kind numbers its objects with its own index.
const _: () = assert!(sysv::INDEX == 0 && posix::INDEX == 1);

/// The kind at registry index `index` (indexes come only from this registry).
pub fn kind(index: usize) -> &'static dyn Kind {
    KINDS[index]
}
