//! Forgetting: the kernel's FORGET of inode numbers, objects learned to be gone, and telling
//! the kernel to drop its entries of gone objects so that it forgets them too.
//!
//! With an entry TTL and no memory pressure the kernel keeps every entry it looked up, and
//! never sends FORGET for it; so when shmfs learns that an object is gone (a failed lookup or
//! getattr, a listing, or a periodic sweep of what the kernel holds) it tells the kernel to
//! delete the object's entry. Those notices go through a queue to a thread of their own:
//! the kernel takes the parent directory's lock for them, which it may hold while it waits
//! for the very request that learned of the removal (LOOKUP and RMDIR on that directory).

use std::collections::HashSet;
use std::sync::atomic::AtomicUsize;
use std::sync::mpsc::{self, Receiver, Sender};
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

/// The state of forgetting: the queue to the notice thread, and when the last sweep ran.
pub(super) struct Forgetting {
    /// Batches of notices: a sweep sends its thousands in one message.
    queue: OnceLock<Option<Sender<Vec<Notice>>>>,
    /// Notices queued and not yet delivered, so that a sweep never queues more than fit.
    queued: Arc<AtomicUsize>,
    sweep: Mutex<Sweep>,
}

struct Sweep {
    last: Instant,
    cost: Duration,
}

impl Default for Forgetting {
    fn default() -> Self {
        Forgetting {
            queue: OnceLock::new(),
            queued: Arc::new(AtomicUsize::new(0)),
            sweep: Mutex::new(Sweep {
                last: Instant::now(),
                cost: Duration::ZERO,
            }),
        }
    }
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
            .map(|(id, dir)| Self::gone_notice(id, *dir))
            .collect();
        self.notify(notices);
    }

    /// The notice that the entry of `id`'s directory (inode `dir`) is gone.
    fn gone_notice(id: &ObjectId, dir: u64) -> Notice {
        let (parent, name) = match id {
            ObjectId::Sysv { shmid, .. } => (inode::SYSV_DIR, OsString::from(shmid.to_string())),
            ObjectId::Posix { name, .. } => (inode::POSIX_DIR, name.clone()),
        };
        Notice {
            parent,
            child: dir,
            name,
        }
    }

    /// Queues a notice that the entry of `id`'s directory (inode `dir`) is gone.
    pub(super) fn tell_gone(&self, id: &ObjectId, dir: u64) {
        self.notify(vec![Self::gone_notice(id, dir)]);
    }

    /// Queues a notice that `parent`'s entry `name`, if it still leads to `child`, is gone.
    pub(super) fn notify_entry(&self, parent: u64, child: u64, name: OsString) {
        self.notify(vec![Notice {
            parent,
            child,
            name,
        }]);
    }

    /// Queues notices for the notice thread, starting it on first use. Never blocks; past
    /// QUEUE waiting notices, new ones are dropped.
    pub(super) fn notify(&self, notices: Vec<Notice>) {
        if notices.is_empty() {
            return;
        }
        let queue = self.forgetting.queue.get_or_init(|| {
            let (tx, rx) = mpsc::channel();
            let cache = self.kernel_cache.clone();
            let queued = self.forgetting.queued.clone();
            match std::thread::Builder::new()
                .name("shmfs-notices".into())
                .spawn(move || deliver(rx, cache, queued))
            {
                Ok(_) => Some(tx),
                Err(e) => {
                    log::warn!("cannot start the notice thread: {e}; removed objects stay cached");
                    None
                }
            }
        });
        let Some(queue) = queue else { return };
        let count = notices.len();
        if self.forgetting.queued.fetch_add(count, Ordering::Relaxed) + count > QUEUE {
            self.forgetting.queued.fetch_sub(count, Ordering::Relaxed);
            log::debug!("notice queue full; {count} gone entries stay cached");
            return;
        }
        if queue.send(notices).is_err() {
            self.forgetting.queued.fetch_sub(count, Ordering::Relaxed);
            log::warn!("notice thread gone; {count} gone entries stay cached");
        }
    }

    /// Runs a sweep if one is due: every object the table holds is checked against one
    /// listing of each kind, and those gone behind shmfs's back (ipcrm, shm_unlink) are
    /// forgotten and their entries dropped, as many as the notice queue has room for (the
    /// rest at the next sweep). Call after replying: a sweep takes time (a listing).
    pub(super) fn sweep_if_due(&self) {
        let Ok(mut sweep) = self.forgetting.sweep.try_lock() else {
            return; // another thread is sweeping
        };
        let wait = SWEEP_EVERY.max(sweep.cost * SWEEP_SHARE);
        if sweep.last.elapsed() < wait {
            return;
        }
        let start = Instant::now();
        // The mark first, then the listings: an object numbered before the mark that no
        // listing taken after it shows is gone.
        let (since, has_posix, has_sysv, checked) = {
            let table = self.inodes();
            let (posix, sysv) = table.kinds();
            (table.mark(), posix, sysv, table.len())
        };
        let posix_live = if has_posix {
            self.live_posix_keys()
        } else {
            None
        };
        let sysv_live = if has_sysv { self.live_sysv_ids() } else { None };
        let room = QUEUE.saturating_sub(self.forgetting.queued.load(Ordering::Relaxed));
        let mut gone = self.inodes().gone_since(since, |id| match id {
            ObjectId::Posix { name, ino } => posix_live
                .as_ref()
                .is_none_or(|live| live.get(name.as_os_str()) == Some(ino)),
            ObjectId::Sysv { .. } => sysv_live.as_ref().is_none_or(|live| live.contains(id)),
        });
        gone.truncate(room);
        let found = gone.len();
        let (held, _) = self.inodes().forget_all(gone);
        self.listed_gone(held);
        sweep.cost = start.elapsed();
        sweep.last = Instant::now();
        log::debug!(
            "sweep: {found} of {checked} objects gone, in {:?}",
            sweep.cost
        );
    }

    /// Name → inode of every object now; None if the listing fails (nothing is then taken
    /// for gone).
    fn live_posix_keys(&self) -> Option<HashMap<OsString, u64>> {
        match self.source.object_keys() {
            Ok(keys) => Some(keys.into_iter().collect()),
            Err(e) => {
                log::warn!("sweep: listing the shm dir: {e}");
                None
            }
        }
    }

    /// The identity of every segment now; None if the listing fails.
    fn live_sysv_ids(&self) -> Option<HashSet<ObjectId>> {
        match self.source.segments() {
            Ok(segments) => Some(segments.iter().map(Self::sysv_id).collect()),
            Err(e) => {
                log::warn!("sweep: listing the segments: {e}");
                None
            }
        }
    }
}
