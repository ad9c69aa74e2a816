//! The text formats, as pure functions over the kernel layer's plain structs: `stat`, `perm`
//! and `limits` (`text`), `index` and `index.json` (`index`), `metrics.prom` (`metrics`),
//! `ns/index`, `members` and `container` of `ns/` (`namespaces`), the files of semaphore sets,
//! message queues and POSIX queues (`ipc`), and the parsers of what users write to `perm` and
//! to a set's `values`. No system calls.

pub mod index;
pub mod ipc;
pub mod metrics;
pub mod namespaces;
pub mod text;
