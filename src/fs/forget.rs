//! Forgetting: the kernel's FORGET of inode numbers, objects learned to be gone, and telling
//! the kernel to drop its entries of gone objects so that it forgets them too.
//!
//! With an entry TTL and no memory pressure the kernel keeps every entry it looked up, and
//! never sends FORGET for it; so when shmfs learns that an object is gone (a failed lookup or
//! getattr, a listing, or a periodic sweep of what the kernel holds) it tells the kernel to
//! delete the object's entry. Those notices go through a queue to a thread of their own:
//! the kernel takes the parent directory's lock for them, which it may hold while it waits
//! for the very request that learned of the removal (LOOKUP and RMDIR on that directory).
//! The sweep runs on a thread of its own too: it lists the shm dir, which may be slow or
//! stuck (a `--shm-dir` on a filesystem that does not answer), and must never hold up a
//! worker.

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use super::inode::{HOME, InodeTable, ObjectId};
use super::kind::Env;
use super::kinds::kind;
use super::source::Source;
use super::types::KernelCache;

/// Notices waiting for the notice thread; beyond this many, new ones are dropped (the entry
/// then only stays cached until memory pressure or its next use, as without the notice), and
/// a sweep leaves the rest of what it found for the next one.
const QUEUE: usize = 64 * 1024;
/// A sweep of the objects the table holds runs at most this often, and only while requests
/// come in.
const SWEEP_EVERY: Duration = Duration::from_millis(250);
/// ...and takes at most 1/SWEEP_SHARE of the time between two sweeps.
const SWEEP_SHARE: u32 = 50;

/// A directory entry the kernel should drop: `parent`'s `name`, if it is still `child`.
pub(super) struct Notice {
    pub(super) parent: u64,
    pub(super) child: u64,
    pub(super) name: OsString,
}

impl Notice {
    /// The notices that the entries of these directories (each an identity and the inode
    /// of its directory) are gone, each in its parent as `table` numbers it now.
    pub(super) fn gone(table: &InodeTable, dirs: &[(ObjectId, u64)]) -> Vec<Notice> {
        dirs.iter()
            .filter_map(|(id, dir)| {
                Some(Notice {
                    parent: table.parent_of(id)?,
                    child: *dir,
                    name: id.name.to_os_string(),
                })
            })
            .collect()
    }
}

/// The way to the notice thread: batches of notices, and how many wait.
#[derive(Clone)]
pub(super) struct NoticeQueue {
    tx: Sender<Vec<Notice>>,
    queued: Arc<AtomicUsize>,
}

impl NoticeQueue {
    /// Starts the notice thread.
    pub(super) fn start(cache: Arc<OnceLock<Box<dyn KernelCache>>>) -> Option<NoticeQueue> {
        let (tx, rx) = mpsc::channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let delivered = queued.clone();
        match std::thread::Builder::new()
            .name("shmfs-notices".into())
            .spawn(move || deliver(rx, cache, delivered))
        {
            Ok(_) => Some(NoticeQueue { tx, queued }),
            Err(e) => {
                log::warn!("cannot start the notice thread: {e}; removed objects stay cached");
                None
            }
        }
    }

    /// How many more notices fit.
    pub(super) fn room(&self) -> usize {
        QUEUE.saturating_sub(self.queued.load(Ordering::Relaxed))
    }

    /// Queues `notices`. Never blocks; past QUEUE waiting notices, new ones are dropped.
    pub(super) fn send(&self, notices: Vec<Notice>) {
        let count = notices.len();
        if count == 0 {
            return;
        }
        if self.queued.fetch_add(count, Ordering::Relaxed) + count > QUEUE {
            self.queued.fetch_sub(count, Ordering::Relaxed);
            log::debug!("notice queue full; {count} gone entries stay cached");
            return;
        }
        if self.tx.send(notices).is_err() {
            self.queued.fetch_sub(count, Ordering::Relaxed);
            log::warn!("notice thread gone; {count} gone entries stay cached");
        }
    }
}

/// The state of forgetting: the notice thread and the sweep thread, each started on first use.
#[derive(Default)]
pub(super) struct Forgetting {
    pub(super) notices: OnceLock<Option<NoticeQueue>>,
    /// Asks the sweep thread for a sweep (it decides whether one is due).
    pub(super) sweeps: OnceLock<Option<SyncSender<()>>>,
}

/// The notice thread: sends each notice to the kernel, in order, until the filesystem goes.
fn deliver(
    batches: Receiver<Vec<Notice>>,
    cache: Arc<OnceLock<Box<dyn KernelCache>>>,
    queued: Arc<AtomicUsize>,
) {
    for batch in batches {
        for notice in batch {
            queued.fetch_sub(1, Ordering::Relaxed);
            let Some(cache) = cache.get() else {
                continue;
            };
            if let Err(e) = cache.delete(notice.parent, notice.child, &notice.name) {
                // ENOTEMPTY: a file inside is still open; the entry was dropped anyway.
                log::debug!("telling the kernel {:?} is gone: {e}", notice.name);
            }
        }
    }
}

/// What the sweep thread works with: the table, the source, and the notice queue.
pub(super) struct Sweeper {
    pub(super) inodes: Arc<Mutex<InodeTable>>,
    pub(super) source: Arc<dyn Source>,
    pub(super) notices: NoticeQueue,
}

impl Sweeper {
    /// Sweeps when asked and due, until the filesystem goes.
    pub(super) fn run(self, asks: Receiver<()>) {
        let mut last = Instant::now();
        let mut cost = Duration::ZERO;
        for () in asks {
            if last.elapsed() < SWEEP_EVERY.max(cost * SWEEP_SHARE) {
                continue;
            }
            let start = Instant::now();
            self.sweep();
            cost = start.elapsed();
            last = Instant::now();
        }
    }

    fn inodes(&self) -> MutexGuard<'_, InodeTable> {
        self.inodes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Compares every object the table holds with one listing of each kind: those gone
    /// behind shmfs's back (ipcrm, shm_unlink) are forgotten and their entries dropped, as
    /// many as the notice queue has room for (the rest at the next sweep).
    fn sweep(&self) {
        let start = Instant::now();
        // The mark first, then the listings: an object numbered before the mark that no
        // listing taken after it shows is gone.
        let (since, kinds, checked) = {
            let table = self.inodes();
            (table.mark(), table.kinds(HOME), table.len())
        };
        // Only the root's objects: those of other namespaces are checked by their listings
        // and their uses, inside their namespace.
        let env = Env {
            source: self.source.clone(),
            inodes: &self.inodes,
            ns: HOME,
        };
        // None for a kind whose listing failed: nothing of it is then taken for gone.
        let live: HashMap<usize, Option<HashSet<ObjectId>>> = kinds
            .into_iter()
            .map(|k| match kind(k).ids(&env) {
                Ok(ids) => (k, Some(ids.into_iter().collect())),
                Err(e) => {
                    log::warn!("sweep: listing {}/: {e}", kind(k).dir_name());
                    (k, None)
                }
            })
            .collect();
        let mut gone = self.inodes().gone_since(since, |id| {
            id.ns != HOME
                || live
                    .get(&id.kind)
                    .and_then(Option::as_ref)
                    .is_none_or(|ids| ids.contains(id))
        });
        gone.truncate(self.notices.room());
        let found = gone.len();
        let notices = {
            let mut table = self.inodes();
            let (held, _) = table.forget_all(gone);
            Notice::gone(&table, &held)
        };
        self.notices.send(notices);
        log::debug!(
            "sweep: {found} of {checked} objects gone, in {:?}",
            start.elapsed()
        );
    }
}
