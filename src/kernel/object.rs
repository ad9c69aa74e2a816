//! What every shared-memory object has, whatever its kind: the metadata that a file's
//! attributes, `perm` and the permission checks are made of. System V segments
//! (`sysv::Segment`) and POSIX objects (`posix::Object`) each give theirs.

/// Mode, owner, size and times of a segment or object.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Meta {
    /// Permission bits (with set-id and sticky bits for POSIX objects).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Bytes.
    pub size: u64,
    /// Seconds since the epoch; 0 for never.
    pub atime: i64,
    pub mtime: i64,
    pub ctime: i64,
}
