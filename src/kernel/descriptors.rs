//! The daemon's limit on open descriptors (RLIMIT_NOFILE).

use std::io;

/// The soft and hard limits on open descriptors.
fn limits() -> io::Result<libc::rlimit> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes only the rlimit it is given, which is valid and ours.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(limit)
}

/// The soft limit on open descriptors now (a limit changed from outside, e.g. with
/// `prlimit --pid`, counts at once).
pub fn limit() -> io::Result<u64> {
    Ok(limits()?.rlim_cur)
}

/// Raises the soft limit on open descriptors to the hard limit. Returns the new soft limit.
pub fn raise_limit() -> io::Result<u64> {
    let mut limit = limits()?;
    if limit.rlim_cur < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max;
        // SAFETY: setrlimit only reads the rlimit it is given, which is valid.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(limit.rlim_cur)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Not raised here: other tests of the process count shares of the limit as it is.
    #[test]
    fn the_soft_limit_is_within_the_hard_one() {
        let soft = limit().unwrap();
        assert!(soft >= 1 && soft <= limits().unwrap().rlim_max);
    }
}
