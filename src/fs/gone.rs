//! Learning what is gone: the kernel's FORGET, objects found gone, and the notices that tell
//! the kernel to drop their entries (through the queue and threads of `forget.rs`).

use std::ffi::OsString;
use std::sync::mpsc;

use super::*;
use forget::{Notice, NoticeQueue, Sweeper};

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
        let notices = {
            let mut table = self.inodes();
            match table.gone(id) {
                (Some(dir), _) if tell_kernel => Notice::gone(&table, &[(id.clone(), dir)]),
                _ => Vec::new(),
            }
        };
        self.notify(notices);
    }

    /// After a listing: objects of the table missing from it are gone.
    pub(super) fn listed_gone(&self, held: Vec<(ObjectId, u64)>) {
        let notices = Notice::gone(&self.inodes(), &held);
        self.notify(notices);
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
