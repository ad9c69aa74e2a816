//! The daemon's file descriptors: as many as it may have, and a fair share of them for each
//! user, so that no one user can leave the others (or root, or the reports) without.
//!
//! Each open `data` keeps one descriptor in the daemon (the object's file, or the segment's
//! memory file) until it is closed. A user holding thousands of opens would otherwise exhaust
//! the daemon's limit and make every other user's open fail with EMFILE. So each uid but root
//! may hold at most [`SHARE_DIVISOR`]th of the daemon's descriptor limit through open `data`
//! files; past that, its own opens fail with EMFILE while everyone else's keep working.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex};

/// Each uid other than root may hold this fraction (1/N) of the daemon's descriptor limit.
pub const SHARE_DIVISOR: u64 = 4;

/// Raises the soft limit on open descriptors to the hard limit (the default soft limit, 1,024,
/// would let a single user exhaust it). Returns the new soft limit.
pub fn raise_fd_limit() -> io::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain system calls with a valid rlimit.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return Err(io::Error::last_os_error());
        }
        if limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(io::Error::last_os_error());
            }
        }
    }
    Ok(limit.rlim_cur)
}

/// The daemon's soft limit on open descriptors now (read at each open, so that a limit changed
/// from outside, e.g. with `prlimit --pid`, counts at once).
fn fd_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain system call with a valid rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return 1024;
    }
    limit.rlim_cur
}

/// How many descriptors each uid holds through open `data` files.
#[derive(Debug, Default)]
pub struct FdShares {
    held: Mutex<HashMap<u32, u64>>,
}

/// One descriptor counted against a uid's share; given back when dropped (at release).
#[derive(Debug)]
pub struct FdShare {
    uid: u32,
    shares: Arc<FdShares>,
}

impl FdShares {
    /// Counts one more descriptor for `uid`, or fails with EMFILE if that uid already holds
    /// its share. Root is not limited: it is trusted with the whole machine anyway.
    pub fn take(self: &Arc<Self>, uid: u32) -> io::Result<FdShare> {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let count = held.entry(uid).or_insert(0);
        let share = (fd_limit() / SHARE_DIVISOR).max(1);
        if uid != 0 && *count >= share {
            log::info!(
                "uid {uid} holds {count} open data files, its share of the daemon's descriptors: \
                 EMFILE"
            );
            return Err(io::Error::from_raw_os_error(libc::EMFILE));
        }
        *count += 1;
        Ok(FdShare {
            uid,
            shares: self.clone(),
        })
    }

    /// How many descriptors `uid` holds now.
    pub fn held_by(&self, uid: u32) -> u64 {
        let held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        held.get(&uid).copied().unwrap_or(0)
    }
}

impl Drop for FdShare {
    fn drop(&mut self) {
        let mut held = self.shares.held.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = held.get_mut(&self.uid) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                held.remove(&self.uid);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_are_counted_per_uid_and_given_back() {
        let shares = Arc::new(FdShares::default());
        let share = (fd_limit() / SHARE_DIVISOR).max(1);
        let mut held: Vec<FdShare> = (0..share).map(|_| shares.take(1000).unwrap()).collect();
        assert_eq!(
            shares.take(1000).map(drop).map_err(|e| e.raw_os_error()),
            Err(Some(libc::EMFILE))
        );
        assert!(shares.take(1001).is_ok(), "another uid is not affected");
        assert!(shares.take(0).is_ok(), "root is not limited");
        held.pop();
        assert!(shares.take(1000).is_ok(), "a closed one is given back");
        drop(held);
        assert_eq!(shares.held_by(1000), 0);
    }
}
