//! Whose account a request is charged to: the user a uid belongs to.
//!
//! A user with a range of subordinate uids in `/etc/subuid` (Debian gives every user 65,536)
//! can run processes as any of them through a user namespace of its own; counted per uid, it
//! would get one share of the daemon's descriptors and memory per subordinate uid. So a uid in
//! someone's range is charged to that user, as if it were the user's own uid; any other uid
//! is its own account. uid 0 of the daemon's user namespace is [`Account::Root`], which
//! nothing else is: root's own subordinate uids (a rootful container's) are an ordinary
//! account, and a non-root caller with capabilities is charged to its uid like anyone else.
//!
//! Only uids are read: the shares are counted by uid, and a process that uses a subordinate
//! gid runs as one of its user's uids too. `/etc/subgid` is not consulted.
//!
//! The file is read again when it changes (its inode, size or times); a malformed line is
//! logged and skipped, an unreadable or missing file means no ranges.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Where subordinate uid ranges are listed (shadow-utils' `subuid(5)`).
pub const SUBUID_FILE: &str = "/etc/subuid";

/// How often a file naming users that do not exist (yet) is read again, although unchanged:
/// a user added to the passwd database later gets its range without a change of the file.
const UNRESOLVED_RETRY: Duration = Duration::from_secs(60);

/// Who is charged for what a request holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Account {
    /// uid 0 of the daemon's user namespace: never refused, and always left a reserve.
    Root,
    /// A user: its own uid, or the uid of the user whose subordinate range holds the uid.
    User(u32),
}

impl Account {
    /// Whether this is root's account.
    pub fn is_root(self) -> bool {
        self == Account::Root
    }
}

impl std::fmt::Display for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Account::Root => f.write_str("root"),
            Account::User(uid) => write!(f, "user {uid}"),
        }
    }
}

/// One line of the file: `count` uids from `start` belong to `owner`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Range {
    start: u32,
    count: u64,
    owner: u32,
}

impl Range {
    fn holds(&self, uid: u32) -> bool {
        uid >= self.start && u64::from(uid - self.start) < self.count
    }
}

/// What identifies one version of the file: a rewrite changes at least one of these.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

#[derive(Debug, Default)]
struct Loaded {
    /// The version read; None when the file could not be looked at.
    stamp: Option<Stamp>,
    ranges: Vec<Range>,
    /// When it was read, and whether some owner's name did not resolve.
    read_at: Option<Instant>,
    unresolved: bool,
    /// Whether a caller is reading the file now.
    loading: bool,
}

/// The uid → account map, from `/etc/subuid`, read again whenever the file changes.
#[derive(Debug)]
pub struct Accounts {
    file: PathBuf,
    loaded: Mutex<Loaded>,
}

impl Default for Accounts {
    fn default() -> Self {
        Accounts::new()
    }
}

impl Accounts {
    /// The accounts of the daemon's `/etc/subuid`.
    pub fn new() -> Accounts {
        Accounts::with_file(SUBUID_FILE)
    }

    fn with_file(file: impl Into<PathBuf>) -> Accounts {
        Accounts {
            file: file.into(),
            loaded: Mutex::new(Loaded::default()),
        }
    }

    /// The account `uid` is charged to.
    pub fn of(&self, uid: u32) -> Account {
        if uid == 0 {
            return Account::Root;
        }
        // One stat per call; the file is read only when that shows a change, by one caller
        // at a time and outside the lock (a name lookup may wait on a slow user database):
        // meanwhile, the others go by the ranges read before.
        let stamp = self.stamp();
        let mut loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        let retry = loaded.unresolved
            && loaded
                .read_at
                .is_none_or(|at| at.elapsed() >= UNRESOLVED_RETRY);
        let stale = loaded.read_at.is_none() || loaded.stamp != stamp || retry;
        if stale && !loaded.loading {
            loaded.loading = true;
            drop(loaded);
            let fresh = self.load(stamp);
            loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
            *loaded = fresh;
        }
        let owner = loaded
            .ranges
            .iter()
            .find(|r| r.holds(uid))
            .map_or(uid, |r| r.owner);
        Account::User(owner)
    }

    fn stamp(&self) -> Option<Stamp> {
        let m = fs::metadata(&self.file).ok()?;
        Some(Stamp {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        })
    }

    fn load(&self, stamp: Option<Stamp>) -> Loaded {
        let text = match fs::read(&self.file) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => {
                log::warn!("{}: {e}; every uid is its own account", self.file.display());
                String::new()
            }
        };
        let (ranges, unresolved) = parse(&text, &crate::kernel::names::user_id, &self.file);
        log::debug!(
            "{}: {} subordinate uid ranges",
            self.file.display(),
            ranges.len()
        );
        Loaded {
            stamp,
            ranges,
            read_at: Some(Instant::now()),
            unresolved,
            loading: false,
        }
    }
}

/// The ranges of a subuid file (`owner:start:count` lines, the owner a user name or a
/// uid), and whether some owner's name did not resolve. Each line that does not parse is
/// logged (with its number, not its text) and skipped.
fn parse(
    text: &str,
    user_id: &dyn Fn(&str) -> Option<u32>,
    file: &std::path::Path,
) -> (Vec<Range>, bool) {
    let mut ranges = Vec::new();
    let mut unresolved = false;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split(':').collect();
        let parsed = match fields.as_slice() {
            [owner, start, count] => match (start.parse::<u32>(), count.parse::<u64>()) {
                (Ok(start), Ok(count)) if count > 0 => Ok((*owner, start, count)),
                _ => Err("start and count must be numbers, count above 0"),
            },
            _ => Err("not name:start:count"),
        };
        let (owner, start, count) = match parsed {
            Ok(p) => p,
            Err(why) => {
                log::warn!("{} line {}: {why}; skipped", file.display(), n + 1);
                continue;
            }
        };
        // As shadow-utils reads it: a name first, then a number.
        let Some(owner) = user_id(owner).or_else(|| owner.parse::<u32>().ok()) else {
            log::warn!(
                "{} line {}: no user named {:?}; skipped",
                file.display(),
                n + 1,
                owner.chars().take(32).collect::<String>()
            );
            unresolved = true;
            continue;
        };
        ranges.push(Range {
            start,
            count,
            owner,
        });
    }
    (ranges, unresolved)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn users(name: &str) -> Option<u32> {
        match name {
            "alice" => Some(1000),
            "bob" => Some(1001),
            "4242" => None,
            _ => None,
        }
    }

    #[test]
    fn lines_name_users_by_name_or_uid_and_bad_lines_are_skipped() {
        let text = "alice:100000:65536\n\
                    # comment\n\
                    \n\
                    1002:300000:10\n\
                    bob:200000\n\
                    carol:400000:10\n\
                    bob:x:10\n\
                    bob:500000:0\n\
                    bob:600000:4294967296\n";
        let (ranges, unresolved) = parse(text, &users, Path::new("subuid"));
        assert_eq!(
            ranges,
            vec![
                Range {
                    start: 100000,
                    count: 65536,
                    owner: 1000
                },
                Range {
                    start: 300000,
                    count: 10,
                    owner: 1002
                },
                Range {
                    start: 600000,
                    count: 4294967296,
                    owner: 1001
                },
            ]
        );
        assert!(unresolved, "carol does not exist");
        assert!(ranges[0].holds(100000) && ranges[0].holds(165535));
        assert!(!ranges[0].holds(165536) && !ranges[0].holds(99999));
        assert!(ranges[2].holds(u32::MAX), "a range to the end of the uids");
    }

    #[test]
    fn subordinate_uids_belong_to_their_user_and_the_file_is_reread_when_it_changes() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("subuid");
        let accounts = Accounts::with_file(&file);
        assert_eq!(accounts.of(100005), Account::User(100005), "no file yet");
        std::fs::write(&file, "1000:100000:65536\n").unwrap();
        assert_eq!(accounts.of(100005), Account::User(1000));
        assert_eq!(accounts.of(1000), Account::User(1000));
        assert_eq!(accounts.of(165536), Account::User(165536));
        assert_eq!(accounts.of(0), Account::Root);
        // Root's own range is an ordinary account, never root's.
        std::fs::write(&file, "root:100000:65536\nbroken\n").unwrap();
        assert_eq!(accounts.of(100005), Account::User(0));
        assert!(!accounts.of(100005).is_root());
        std::fs::write(&file, "\u{0}\u{ff}garbage:::\n").unwrap();
        assert_eq!(accounts.of(100005), Account::User(100005));
        std::fs::remove_file(&file).unwrap();
        assert_eq!(accounts.of(100005), Account::User(100005));
    }
}
