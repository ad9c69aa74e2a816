//! Running commands and waiting: shell scripts and programs with captured output and a time
//! limit (`sh`, `sh_ok`, `sh_as`, `run_with_timeout`), child processes, retries.

use std::fs;
use std::io;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long any shell command may run before the test calls it hung.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// What a finished command left behind.
pub struct Run {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Run {
    pub fn ok(&self) -> bool {
        self.status.success()
    }

    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "status {}, stdout {:?}, stderr {:?}",
            self.status,
            String::from_utf8_lossy(&self.stdout),
            self.stderr
        )
    }
}

/// Runs `cmd` to completion with stdin from /dev/null and stdout/stderr captured in files (not
/// pipes, so that a process that wrongly daemonizes with inherited stdio cannot hang the test).
/// Panics if it runs longer than `timeout`.
pub fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> Run {
    let out = tempfile::tempfile().expect("create stdout capture file");
    let err = tempfile::tempfile().expect("create stderr capture file");
    cmd.stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(err.try_clone().unwrap())
        .env("LC_ALL", "C");
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} did not finish within {timeout:?} (hung filesystem?)");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let elapsed = start.elapsed();
    Run {
        status,
        stdout: read_all(out),
        stderr: String::from_utf8_lossy(&read_all(err)).into_owned(),
        elapsed,
    }
}

fn read_all(mut f: fs::File) -> Vec<u8> {
    use std::io::{Read, Seek};
    f.seek(io::SeekFrom::Start(0)).unwrap();
    let mut v = Vec::new();
    f.read_to_end(&mut v).unwrap();
    v
}

/// Runs a shell script (`sh -c`), with `LC_ALL=C` so error messages are predictable.
pub fn sh(script: &str) -> Run {
    run_with_timeout(Command::new("sh").arg("-c").arg(script), COMMAND_TIMEOUT)
}

/// Runs a shell script that must succeed; returns its stdout.
pub fn sh_ok(script: &str) -> String {
    let r = sh(script);
    assert!(r.ok(), "`{script}` failed: {r:?}");
    r.stdout_str()
}

/// Runs a shell script as another user (uid and gid `id`, no supplementary groups).
pub fn sh_as(id: u32, script: &str) -> Run {
    run_with_timeout(
        Command::new("setpriv")
            .arg(format!("--reuid={id}"))
            .arg(format!("--regid={id}"))
            .arg("--clear-groups")
            .arg("sh")
            .arg("-c")
            .arg(script),
        COMMAND_TIMEOUT,
    )
}

/// Quotes a path for a shell script.
pub fn q(p: impl AsRef<Path>) -> String {
    let s = p.as_ref().to_str().expect("utf-8 path");
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Waits up to `timeout` for `child` to exit.
pub fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let start = Instant::now();
    loop {
        if let Ok(Some(s)) = child.try_wait() {
            return Some(s);
        }
        if start.elapsed() > timeout {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Repeats `check` (returning Err(description) on mismatch) up to `tries` times, 50 ms apart,
/// for comparisons with global state other processes may change meanwhile.
#[track_caller]
pub fn retry(tries: u32, mut check: impl FnMut() -> Result<(), String>) {
    let mut last = String::new();
    for _ in 0..tries {
        match check() {
            Ok(()) => return,
            Err(e) => last = e,
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("still mismatched after {tries} tries: {last}");
}
