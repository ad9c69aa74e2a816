//! shmfs: Linux shared memory as files.
//!
//! Every System V segment (`ipcs -m`) and every POSIX object in `/dev/shm` appears as a
//! directory holding `data`, `stat` and `perm`. See README.md for the user's view and
//! docs/design.md for the contract.
//!
//! The modules are layers, each using only those listed before it (docs/code.md):
//! [`kernel`] (safe APIs over the system calls and `/proc`), [`render`] (the text formats,
//! pure functions), [`fs`] (the filesystem, which knows nothing of FUSE), [`fuse`] (the
//! adapter) and [`daemon`] (the process's own life: logging, mount options, sandbox,
//! unmounting).

pub mod daemon;
pub mod fs;
pub mod fuse;
pub mod kernel;
pub mod render;
