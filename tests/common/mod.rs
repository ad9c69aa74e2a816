//! Shared harness for the shmfs integration tests and the benchmark.
//!
//! Every test that needs a real FUSE mount calls `require_fuse!()` first. Each test gets its own
//! mount (`Mount`), its own private directory under /dev/shm for POSIX objects, and its own SysV
//! segments (`SysvSeg`), so tests can run in parallel and never touch what they did not create.
//!
//! Each module below does one job; this file only declares them and re-exports what they make
//! public, so that a test's `use common::*;` sees every name. Test binaries use only part of
//! the harness, hence `dead_code` is allowed here.

#![allow(dead_code)]

mod cc;
mod container;
mod errno;
mod fields;
mod files;
mod hang;
mod helper;
mod hugepages;
mod ipcs;
mod mount;
pub mod msg;
mod nsipc;
mod posix;
mod preconditions;
mod probe;
mod run;
pub mod sem;
mod system;
mod sysv;
mod world;

// Every binary uses only part of the harness: an unused re-export is no mistake.
#[allow(unused_imports)]
pub use self::{
    cc::*, container::*, errno::*, fields::*, files::*, hang::*, helper::*, hugepages::*, ipcs::*,
    mount::*, nsipc::*, posix::*, preconditions::*, probe::*, run::*, system::*, sysv::*, world::*,
};
