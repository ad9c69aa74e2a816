//! The text formats, as pure functions over the kernel layer's plain structs: `stat`, `perm`
//! and `limits` (`text`), `index` and `index.json` (`index`), `metrics.prom` (`metrics`),
//! `ns/index`, `members` and `container` of `ns/` (`namespaces`), and the parser of what users
//! write to `perm`. No system calls.

pub mod index;
pub mod metrics;
pub mod namespaces;
pub mod text;
