//! Charging what an open holds (the text or listing of `held.rs`) to the opener's account.

use std::sync::{Arc, Weak};

use super::*;
use held::{Footprint, Held, HeldText, Newest};

impl ShmFs {
    /// `text`, just rendered for `who`'s open of `ino`, as the open will hold it: the copy an
    /// earlier open holds if the bytes are the same, charged to `who`'s account; ENOMEM past
    /// the account's share.
    pub(super) fn hold_text(&self, who: &Caller, ino: u64, text: String) -> Result<HeldText> {
        let mut text = text.into_bytes();
        text.shrink_to_fit();
        self.hold(&self.texts.texts, who, ino, text)
    }

    /// As [`ShmFs::hold_text`], for bytes that need not be text (a message).
    pub(super) fn hold_bytes(
        &self,
        who: &Caller,
        ino: u64,
        mut bytes: Vec<u8>,
    ) -> Result<HeldText> {
        bytes.shrink_to_fit();
        self.hold(&self.texts.texts, who, ino, bytes)
    }

    /// As [`ShmFs::hold_text`], for a listing of directory `ino`.
    pub(super) fn hold_listing(
        &self,
        who: &Caller,
        ino: u64,
        mut entries: Vec<DirEntry>,
    ) -> Result<Held<Vec<DirEntry>>> {
        entries.shrink_to_fit();
        self.hold(&self.texts.listings, who, ino, entries)
    }

    fn hold<T: Footprint + PartialEq>(
        &self,
        newest: &Mutex<Newest<T>>,
        who: &Caller,
        ino: u64,
        fresh: T,
    ) -> Result<Held<T>> {
        let copy = {
            let mut newest = newest.lock().unwrap_or_else(|p| p.into_inner());
            match newest.by_ino.get(&ino).and_then(Weak::upgrade) {
                Some(held) if *held == fresh => held,
                _ => {
                    let held = Arc::new(fresh);
                    newest.insert(ino, Arc::downgrade(&held));
                    held
                }
            }
        };
        let account = self.accounts.of(who.uid);
        let charge = self
            .texts
            .shares
            .take(
                account,
                Arc::as_ptr(&copy) as *const u8 as usize,
                copy.footprint() as u64,
            )
            .map_err(|_| errno(libc::ENOMEM))?;
        Ok(Held {
            charge: Some(charge),
            copy: Some(copy),
        })
    }
}
