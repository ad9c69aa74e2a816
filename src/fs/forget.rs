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

use std::collections::HashSet;
use std::sync::atomic::AtomicUsize;
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::time::Instant;

use super::*;

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
    parent: u64,
    child: u64,
    name: OsString,
}

impl Notice {
    /// The notice that the entry of `id`'s directory (inode `dir`) is gone.
    fn gone(id: &ObjectId, dir: u64) -> Notice {
        Notice {
            parent: inode::kind_dir(id.kind),
            child: dir,
            name: id.name.to_os_string(),
        }
    }
}

/// The way to the notice thread: batches of notices, and how many wait.
#[derive(Clone)]
struct NoticeQueue {
    tx: Sender<Vec<Notice>>,
    queued: Arc<AtomicUsize>,
}

impl NoticeQueue {
    /// Starts the notice thread.
    fn start(cache: Arc<OnceLock<Box<dyn KernelCache>>>) -> Option<NoticeQueue> {
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
    fn room(&self) -> usize {
        QUEUE.saturating_sub(self.queued.load(Ordering::Relaxed))
    }

    /// Queues `notices`. Never blocks; past QUEUE waiting notices, new ones are dropped.
    fn send(&self, notices: Vec<Notice>) {
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
    notices: OnceLock<Option<NoticeQueue>>,
    /// Asks the sweep thread for a sweep (it decides whether one is due).
    sweeps: OnceLock<Option<SyncSender<()>>>,
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
struct Sweeper {
    inodes: Arc<Mutex<InodeTable>>,
    source: Arc<dyn Source>,
    notices: NoticeQueue,
}

impl Sweeper {
    /// Sweeps when asked and due, until the filesystem goes.
    fn run(self, asks: Receiver<()>) {
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
            (table.mark(), table.kinds(), table.len())
        };
        let env = Env {
            source: self.source.as_ref(),
            inodes: &self.inodes,
        };
        // None for a kind whose listing failed: nothing of it is then taken for gone.
        let live: HashMap<usize, Option<HashSet<ObjectId>>> = kinds
            .into_iter()
            .map(|k| match kind(k).ids(env) {
                Ok(ids) => (k, Some(ids.into_iter().collect())),
                Err(e) => {
                    log::warn!("sweep: listing {}/: {e}", kind(k).dir_name());
                    (k, None)
                }
            })
            .collect();
        let mut gone = self.inodes().gone_since(since, |id| {
            live.get(&id.kind)
                .and_then(Option::as_ref)
                .is_none_or(|ids| ids.contains(id))
        });
        gone.truncate(self.notices.room());
        let found = gone.len();
        let (held, _) = self.inodes().forget_all(gone);
        self.notices.send(
            held.iter()
                .map(|(id, dir)| Notice::gone(id, *dir))
                .collect(),
        );
        log::debug!(
            "sweep: {found} of {checked} objects gone, in {:?}",
            start.elapsed()
        );
    }
}

impl ShmFs {
    /// The kernel forgot lookups of these (inode, count) pairs: blocks it no longer holds go,
    /// with everything kept for their objects (it is kept in the block).
    pub(super) fn forget_inodes(&self, forgets: impl IntoIterator<Item = (u64, u64)>) {
        let mut table = self.inodes();
        for (ino, n) in forgets {
            table.forget(ino, n);
        }
    }

    /// The object is known to be gone: the next lookup of its identity gets new numbers, its
    /// block goes once the kernel holds none of it, and the kernel is told to drop its entry.
    pub(super) fn object_gone(&self, id: &ObjectId, tell_kernel: bool) {
        let (held, _) = self.inodes().gone(id);
        if let (Some(dir), true) = (held, tell_kernel) {
            self.tell_gone(id, dir);
        }
    }

    /// After a listing: objects of the table missing from it are gone.
    pub(super) fn listed_gone(&self, held: Vec<(ObjectId, u64)>) {
        let notices = held
            .iter()
            .map(|(id, dir)| Notice::gone(id, *dir))
            .collect();
        self.notify(notices);
    }

    /// Queues a notice that the entry of `id`'s directory (inode `dir`) is gone.
    pub(super) fn tell_gone(&self, id: &ObjectId, dir: u64) {
        self.notify(vec![Notice::gone(id, dir)]);
    }

    /// Queues a notice that `parent`'s entry `name`, if it still leads to `child`, is gone.
    pub(super) fn notify_entry(&self, parent: u64, child: u64, name: OsString) {
        self.notify(vec![Notice {
            parent,
            child,
            name,
        }]);
    }

    /// The notice thread's queue, starting the thread on first use.
    fn notice_queue(&self) -> Option<&NoticeQueue> {
        self.forgetting
            .notices
            .get_or_init(|| NoticeQueue::start(self.kernel_cache.clone()))
            .as_ref()
    }

    /// Queues notices for the notice thread. Never blocks.
    pub(super) fn notify(&self, notices: Vec<Notice>) {
        if notices.is_empty() {
            return;
        }
        if let Some(queue) = self.notice_queue() {
            queue.send(notices);
        }
    }

    /// Asks the sweep thread (started on first use) for a sweep, which it runs if one is due.
    /// Never blocks: a sweep lists the shm dir, which may take long, so it never runs on a
    /// thread that answers requests.
    pub(super) fn sweep_if_due(&self) {
        let asks = self.forgetting.sweeps.get_or_init(|| {
            let notices = self.notice_queue()?.clone();
            let sweeper = Sweeper {
                inodes: self.inodes.clone(),
                source: self.source.clone(),
                notices,
            };
            let (tx, rx) = mpsc::sync_channel(1);
            match std::thread::Builder::new()
                .name("shmfs-sweep".into())
                .spawn(move || sweeper.run(rx))
            {
                Ok(_) => Some(tx),
                Err(e) => {
                    log::warn!(
                        "cannot start the sweep thread: {e}; objects removed elsewhere stay cached"
                    );
                    None
                }
            }
        });
        if let Some(asks) = asks {
            // Full: a sweep is already asked for.
            let _ = asks.try_send(());
        }
    }
}
