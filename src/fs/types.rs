//! The plain types the filesystem's operations take and give: what a FUSE adapter (or a
//! test) translates to and from. Nothing here knows about FUSE.

use std::ffi::OsString;
use std::time::SystemTime;

/// What kind of file a node is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
}

/// The attributes of a node, as `stat` shows them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attr {
    pub ino: u64,
    pub kind: Kind,
    /// Permission bits (and set-id and sticky bits).
    pub perm: u16,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    /// 512-byte blocks in use.
    pub blocks: u64,
    pub atime: SystemTime,
    pub mtime: SystemTime,
    pub ctime: SystemTime,
}

/// One entry of a directory listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    pub ino: u64,
    pub kind: Kind,
    pub name: OsString,
}

/// A time to set: the present, or a given time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetTime {
    Now,
    At(SystemTime),
}

/// A change of attributes (`chmod`, `chown`, `truncate`, `touch`); `None` keeps a value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SetAttr {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub atime: Option<SetTime>,
    pub mtime: Option<SetTime>,
}

/// How the kernel should reach an open file's bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum How {
    /// Every read and write comes to shmfs (text files, kept attachments); no page cache.
    DirectIo,
    /// The kernel may read (and, unless `served_here`, write) the memory file directly
    /// (FUSE passthrough); reads and writes of an open `served_here` still come to shmfs.
    Passthrough { served_here: bool },
}

/// An open file: its handle and how the kernel should reach its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Opened {
    pub handle: u64,
    pub how: How,
}

/// Messages to the kernel about what it caches: invalidating page cache that a write made
/// here made stale, and dropping the entry of an object that is gone. Implemented by the
/// FUSE adapter over its session's notifier.
pub trait KernelCache: Send + Sync {
    /// Drops the cached pages of `ino` in `offset..offset+len`.
    fn invalidate(&self, ino: u64, offset: u64, len: u64) -> std::io::Result<()>;
    /// Drops the entry `name` of directory `parent`, if it still leads to `child`.
    fn delete(&self, parent: u64, child: u64, name: &std::ffi::OsStr) -> std::io::Result<()>;
}

/// Capacity and use for `statfs`, in blocks of `block_size` bytes.
pub struct SpaceUsage {
    pub blocks: u64,
    pub free: u64,
    pub files: u64,
    pub files_free: u64,
    pub block_size: u32,
}
