//! shmfs: Linux shared memory as files.
//!
//! Every System V segment (`ipcs -m`) and every POSIX object in `/dev/shm` appears as a
//! directory holding `data`, `stat` and `perm`. See README.md for the user's view and
//! docs/design.md for the contract.

pub mod account;
pub mod attach;
pub mod creds;
pub mod fdshare;
pub mod fingerprint;
pub mod fs;
pub mod fuse;
pub mod index;
pub mod inode;
pub mod logging;
pub mod metrics;
pub mod mount_options;
pub mod names;
pub mod object;
pub mod posix;
pub mod proc_read;
pub mod sandbox;
pub mod sysv;
pub mod text;
pub mod unmount_order;
pub mod usage;
