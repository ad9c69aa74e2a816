//! The error of a filesystem operation: the errno its caller gets, and how loudly the daemon
//! logs it. A routine refusal (a name that does not exist, a caller the kernel refuses, a
//! read-only mount) is logged at debug, so that an operator's log shows only what is worth
//! looking at; an unexpected failure (EIO, EMFILE, a /proc that cannot be read) at warn.

use std::fmt;
use std::io;

use log::Level;

/// A failed operation.
#[derive(Debug)]
pub struct Error {
    errno: i32,
    level: Level,
    source: io::Error,
}

/// What the filesystem's operations return.
pub type Result<T> = std::result::Result<T, Error>;

/// Errnos that answer a caller's request as the kernel would answer it directly: vanished
/// objects, refusals, names and sizes that do not fit. None of them is the daemon's fault.
const ROUTINE: [i32; 14] = [
    libc::ENOENT,
    libc::ESTALE,
    libc::EEXIST,
    libc::EACCES,
    libc::EPERM,
    libc::EROFS,
    libc::EINVAL,
    libc::ENOSPC,
    libc::ENOTDIR,
    libc::EISDIR,
    libc::ENOTEMPTY,
    libc::ENAMETOOLONG,
    libc::ENOTSUP,
    libc::EIDRM,
];

impl Error {
    /// A refusal shmfs makes itself (an operation it does not offer, a name that does not
    /// fit), logged at debug.
    pub fn refused(errno: i32) -> Error {
        Error {
            errno,
            level: Level::Debug,
            source: io::Error::from_raw_os_error(errno),
        }
    }

    /// An error that is worth an operator's attention whatever its errno.
    pub fn unexpected(source: io::Error) -> Error {
        Error {
            errno: errno_of(&source),
            level: Level::Warn,
            source,
        }
    }

    /// The object behind a number is not the one the number was given to (ESTALE): the
    /// kernel should look its name up again.
    pub fn stale() -> Error {
        Error::refused(libc::ESTALE)
    }

    /// What was asked is not offered here (ENOTSUP).
    pub fn unsupported() -> Error {
        Error::refused(libc::ENOTSUP)
    }

    /// Whether this is [`Error::stale`].
    pub fn is_stale(&self) -> bool {
        self.errno == libc::ESTALE
    }

    /// Whether this is [`Error::unsupported`].
    pub fn is_unsupported(&self) -> bool {
        self.errno == libc::ENOTSUP
    }

    /// The errno to answer the request with.
    pub fn errno(&self) -> i32 {
        self.errno
    }

    /// The level to log it at.
    pub fn level(&self) -> Level {
        self.level
    }

    /// Logs the failure of `op` on `what` at its level.
    pub fn log(&self, op: &str, what: &dyn fmt::Debug) {
        log::log!(self.level, "{op} {what:?}: {}", self.source);
    }
}

fn errno_of(e: &io::Error) -> i32 {
    match e.raw_os_error() {
        Some(code) if code > 0 => code,
        _ => libc::EIO,
    }
}

/// An error from a system call: routine if its errno is one a caller gets in the normal course
/// of things, unexpected otherwise.
impl From<io::Error> for Error {
    fn from(source: io::Error) -> Error {
        let errno = errno_of(&source);
        let level = if ROUTINE.contains(&errno) {
            Level::Debug
        } else {
            Level::Warn
        };
        Error {
            errno,
            level,
            source,
        }
    }
}

/// For the places that hand an error back to code speaking `io::Error` (closures run as the
/// caller); the errno is kept.
impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        io::Error::from_raw_os_error(e.errno)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.source.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routine_errnos_log_at_debug_others_at_warn() {
        for errno in [
            libc::ENOENT,
            libc::ESTALE,
            libc::EEXIST,
            libc::EROFS,
            libc::EACCES,
        ] {
            let e = Error::from(io::Error::from_raw_os_error(errno));
            assert_eq!(
                (e.errno(), e.level()),
                (errno, Level::Debug),
                "errno {errno}"
            );
        }
        for errno in [libc::EIO, libc::EMFILE, libc::ENOMEM] {
            let e = Error::from(io::Error::from_raw_os_error(errno));
            assert_eq!(
                (e.errno(), e.level()),
                (errno, Level::Warn),
                "errno {errno}"
            );
        }
    }

    #[test]
    fn errors_without_an_errno_are_eio_and_unexpected() {
        let e = Error::from(io::Error::new(io::ErrorKind::InvalidData, "bad /proc line"));
        assert_eq!((e.errno(), e.level()), (libc::EIO, Level::Warn));
        assert_eq!(e.to_string(), "bad /proc line");
    }

    #[test]
    fn refusals_are_routine_and_unexpected_errors_are_not() {
        let e = Error::refused(libc::EPERM);
        assert_eq!((e.errno(), e.level()), (libc::EPERM, Level::Debug));
        let e = Error::unexpected(io::Error::from_raw_os_error(libc::ENOENT));
        assert_eq!((e.errno(), e.level()), (libc::ENOENT, Level::Warn));
        let back: io::Error = Error::refused(libc::EROFS).into();
        assert_eq!(back.raw_os_error(), Some(libc::EROFS));
    }
}
