//! Where the daemon's log goes. In the foreground (`-f`): stderr. In the background: the
//! systemd journal when there is one, else syslog (`/dev/log`), else nowhere: stderr, which is
//! /dev/null once the daemon has left its terminal, and which until then gets only warnings
//! (a `mount` that succeeds prints nothing). Always under the identifier `shmfs`.
//!
//! Which lines: `RUST_LOG` as env_logger reads it, [`DEFAULT_FILTER`] without it. The default
//! shows warnings of every crate and shmfs's own info lines: the mount, the unmount, and each
//! request refused because of what a user wrote (a `perm` write that is no mode, a segment
//! truncated to a size it cannot take), with the reason. Routine refusals (a caller the kernel
//! refuses, a name that does not exist) stay at debug. Those info lines are short and few per
//! user ([`refusals`]): no user can fill the log or forge lines in it.
//!
//! The destination is chosen once, after the daemon has forked and before it serves: the
//! journal is written with one unbound datagram socket, syslog through one socket connected
//! then; neither is reopened later.

use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, Ordering};

use log::{Level, Log, Metadata, Record};

/// The identifier of every line: journalctl's `-t`, syslog's tag.
pub const IDENTIFIER: &str = "shmfs";

/// The filter when `RUST_LOG` is not set.
pub const DEFAULT_FILTER: &str = "warn,shmfs=info";

/// The environment variable naming a syslog socket to use instead of the journal and
/// `/dev/log` (a syslog daemon listening elsewhere, or a test).
pub const SYSLOG_SOCKET_ENV: &str = "SHMFS_SYSLOG_SOCKET";

/// journald's socket for native messages.
const JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";

/// Where syslog daemons listen.
const SYSLOG_SOCKET: &str = "/dev/log";

/// Where the log goes in the background.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Destination {
    /// The systemd journal.
    Journal,
    /// A syslog daemon listening on this datagram socket.
    Syslog(PathBuf),
    /// Neither exists: stderr, which the background daemon points at /dev/null.
    Stderr,
}

/// Chooses the background destination: `SHMFS_SYSLOG_SOCKET` if set, else the journal if its
/// socket exists, else `/dev/log` if it exists, else stderr.
pub fn choose(syslog_env: Option<PathBuf>, exists: impl Fn(&Path) -> bool) -> Destination {
    if let Some(path) = syslog_env {
        return Destination::Syslog(path);
    }
    if exists(Path::new(JOURNAL_SOCKET)) {
        return Destination::Journal;
    }
    if exists(Path::new(SYSLOG_SOCKET)) {
        return Destination::Syslog(SYSLOG_SOCKET.into());
    }
    Destination::Stderr
}

/// The logger: env_logger's filter and its stderr output, until [`to_background`] sends the
/// lines elsewhere.
struct Switch {
    stderr: env_logger::Logger,
    elsewhere: RwLock<Option<Box<dyn Log>>>,
    /// In the background with nowhere to log: only warnings and errors reach stderr.
    warnings_only: AtomicBool,
}

impl Log for Switch {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        self.stderr.enabled(metadata)
    }

    fn log(&self, record: &Record<'_>) {
        if !self.stderr.matches(record) {
            return;
        }
        if self.warnings_only.load(Ordering::Relaxed) && record.level() > Level::Warn {
            return;
        }
        let elsewhere = self.elsewhere.read().unwrap_or_else(|p| p.into_inner());
        match elsewhere.as_ref() {
            Some(sink) => sink.log(record),
            None => self.stderr.log(record),
        }
    }

    fn flush(&self) {
        match self
            .elsewhere
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            Some(sink) => sink.flush(),
            None => self.stderr.flush(),
        }
    }
}

static LOGGER: std::sync::OnceLock<Switch> = std::sync::OnceLock::new();

/// Starts logging to stderr with the filter of `RUST_LOG` (or [`DEFAULT_FILTER`]).
pub fn init() {
    let stderr =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(DEFAULT_FILTER))
            .build();
    let max = stderr.filter();
    let switch = LOGGER.get_or_init(|| Switch {
        stderr,
        elsewhere: RwLock::new(None),
        warnings_only: AtomicBool::new(false),
    });
    if log::set_logger(switch).is_ok() {
        log::set_max_level(max);
    }
}

/// Sends the log to the background destination (see [`choose`]); returns where it goes.
/// Called once the daemon has forked (syslog lines carry its pid), before it serves.
pub fn to_background() -> Destination {
    let chosen = choose(
        std::env::var_os(SYSLOG_SOCKET_ENV).map(PathBuf::from),
        |p| p.exists(),
    );
    let sink: Box<dyn Log> = match &chosen {
        Destination::Journal => match systemd_journal_logger::JournalLog::new() {
            Ok(journal) => Box::new(journal.with_syslog_identifier(IDENTIFIER.into())),
            Err(e) => {
                log::warn!("cannot log to the journal: {e}");
                return nowhere();
            }
        },
        Destination::Syslog(path) => {
            let formatter = syslog::Formatter3164 {
                facility: syslog::Facility::LOG_DAEMON,
                hostname: None,
                process: IDENTIFIER.into(),
                pid: std::process::id(),
            };
            match syslog::unix_custom(formatter, path) {
                Ok(logger) => Box::new(syslog::BasicLogger::new(logger)),
                Err(e) => {
                    log::warn!("cannot log to syslog at {}: {e}", path.display());
                    return nowhere();
                }
            }
        }
        Destination::Stderr => return nowhere(),
    };
    if let Some(switch) = LOGGER.get() {
        *switch.elsewhere.write().unwrap_or_else(|p| p.into_inner()) = Some(sink);
    }
    chosen
}

/// In the background with no journal and no syslog: stderr, warnings only.
fn nowhere() -> Destination {
    if let Some(switch) = LOGGER.get() {
        switch.warnings_only.store(true, Ordering::Relaxed);
    }
    Destination::Stderr
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_journal_comes_first_then_syslog_then_stderr() {
        let only = |want: &'static str| move |p: &Path| p == Path::new(want);
        assert_eq!(choose(None, |_| true), Destination::Journal);
        assert_eq!(choose(None, only(JOURNAL_SOCKET)), Destination::Journal);
        assert_eq!(
            choose(None, only(SYSLOG_SOCKET)),
            Destination::Syslog("/dev/log".into())
        );
        assert_eq!(choose(None, |_| false), Destination::Stderr);
        assert_eq!(
            choose(Some("/tmp/x".into()), |_| true),
            Destination::Syslog("/tmp/x".into())
        );
    }
}
