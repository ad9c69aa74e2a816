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
//! - unmounts and removes every segment, object and directory it made, also when a step fails.
//!
//! `SHMFS_BENCH_QUICK=1` runs a small version (64 MiB, 200 segments, 500 objects, 2 runs, 20 cats)
//! in well under a minute; `SHMFS_BENCH_RUNS=N` sets the number of runs; `SHMFS_BENCH_MOUNT_ARGS`
//! adds arguments to the daemon's command line (`--no-sandbox` compares with the sandbox off).
//! A missed target never fails the bench; a failed step (mount, command, system call) does, with
//! exit status 1, and so do SIGINT/SIGTERM (after cleaning up) and a command that hangs for 10
//! minutes (a watchdog kills the daemon, which aborts the FUSE connection).
//!
//! Slow spots are bounded so that a slow shmfs still gives a table: a run of many `cat stat` stops
//! after a few seconds (time per cat is what counts), and the memory row stops before its tenth
//! round after 7 minutes (saying so). The `stat` row reads the segment listed last in
//! /proc/sysvipc/shm, so a lookup that walks the kernel's list shows up as a cost per segment.

use std::fmt::Display;
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, ExitStatus, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tempfile::TempDir;

#[path = "../tests/common/mod.rs"]
mod common;

use common::{MOUNT_TIMEOUT, Mount};

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
/// How long one command may run before the watchdog calls the mount hung and kills shmfs.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(600);
/// Segments present in the reference run of the `cat stat` row.
const BASELINE_SEGMENTS: usize = 10;
/// Rounds of `ls -lR` and `cat */*/stat` in the memory row.
const RSS_ROUNDS: usize = 10;
/// Target for the daemon's peak RSS.
const RSS_TARGET: u64 = 32 * MIB;

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
        report.print(&cfg);
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("\nshmfs bench: FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The machine's CPU time so far, from the first line of /proc/stat (in clock ticks).
struct CpuTimes {
    total: u64,
    steal: u64,
}

impl CpuTimes {
    fn now() -> Option<CpuTimes> {
        let stat = fs::read_to_string("/proc/stat").ok()?;
        let fields: Vec<u64> = stat
            .lines()
            .next()?
            .split_whitespace()
            .skip(1)
            .map(|f| f.parse().ok())
            .collect::<Option<_>>()?;
        // user nice system idle iowait irq softirq steal [guest guest_nice, inside user/nice]
        Some(CpuTimes {
            total: fields.iter().take(8).sum(),
            steal: *fields.get(7)?,
        })
    }

    /// What share of the machine's CPU time a hypervisor took from it since `self`: on a
    /// virtual machine, the main cause of a run whose spreads are wider than usual.
    fn steal_note(&self, after: &CpuTimes) -> String {
        let total = after.total.saturating_sub(self.total).max(1);
        let steal = after.steal.saturating_sub(self.steal);
        format!(
            "CPU time taken by the hypervisor (steal) during the run: {:.1}%{}",
            100.0 * steal as f64 / total as f64,
            if steal * 50 > total {
                " (over 2%: expect wider spreads and ratios than on a quiet host)"
            } else {
                ""
            }
        )
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
    row_untouched_segment(cfg, &mut bench, report)?;

    row_walks(cfg, &mut bench, report)?;
    row_stat(cfg, &mut bench, report)?;
    row_ls_sysv(cfg, &bench, report)?;
    row_metrics(cfg, &bench, report)?;
    row_ls_posix(cfg, &bench, report)?;
    row_daemon_memory(cfg, &bench, report)?;

    bench.finish()
}

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

/// Sizes and counts of one bench run.
struct Config {
    quick: bool,
    /// Size of the big POSIX object, SysV segments and tmpfs reference file.
    data_bytes: u64,
    /// Small SysV segments for the listing and `stat` rows.
    segments: usize,
    /// POSIX objects for the listing row.
    objects: usize,
    /// Timed runs per row (after one warm-up).
    runs: usize,
    /// `cat stat` processes per run.
    cats: usize,
    /// Time after which a run of many small operations stops early.
    op_budget: Duration,
    /// Time after which the memory row stops before its tenth round (after two at least).
    rss_budget: Duration,
}

impl Config {
    fn from_env() -> Result<Config> {
        let quick = std::env::var("SHMFS_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
        let mut cfg = if quick {
            Config {
                quick,
                data_bytes: 64 * MIB,
                segments: 200,
                objects: 500,
                runs: 2,
                cats: 20,
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

    fn mode(&self) -> &'static str {
        if self.quick { "quick" } else { "full" }
    }

    fn data_mib(&self) -> u64 {
        self.data_bytes / MIB
    }

    fn data_size(&self) -> String {
        Unit::Bytes.one(self.data_bytes as f64)
    }
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// A step that failed, in words.
#[derive(Debug)]
struct Error(String);

type Result<T> = std::result::Result<T, Error>;

impl Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn fail<T>(msg: impl Into<String>) -> Result<T> {
    Err(Error(msg.into()))
}

/// `.context(|| "what was being done")` on any result whose error can be printed.
trait Context<T> {
    fn context<D: Display>(self, what: impl FnOnce() -> D) -> Result<T>;
}

impl<T, E: Display> Context<T> for std::result::Result<T, E> {
    fn context<D: Display>(self, what: impl FnOnce() -> D) -> Result<T> {
        self.map_err(|e| Error(format!("{}: {e}", what())))
    }
}

/// Things that looked wrong with shmfs (not with the bench): printed as they happen and again
/// after the table. They never fail the bench.
static FINDINGS: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn finding(msg: String) {
    eprintln!("shmfs bench: LOOKS WRONG: {msg}");
    let mut all = FINDINGS.lock().unwrap_or_else(|e| e.into_inner());
    if !all.contains(&msg) {
        all.push(msg);
    }
}

// ---------------------------------------------------------------------------------------------
// Statistics and the table
// ---------------------------------------------------------------------------------------------

/// Median and spread of a few samples.
#[derive(Clone, Copy, Debug)]
struct Stats {
    median: f64,
    min: f64,
    max: f64,
}

impl Stats {
    fn of(samples: &[f64]) -> Stats {
        assert!(!samples.is_empty(), "Stats of no samples");
        let mut s = samples.to_vec();
        s.sort_by(f64::total_cmp);
        let n = s.len();
        let median = if n % 2 == 1 {
            s[n / 2]
        } else {
            (s[n / 2 - 1] + s[n / 2]) / 2.0
        };
        Stats {
            median,
            min: s[0],
            max: s[n - 1],
        }
    }
}

/// What a sample measures, for printing.
#[derive(Clone, Copy)]
enum Unit {
    /// Seconds per operation.
    Secs,
    /// Bytes per second.
    Rate,
    /// Bytes.
    Bytes,
}

impl Unit {
    /// Divisor and suffix that suit `v`.
    fn scale(self, v: f64) -> (f64, &'static str) {
        let v = v.abs();
        match self {
            Unit::Secs if v >= 1.0 => (1.0, "s"),
            Unit::Secs if v >= 1e-3 => (1e-3, "ms"),
            Unit::Secs => (1e-6, "µs"),
            Unit::Rate if v >= 1e9 => (1e9, "GB/s"),
            Unit::Rate => (1e6, "MB/s"),
            Unit::Bytes if v >= GIB as f64 => (GIB as f64, "GiB"),
            Unit::Bytes if v >= MIB as f64 => (MIB as f64, "MiB"),
            Unit::Bytes if v >= KIB as f64 => (KIB as f64, "KiB"),
            Unit::Bytes => (1.0, "B"),
        }
    }

    fn one(self, v: f64) -> String {
        let (div, suffix) = self.scale(v);
        format!("{} {suffix}", num(v / div))
    }

    /// "median unit (min–max)", all in the median's unit.
    fn stats(self, s: Stats) -> String {
        let (div, suffix) = self.scale(s.median);
        format!(
            "{} {suffix} ({}–{})",
            num(s.median / div),
            num(s.min / div),
            num(s.max / div)
        )
    }
}

/// Three significant digits or so.
fn num(x: f64) -> String {
    if x.abs() >= 100.0 || x.fract() == 0.0 {
        format!("{x:.0}")
    } else if x.abs() >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

/// What a row must reach.
#[derive(Clone, Copy)]
enum Target {
    /// shmfs/reference of the medians at least this (throughput rows).
    RatioAtLeast(f64),
    /// shmfs/reference of the medians at most this (time rows).
    RatioAtMost(f64),
}

impl Target {
    fn text(self) -> String {
        match self {
            Target::RatioAtLeast(t) => format!("≥ {t}"),
            Target::RatioAtMost(t) => format!("≤ {t}"),
        }
    }

    fn met(self, ratio: f64) -> bool {
        match self {
            Target::RatioAtLeast(t) => ratio >= t,
            Target::RatioAtMost(t) => ratio <= t,
        }
    }
}

/// One line of the table, already in words.
struct Row {
    label: String,
    shmfs: String,
    reference: String,
    ratio: String,
    target: String,
    met: &'static str,
}

impl Row {
    /// A row that compares shmfs with its reference: ratio of the medians against `target`.
    fn compare(label: String, unit: Unit, shmfs: Stats, reference: Stats, target: Target) -> Row {
        let ratio = shmfs.median / reference.median;
        Row {
            label,
            shmfs: unit.stats(shmfs),
            reference: unit.stats(reference),
            ratio: format!("{ratio:.2}"),
            target: target.text(),
            met: yes_no(target.met(ratio)),
        }
    }
}

fn yes_no(ok: bool) -> &'static str {
    if ok { "yes" } else { "NO" }
}

/// The rows and notes collected so far; printed at the end even if a step failed.
#[derive(Default)]
struct Report {
    rows: Vec<Row>,
    notes: Vec<String>,
}

impl Report {
    fn add(&mut self, row: Row) {
        eprintln!(
            "shmfs bench: {}: shmfs {} | reference {} | ratio {}",
            row.label, row.shmfs, row.reference, row.ratio
        );
        self.rows.push(row);
    }

    fn note(&mut self, note: String) {
        eprintln!("shmfs bench: {note}");
        self.notes.push(note);
    }

    fn print(&self, cfg: &Config) {
        let header = Row {
            label: "row".into(),
            shmfs: "shmfs: median (min–max)".into(),
            reference: "reference: median (min–max)".into(),
            ratio: "ratio".into(),
            target: "target".into(),
            met: "met",
        };
        let cells = |r: &Row| {
            [
                r.label.clone(),
                r.shmfs.clone(),
                r.reference.clone(),
                r.ratio.clone(),
                r.target.clone(),
                r.met.to_string(),
            ]
        };
        // Rows in their numbered order (they are measured in another); the sort is stable.
        let mut rows: Vec<&Row> = self.rows.iter().collect();
        rows.sort_by_key(|r| {
            r.label
                .split(' ')
                .next()
                .and_then(|n| n.parse::<u32>().ok())
        });
        let lines: Vec<[String; 6]> = std::iter::once(&header).chain(rows).map(cells).collect();
        let mut widths = [0usize; 6];
        for line in &lines {
            for (w, cell) in widths.iter_mut().zip(line) {
                *w = (*w).max(cell.chars().count());
            }
        }
        println!();
        println!(
            "shmfs benchmark ({} mode): {} runs per row after one warm-up; {} data, {} SysV segments, {} POSIX objects",
            cfg.mode(),
            cfg.runs,
            cfg.data_size(),
            cfg.segments,
            cfg.objects
        );
        for (i, line) in lines.iter().enumerate() {
            let text: Vec<String> = line
                .iter()
                .zip(widths)
                .map(|(cell, w)| pad(cell, w))
                .collect();
            println!("{}", text.join("  ").trim_end());
            if i == 0 {
                let rule: Vec<String> = widths.iter().map(|&w| "-".repeat(w)).collect();
                println!("{}", rule.join("  "));
            }
        }
        println!();
        println!(
            "ratio = shmfs / reference of the medians: for GB/s rows higher is better, for time rows lower is better."
        );
        for note in &self.notes {
            println!("note: {note}");
        }
        let findings = FINDINGS.lock().unwrap_or_else(|e| e.into_inner());
        for f in findings.iter() {
            println!("LOOKS WRONG: {f}");
        }
    }
}

fn pad(s: &str, width: usize) -> String {
    let n = s.chars().count();
    format!("{s}{}", " ".repeat(width.saturating_sub(n)))
}

/// One warm-up of each side, then `runs` samples of each, reference first in every pair.
fn compare(
    runs: usize,
    mut shmfs: impl FnMut() -> Result<f64>,
    mut reference: impl FnMut() -> Result<f64>,
) -> Result<(Stats, Stats)> {
    reference()?;
    shmfs()?;
    let (mut s, mut r) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        r.push(reference()?);
        s.push(shmfs()?);
    }
    Ok((Stats::of(&s), Stats::of(&r)))
}

/// One warm-up, then `runs` samples.
fn sample(runs: usize, mut f: impl FnMut() -> Result<f64>) -> Result<Stats> {
    f()?;
    let samples = (0..runs).map(|_| f()).collect::<Result<Vec<f64>>>()?;
    Ok(Stats::of(&samples))
}

// ---------------------------------------------------------------------------------------------
// Commands
// ---------------------------------------------------------------------------------------------

/// Runs `cmd` with stdin and stdout on /dev/null and stderr captured; returns how long it took
/// and its stderr. Fails if it cannot start or exits non-zero.
fn run_cmd(cmd: &mut Command) -> Result<(Duration, String)> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .env("LC_ALL", "C");
    let what = format!("{cmd:?}");
    check_interrupted()?;
    arm_watchdog(&what);
    let start = Instant::now();
    let out = cmd.output();
    let elapsed = start.elapsed();
    disarm_watchdog();
    check_interrupted()?;
    let out = out.context(|| format!("cannot run {what}"))?;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        return fail(format!("{what} failed ({}): {}", out.status, stderr.trim()));
    }
    Ok((elapsed, stderr))
}

/// Set by SIGINT, SIGTERM or SIGHUP: the next command fails, and the bench cleans up and exits.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_interrupt(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

fn catch_interrupts() {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        let handler = on_interrupt as extern "C" fn(libc::c_int);
        unsafe { libc::signal(sig, handler as libc::sighandler_t) };
    }
}

fn check_interrupted() -> Result<()> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        return fail("interrupted by a signal");
    }
    Ok(())
}

/// Seconds that `program args…` took.
fn time_cmd<S: AsRef<std::ffi::OsStr>>(program: &str, args: &[S]) -> Result<f64> {
    Ok(run_cmd(Command::new(program).args(args))?.0.as_secs_f64())
}

/// Runs `dd ARGS…` and returns bytes per second; notes a finding if it copied other than
/// `expect` bytes.
fn dd(args: &[String], expect: u64) -> Result<f64> {
    let (elapsed, stderr) = run_cmd(Command::new("dd").args(args))?;
    let copied = stderr
        .lines()
        .find(|l| l.contains("bytes"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse::<u64>().ok());
    if copied != Some(expect) {
        finding(format!(
            "`dd {}` copied {copied:?} bytes, expected {expect} (stderr: {})",
            args.join(" "),
            stderr.trim()
        ));
    }
    Ok(expect as f64 / elapsed.as_secs_f64())
}

/// How a row reads a file from start to end.
#[derive(Clone, Copy)]
enum Reader {
    Dd,
    Cat,
}

impl Reader {
    fn name(self) -> &'static str {
        match self {
            Reader::Dd => "dd bs=1M",
            Reader::Cat => "cat",
        }
    }

    /// Reads all `bytes` of `path` into /dev/null; returns bytes per second.
    fn read(self, path: &Path, bytes: u64) -> Result<f64> {
        match self {
            Reader::Dd => dd(
                &[
                    format!("if={}", path.display()),
                    "of=/dev/null".into(),
                    "bs=1M".into(),
                ],
                bytes,
            ),
            Reader::Cat => Ok(bytes as f64 / time_cmd("cat", &[path])?),
        }
    }
}

/// `dd if=/dev/zero of=PATH bs=1M count=N conv=notrunc`; returns bytes per second.
fn dd_write(path: &Path, mib: u64) -> Result<f64> {
    dd(
        &[
            "if=/dev/zero".into(),
            format!("of={}", path.display()),
            "bs=1M".into(),
            format!("count={mib}"),
            "conv=notrunc".into(),
        ],
        mib * MIB,
    )
}

/// Seconds per call of `op`: `n` calls, or fewer if they take longer than `budget` in all.
fn per_op(n: usize, budget: Duration, mut op: impl FnMut() -> Result<()>) -> Result<f64> {
    let start = Instant::now();
    let mut done = 0;
    while done < n {
        op()?;
        done += 1;
        if start.elapsed() > budget {
            break;
        }
    }
    Ok(start.elapsed().as_secs_f64() / done as f64)
}

// ---------------------------------------------------------------------------------------------
// Watchdog: a hung mount must fail the bench, not hang it
// ---------------------------------------------------------------------------------------------

/// The daemon's pid (while it may be killed) and the running command's deadline.
struct Watch {
    daemon: Option<i32>,
    deadline: Option<(Instant, String)>,
}

static WATCH: Mutex<Watch> = Mutex::new(Watch {
    daemon: None,
    deadline: None,
});

fn watch() -> std::sync::MutexGuard<'static, Watch> {
    WATCH.lock().unwrap_or_else(|e| e.into_inner())
}

/// Once a second: if a command has run past its deadline, SIGKILL the daemon. The kernel then
/// aborts the FUSE connection, the hung command fails with ENOTCONN, and the bench fails cleanly.
fn start_watchdog() {
    std::thread::spawn(|| {
        loop {
            std::thread::sleep(Duration::from_secs(1));
            let mut w = watch();
            let late = w
                .deadline
                .as_ref()
                .is_some_and(|(t, _)| Instant::now() > *t);
            if let (true, Some(pid)) = (late, w.daemon) {
                let what = &w.deadline.as_ref().unwrap().1;
                eprintln!(
                    "shmfs bench: {what} ran longer than {COMMAND_TIMEOUT:?}: killing shmfs (pid {pid})"
                );
                unsafe { libc::kill(pid, libc::SIGKILL) };
                w.daemon = None;
            }
        }
    });
}

fn arm_watchdog(what: &str) {
    watch().deadline = Some((Instant::now() + COMMAND_TIMEOUT, what.to_string()));
}

fn disarm_watchdog() {
    watch().deadline = None;
}

// ---------------------------------------------------------------------------------------------
// What the bench sets up: namespace, directories, segments, mount
// ---------------------------------------------------------------------------------------------

fn enter_private_ipc_namespace() -> Result<()> {
    if unsafe { libc::unshare(libc::CLONE_NEWIPC) } != 0 {
        return fail(format!(
            "unshare(CLONE_NEWIPC): {}",
            io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// Raises /proc/sys/kernel/NAME to `want` if it is lower (IPC sysctls are per IPC namespace, so
/// this changes only the bench's private namespace).
fn ensure_sysctl_at_least(name: &str, want: u64) -> Result<()> {
    let path = format!("/proc/sys/kernel/{name}");
    let text = fs::read_to_string(&path).context(|| format!("read {path}"))?;
    let have: u64 = text
        .trim()
        .parse()
        .context(|| format!("{path} holds {text:?}"))?;
    if have < want {
        eprintln!("shmfs bench: raising {path} from {have} to {want} in the private IPC namespace");
        fs::write(&path, want.to_string()).context(|| format!("write {want} to {path}"))?;
    }
    Ok(())
}

fn page_size() -> u64 {
    unsafe { libc::sysconf(libc::_SC_PAGESIZE) as u64 }
}

/// The release binary cargo built for this bench, or target/release/shmfs.
fn shmfs_binary() -> Result<PathBuf> {
    let candidates = [
        option_env!("CARGO_BIN_EXE_shmfs").map(PathBuf::from),
        Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/shmfs")),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|p| p.is_file())
        .ok_or_else(|| {
            Error("no shmfs binary: neither CARGO_BIN_EXE_shmfs nor target/release/shmfs exists (run `cargo build --release`)".into())
        })
}

/// Everything the bench made. Fields drop in order: the mount first, then segments, then
/// directories.
struct Bench {
    mount: Mount,
    segments: Segments,
    /// Shown by shmfs as `posix/`.
    posix_dir: TempDir,
    /// Holds the tmpfs reference file of the SysV rows.
    ref_dir: TempDir,
}

impl Bench {
    fn new(bin: &Path) -> Result<Bench> {
        let posix_dir = shm_private_dir("shmfs-bench-posix.")?;
        let ref_dir = shm_private_dir("shmfs-bench-ref.")?;
        // Extra daemon arguments, e.g. `--no-sandbox` to compare with the sandbox off.
        let args: Vec<String> = std::env::var("SHMFS_BENCH_MOUNT_ARGS")
            .unwrap_or_default()
            .split_whitespace()
            .map(String::from)
            .collect();
        let mount = Mount::builder()
            .binary(bin)
            .shm_dir(posix_dir.path())
            .args(&args)
            .try_mount()
            .map_err(Error)?;
        watch().daemon = Some(mount.pid() as i32);
        eprintln!(
            "shmfs bench: shmfs (pid {}) mounted on {}",
            mount.pid(),
            mount.path().display()
        );
        Ok(Bench {
            mount,
            segments: Segments::default(),
            posix_dir,
            ref_dir,
        })
    }

    /// `MOUNT/rel`.
    fn at(&self, rel: &str) -> PathBuf {
        self.mount.p(rel)
    }

    fn sysv(&self, id: i32, file: &str) -> PathBuf {
        self.mount.sysv(id, file)
    }

    /// Unmounts, checks the daemon's exit and its log, and removes everything (by dropping).
    fn finish(mut self) -> Result<()> {
        let status = self.stop()?;
        if !status.success() {
            finding(format!(
                "shmfs exited with {status} after SIGTERM; it should unmount cleanly and exit 0"
            ));
        }
        if let Some(log) = self.mount.take_panic_log() {
            return fail(format!("the shmfs daemon panicked; its log:\n{log}"));
        }
        Ok(())
    }

    /// SIGTERM, wait; if it does not exit in time, SIGKILL. Returns the daemon's exit status.
    fn stop(&mut self) -> Result<ExitStatus> {
        watch().daemon = None;
        self.mount.signal_and_wait(libc::SIGTERM).ok_or_else(|| {
            Error(format!(
                "shmfs did not exit within {MOUNT_TIMEOUT:?} of SIGTERM (killed it); its log:\n{}",
                self.mount.log()
            ))
        })
    }
}

impl Drop for Bench {
    /// The watchdog lets go of the daemon before the mount stops it (and its pid may be reused).
    fn drop(&mut self) {
        watch().daemon = None;
    }
}

fn shm_private_dir(prefix: &str) -> Result<TempDir> {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in("/dev/shm")
        .context(|| format!("create a private directory {prefix}* in /dev/shm"))
}

/// SysV segments the bench created; Drop removes those still there.
#[derive(Default)]
struct Segments {
    ids: Vec<i32>,
}

impl Segments {
    /// A new IPC_PRIVATE segment of `size` bytes, mode 0600.
    fn create(&mut self, size: u64) -> Result<i32> {
        let id = unsafe { libc::shmget(libc::IPC_PRIVATE, size as usize, libc::IPC_CREAT | 0o600) };
        if id < 0 {
            return fail(format!(
                "shmget(IPC_PRIVATE, {size}) after {} segments: {}",
                self.ids.len(),
                io::Error::last_os_error()
            ));
        }
        self.ids.push(id);
        Ok(id)
    }

    fn remove(&mut self, id: i32) -> Result<()> {
        self.ids.retain(|&i| i != id);
        if unsafe { libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()) } != 0 {
            return fail(format!(
                "shmctl({id}, IPC_RMID): {}",
                io::Error::last_os_error()
            ));
        }
        Ok(())
    }

    fn len(&self) -> usize {
        self.ids.len()
    }
}

impl Drop for Segments {
    fn drop(&mut self) {
        for &id in &self.ids {
            unsafe { libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()) };
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Data
// ---------------------------------------------------------------------------------------------

/// 1 MiB of pseudo-random bytes (xorshift): the content every big object is filled with.
fn pattern() -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..MIB / 8)
        .flat_map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()
        })
        .collect()
}

fn fill_file(path: &Path, size: u64) -> Result<()> {
    let chunk = pattern();
    let mut f = File::create(path).context(|| format!("create {}", path.display()))?;
    for _ in 0..size / MIB {
        f.write_all(&chunk)
            .context(|| format!("fill {}", path.display()))?;
    }
    Ok(())
}

/// Fills a segment by attaching it in this process (which allocates all its pages).
fn fill_segment(id: i32, size: u64) -> Result<()> {
    let addr = unsafe { libc::shmat(id, std::ptr::null(), 0) };
    if addr as isize == -1 {
        return fail(format!("shmat({id}): {}", io::Error::last_os_error()));
    }
    let chunk = pattern();
    let mem = unsafe { std::slice::from_raw_parts_mut(addr as *mut u8, size as usize) };
    for piece in mem.chunks_mut(chunk.len()) {
        piece.copy_from_slice(&chunk[..piece.len()]);
    }
    unsafe { libc::shmdt(addr) };
    Ok(())
}

/// The big, filled objects of the data rows.
struct BigObjects {
    /// Name of the POSIX object in the shm dir.
    posix: &'static str,
    /// The filled SysV segment.
    sysv: i32,
    /// The tmpfs reference file for the SysV rows.
    reference: PathBuf,
}

impl BigObjects {
    fn create(cfg: &Config, bench: &mut Bench) -> Result<BigObjects> {
        eprintln!(
            "shmfs bench: filling a {} POSIX object, SysV segment and tmpfs file",
            cfg.data_size()
        );
        let big = BigObjects {
            posix: "big",
            sysv: bench.segments.create(cfg.data_bytes)?,
            reference: bench.ref_dir.path().join("big"),
        };
        fill_file(&big.posix_direct(bench), cfg.data_bytes)?;
        fill_segment(big.sysv, cfg.data_bytes)?;
        fill_file(&big.reference, cfg.data_bytes)?;
        Ok(big)
    }

    fn posix_direct(&self, bench: &Bench) -> PathBuf {
        bench.posix_dir.path().join(self.posix)
    }

    fn posix_data(&self, bench: &Bench) -> PathBuf {
        bench.at(&format!("posix/{}/data", self.posix))
    }

    fn sysv_data(&self, bench: &Bench) -> PathBuf {
        bench.sysv(self.sysv, "data")
    }

    /// Reads the first and last MiB of both `data` files and compares them with what was
    /// written: a fast read of wrong bytes is no result.
    fn check_contents(&self, bench: &Bench) {
        let want = pattern();
        for path in [self.posix_data(bench), self.sysv_data(bench)] {
            let got = File::open(&path).and_then(|f| {
                let size = f.metadata()?.len();
                let mut first = vec![0; MIB as usize];
                let mut last = vec![0; MIB as usize];
                f.read_exact_at(&mut first, 0)?;
                f.read_exact_at(&mut last, size.saturating_sub(MIB))?;
                Ok((first, last))
            });
            match got {
                Ok((first, last)) if first == want && last == want => {}
                Ok(_) => finding(format!(
                    "{} does not hold the bytes written to it",
                    path.display()
                )),
                Err(e) => finding(format!("reading {}: {e}", path.display())),
            }
        }
    }

    fn remove(self, bench: &mut Bench) -> Result<()> {
        bench.segments.remove(self.sysv)?;
        for p in [self.posix_direct(bench), self.reference] {
            fs::remove_file(&p).context(|| format!("remove {}", p.display()))?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// The rows
// ---------------------------------------------------------------------------------------------

/// One data row: `op` (which returns bytes per second) on a path under the mount and on its
/// reference path, `runs` times each.
fn data_row(
    cfg: &Config,
    report: &mut Report,
    label: String,
    target: f64,
    (via, direct): (&Path, &Path),
    op: impl Fn(&Path) -> Result<f64>,
) -> Result<()> {
    let (s, r) = compare(cfg.runs, || op(via), || op(direct))?;
    let target = Target::RatioAtLeast(target);
    report.add(Row::compare(label, Unit::Rate, s, r, target));
    Ok(())
}

/// Row 1: sequential read of the POSIX object's `data` vs the same file in the shm dir.
fn row_read_posix(
    cfg: &Config,
    bench: &Bench,
    big: &BigObjects,
    report: &mut Report,
) -> Result<()> {
    let paths = (&*big.posix_data(bench), &*big.posix_direct(bench));
    for how in [Reader::Dd, Reader::Cat] {
        let label = format!("1 read POSIX {}, {}", cfg.data_size(), how.name());
        data_row(cfg, report, label, 0.9, paths, |p| {
            how.read(p, cfg.data_bytes)
        })?;
    }
    Ok(())
}

/// Row 2: sequential read of the SysV segment's `data` vs a tmpfs file of the same size.
fn row_read_sysv(cfg: &Config, bench: &Bench, big: &BigObjects, report: &mut Report) -> Result<()> {
    let paths = (&*big.sysv_data(bench), &*big.reference);
    for how in [Reader::Dd, Reader::Cat] {
        let label = format!("2 read SysV {}, {}", cfg.data_size(), how.name());
        data_row(cfg, report, label, 0.9, paths, |p| {
            how.read(p, cfg.data_bytes)
        })?;
    }
    Ok(())
}

/// Row 3: `dd conv=notrunc` writes to the SysV `data` (reference: the tmpfs file) and to the
/// POSIX `data` (reference: the object's file itself).
fn row_write(cfg: &Config, bench: &Bench, big: &BigObjects, report: &mut Report) -> Result<()> {
    let write = |p: &Path| dd_write(p, cfg.data_mib());
    let size = cfg.data_size();
    let sysv = (&*big.sysv_data(bench), &*big.reference);
    data_row(
        cfg,
        report,
        format!("3 write SysV {size}, dd bs=1M"),
        0.8,
        sysv,
        write,
    )?;
    let posix = (&*big.posix_data(bench), &*big.posix_direct(bench));
    data_row(
        cfg,
        report,
        format!("3 write POSIX {size}, dd bs=1M"),
        0.8,
        posix,
        write,
    )?;
    Ok(())
}

/// Row 8: reading all of a never-touched segment through `data` must allocate nothing: its
/// rss in /proc/sysvipc/shm before and after, and the system's Shmem (other users of the
/// machine move that one too).
fn row_untouched_segment(cfg: &Config, bench: &mut Bench, report: &mut Report) -> Result<()> {
    let id = bench.segments.create(cfg.data_bytes)?;
    let data = bench.sysv(id, "data");
    let (rss0, shmem0) = (segment_rss(id)?, meminfo_shmem()?);
    let secs = time_cmd("cat", &[&data])?;
    let (rss1, shmem1) = (segment_rss(id)?, meminfo_shmem()?);
    bench.segments.remove(id)?;

    report.note(format!(
        "row 8: `cat data` of the untouched {} segment took {} ({})",
        cfg.data_size(),
        Unit::Secs.one(secs),
        Unit::Rate.one(cfg.data_bytes as f64 / secs)
    ));
    let delta = |a: u64, b: u64| b as f64 - a as f64;
    report.add(Row {
        label: format!("8 untouched SysV {}: rss after `cat data`", cfg.data_size()),
        shmfs: format!("after {}", Unit::Bytes.one(rss1 as f64)),
        reference: format!("before {}", Unit::Bytes.one(rss0 as f64)),
        ratio: format!("Δ {}", Unit::Bytes.one(delta(rss0, rss1))),
        target: "0 bytes".into(),
        met: yes_no(rss1 == 0),
    });
    report.add(Row {
        label: "8 … system Shmem (/proc/meminfo) around it".into(),
        shmfs: format!("after {}", Unit::Bytes.one(shmem1 as f64)),
        reference: format!("before {}", Unit::Bytes.one(shmem0 as f64)),
        ratio: format!("Δ {}", Unit::Bytes.one(delta(shmem0, shmem1))),
        target: "(info)".into(),
        met: "-",
    });
    Ok(())
}

/// Row 6: `cat sysv/ID/stat` of one segment with all the segments present, then with 10. The
/// segment is the last in the kernel's order (/proc/sysvipc/shm lists by index) in both phases,
/// so a lookup that walks the list pays for all of it. Leaves all the segments in place.
fn row_stat(cfg: &Config, bench: &mut Bench, report: &mut Report) -> Result<()> {
    create_segments(bench, cfg.segments)?;
    let order = sysvipc_order()?;
    let Some(&target) = order.last() else {
        return fail("/proc/sysvipc/shm lists no segment");
    };
    let stat = bench.sysv(target, "stat");
    let cat = || run_cmd(Command::new("cat").arg(&stat)).map(drop);
    let read = || {
        fs::read(&stat)
            .map(drop)
            .context(|| format!("read {}", stat.display()))
    };
    let (cats, reads, budget) = (cfg.cats, cfg.cats * 10, cfg.op_budget);
    let many_cat = sample(cfg.runs, || per_op(cats, budget, cat))?;
    let many_read = sample(cfg.runs, || per_op(reads, budget, read))?;

    eprintln!("shmfs bench: keeping {BASELINE_SEGMENTS} segments, {target} last");
    for &id in &order[..order.len().saturating_sub(BASELINE_SEGMENTS)] {
        bench.segments.remove(id)?;
    }
    let few_cat = sample(cfg.runs, || per_op(cats, budget, cat))?;
    let few_read = sample(cfg.runs, || per_op(reads, budget, read))?;
    create_segments(bench, cfg.segments)?;

    let n = cfg.segments;
    report.note(format!(
        "row 6: each run does {cats} cats ({reads} in-process reads) of the stat of the segment listed last, or as many as fit in {budget:?}"
    ));
    report.add(Row::compare(
        format!("6 `cat sysv/ID/stat`, {n} vs {BASELINE_SEGMENTS} segments, per cat"),
        Unit::Secs,
        many_cat,
        few_cat,
        Target::RatioAtMost(1.2),
    ));
    report.add(Row::compare(
        format!("6 … open+read+close in-process, {n} vs {BASELINE_SEGMENTS}, per read"),
        Unit::Secs,
        many_read,
        few_read,
        Target::RatioAtMost(1.2),
    ));
    Ok(())
}

/// The tools that walk the mount (rows 9 and 10), as a shell runs them: `$1` is the mount point.
const WALKS: [(&str, &str); 5] = [
    (
        "grep -l 'nattch: 0' sysv/*/stat",
        r#"grep -l 'nattch: 0' "$1"/sysv/*/stat | wc -l"#,
    ),
    ("du -s sysv", r#"du -s "$1/sysv""#),
    ("ls -lR MNT", r#"ls -lR "$1""#),
    (
        "find MNT -name data -size +1M",
        r#"find "$1" -name data -size +1M"#,
    ),
    (
        "tar -cf /dev/null -C MNT sysv",
        r#"tar -cf /dev/null -C "$1" sysv"#,
    ),
];

/// Rows 9 and 10: each walk with a quarter of the segments and with all of them (1,000 and
/// 4,000 in a full run): the ratio shows whether the cost per segment stays flat (4× the
/// segments, at most 4.5× the time). Then `grep` over every `stat` against `ipcs -m`, which
/// prints the same facts. Leaves `cfg.segments` segments in place.
fn row_walks(cfg: &Config, bench: &mut Bench, report: &mut Report) -> Result<()> {
    let mnt = bench.mount.path().to_path_buf();
    let walk = |script: &str| -> Result<f64> {
        time_cmd(
            "sh",
            &[Path::new("-c"), Path::new(script), Path::new("sh"), &mnt],
        )
    };
    let measure = |bench: &mut Bench, n: usize| -> Result<(Vec<Stats>, Stats)> {
        create_segments(bench, n)?;
        check_grep_count(&mnt, bench.segments.len());
        eprintln!("shmfs bench: walks over {n} segments");
        let walks = WALKS
            .iter()
            .map(|(_, script)| sample(cfg.runs, || walk(script)))
            .collect::<Result<Vec<Stats>>>()?;
        let ipcs = sample(cfg.runs, || time_cmd("ipcs", &["-m"]))?;
        Ok((walks, ipcs))
    };
    let (few, many) = (cfg.segments / 4, cfg.segments);
    let (at_few, _) = measure(bench, few)?;
    let (at_many, ipcs) = measure(bench, many)?;
    for (((label, _), a), b) in WALKS.iter().zip(&at_few).zip(&at_many) {
        report.add(Row::compare(
            format!("9 `{label}`, {many} vs {few} segments"),
            Unit::Secs,
            *b,
            *a,
            Target::RatioAtMost(4.5),
        ));
    }
    report.add(Row::compare(
        format!("10 `{}` vs `ipcs -m`, {many} segments", WALKS[0].0),
        Unit::Secs,
        at_many[0],
        ipcs,
        Target::RatioAtMost(10.0),
    ));
    Ok(())
}

/// Notes a finding unless `grep -l 'nattch: 0'` over every `stat` names all `want` segments
/// (none of the bench's segments is attached).
fn check_grep_count(mnt: &Path, want: usize) {
    let out = Command::new("sh")
        .args(["-c", WALKS[0].1, "sh"])
        .arg(mnt)
        .env("LC_ALL", "C")
        .stderr(Stdio::null())
        .output();
    match out {
        Ok(o) if String::from_utf8_lossy(&o.stdout).trim() == want.to_string() => {}
        Ok(o) => finding(format!(
            "`{}` counted {:?}, but {want} unattached segments exist",
            WALKS[0].0,
            String::from_utf8_lossy(&o.stdout).trim()
        )),
        Err(e) => finding(format!("running `{}`: {e}", WALKS[0].0)),
    }
}

/// Row 4: `ls -l sysv/` against `ipcs -m` over all the segments.
fn row_ls_sysv(cfg: &Config, bench: &Bench, report: &mut Report) -> Result<()> {
    let sysv = bench.at("sysv");
    check_listing(&sysv, bench.segments.len());
    let (s, r) = compare(
        cfg.runs,
        || time_cmd("ls", &[Path::new("-l"), &sysv]),
        || time_cmd("ipcs", &["-m"]),
    )?;
    report.add(Row::compare(
        format!(
            "4 `ls -l sysv/` vs `ipcs -m`, {} segments",
            bench.segments.len()
        ),
        Unit::Secs,
        s,
        r,
        Target::RatioAtMost(2.0),
    ));
    Ok(())
}

/// Row 11: `cat metrics.prom` against `cat index` over all the segments (the target: within 3×):
/// the same listing, eight series a segment instead of one row.
fn row_metrics(cfg: &Config, bench: &Bench, report: &mut Report) -> Result<()> {
    let (metrics, index) = (bench.at("metrics.prom"), bench.at("index"));
    check_metrics_count(&metrics, bench.segments.len());
    let (s, r) = compare(
        cfg.runs,
        || time_cmd("cat", &[&metrics]),
        || time_cmd("cat", &[&index]),
    )?;
    report.add(Row::compare(
        format!(
            "11 `cat metrics.prom` vs `cat index`, {} segments",
            bench.segments.len()
        ),
        Unit::Secs,
        s,
        r,
        Target::RatioAtMost(3.0),
    ));
    Ok(())
}

/// Notes a finding unless `metrics.prom` has one size series for each of `want` segments.
fn check_metrics_count(path: &Path, want: usize) {
    match fs::read_to_string(path) {
        Ok(text) => {
            let got = text
                .lines()
                .filter(|l| l.starts_with("shmfs_sysv_segment_size_bytes{"))
                .count();
            if got != want {
                finding(format!(
                    "{} has {got} segments' sizes, but {want} segments exist",
                    path.display()
                ));
            }
        }
        Err(e) => finding(format!("read {}: {e}", path.display())),
    }
}

/// Creates 4 KiB segments until the bench holds `total`.
fn create_segments(bench: &mut Bench, total: usize) -> Result<()> {
    eprintln!("shmfs bench: creating SysV segments up to {total}");
    while bench.segments.len() < total {
        check_interrupted()?;
        bench.segments.create(4096)?;
    }
    Ok(())
}

/// Notes a finding if `dir` does not list exactly `want` entries.
fn check_listing(dir: &Path, want: usize) {
    match fs::read_dir(dir) {
        Ok(entries) => {
            let got = entries.count();
            if got != want {
                finding(format!(
                    "{} lists {got} entries, but {want} exist",
                    dir.display()
                ));
            }
        }
        Err(e) => finding(format!("readdir {}: {e}", dir.display())),
    }
}

/// Row 5: `ls -l posix/` vs `ls -l` of the shm dir, with `cfg.objects` objects.
fn row_ls_posix(cfg: &Config, bench: &Bench, report: &mut Report) -> Result<()> {
    eprintln!("shmfs bench: creating {} POSIX objects", cfg.objects);
    for i in 0..cfg.objects {
        let p = bench.posix_dir.path().join(format!("obj-{i:05}"));
        File::create(&p).context(|| format!("create {}", p.display()))?;
    }
    let posix = bench.at("posix");
    check_listing(&posix, cfg.objects);
    let direct = bench.posix_dir.path();
    let (s, r) = compare(
        cfg.runs,
        || time_cmd("ls", &[Path::new("-l"), &posix]),
        || time_cmd("ls", &[Path::new("-l"), direct]),
    )?;
    report.add(Row::compare(
        format!(
            "5 `ls -l posix/` vs `ls -l` shm dir, {} objects",
            cfg.objects
        ),
        Unit::Secs,
        s,
        r,
        Target::RatioAtMost(2.0),
    ));
    Ok(())
}

/// Row 7: the daemon's peak RSS after rounds of `ls -lR` of the mount and `cat */*/stat`.
fn row_daemon_memory(cfg: &Config, bench: &Bench, report: &mut Report) -> Result<()> {
    let mnt = bench.mount.path();
    let pid = bench.mount.pid() as i32;
    let cat_stats = [
        Path::new("-c"),
        Path::new(r#"cat "$1"/*/*/stat"#),
        Path::new("sh"),
        mnt,
    ];
    let (mut hwm, mut ls_secs, mut cat_secs) = (Vec::new(), Vec::new(), Vec::new());
    let start = Instant::now();
    for round in 1..=RSS_ROUNDS {
        eprintln!("shmfs bench: memory round {round}/{RSS_ROUNDS}");
        ls_secs.push(time_cmd("ls", &[Path::new("-lR"), mnt])?);
        cat_secs.push(time_cmd("sh", &cat_stats)?);
        hwm.push(vm_hwm(pid)?);
        if (2..RSS_ROUNDS).contains(&round) && start.elapsed() > cfg.rss_budget {
            report.note(format!(
                "row 7: stopped after {round} of {RSS_ROUNDS} rounds: they took longer than {:?}",
                cfg.rss_budget
            ));
            break;
        }
    }
    let (first, last, rounds) = (hwm[0], hwm[hwm.len() - 1], hwm.len());
    let mib: Vec<String> = hwm.iter().map(|&b| num(b as f64 / MIB as f64)).collect();
    report.note(format!(
        "row 7: over {} segments and {} objects, `ls -lR` takes {} and `cat */*/stat` {}",
        bench.segments.len(),
        cfg.objects,
        Unit::Secs.stats(Stats::of(&ls_secs)),
        Unit::Secs.stats(Stats::of(&cat_secs))
    ));
    report.note(format!(
        "row 7: daemon VmHWM after each round (MiB): {}; VmRSS at the end: {}",
        mib.join(", "),
        Unit::Bytes.one(proc_status_bytes(pid, "VmRSS")? as f64)
    ));
    report.add(Row {
        label: format!("7 daemon VmHWM after round {rounds} (ref: after round 1)"),
        shmfs: Unit::Bytes.one(last as f64),
        reference: Unit::Bytes.one(first as f64),
        ratio: format!("{:.2}", last as f64 / first as f64),
        target: format!("≤ {}", Unit::Bytes.one(RSS_TARGET as f64)),
        met: yes_no(last <= RSS_TARGET),
    });
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// /proc
// ---------------------------------------------------------------------------------------------

fn vm_hwm(pid: i32) -> Result<u64> {
    proc_status_bytes(pid, "VmHWM")
}

/// A "Name:   N kB" line of /proc/PID/status, in bytes.
fn proc_status_bytes(pid: i32, name: &str) -> Result<u64> {
    kb_line(&format!("/proc/{pid}/status"), name)
}

/// The system's Shmem line of /proc/meminfo, in bytes.
fn meminfo_shmem() -> Result<u64> {
    kb_line("/proc/meminfo", "Shmem")
}

/// Finds "NAME:   N kB" in `path` and returns N × 1024.
fn kb_line(path: &str, name: &str) -> Result<u64> {
    let text = fs::read_to_string(path).context(|| format!("read {path}"))?;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map(|kb| kb * KIB)
        .ok_or_else(|| Error(format!("no {name} line in {path}")))
}

/// The rss column (bytes) of segment `id` in /proc/sysvipc/shm.
fn segment_rss(id: i32) -> Result<u64> {
    sysvipc_column("rss")?
        .into_iter()
        .find(|(shmid, _)| *shmid == id)
        .and_then(|(_, rss)| rss.parse().ok())
        .ok_or_else(|| Error(format!("/proc/sysvipc/shm: no rss for shmid {id}")))
}

/// The shmids in /proc/sysvipc/shm, in the kernel's order.
fn sysvipc_order() -> Result<Vec<i32>> {
    Ok(sysvipc_column("shmid")?
        .into_iter()
        .map(|(id, _)| id)
        .collect())
}

/// Each row of /proc/sysvipc/shm as (shmid, value of column `name`), in the kernel's order.
fn sysvipc_column(name: &str) -> Result<Vec<(i32, String)>> {
    let path = "/proc/sysvipc/shm";
    let text = fs::read_to_string(path).context(|| format!("read {path}"))?;
    let mut lines = text
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>());
    let header = lines.next().unwrap_or_default();
    let col = |name: &str| header.iter().position(|h| *h == name);
    let (Some(shmid), Some(wanted)) = (col("shmid"), col(name)) else {
        return fail(format!("{path}: no shmid or {name} column in {header:?}"));
    };
    lines
        .map(|l| {
            let id = l.get(shmid).and_then(|v| v.parse().ok());
            match (id, l.get(wanted)) {
                (Some(id), Some(v)) => Ok((id, v.to_string())),
                _ => fail(format!("{path}: cannot read the line {l:?}")),
            }
        })
        .collect()
}
