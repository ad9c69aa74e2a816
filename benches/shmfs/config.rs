//! What one bench run measures: sizes, counts and time budgets, quick or full, and the
//! environment variables that choose them (`SHMFS_BENCH_QUICK`, `SHMFS_BENCH_RUNS`).

use std::time::Duration;

use crate::error::{Error, Result};
use crate::report::Unit;
pub use crate::report::{GIB, KIB, MIB};

/// Sizes and counts of one bench run.
pub struct Config {
    /// `SHMFS_BENCH_QUICK`: the small version.
    pub quick: bool,
    /// Size of the big POSIX object, SysV segments and tmpfs reference file.
    pub data_bytes: u64,
    /// Small SysV segments for the listing and `stat` rows.
    pub segments: usize,
    /// POSIX objects for the listing row.
    pub objects: usize,
    /// Timed runs per row (after one warm-up).
    pub runs: usize,
    /// `cat stat` processes per run.
    pub cats: usize,
    /// IPC namespaces made for the `ns/` rows.
    pub namespaces: usize,
    /// Processes in each of them.
    pub ns_procs: usize,
    /// Semaphore sets of row 14 at its larger size (a quarter at its smaller).
    pub sem_sets: usize,
    /// Time after which a run of many small operations stops early.
    pub op_budget: Duration,
    /// Time after which the memory row stops before its tenth round (after two at least).
    pub rss_budget: Duration,
}

impl Config {
    /// The full or quick configuration, as the environment variables choose.
    pub fn from_env() -> Result<Config> {
        let quick = std::env::var("SHMFS_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
        let mut cfg = if quick {
            Config {
                quick,
                data_bytes: 64 * MIB,
                segments: 200,
                objects: 500,
                runs: 2,
                cats: 20,
                namespaces: 10,
                ns_procs: 5,
                sem_sets: 400,
                op_budget: Duration::from_millis(500),
                rss_budget: Duration::from_secs(20),
            }
        } else {
            Config {
                quick,
                data_bytes: GIB,
                segments: 4000,
                objects: 10_000,
                runs: 5,
                cats: 200,
                namespaces: 50,
                ns_procs: 10,
                sem_sets: 2000,
                op_budget: Duration::from_secs(3),
                rss_budget: Duration::from_secs(420),
            }
        };
        if let Ok(v) = std::env::var("SHMFS_BENCH_RUNS") {
            cfg.runs = v
                .parse()
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| Error(format!("SHMFS_BENCH_RUNS={v:?}: want a number ≥ 1")))?;
        }
        Ok(cfg)
    }

    /// `quick` or `full`, for printing.
    pub fn mode(&self) -> &'static str {
        if self.quick { "quick" } else { "full" }
    }

    /// [`Config::data_bytes`] in MiB.
    pub fn data_mib(&self) -> u64 {
        self.data_bytes / MIB
    }

    /// The table's title: what was measured.
    pub fn title(&self) -> String {
        format!(
            "shmfs benchmark ({} mode): {} runs per row after one warm-up; {} data, {} SysV segments, {} POSIX objects, {} IPC namespaces of {} processes, {} semaphore sets",
            self.mode(),
            self.runs,
            self.data_size(),
            self.segments,
            self.objects,
            self.namespaces,
            self.ns_procs,
            self.sem_sets
        )
    }

    /// [`Config::data_bytes`] in words (`1 GiB`).
    pub fn data_size(&self) -> String {
        Unit::Bytes.one(self.data_bytes as f64)
    }
}
