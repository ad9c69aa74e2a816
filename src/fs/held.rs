//! What an open text file (`stat`, `perm`, `attached`, the reports) or directory holds: the
//! text or listing made at open, shared by the opens of the same moment that made the same one,
//! charged to the opener's account (`crate::fs::fdshare::TextShares`), and given back to the
//! system when the last open holding it closes.

use std::ops::Deref;
use std::sync::Weak;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::fdshare::{TextCharge, TextShares};
use super::types::DirEntry;
use crate::kernel::memory;

/// A freed copy at least this large is given back to the system at once (malloc_trim): the
/// allocator would keep its pages otherwise, and the daemon's memory would stay at its
/// high-water mark after the opens close. The daemon uses one arena (see `main.rs`), so a
/// large text freed in the middle of its heap would stay resident.
const TRIM_AT: usize = 64 << 10;

/// The newest copy held of each file's text and each directory's listing, to be shared by the
/// next open that makes the same one; and what each account holds.
#[derive(Debug, Default)]
pub(super) struct Texts {
    pub(super) texts: Mutex<Newest<Vec<u8>>>,
    pub(super) listings: Mutex<Newest<Vec<DirEntry>>>,
    pub(super) shares: Arc<TextShares>,
}

#[derive(Debug)]
pub(super) struct Newest<T> {
    pub(super) by_ino: HashMap<u64, Weak<T>>,
    /// The size at which entries whose copy is gone are swept out.
    sweep_at: usize,
}

impl<T> Default for Newest<T> {
    fn default() -> Self {
        Newest {
            by_ino: HashMap::new(),
            sweep_at: 0,
        }
    }
}

/// What a copy costs the daemon, in bytes.
pub(super) trait Footprint {
    fn footprint(&self) -> usize;
}

impl Footprint for Vec<u8> {
    fn footprint(&self) -> usize {
        self.capacity()
    }
}

impl Footprint for Vec<DirEntry> {
    fn footprint(&self) -> usize {
        self.capacity() * std::mem::size_of::<DirEntry>()
            + self.iter().map(|e| e.name.capacity()).sum::<usize>()
    }
}

/// The copy one open holds, and its charge.
#[derive(Debug)]
pub(super) struct Held<T: Footprint> {
    pub(super) charge: Option<TextCharge>,
    /// Always there until the drop, which takes it after the charge.
    pub(super) copy: Option<Arc<T>>,
}

/// The text of an open text file.
pub(super) type HeldText = Held<Vec<u8>>;

impl<T: Footprint> Deref for Held<T> {
    type Target = T;

    fn deref(&self) -> &T {
        self.copy
            .as_deref()
            .expect("a held copy is there until it is dropped")
    }
}

impl<T: Footprint> Drop for Held<T> {
    fn drop(&mut self) {
        // The charge names the copy by its address, which is free for another copy once this
        // one is freed: it goes first.
        drop(self.charge.take());
        // Only the last holder gets the copy itself back.
        if let Some(copy) = self.copy.take().and_then(Arc::into_inner)
            && copy.footprint() >= TRIM_AT
        {
            drop(copy);
            memory::release_freed();
        }
    }
}

impl<T> Newest<T> {
    pub(super) fn insert(&mut self, ino: u64, copy: Weak<T>) {
        self.by_ino.insert(ino, copy);
        // Amortized: each sweep at least halves what the next one may find.
        if self.by_ino.len() >= self.sweep_at {
            self.by_ino.retain(|_, w| w.strong_count() > 0);
            self.sweep_at = (self.by_ino.len() * 2).max(1024);
        }
    }
}
