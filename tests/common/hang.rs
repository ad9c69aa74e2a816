//! Keeping a hung mount from hanging the test: a time limit on one call (`within`) and a
//! watchdog that kills the daemon of a test that runs too long (`KillOnHang`).

use std::fs;
use std::time::{Duration, Instant};

use super::mount::Mount;
use super::system::is_zombie;

/// Runs `f` on a thread of its own and waits up to `limit` for it: a call that hangs (on a
/// stuck mount) fails the test instead of blocking it. Returns what `f` returned and how long
/// it took; panics on timeout, naming `what`.
#[track_caller]
pub fn within<T: Send + 'static>(
    limit: Duration,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> (T, Duration) {
    let (tx, rx) = std::sync::mpsc::channel();
    let start = Instant::now();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(limit) {
        Ok(v) => (v, start.elapsed()),
        Err(_) => panic!("{what} did not finish within {limit:?} (hung?)"),
    }
}

/// The daemon behind a mount is still running (neither exited nor a zombie).
pub fn daemon_alive(m: &Mount) -> bool {
    !is_zombie(m.pid() as i32)
}

/// A watchdog for a test's daemon: if still armed after `limit`, it kills the daemon (SIGKILL,
/// after checking the pid is still a `shmfs`), so that a test stuck on a hung mount fails
/// (every access then errors out) instead of blocking the run. Disarmed when dropped: declare
/// it after the `Mount` it watches.
pub struct KillOnHang {
    done: std::sync::Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>,
}

impl KillOnHang {
    pub fn new(m: &Mount, limit: Duration) -> KillOnHang {
        let pid = m.pid() as i32;
        let done = std::sync::Arc::new((std::sync::Mutex::new(false), std::sync::Condvar::new()));
        let watch = done.clone();
        let name = std::thread::current().name().unwrap_or("test").to_string();
        std::thread::spawn(move || {
            let (lock, cvar) = &*watch;
            let guard = lock.lock().unwrap();
            let (guard, _) = cvar.wait_timeout_while(guard, limit, |d| !*d).unwrap();
            let is_shmfs =
                fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "shmfs");
            if !*guard && is_shmfs && !is_zombie(pid) {
                eprintln!(
                    "{name}: still running after {limit:?}: killing its shmfs daemon \
                     (pid {pid}) so that it fails instead of hanging"
                );
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        });
        KillOnHang { done }
    }
}

impl Drop for KillOnHang {
    fn drop(&mut self) {
        let (lock, cvar) = &*self.done;
        *lock.lock().unwrap() = true;
        cvar.notify_all();
    }
}

/// A process stopped with SIGSTOP until this is dropped (SIGCONT).
pub struct Stopped(u32);

impl Stopped {
    /// Stops process `pid` and waits until every thread of it is stopped. Requests sent to a
    /// FUSE daemon after that stay pending in the kernel, where a fatal signal can still end
    /// their senders; one that a daemon thread had already read before it stopped could not
    /// be ended at all (the kernel then waits for its answer uninterruptibly), which would make
    /// a test's outcome depend on timing.
    pub fn stop(pid: u32) -> Stopped {
        // SAFETY: plain system call.
        unsafe { libc::kill(pid as i32, libc::SIGSTOP) };
        let stopped = Stopped(pid);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let tasks = fs::read_dir(format!("/proc/{pid}/task")).expect("threads of the daemon");
            let all_stopped = tasks.flatten().all(|task| {
                fs::read_to_string(task.path().join("stat")).is_ok_and(|stat| {
                    // The state follows the command name, which is in parentheses.
                    stat.rsplit_once(") ")
                        .is_some_and(|(_, rest)| rest.starts_with('T') || rest.starts_with('t'))
                })
            });
            if all_stopped {
                return stopped;
            }
            assert!(
                Instant::now() < deadline,
                "the threads of {pid} did not all stop within 10 s"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        // SAFETY: plain system call.
        unsafe { libc::kill(self.0 as i32, libc::SIGCONT) };
    }
}

/// A child process that is killed (its whole process group) and reaped when dropped.
pub struct Reaped(Option<std::process::Child>);

impl Reaped {
    /// Starts `cmd` in a process group of its own.
    pub fn spawn(cmd: &mut std::process::Command) -> Reaped {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
        Reaped(Some(
            cmd.spawn()
                .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}")),
        ))
    }

    pub fn pid(&self) -> i32 {
        self.0.as_ref().map_or(0, |c| c.id() as i32)
    }

    pub fn running(&mut self) -> bool {
        matches!(self.0.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// Waits until `deadline` for the process to exit; None if it is still running.
    pub fn wait_until(&mut self, deadline: Instant) -> Option<std::process::ExitStatus> {
        let child = self.0.as_mut()?;
        super::run::wait_timeout(child, deadline.saturating_duration_since(Instant::now()))
    }

    /// Waits up to `limit` for the process to exit; panics if it does not (it is then
    /// killed when dropped).
    #[track_caller]
    pub fn wait(&mut self, limit: Duration, what: &str) -> std::process::ExitStatus {
        self.wait_until(Instant::now() + limit)
            .unwrap_or_else(|| panic!("{what} still running after {limit:?}: it hangs"))
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            if matches!(child.try_wait(), Ok(None)) {
                // SAFETY: plain system call on the child's own process group.
                unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            }
            let _ = child.wait();
        }
    }
}
