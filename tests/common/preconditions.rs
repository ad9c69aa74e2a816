//! Whether a test can run here: root and /dev/fuse (`require_fuse!`), the tools of other
//! packages it needs (`require_tools!`); a missing one is a skip, or a failure when `CI` is set.

use std::fs;
use std::path::{Path, PathBuf};

/// Returns true when FUSE tests can run here (root and /dev/fuse).
///
/// Otherwise: if `CI` is set (non-empty) it panics, because CI must run these tests; else it
/// prints "skipping: ..." and returns false.
pub fn fuse_available() -> bool {
    let reason = if unsafe { libc::geteuid() } != 0 {
        Some("not running as root")
    } else if !Path::new("/dev/fuse").exists() {
        Some("/dev/fuse does not exist")
    } else {
        None
    };
    let Some(reason) = reason else {
        return true;
    };
    if std::env::var_os("CI").is_some_and(|v| !v.is_empty()) {
        panic!(
            "shmfs integration tests need root and /dev/fuse, but {reason}; \
             CI is set, so this is a failure rather than a skip"
        );
    }
    eprintln!(
        "skipping: {reason} (shmfs integration tests need root and /dev/fuse; \
         run them with mount-scripts/test.sh)"
    );
    false
}

/// First line of every FUSE test: returns from the test when FUSE tests cannot run here.
#[allow(unused_macros)] // the benchmark shares the harness and has no tests
macro_rules! require_fuse {
    () => {
        if !crate::common::fuse_available() {
            return;
        }
    };
}
#[allow(unused_imports)]
pub(crate) use require_fuse;

/// True when `CI` is set (non-empty): what would be a skip is a failure.
pub fn ci_is_set() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty())
}

/// Something a test needs is not here: fails if `CI` is set, else prints `skipping: ...` and
/// returns false.
pub fn unavailable(what: &str) -> bool {
    if ci_is_set() {
        panic!("{what}; CI is set, so this is a failure rather than a skip");
    }
    eprintln!("skipping: {what}");
    false
}

/// An executable `cmd` on PATH, in the usual bin and sbin directories, or in cargo's bin
/// directory (`$CARGO_HOME/bin`, `~/.cargo/bin`, where `cargo install` puts programs).
pub fn find_tool(cmd: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    dirs.extend(
        [
            "/usr/local/sbin",
            "/usr/local/bin",
            "/usr/sbin",
            "/usr/bin",
            "/sbin",
            "/bin",
        ]
        .map(PathBuf::from),
    );
    if let Some(home) = std::env::var_os("CARGO_HOME") {
        dirs.push(PathBuf::from(home).join("bin"));
    }
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(PathBuf::from(home).join(".cargo/bin"));
    }
    dirs.into_iter()
        .map(|dir| dir.join(cmd))
        .find(|p| fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
}

/// True when every `(command, where it comes from)` is installed, e.g.
/// `("stress-ng", "Debian package stress-ng")`. Otherwise fails if `CI` is set
/// (`mount-scripts/test.sh` installs it) and else prints `skipping: ...` and returns false. Tests install nothing.
pub fn tools_available(needs: &[(&str, &str)]) -> bool {
    let missing: Vec<String> = needs
        .iter()
        .filter(|(cmd, _)| find_tool(cmd).is_none())
        .map(|(cmd, from)| format!("`{cmd}` ({from})"))
        .collect();
    if missing.is_empty() {
        return true;
    }
    let what = format!(
        "{} not installed: mount-scripts/test.sh installs it; tests install nothing themselves",
        missing.join(", ")
    );
    if ci_is_set() {
        panic!("{what}; CI is set, so this is a failure rather than a skip");
    }
    eprintln!("skipping: {what}");
    false
}

/// Returns from the test unless every command is installed (see [`tools_available`]):
/// `require_tools!("fio" => "Debian package fio");`
#[allow(unused_macros)]
macro_rules! require_tools {
    ($($cmd:expr => $from:expr),+ $(,)?) => {
        if !crate::common::tools_available(&[$(($cmd, $from)),+]) {
            return;
        }
    };
}
#[allow(unused_imports)]
pub(crate) use require_tools;
