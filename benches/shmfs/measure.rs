//! Taking the samples: commands run and timed (`run_cmd`, `time_cmd`, `dd`, `per_op`), warm-up
//! and runs (`sample`, `compare`), and what stops a bench that must stop: SIGINT, SIGTERM or
//! SIGHUP (the next command fails), and a hung mount (a watchdog kills the daemon).

use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::error::{Context, Result, fail, finding};
use crate::report::Stats;

/// How long one command may run before the watchdog calls the mount hung and kills shmfs.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(600);

/// One warm-up of each side, then `runs` samples of each, reference first in every pair.
pub fn compare(
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
pub fn sample(runs: usize, mut f: impl FnMut() -> Result<f64>) -> Result<Stats> {
    f()?;
    let samples = (0..runs).map(|_| f()).collect::<Result<Vec<f64>>>()?;
    Ok(Stats::of(&samples))
}

// ---------------------------------------------------------------------------------------------
// Commands
// ---------------------------------------------------------------------------------------------

/// Runs `cmd` with stdin and stdout on /dev/null and stderr captured; returns how long it took
/// and its stderr. Fails if it cannot start or exits non-zero.
pub fn run_cmd(cmd: &mut Command) -> Result<(Duration, String)> {
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

/// Makes SIGINT, SIGTERM and SIGHUP set a flag that fails the next command.
pub fn catch_interrupts() {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        let handler = on_interrupt as extern "C" fn(libc::c_int);
        unsafe { libc::signal(sig, handler as libc::sighandler_t) };
    }
}

/// Fails if a signal asked the bench to stop.
pub fn check_interrupted() -> Result<()> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        return fail("interrupted by a signal");
    }
    Ok(())
}

/// Seconds that `program args…` took.
pub fn time_cmd<S: AsRef<std::ffi::OsStr>>(program: &str, args: &[S]) -> Result<f64> {
    Ok(run_cmd(Command::new(program).args(args))?.0.as_secs_f64())
}

/// Runs `dd ARGS…` and returns bytes per second; notes a finding if it copied other than
/// `expect` bytes.
pub fn dd(args: &[String], expect: u64) -> Result<f64> {
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

/// Seconds per call of `op`: `n` calls, or fewer if they take longer than `budget` in all.
pub fn per_op(n: usize, budget: Duration, mut op: impl FnMut() -> Result<()>) -> Result<f64> {
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
pub fn start_watchdog() {
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

/// Tells the watchdog which daemon to kill when a command hangs (None: no daemon to kill).
pub fn watch_daemon(pid: Option<i32>) {
    watch().daemon = pid;
}

/// Gives the command `what`, starting now, [`COMMAND_TIMEOUT`] to finish.
fn arm_watchdog(what: &str) {
    watch().deadline = Some((Instant::now() + COMMAND_TIMEOUT, what.to_string()));
}

/// The command finished in time.
fn disarm_watchdog() {
    watch().deadline = None;
}
