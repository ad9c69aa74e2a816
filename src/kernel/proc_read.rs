//! Reads of other processes' `/proc` files that wait on their mmap lock, bounded in time.
//!
//! `/proc/PID/smaps`, `map_files/` (its lookup and link) and `maps` (always on kernels before
//! 6.17, and on later ones when the per-VMA path falls back to the lock) take the process's
//! mmap lock, which its owner can hold as long as it likes: a read of its own memory through
//! `/proc/self/mem` at a mapping of a file of its own FUSE mount whose read never answers holds
//! the lock for reading, and an `mmap` from a second thread queued for writing makes every
//! later reader wait too. A worker that read such a file directly would hang with it, and every
//! worker that met the same process after it.
//!
//! So such reads run on helper threads here, and the worker waits at most [`WAIT`] for each
//! process. A process that does not answer in time is *stalled*: it is logged once (naming
//! the pid), its read fails with EAGAIN, and later reads of it fail at once without waiting
//! until the stuck helper comes back (the lock was released or the process died). A stuck
//! helper cannot be interrupted, so their number is bounded: at most [`MAX_STUCK_PER_ACCOUNT`]
//! per account that owns stalled processes (a user's subordinate uids count as the user's,
//! see [`crate::kernel::account`]) and [`MAX_STUCK`] in all. Past the first bound that account's
//! processes are not read at all, past the second no process is; either way the read fails
//! with EAGAIN instead of waiting, and callers treat that as "not known".

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use crate::kernel::account::{Account, Accounts};

/// How long a worker waits for one process's read.
pub const WAIT: Duration = Duration::from_millis(250);
/// Helpers that may be stuck at once on the processes of one account.
pub const MAX_STUCK_PER_ACCOUNT: usize = 4;
/// Helpers that may be stuck at once in all.
pub const MAX_STUCK: usize = 32;
/// The stack of a helper thread: it only reads a file into the heap.
const HELPER_STACK: usize = 128 * 1024;

/// The processes on which a helper is stuck now.
#[derive(Default)]
struct Stalled {
    /// pid → (its owner's account, helpers stuck on it).
    pids: HashMap<u32, (Option<Account>, usize)>,
    /// Helpers stuck on each account's processes.
    accounts: HashMap<Option<Account>, usize>,
    stuck: usize,
}

/// Whether a process may be read now.
enum Verdict {
    Read,
    Skip,
    /// Only if its owner's account is under its bound.
    IfAccountMay,
}

fn stalled() -> MutexGuard<'static, Stalled> {
    static STALLED: OnceLock<Mutex<Stalled>> = OnceLock::new();
    STALLED
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

fn again() -> io::Error {
    io::Error::from_raw_os_error(libc::EAGAIN)
}

/// The account that owns process `pid`: its real uid (from `status`, which takes no mmap
/// lock; the owner of `/proc/PID` would be root for a process that made itself
/// non-dumpable), charged as [`crate::kernel::account`] charges it. None if the process is gone.
fn account_of(pid: u32) -> Option<Account> {
    static ACCOUNTS: OnceLock<Accounts> = OnceLock::new();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let uid: u32 = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(ACCOUNTS.get_or_init(Accounts::new).of(uid))
}

impl Stalled {
    fn verdict(&self, pid: u32) -> Verdict {
        if self.stuck == 0 {
            Verdict::Read
        } else if self.pids.contains_key(&pid) || self.stuck >= MAX_STUCK {
            Verdict::Skip
        } else if self.accounts.values().all(|&n| n < MAX_STUCK_PER_ACCOUNT) {
            Verdict::Read
        } else {
            Verdict::IfAccountMay
        }
    }

    fn account_may(&self, account: Option<Account>) -> bool {
        self.accounts
            .get(&account)
            .is_none_or(|&n| n < MAX_STUCK_PER_ACCOUNT)
    }

    fn stick(&mut self, pid: u32, account: Option<Account>) {
        let entry = self.pids.entry(pid).or_insert((account, 0));
        entry.1 += 1;
        // Charged to the account the pid was first charged to, which `unstick` gives back.
        let account = entry.0;
        *self.accounts.entry(account).or_insert(0) += 1;
        self.stuck += 1;
    }

    fn unstick(&mut self, pid: u32) {
        let Some((account, n)) = self.pids.get_mut(&pid) else {
            return;
        };
        let account = *account;
        *n -= 1;
        if *n == 0 {
            self.pids.remove(&pid);
        }
        if let Some(n) = self.accounts.get_mut(&account) {
            *n -= 1;
            if *n == 0 {
                self.accounts.remove(&account);
            }
        }
        self.stuck -= 1;
    }
}

/// Whether process `pid` may be read now (the owner's account is looked up, outside the
/// table's lock, only when some account is at its bound).
fn may_read(pid: u32) -> bool {
    let verdict = stalled().verdict(pid);
    match verdict {
        Verdict::Read => true,
        Verdict::Skip => false,
        Verdict::IfAccountMay => {
            let account = account_of(pid);
            stalled().account_may(account)
        }
    }
}

/// What one helper has done so far, shared with the worker that waits for it.
struct Progress<T> {
    results: Vec<(u32, io::Result<T>)>,
    /// The pid being read and since when.
    current: Option<(u32, Instant)>,
    done: bool,
    /// The worker gave up on `current`: the helper drops what it read and stops.
    abandoned: bool,
}

type Shared<T> = Arc<(Mutex<Progress<T>>, Condvar)>;

fn lock<T>(shared: &Shared<T>) -> MutexGuard<'_, Progress<T>> {
    shared.0.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs `read(pid)` for each of `pids` on a helper thread, in order, and returns what each
/// answered (`what` names the file in the log). A process that does not answer within
/// [`WAIT`], or that is stalled already, gets EAGAIN; the ones after it are read by a new
/// helper. Nothing here waits longer than [`WAIT`] for any one process.
pub fn each<T, F>(pids: &[u32], what: &'static str, read: F) -> Vec<(u32, io::Result<T>)>
where
    T: Send + 'static,
    F: Fn(u32) -> io::Result<T> + Send + Sync + 'static,
{
    let read = Arc::new(read);
    let mut answers = Vec::with_capacity(pids.len());
    let mut rest = pids;
    while !rest.is_empty() {
        let shared: Shared<T> = Arc::new((
            Mutex::new(Progress {
                results: Vec::new(),
                current: None,
                done: false,
                abandoned: false,
            }),
            Condvar::new(),
        ));
        if let Err(e) = spawn(rest.to_vec(), what, Arc::clone(&read), Arc::clone(&shared)) {
            log::warn!("starting a helper to read /proc/PID/{what}: {e}");
            answers.extend(rest.iter().map(|&pid| (pid, Err(again()))));
            break;
        }
        let (results, stuck_on) = wait(&shared, what);
        let read_so_far = results.len();
        answers.extend(results);
        match stuck_on {
            None => break,
            Some(pid) => {
                answers.push((pid, Err(again())));
                rest = &rest[read_so_far + 1..];
            }
        }
    }
    answers
}

/// Runs `f` (a read of process `pid`'s `what`) on a helper thread and waits at most [`WAIT`]
/// for it: EAGAIN if the process does not answer in time or is stalled already.
pub fn bounded<T, F>(pid: u32, what: &'static str, f: F) -> io::Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> io::Result<T> + Send + 'static,
{
    let f = Mutex::new(Some(f));
    let mut answers = each(&[pid], what, move |_| {
        let f = f.lock().unwrap_or_else(|p| p.into_inner()).take();
        f.map_or_else(|| Err(again()), |f| f())
    });
    answers.pop().map_or_else(|| Err(again()), |(_, r)| r)
}

/// The `syscall` line of every task of each of `pids` (`/proc/PID/task/TID/syscall`: the
/// system call a task is blocked in and its arguments), as (pid, tid, line); processes and
/// tasks that cannot be read, or that end meanwhile, are left out. Reading a task's `syscall`
/// waits on its process's exec lock, which a process can hold (an exec that does not finish),
/// so each process's tasks are read within [`WAIT`] as [`each`] reads.
pub fn task_syscalls(pids: &[u32]) -> Vec<(u32, u32, String)> {
    each(pids, "task/*/syscall", |pid| {
        let mut lines = Vec::new();
        for tid in numbered(&format!("/proc/{pid}/task")) {
            if let Ok(line) = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/syscall")) {
                lines.push((tid, line));
            }
        }
        Ok(lines)
    })
    .into_iter()
    .filter_map(|(pid, lines)| Some((pid, lines.ok()?)))
    .flat_map(|(pid, lines)| lines.into_iter().map(move |(tid, line)| (pid, tid, line)))
    .collect()
}

/// The numeric entries of a `/proc` directory (pids or tids), ascending; none if it cannot
/// be read.
pub fn numbered(dir: &str) -> Vec<u32> {
    let mut out: Vec<u32> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    out.sort_unstable();
    out
}

/// `/proc/PID/maps`, read within [`WAIT`].
pub fn maps(pid: u32) -> io::Result<String> {
    bounded(pid, "maps", move || {
        std::fs::read_to_string(format!("/proc/{pid}/maps"))
    })
}

fn spawn<T, F>(
    pids: Vec<u32>,
    what: &'static str,
    read: Arc<F>,
    shared: Shared<T>,
) -> io::Result<()>
where
    T: Send + 'static,
    F: Fn(u32) -> io::Result<T> + Send + Sync + 'static,
{
    std::thread::Builder::new()
        .stack_size(HELPER_STACK)
        .spawn(move || {
            for pid in pids {
                if !may_read(pid) {
                    lock(&shared).results.push((pid, Err(again())));
                    continue;
                }
                lock(&shared).current = Some((pid, Instant::now()));
                let result = read(pid);
                let mut progress = lock(&shared);
                if progress.abandoned {
                    drop(progress);
                    stalled().unstick(pid);
                    quietly(log::Level::Info, || {
                        format!("pid {pid} answered the read of its {what} at last")
                    });
                    return;
                }
                progress.current = None;
                progress.results.push((pid, result));
            }
            lock(&shared).done = true;
            shared.1.notify_all();
        })
        .map(drop)
}

/// Waits for the helper of `shared`: everything it read, and the pid it got stuck on if it
/// did (then it is abandoned and counted as stuck).
fn wait<T>(shared: &Shared<T>, what: &str) -> (Vec<(u32, io::Result<T>)>, Option<u32>) {
    let mut progress = lock(shared);
    loop {
        if progress.done {
            return (std::mem::take(&mut progress.results), None);
        }
        let waited = progress.current.map(|(pid, since)| (pid, since.elapsed()));
        match waited {
            Some((pid, waited)) if waited >= WAIT => {
                drop(progress);
                let account = account_of(pid);
                progress = lock(shared);
                if progress.current.map(|(p, _)| p) != Some(pid) {
                    continue;
                }
                // Counted as stuck before the lock is let go: the helper, if it comes back
                // now, finds `abandoned` set and then uncounts itself.
                progress.abandoned = true;
                let results = std::mem::take(&mut progress.results);
                let mut table = stalled();
                table.stick(pid, account);
                let stuck = table.stuck;
                drop(table);
                drop(progress);
                quietly(log::Level::Warn, || {
                    format!(
                        "pid {pid} stalled: its /proc/{pid}/{what} did not answer within \
                         {WAIT:?} (its mmap lock is held); not read again until it answers \
                         ({stuck} reads stuck in all)"
                    )
                });
                return (results, Some(pid));
            }
            Some((_, waited)) => {
                let left = WAIT - waited;
                progress = shared
                    .1
                    .wait_timeout(progress, left)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
            None => {
                progress = shared
                    .1
                    .wait_timeout(progress, WAIT)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
        }
    }
}

/// Lines about stalled processes logged per minute: a user who jams and frees its own lock
/// over and over must not fill the log.
const LINES_PER_MINUTE: u32 = 10;

/// Logs `line` at `level` unless [`LINES_PER_MINUTE`] lines of this module were logged in
/// the last minute; the first line logged after some were not says how many.
fn quietly(level: log::Level, line: impl FnOnce() -> String) {
    static WINDOW: Mutex<Option<(Instant, u32, u64)>> = Mutex::new(None);
    let now = Instant::now();
    let mut window = WINDOW.lock().unwrap_or_else(|p| p.into_inner());
    let (start, logged, dropped) = window.get_or_insert((now, 0, 0));
    if now.duration_since(*start) >= Duration::from_secs(60) {
        (*start, *logged) = (now, 0);
    }
    if *logged >= LINES_PER_MINUTE {
        *dropped += 1;
        return;
    }
    *logged += 1;
    let dropped = std::mem::take(dropped);
    drop(window);
    if dropped > 0 {
        log::log!(
            level,
            "{} ({dropped} such lines before were not logged)",
            line()
        );
    } else {
        log::log!(level, "{}", line());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_pid_in_order() {
        let answers = each(&[1, 2, 3], "test", |pid| Ok(pid * 10));
        let got: Vec<(u32, u32)> = answers.into_iter().map(|(p, r)| (p, r.unwrap())).collect();
        assert_eq!(got, vec![(1, 10), (2, 20), (3, 30)]);
    }

    #[test]
    fn a_read_that_does_not_answer_is_given_up_and_the_rest_go_on() {
        // A pid no real process has, so that the stalled table's entry harms no other test.
        const STUCK: u32 = u32::MAX - 7;
        let (release, released) = std::sync::mpsc::channel::<()>();
        let released = Mutex::new(released);
        let start = Instant::now();
        let answers = each(&[1, STUCK, 2], "test", move |pid| {
            if pid == STUCK {
                let _ = released.lock().unwrap().recv();
            }
            Ok(pid)
        });
        assert!(start.elapsed() < WAIT * 4, "{:?}", start.elapsed());
        let got: Vec<(u32, Option<i32>)> = answers
            .into_iter()
            .map(|(p, r)| (p, r.err().and_then(|e| e.raw_os_error())))
            .collect();
        assert_eq!(got, vec![(1, None), (STUCK, Some(libc::EAGAIN)), (2, None)]);
        // Stalled: a second read fails at once, without a helper waiting on it.
        let start = Instant::now();
        let again = bounded(STUCK, "test", || Ok(()));
        assert_eq!(again.unwrap_err().raw_os_error(), Some(libc::EAGAIN));
        assert!(start.elapsed() < WAIT, "{:?}", start.elapsed());
        // Released, the helper comes back and the pid may be read again.
        release.send(()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while stalled().pids.contains_key(&STUCK) {
            assert!(
                Instant::now() < deadline,
                "the stuck helper never came back"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(bounded(STUCK, "test", || Ok(5)).unwrap(), 5);
    }
}
