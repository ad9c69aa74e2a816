//! The lines about requests refused because of what a user wrote (a `perm` write that is no
//! mode, a segment truncated to a size it cannot take): short, and few per user, so that no
//! user can fill the log or forge lines in it.
//!
//! - A user's text is quoted only up to [`QUOTE_LIMIT`] characters (then `…`), and control
//!   and invisible formatting characters anywhere in a line are escaped (`\n`, `\u{202e}`).
//! - Each uid gets at most [`PER_USER`] lines per [`WINDOW`] (a user's subordinate uids share
//!   the user's, see [`crate::kernel::account`]); its next refusal in the window
//!   logs one line saying that the rest are not logged, and the first line logged after the
//!   window says how many were not. Ordinary users together get at most [`IN_ALL`] lines per
//!   window, with the same notice.
//!   Root's own refusals count only against root's share.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The window the limits are counted in.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Lines per uid per window.
pub const PER_USER: u32 = 10;
/// Lines of all ordinary users together per window.
pub const IN_ALL: u32 = 100;
/// The longest quotation of a user's text, in characters.
pub const QUOTE_LIMIT: usize = 32;
/// The longest reason logged, in characters, whatever it quotes.
const REASON_LIMIT: usize = 300;
/// Uids remembered at once; beyond, only the limit of all users applies to new ones.
const TRACKED: usize = 4096;

/// Logs, at info, the refusal of a request of `uid` whose line `line` makes, unless `uid` (with
/// the uids charged to the same account: a user's subordinate uids, see [`crate::kernel::account`]) or
/// all users have had their share of lines in this window.
pub fn refused(uid: u32, line: impl FnOnce() -> String) {
    static LIMITER: Mutex<Option<Limiter>> = Mutex::new(None);
    static ACCOUNTS: std::sync::OnceLock<crate::kernel::account::Accounts> =
        std::sync::OnceLock::new();
    // Counted per account, so that one user's many subordinate uids have one share, not many.
    let counted_as = match ACCOUNTS
        .get_or_init(crate::kernel::account::Accounts::new)
        .of(uid)
    {
        crate::kernel::account::Account::Root => 0,
        crate::kernel::account::Account::User(owner) => owner,
    };
    let verdict = LIMITER
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get_or_insert_with(Limiter::default)
        .admit(counted_as, Instant::now());
    let secs = WINDOW.as_secs();
    let whose = if counted_as == uid {
        format!("uid {uid}")
    } else {
        format!("uid {uid} (a subordinate uid of {counted_as}, counted with it)")
    };
    match verdict {
        Verdict::Log { user, all } => {
            let mut line = line();
            if user > 0 {
                line += &format!(" ({user} earlier refusals of {whose} were not logged)");
            }
            if all > 0 {
                line += &format!(" ({all} earlier refusals of all users were not logged)");
            }
            log::info!("{line}");
        }
        Verdict::Notice(Scope::User) => log::info!(
            "{whose} had {PER_USER} requests refused within {secs} s: its next refusals in \
             this time are not logged"
        ),
        Verdict::Notice(Scope::All) => log::info!(
            "users had {IN_ALL} requests refused within {secs} s: the next refusals in this \
             time are not logged"
        ),
        Verdict::Quiet => {}
    }
}

/// `reason` made fit for one log line: each `"…"` quotation in it (a user's text, as `{:?}`
/// quotes it) cut to [`QUOTE_LIMIT`] characters, the whole to a few hundred, and every control
/// or invisible formatting character escaped.
pub fn tame(reason: &str) -> String {
    let mut out = String::with_capacity(reason.len().min(REASON_LIMIT + 8));
    // Characters kept of the quotation we are in, if we are in one.
    let mut quotation: Option<usize> = None;
    let mut escaped = false;
    let mut kept_in_all = 0;
    for c in reason.chars() {
        if kept_in_all == REASON_LIMIT {
            out.push('…');
            break;
        }
        let keep = match &mut quotation {
            None => {
                if c == '"' {
                    quotation = Some(0);
                }
                true
            }
            Some(_) if c == '"' && !escaped => {
                quotation = None;
                true
            }
            Some(kept) => {
                if *kept == QUOTE_LIMIT {
                    out.push('…');
                }
                *kept = kept.saturating_add(1);
                escaped = !escaped && c == '\\';
                *kept <= QUOTE_LIMIT
            }
        };
        if keep {
            push_visible(&mut out, c);
            kept_in_all += 1;
        }
    }
    out
}

/// Appends `c`, escaped if it could break or disguise a log line.
fn push_visible(out: &mut String, c: char) {
    let invisible = matches!(c, '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}'
        | '\u{2066}'..='\u{2069}' | '\u{feff}');
    if c.is_control() || invisible {
        out.extend(c.escape_default());
    } else {
        out.push(c);
    }
}

/// Whose share a notice is about.
#[derive(Debug, PartialEq, Eq)]
enum Scope {
    User,
    All,
}

/// What to log for one refusal.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// Its line, with how many refusals of the uid and of all users went unlogged before.
    Log { user: u64, all: u64 },
    /// That the uid's or all users' share is used up (instead of its line).
    Notice(Scope),
    /// Nothing.
    Quiet,
}

/// Lines logged and refusals not logged in one window.
#[derive(Debug)]
struct Bucket {
    start: Instant,
    logged: u32,
    unlogged: u64,
    /// Not logged in earlier windows, and not yet said.
    untold: u64,
}

impl Bucket {
    fn new(now: Instant) -> Bucket {
        Bucket {
            start: now,
            logged: 0,
            unlogged: 0,
            untold: 0,
        }
    }

    fn expired(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.start) >= WINDOW
    }

    /// Starts a new window if this one is over.
    fn roll(&mut self, now: Instant) {
        if self.expired(now) {
            let untold = self.untold + self.unlogged;
            *self = Bucket::new(now);
            self.untold = untold;
        }
    }

    /// Counts a refusal against a share of `limit` lines: None if it may be logged, else
    /// whether it is the first one refused (for the notice).
    fn over(&mut self, limit: u32) -> Option<bool> {
        if self.logged < limit {
            return None;
        }
        self.unlogged += 1;
        Some(self.unlogged == 1)
    }
}

/// The windows of every uid seen lately and of all ordinary users.
#[derive(Debug, Default)]
struct Limiter {
    users: HashMap<u32, Bucket>,
    all: Option<Bucket>,
}

impl Limiter {
    fn admit(&mut self, uid: u32, now: Instant) -> Verdict {
        if self.users.len() >= TRACKED && !self.users.contains_key(&uid) {
            self.users.retain(|_, b| !b.expired(now));
        }
        let mut untracked = Bucket::new(now);
        let user = if self.users.len() < TRACKED || self.users.contains_key(&uid) {
            self.users.entry(uid).or_insert_with(|| Bucket::new(now))
        } else {
            &mut untracked
        };
        user.roll(now);
        if let Some(first) = user.over(PER_USER) {
            return notice_or_quiet(first, Scope::User);
        }
        let mut all_untold = 0;
        if uid != 0 {
            let all = self.all.get_or_insert_with(|| Bucket::new(now));
            all.roll(now);
            if let Some(first) = all.over(IN_ALL) {
                return notice_or_quiet(first, Scope::All);
            }
            all.logged += 1;
            all_untold = std::mem::take(&mut all.untold);
        }
        user.logged += 1;
        Verdict::Log {
            user: std::mem::take(&mut user.untold),
            all: all_untold,
        }
    }
}

fn notice_or_quiet(first: bool, scope: Scope) -> Verdict {
    if first {
        Verdict::Notice(scope)
    } else {
        Verdict::Quiet
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_gets_its_share_then_one_notice_then_nothing_until_the_window_is_over() {
        let mut l = Limiter::default();
        let t0 = Instant::now();
        for _ in 0..PER_USER {
            assert_eq!(l.admit(12345, t0), Verdict::Log { user: 0, all: 0 });
        }
        assert_eq!(l.admit(12345, t0), Verdict::Notice(Scope::User));
        for _ in 0..1000 {
            assert_eq!(l.admit(12345, t0 + WINDOW / 2), Verdict::Quiet);
        }
        // Another user is not held back by this one.
        assert_eq!(l.admit(12346, t0), Verdict::Log { user: 0, all: 0 });
        assert_eq!(l.admit(0, t0), Verdict::Log { user: 0, all: 0 });
        // The next window: logged again, with the count of those that were not.
        assert_eq!(
            l.admit(12345, t0 + WINDOW),
            Verdict::Log { user: 1001, all: 0 }
        );
        assert_eq!(
            l.admit(12345, t0 + WINDOW),
            Verdict::Log { user: 0, all: 0 }
        );
    }

    #[test]
    fn many_uids_of_one_user_share_the_limit_of_all_users_but_root_does_not() {
        let mut l = Limiter::default();
        let t0 = Instant::now();
        let mut logged = 0;
        let mut notices = 0;
        for uid in 100_000..170_000 {
            match l.admit(uid, t0) {
                Verdict::Log { .. } => logged += 1,
                Verdict::Notice(Scope::All) => notices += 1,
                other => assert_eq!(other, Verdict::Quiet, "uid {uid}"),
            }
        }
        assert_eq!((logged, notices), (IN_ALL, 1));
        assert!(
            l.users.len() <= TRACKED,
            "{} uids remembered",
            l.users.len()
        );
        assert_eq!(l.admit(0, t0), Verdict::Log { user: 0, all: 0 });
        assert_eq!(
            l.admit(100_000, t0 + WINDOW),
            Verdict::Log {
                user: 0,
                all: 70_000 - u64::from(IN_ALL)
            }
        );
    }

    #[test]
    fn quotations_are_cut_and_control_characters_escaped() {
        assert_eq!(
            tame("mode \"99\" is not an octal mode"),
            "mode \"99\" is not an octal mode"
        );
        let long = format!("{:?} is not name: value", "x".repeat(4000));
        assert_eq!(
            tame(&long),
            format!("\"{}…\" is not name: value", "x".repeat(QUOTE_LIMIT))
        );
        // An escaped quote does not end the quotation.
        let tricky = format!("{:?} is bad", format!("a\"{}", "b".repeat(100)));
        assert_eq!(
            tame(&tricky),
            format!("\"a\\\"{}…\" is bad", "b".repeat(QUOTE_LIMIT - 3))
        );
        assert_eq!(
            tame("line\nshmfs[1]: forged\r\u{202e}"),
            "line\\nshmfs[1]: forged\\r\\u{202e}"
        );
        let unquoted = "y".repeat(10_000);
        assert_eq!(tame(&unquoted).chars().count(), REASON_LIMIT + 1);
    }
}
