//! The kernel's side: small safe APIs over the system calls and `/proc` that the rest of
//! shmfs is built on, returning plain structs and `io::Error`. One module per kind of object
//! (`sysv`, `posix`), and what every kind needs: credentials, holders, names, accounts. Every
//! call that depends on the IPC namespace or the shm dir is reached through a
//! [`context::IpcContext`], which says which.
//! The `unsafe` of the library lives here, each block with its SAFETY comment.
//! The daemon's own resources are here too: its memory (`memory`), its descriptor limit
//! (`descriptors`).

pub mod account;
pub mod attach;
pub mod container;
pub mod context;
pub mod creds;
pub mod descriptors;
pub mod enter;
pub mod fingerprint;
pub mod hostname;
pub mod ipc_namespaces;
pub mod memory;
pub mod mqueue;
pub mod msg;
pub mod names;
pub mod namespace;
pub mod object;
pub mod pidfd;
pub mod posix;
pub mod posix_sem;
pub mod proc_read;
pub mod proc_root;
pub mod proc_sysvipc;
pub mod sem;
pub mod sysv;
pub mod usage;
