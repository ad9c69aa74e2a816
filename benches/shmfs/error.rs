//! How the bench fails and what it finds: a step that failed ([`Error`], which fails the
//! bench) and a finding, something that looked wrong with shmfs (printed, never fatal).

use std::fmt::Display;
use std::sync::Mutex;

/// A step that failed, in words.
#[derive(Debug)]
pub struct Error(pub String);

/// What every step of the bench returns.
pub type Result<T> = std::result::Result<T, Error>;

impl Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Fails the step with `msg`.
pub fn fail<T>(msg: impl Into<String>) -> Result<T> {
    Err(Error(msg.into()))
}

/// `.context(|| "what was being done")` on any result whose error can be printed.
pub trait Context<T> {
    /// Turns the error into an [`Error`] that says what was being done.
    fn context<D: Display>(self, what: impl FnOnce() -> D) -> Result<T>;
}

impl<T, E: Display> Context<T> for std::result::Result<T, E> {
    fn context<D: Display>(self, what: impl FnOnce() -> D) -> Result<T> {
        self.map_err(|e| Error(format!("{}: {e}", what())))
    }
}

/// Things that looked wrong with shmfs (not with the bench): printed as they happen and again
/// after the table. They never fail the bench.
pub static FINDINGS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Prints `msg` as a finding now and keeps it (once) for the end of the report.
pub fn finding(msg: String) {
    eprintln!("shmfs bench: LOOKS WRONG: {msg}");
    let mut all = FINDINGS.lock().unwrap_or_else(|e| e.into_inner());
    if !all.contains(&msg) {
        all.push(msg);
    }
}
