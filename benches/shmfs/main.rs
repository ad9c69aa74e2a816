//! `cargo bench`: shmfs beside its references, one table (docs/performance.md).
//!
//! What it does, in order:
//! - checks that it runs as root and moves itself into a private IPC namespace
//!   (`unshare(CLONE_NEWIPC)`): its SysV segments are seen by no one else, and the shmfs daemon it
//!   spawns (a child, so in the same namespace) and `ipcs -m` see only them;
//! - makes two private directories under /dev/shm: one that shmfs shows as `posix/`
//!   (`--shm-dir`), one for the tmpfs reference file of the SysV rows;
//! - mounts the release binary (`shmfs -f`) on a temporary directory;
//! - measures each row several times, reference and shmfs alternating after one warm-up of each,
//!   and prints one table: median (min–max) of each side and the ratio of the medians (for the
//!   walks of rows 9, the reference is the same walk over a quarter of the segments);
//! - for row 14, makes semaphore sets (500, then 2,000) in the bench's IPC namespace and removes
//!   them after; a mount without `sem/` gets a note instead of the row;
//! - for rows 12 and 13, makes many IPC namespaces of a few processes each (one SysV segment in
//!   each), which `ns/` shows beside every other namespace of the host, and ends them after;
//! - unmounts and removes every segment, object, namespace and directory it made, also when a
//!   step fails.
//!
//! `SHMFS_BENCH_QUICK=1` runs a small version (64 MiB, 200 segments, 500 objects, 10 namespaces
//! of 5 processes, 100 and 400 semaphore sets, 2 runs, 20 cats) in well under a minute; `SHMFS_BENCH_RUNS=N` sets the number
//! of runs; `SHMFS_BENCH_MOUNT_ARGS` adds arguments to the daemon's command line (`--no-sandbox`
//! compares with the sandbox off).
//! A missed target never fails the bench; a failed step (mount, command, system call) does, with
//! exit status 1, and so do SIGINT/SIGTERM (after cleaning up) and a command that hangs for 10
//! minutes (a watchdog kills the daemon, which aborts the FUSE connection).
//!
//! Slow spots are bounded so that a slow shmfs still gives a table: a run of many `cat stat` stops
//! after a few seconds (time per cat is what counts), and the memory row stops before its tenth
//! round after 7 minutes (saying so). The `stat` row reads the segment listed last in
//! /proc/sysvipc/shm, so a lookup that walks the kernel's list shows up as a cost per segment.
//!
//! This file holds only the run order; each module below does one job: `config` (sizes and
//! environment variables), `error` (failed steps and findings), `report` (statistics and the
//! table), `measure` (timed commands, interrupts, the watchdog), `setup` (namespace, mount,
//! segments and objects), `fleet` (the IPC namespaces of the `ns/` rows), `kernel` (what /proc
//! says) and `rows` (one function a row).

mod config;
mod error;
mod fleet;
mod kernel;
mod measure;
mod report;
mod rows;
mod setup;

/// The test harness, shared with the integration tests (each of them has `mod common;`).
#[path = "../../tests/common/mod.rs"]
mod common;

use std::process::ExitCode;

use config::Config;
use error::{Result, fail};
use kernel::{CpuTimes, vm_hwm};
use measure::{catch_interrupts, start_watchdog};
use report::{Report, Unit};
use rows::{
    row_daemon_memory, row_ls_posix, row_ls_sysv, row_metrics, row_namespaces, row_read_posix,
    row_read_sysv, row_semaphores, row_stat, row_untouched_segment, row_walks, row_write,
};
use setup::{
    Bench, BigObjects, ensure_sysctl_at_least, enter_private_ipc_namespace, page_size, shmfs_binary,
};

fn main() -> ExitCode {
    let cfg = match Config::from_env() {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("shmfs bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut report = Report::default();
    let cpu_before = CpuTimes::now();
    let result = run(&cfg, &mut report); // everything it made is gone when it returns
    if let (Some(before), Some(after)) = (cpu_before, CpuTimes::now()) {
        report.note(before.steal_note(&after));
    }
    if !report.rows.is_empty() {
        report.print(&cfg.title());
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("\nshmfs bench: FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Sets up the bench, runs every row, and tears it all down (also on error, by Drop).
fn run(cfg: &Config, report: &mut Report) -> Result<()> {
    if unsafe { libc::geteuid() } != 0 {
        return fail(
            "the shmfs benchmark must run as root (it unshares an IPC namespace and mounts FUSE); try `sudo -E cargo bench`",
        );
    }
    catch_interrupts();
    enter_private_ipc_namespace()?;
    ensure_sysctl_at_least("shmmni", (cfg.segments + 16) as u64)?;
    ensure_sysctl_at_least("shmmax", cfg.data_bytes)?;
    ensure_sysctl_at_least(
        "shmall",
        4 * cfg.data_bytes / page_size() + cfg.segments as u64,
    )?;
    start_watchdog();

    let bin = shmfs_binary()?;
    eprintln!("shmfs bench: {} mode, binary {}", cfg.mode(), bin.display());
    let mut bench = Bench::new(&bin)?;
    let big = BigObjects::create(cfg, &mut bench)?;
    report.note(format!(
        "daemon VmHWM right after mount: {}",
        Unit::Bytes.one(vm_hwm(bench.mount.pid() as i32)? as f64)
    ));
    big.check_contents(&bench);

    row_read_posix(cfg, &bench, &big, report)?;
    row_read_sysv(cfg, &bench, &big, report)?;
    row_write(cfg, &bench, &big, report)?;
    big.remove(&mut bench)?;
    row_namespaces(cfg, &mut bench, report)?; // wants the bench's namespace without segments
    row_untouched_segment(cfg, &mut bench, report)?;

    row_walks(cfg, &mut bench, report)?;
    row_stat(cfg, &mut bench, report)?;
    row_ls_sysv(cfg, &bench, report)?;
    row_metrics(cfg, &bench, report)?;
    row_ls_posix(cfg, &bench, report)?;
    row_semaphores(cfg, &bench, report)?; // removes its sets: row 7 walks the mount after
    row_daemon_memory(cfg, &bench, report)?;

    bench.finish()
}
