//! What users hold in the daemon through open files, and each account's fair share of it, so
//! that no one user can leave the others (or root, or the reports) without: the daemon's
//! descriptors, and the memory of rendered text.
//!
//! Each open `data` keeps one descriptor in the daemon (the object's file, or the segment's
//! memory file) until it is closed. A user holding thousands of opens would otherwise exhaust
//! the daemon's limit and make every other user's open fail with EMFILE. So each account (a
//! user with its subordinate uids, see [`crate::kernel::account`]) may hold at most
//! [`SHARE_DIVISOR`]th of the daemon's descriptor limit through open `data` files, and all
//! accounts but root's together all but [`ROOT_RESERVE_DIVISOR`]th of it; past that, their
//! opens fail with EMFILE while root's keep working.
//!
//! Each open of a text file (`stat`, `perm`, `attached`, `limits`, `index`, `index.json`,
//! `metrics.prom`) keeps the text rendered at open, and each open directory its listing. Opens
//! that hold the same text share one copy (see `crate::fs`), and each account is charged once
//! for each copy it holds, plus a little for each open: at most [`TEXT_SHARE`] bytes per account and [`TEXT_POOL`] for all
//! accounts but root's together. Past that, opens fail with ENOMEM. An account that holds no
//! text may open one however large, as long as the pool is not full, so that a report bigger
//! than the share can still be read.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::kernel::account::Account;
use crate::kernel::descriptors;

/// Each account other than root's may hold this fraction (1/N) of the daemon's descriptor limit.
pub const SHARE_DIVISOR: u64 = 4;

/// This fraction (1/N) of the daemon's descriptor limit is kept for root (and for the daemon's
/// own reading of `/proc` and the shm dir): all other accounts together hold at most the rest.
pub const ROOT_RESERVE_DIVISOR: u64 = 8;

/// Bytes of rendered text (and listings) each account other than root's may hold through open
/// text files and directories.
pub const TEXT_SHARE: u64 = 16 << 20;

/// Bytes of rendered text all accounts but root's may hold together.
pub const TEXT_POOL: u64 = 64 << 20;

/// What each open text file is charged besides its text: the handle and its bookkeeping.
pub const OPEN_COST: u64 = 256;

/// At most one log line per account and kind of refusal in this long: a user refused at
/// every one of thousands of opens must not flood the log.
const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// The daemon's soft limit on open descriptors now (read at each open, so that a limit changed
/// from outside, e.g. with `prlimit --pid`, counts at once); 1,024 if it cannot be read.
fn fd_limit() -> u64 {
    descriptors::limit().unwrap_or(1024)
}

/// When each account's last refusal was logged.
#[derive(Debug, Default)]
struct Quiet {
    last: Mutex<HashMap<Account, Instant>>,
}

impl Quiet {
    /// Whether a refusal of `account` is to be logged now.
    fn speak(&self, account: Account) -> bool {
        let mut last = lock(&self.last);
        let now = Instant::now();
        if last
            .get(&account)
            .is_some_and(|at| now.duration_since(*at) < LOG_INTERVAL)
        {
            return false;
        }
        if last.len() >= 4096 {
            last.retain(|_, at| now.duration_since(*at) < LOG_INTERVAL);
        }
        last.insert(account, now);
        true
    }

    /// The error `errno` for a refused open of `account`, logged (`line`) unless a refusal of
    /// it was logged a moment ago.
    fn refuse(&self, account: Account, line: impl FnOnce() -> String, errno: i32) -> io::Error {
        if self.speak(account) {
            log::info!("{}", line());
        }
        io::Error::from_raw_os_error(errno)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock only means another thread panicked mid-update of plain counters.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// How many descriptors each account holds through open `data` files.
#[derive(Debug, Default)]
pub struct FdShares {
    held: Mutex<FdHeld>,
    quiet: Quiet,
}

#[derive(Debug, Default)]
struct FdHeld {
    by_account: HashMap<Account, u64>,
    /// Held by all accounts but root's.
    not_root: u64,
}

/// One descriptor counted against an account's share; given back when dropped (at release).
#[derive(Debug)]
pub struct FdShare {
    account: Account,
    shares: Arc<FdShares>,
}

impl FdShares {
    /// Counts one more descriptor for `account`, or fails with EMFILE if it already holds
    /// its share, or if all other accounts but root's together hold all but root's reserve.
    /// Root is never refused here (the kernel's own limit still applies).
    pub fn take(self: &Arc<Self>, account: Account) -> io::Result<FdShare> {
        let limit = fd_limit();
        let share = (limit / SHARE_DIVISOR).max(1);
        let pool = limit.saturating_sub(limit / ROOT_RESERVE_DIVISOR).max(1);
        let mut held = lock(&self.held);
        let count = held.by_account.get(&account).copied().unwrap_or(0);
        if !account.is_root() {
            let why = if count >= share {
                Some(format!("holds {count} open data files, its share"))
            } else if held.not_root >= pool {
                Some(format!(
                    "would pass all users' part ({pool}, the rest is root's reserve)"
                ))
            } else {
                None
            };
            if let Some(why) = why {
                drop(held);
                let line = || {
                    format!(
                        "{account} {why} of the daemon's {limit} descriptors: its opens of data \
                         fail with EMFILE"
                    )
                };
                return Err(self.quiet.refuse(account, line, libc::EMFILE));
            }
            held.not_root += 1;
        }
        *held.by_account.entry(account).or_insert(0) += 1;
        Ok(FdShare {
            account,
            shares: self.clone(),
        })
    }

    /// How many descriptors `account` holds now.
    pub fn held_by(&self, account: Account) -> u64 {
        lock(&self.held)
            .by_account
            .get(&account)
            .copied()
            .unwrap_or(0)
    }
}

impl Drop for FdShare {
    fn drop(&mut self) {
        let mut held = lock(&self.shares.held);
        if !self.account.is_root() {
            held.not_root = held.not_root.saturating_sub(1);
        }
        if let Some(count) = held.by_account.get_mut(&self.account) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                held.by_account.remove(&self.account);
            }
        }
    }
}

/// The rendered text and listings each account holds through open text files and directories:
/// each distinct copy once per account (opens of the same moment share one), plus
/// [`OPEN_COST`] per open.
#[derive(Debug, Default)]
pub struct TextShares {
    held: Mutex<TextHeld>,
    quiet: Quiet,
}

#[derive(Debug, Default)]
struct TextHeld {
    by_account: HashMap<Account, AccountTexts>,
    /// Bytes charged to all accounts but root's.
    not_root: u64,
}

#[derive(Debug, Default)]
struct AccountTexts {
    /// Bytes charged.
    bytes: u64,
    /// How many of the account's opens hold each copy (by its address, which stays the
    /// copy's while any charge for it lives: the charge goes before the copy).
    opens: HashMap<usize, u64>,
}

/// One open's charge for its text; given back when dropped, which must happen before the text
/// it was taken for is freed.
#[derive(Debug)]
pub struct TextCharge {
    account: Account,
    text: usize,
    len: u64,
    shares: Arc<TextShares>,
}

impl TextShares {
    /// Charges `account` for one more open holding the copy at address `copy`, `len` bytes
    /// long: [`OPEN_COST`], and `len` if none of the account's opens holds that copy yet.
    /// ENOMEM past the account's share (unless it holds nothing yet) or past the pool of all
    /// accounts but root's (unless they hold nothing yet). Root is never refused. The copy
    /// must outlive the charge.
    pub fn take(
        self: &Arc<Self>,
        account: Account,
        copy: usize,
        len: u64,
    ) -> io::Result<TextCharge> {
        let mut held = lock(&self.held);
        let mine = held.by_account.get(&account);
        let holds = mine.map_or(0, |a| a.bytes);
        let first = mine.is_none_or(|a| !a.opens.contains_key(&copy));
        let cost = OPEN_COST + if first { len } else { 0 };
        if !account.is_root() {
            let why = if holds > 0 && holds.saturating_add(cost) > TEXT_SHARE {
                Some(format!(
                    "holds {holds} bytes in open text files and directories, its share is \
                     {TEXT_SHARE}"
                ))
            } else if held.not_root > 0 && held.not_root.saturating_add(cost) > TEXT_POOL {
                Some(format!(
                    "would pass all users' {TEXT_POOL} bytes in open text files and \
                     directories (the rest is root's)"
                ))
            } else {
                None
            };
            if let Some(why) = why {
                drop(held);
                let line = || {
                    format!(
                        "{account} {why}: its opens of text files and directories fail with ENOMEM"
                    )
                };
                return Err(self.quiet.refuse(account, line, libc::ENOMEM));
            }
        }
        if !account.is_root() {
            held.not_root += cost;
        }
        let mine = held.by_account.entry(account).or_default();
        mine.bytes += cost;
        *mine.opens.entry(copy).or_insert(0) += 1;
        Ok(TextCharge {
            account,
            text: copy,
            len,
            shares: self.clone(),
        })
    }

    /// The bytes charged to `account` now.
    pub fn held_by(&self, account: Account) -> u64 {
        lock(&self.held)
            .by_account
            .get(&account)
            .map_or(0, |a| a.bytes)
    }
}

impl Drop for TextCharge {
    fn drop(&mut self) {
        let mut held = lock(&self.shares.held);
        let Some(mine) = held.by_account.get_mut(&self.account) else {
            return;
        };
        let mut cost = OPEN_COST;
        if let Some(opens) = mine.opens.get_mut(&self.text) {
            *opens = opens.saturating_sub(1);
            if *opens == 0 {
                mine.opens.remove(&self.text);
                cost += self.len;
            }
        }
        mine.bytes = mine.bytes.saturating_sub(cost);
        if mine.opens.is_empty() {
            held.by_account.remove(&self.account);
        }
        if !self.account.is_root() {
            held.not_root = held.not_root.saturating_sub(cost);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptor_shares_are_counted_per_account_and_given_back() {
        let shares = Arc::new(FdShares::default());
        let share = (fd_limit() / SHARE_DIVISOR).max(1);
        let hog = Account::User(1000);
        let mut held: Vec<FdShare> = (0..share).map(|_| shares.take(hog).unwrap()).collect();
        assert_eq!(
            shares.take(hog).map(drop).map_err(|e| e.raw_os_error()),
            Err(Some(libc::EMFILE))
        );
        assert!(
            shares.take(Account::User(1001)).is_ok(),
            "another account is not affected"
        );
        assert!(shares.take(Account::Root).is_ok(), "root is not limited");
        held.pop();
        assert!(shares.take(hog).is_ok(), "a closed one is given back");
        drop(held);
        assert_eq!(shares.held_by(hog), 0);
    }

    #[test]
    fn users_together_leave_roots_reserve() {
        let shares = Arc::new(FdShares::default());
        let limit = fd_limit();
        let pool = limit - limit / ROOT_RESERVE_DIVISOR;
        let share = limit / SHARE_DIVISOR;
        let mut held = Vec::new();
        let mut uid = 2000;
        while (held.len() as u64) < pool {
            match shares.take(Account::User(uid)) {
                Ok(s) => held.push(s),
                Err(_) => uid += 1,
            }
        }
        assert!(u64::from(uid - 2000) >= pool / share - 1);
        assert_eq!(
            shares
                .take(Account::User(uid + 1))
                .map(drop)
                .map_err(|e| e.raw_os_error()),
            Err(Some(libc::EMFILE)),
            "a fresh account once all users' part is held"
        );
        let root: Vec<FdShare> = (0..limit / ROOT_RESERVE_DIVISOR)
            .map(|_| shares.take(Account::Root).unwrap())
            .collect();
        drop(held);
        assert!(shares.take(Account::User(uid + 1)).is_ok());
        drop(root);
    }

    fn text(len: usize) -> Arc<Vec<u8>> {
        Arc::new(vec![b'x'; len])
    }

    impl TextShares {
        fn take_text(
            self: &Arc<Self>,
            account: Account,
            text: &Arc<Vec<u8>>,
        ) -> io::Result<TextCharge> {
            self.take(account, Arc::as_ptr(text) as usize, text.len() as u64)
        }
    }

    #[test]
    fn a_shared_text_is_charged_once_per_account() {
        let shares = Arc::new(TextShares::default());
        let big = text(1 << 20);
        let user = Account::User(1000);
        let charges: Vec<TextCharge> = (0..400)
            .map(|_| shares.take_text(user, &big).unwrap())
            .collect();
        assert_eq!(shares.held_by(user), (1 << 20) + 400 * OPEN_COST);
        let other = shares.take_text(Account::User(1001), &big).unwrap();
        assert_eq!(shares.held_by(Account::User(1001)), (1 << 20) + OPEN_COST);
        drop(charges);
        drop(other);
        assert_eq!(shares.held_by(user), 0);
        assert_eq!(lock(&shares.held).not_root, 0);
    }

    #[test]
    fn distinct_texts_fill_the_share_and_root_is_not_limited() {
        let shares = Arc::new(TextShares::default());
        let user = Account::User(1000);
        let texts: Vec<_> = (0..40).map(|_| text(1 << 20)).collect();
        let mut charges = Vec::new();
        let refused = texts.iter().find_map(|t| match shares.take_text(user, t) {
            Ok(c) => {
                charges.push(c);
                None
            }
            Err(e) => Some(e.raw_os_error()),
        });
        assert_eq!(refused, Some(Some(libc::ENOMEM)));
        assert!(shares.held_by(user) <= TEXT_SHARE);
        assert_eq!(charges.len() as u64, TEXT_SHARE / ((1 << 20) + OPEN_COST));
        for t in &texts {
            charges.push(shares.take_text(Account::Root, t).unwrap());
        }
        // An account holding nothing may hold one text of any size.
        let huge = text((TEXT_SHARE + 1) as usize);
        let one = shares.take_text(Account::User(1001), &huge).unwrap();
        assert!(shares.take_text(Account::User(1001), &text(10)).is_err());
        drop(one);
        drop(charges);
        assert_eq!(shares.held_by(user), 0);
        assert_eq!(shares.held_by(Account::Root), 0);
    }

    #[test]
    fn users_together_leave_root_memory() {
        let shares = Arc::new(TextShares::default());
        let texts: Vec<_> = (0..80).map(|_| text(1 << 20)).collect();
        let mut charges = Vec::new();
        let mut refused = 0;
        for (i, t) in texts.iter().enumerate() {
            // Eight opens per account: within each account's share.
            match shares.take_text(Account::User(3000 + i as u32 / 8), t) {
                Ok(c) => charges.push(c),
                Err(_) => refused += 1,
            }
        }
        assert!(refused > 0, "80 MiB is past the pool");
        assert!(lock(&shares.held).not_root <= TEXT_POOL);
        assert!(shares.take_text(Account::Root, &texts[79]).is_ok());
    }
}
