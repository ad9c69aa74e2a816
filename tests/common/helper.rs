//! Helper processes that attach, map or hold shared memory while a test looks at it: the
//! `shmholder` C program (`c/shmholder.c`), compiled once per test binary, and `Helper`, a
//! running one.

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::cc::compile_c;
use super::mount::MOUNT_TIMEOUT;
use super::run::{COMMAND_TIMEOUT, Run, run_with_timeout, wait_timeout};

/// The helper's source (`c/shmholder.c`, whose opening comment lists its modes). Every mode
/// prints one `ready ...` line once it holds what it was asked to hold, then keeps holding it
/// until its standard input reaches EOF (or it is killed).
pub const HELPER_C: &str = include_str!("c/shmholder.c");

/// The helper's command name, as `/proc/PID/comm` and `attached` show it.
pub const HELPER_COMM: &str = "shmholder";

/// Path of the compiled helper, compiled on first use, once per test binary (see
/// [`compile_c`]: a directory of `/tmp` other users reach, checked before it is used).
pub fn helper_bin() -> &'static Path {
    static BIN_PATH: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN_PATH.get_or_init(|| compile_c(HELPER_COMM, HELPER_C))
}

/// A running helper process (see `HELPER_C`). Dropping it closes its stdin, kills it and
/// reaps it, so whatever it held is released.
pub struct Helper {
    child: Option<Child>,
    stdin: Option<std::process::ChildStdin>,
    lines: std::sync::mpsc::Receiver<String>,
    /// What the helper printed before (and including) its `ready` line.
    pub output: Vec<String>,
    /// Its `ready` line without the word `ready` (e.g. an address or an fd).
    pub ready: String,
}

impl Helper {
    /// Starts the helper with `args` and waits (up to MOUNT_TIMEOUT) for its `ready` line.
    pub fn start(args: &[&str]) -> Helper {
        let mut cmd = Command::new(helper_bin());
        cmd.args(args);
        Helper::start_cmd(cmd, args)
    }

    /// Like `start`, as uid and gid `id` with no supplementary groups (`setpriv` execs the
    /// helper, so the pid is the helper's).
    pub fn start_as(id: u32, args: &[&str]) -> Helper {
        let mut cmd = Command::new("setpriv");
        cmd.arg(format!("--reuid={id}"))
            .arg(format!("--regid={id}"))
            .arg("--clear-groups")
            .arg(helper_bin())
            .args(args);
        Helper::start_cmd(cmd, args)
    }

    fn start_cmd(mut cmd: Command, args: &[&str]) -> Helper {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start shmholder {args:?}: {e}"));
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let (etx, erx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::Read;
            let mut s = String::new();
            let _ = io::BufReader::new(stderr).read_to_string(&mut s);
            let _ = etx.send(s);
        });
        let mut h = Helper {
            child: Some(child),
            stdin,
            lines: rx,
            output: Vec::new(),
            ready: String::new(),
        };
        loop {
            match h.lines.recv_timeout(MOUNT_TIMEOUT) {
                Ok(line) => {
                    h.output.push(line.clone());
                    if line == "ready" || line.starts_with("ready ") {
                        h.ready = line.trim_start_matches("ready").trim().to_string();
                        return h;
                    }
                }
                Err(_) => {
                    let status = h.child.as_mut().unwrap().try_wait().ok().flatten();
                    let err = erx.recv_timeout(Duration::from_secs(1)).unwrap_or_default();
                    panic!(
                        "shmholder {args:?} did not get ready (exit status {status:?}): \
                         stdout {:?}, stderr {err:?}",
                        h.output
                    );
                }
            }
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    /// Sends one line to the helper and waits for its next line of output.
    pub fn step(&mut self, line: &str) -> String {
        use std::io::Write;
        let stdin = self.stdin.as_mut().expect("helper stdin closed");
        writeln!(stdin, "{line}").expect("write to helper");
        stdin.flush().unwrap();
        self.lines
            .recv_timeout(MOUNT_TIMEOUT)
            .unwrap_or_else(|_| panic!("helper {} did not answer {line:?}", self.pid()))
    }

    /// Lets the helper finish on its own (closes its stdin) and waits for it to be reaped:
    /// from then on it holds nothing.
    pub fn finish(mut self) {
        self.stdin = None;
        let mut child = self.child.take().unwrap();
        if wait_timeout(&mut child, MOUNT_TIMEOUT).is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        self.stdin = None;
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs the helper to completion (for modes that exit by themselves, e.g. `sysv-attach-exit`).
pub fn run_helper(args: &[&str]) -> Run {
    run_with_timeout(Command::new(helper_bin()).args(args), COMMAND_TIMEOUT)
}
