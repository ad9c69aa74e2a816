//! Forgetting: the kernel's FORGET of inode numbers, objects learned to be gone, and telling
//! the kernel to drop its entries of gone objects so that it forgets them too.
//!
//! With an entry TTL and no memory pressure the kernel keeps every entry it looked up, and
//! never sends FORGET for it; so when shmfs learns that an object is gone (a failed lookup or
//! getattr, a listing, or a periodic sweep of what the kernel holds) it tells the kernel to
//! delete the object's entry. Those notices go through a queue to a thread of their own:
//! the kernel takes the parent directory's lock for them, which it may hold while it waits
//! for the very request that learned of the removal (LOOKUP and RMDIR on that directory).

use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::time::Instant;

use super::*;

/// Notices waiting for the notice thread; beyond this many, new ones are dropped (the entry
/// then only stays cached until memory pressure or its next use, as without the notice).
const QUEUE: usize = 16 * 1024;
/// A sweep of the objects the table holds runs at most this often, and only while requests
/// come in.
const SWEEP_EVERY: Duration = Duration::from_secs(1);
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
    queue: OnceLock<Option<SyncSender<Notice>>>,
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
            sweep: Mutex::new(Sweep {
                last: Instant::now(),
                cost: Duration::ZERO,
            }),
        }
    }
}

/// The notice thread: sends each notice to the kernel, in order, until the filesystem goes.
fn deliver(notices: Receiver<Notice>, cache: Arc<OnceLock<Box<dyn KernelCache>>>) {
    for notice in notices {
        let Some(cache) = cache.get() else {
            continue;
        };
        if let Err(e) = cache.delete(notice.parent, notice.child, &notice.name) {
            // ENOTEMPTY: a file inside is still open; the entry was dropped anyway.
            log::debug!("telling the kernel {:?} is gone: {e}", notice.name);
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
        for (id, dir) in &held {
            self.tell_gone(id, *dir);
        }
    }

    /// Queues a notice that the entry of `id`'s directory (inode `dir`) is gone.
    pub(super) fn tell_gone(&self, id: &ObjectId, dir: u64) {
        let (parent, name) = match id {
            ObjectId::Sysv { shmid, .. } => (inode::SYSV_DIR, OsString::from(shmid.to_string())),
            ObjectId::Posix { name, .. } => (inode::POSIX_DIR, name.clone()),
        };
        self.notify_entry(parent, dir, name);
    }

    /// Queues a notice that `parent`'s entry `name`, if it still leads to `child`, is gone.
    pub(super) fn notify_entry(&self, parent: u64, child: u64, name: OsString) {
        self.notify(Notice {
            parent,
            child,
            name,
        });
    }

    /// Queues a notice for the notice thread, starting it on first use. Never blocks.
    pub(super) fn notify(&self, notice: Notice) {
        let queue = self.forgetting.queue.get_or_init(|| {
            let (tx, rx) = mpsc::sync_channel(QUEUE);
            let cache = self.kernel_cache.clone();
            match std::thread::Builder::new()
                .name("shmfs-notices".into())
                .spawn(move || deliver(rx, cache))
            {
                Ok(_) => Some(tx),
                Err(e) => {
                    log::warn!("cannot start the notice thread: {e}; removed objects stay cached");
                    None
                }
            }
        });
        let Some(queue) = queue else { return };
        match queue.try_send(notice) {
            Ok(()) => {}
            Err(TrySendError::Full(n)) => log::debug!("notice queue full; {:?} stays", n.name),
            Err(TrySendError::Disconnected(n)) => {
                log::warn!("notice thread gone; {:?} stays cached", n.name)
            }
        }
    }

    /// Runs a sweep if one is due: every object the table holds is checked, and those gone
    /// behind shmfs's back (ipcrm, shm_unlink) are forgotten and their entries dropped. Call
    /// after replying: a sweep takes time (about a microsecond per object).
    pub(super) fn sweep_if_due(&self) {
        let Ok(mut sweep) = self.forgetting.sweep.try_lock() else {
            return; // another thread is sweeping
        };
        let wait = SWEEP_EVERY.max(sweep.cost * SWEEP_SHARE);
        if sweep.last.elapsed() < wait {
            return;
        }
        let start = Instant::now();
        let objects = self.inodes().objects();
        let checked = objects.len();
        let gone: Vec<ObjectId> = objects
            .into_iter()
            .filter(|(id, _)| matches!(self.live_now(id), Err(e) if e.errno() == libc::ENOENT))
            .map(|(id, _)| id)
            .collect();
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
}
