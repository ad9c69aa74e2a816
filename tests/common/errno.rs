//! Errors as the tests check them: the errno of an `io::Error`, its name, `assert_errno`.

use std::io;

/// The errno of an io::Error (panics if it has none).
pub fn errno(e: &io::Error) -> i32 {
    e.raw_os_error()
        .unwrap_or_else(|| panic!("error without errno: {e}"))
}

/// Asserts that `r` failed with errno `want`, naming `what` the user did.
#[track_caller]
pub fn assert_errno<T: std::fmt::Debug>(r: io::Result<T>, want: i32, what: &str) {
    match r {
        Ok(v) => panic!(
            "{what}: expected it to fail with {}, but it succeeded ({v:?})",
            errno_name(want)
        ),
        Err(e) => assert_eq!(
            errno(&e),
            want,
            "{what}: expected {}, got {e}",
            errno_name(want)
        ),
    }
}

pub fn errno_name(e: i32) -> String {
    let name = match e {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::EACCES => "EACCES",
        libc::EINVAL => "EINVAL",
        libc::ENOSPC => "ENOSPC",
        libc::EROFS => "EROFS",
        libc::EEXIST => "EEXIST",
        _ => return format!("errno {e} ({})", io::Error::from_raw_os_error(e)),
    };
    format!("{name} ({})", io::Error::from_raw_os_error(e))
}
