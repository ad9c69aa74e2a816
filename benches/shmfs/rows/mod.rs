//! The rows of the table, one function a row or group of rows, grouped by what they measure.
//! `main` runs them in its own order; the table sorts them by number.

mod data;
mod listing;
mod memory;
mod metrics;
mod namespaces;
mod semaphores;
mod walks;

pub use data::{row_read_posix, row_read_sysv, row_write};
pub use listing::{row_ls_posix, row_ls_sysv, row_stat};
pub use memory::{row_daemon_memory, row_untouched_segment};
pub use metrics::row_metrics;
pub use namespaces::row_namespaces;
pub use semaphores::row_semaphores;
pub use walks::row_walks;
