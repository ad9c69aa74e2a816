//! The text that `stat`, `perm`, `limits`, `index`, `index.json`, `metrics.prom` and
//! `attached` show, and what `df` reports: gathered from the kernel, rendered by
//! `crate::render::text`, `crate::render::index` and `crate::render::metrics`.

use super::*;
use crate::kernel::memory;

impl ShmFs {
    pub(super) fn limits_text(&self) -> Result<String> {
        let limits = self.source.sysv_limits()?;
        let limits = text::Limits {
            shmmax: limits.shmmax,
            shmall: limits.shmall,
            shmmni: limits.shmmni,
            shm_rmid_forced: limits.shm_rmid_forced,
            totals: self.source.sysv_totals()?,
        };
        Ok(text::limits(&limits))
    }

    pub(super) fn report_text(&self, report: Report) -> Result<String> {
        match report {
            Report::Limits => return self.limits_text(),
            Report::Metrics => return self.metrics_text(),
            Report::Index | Report::IndexJson => {}
        }
        let usage = self
            .source
            .segments_usage()
            .inspect_err(|e| log::warn!("reading /proc/sysvipc/shm: {e}"))?;
        let segments = self.source.segments()?;
        let objects = self.source.objects()?;
        let uids = segments
            .iter()
            .map(|s| s.uid)
            .chain(objects.iter().map(|o| o.uid));
        let names = index::owner_names(uids, crate::kernel::names::user_name);
        let owner = |uid: u32| names.get(&uid).cloned().unwrap_or_else(|| uid.to_string());
        let rows: Vec<index::Row> = segments
            .iter()
            .map(|s| {
                let u = usage.get(&s.shmid).copied().unwrap_or_default();
                index::Row::sysv(s, u, owner(s.uid))
            })
            .chain(objects.iter().map(|o| index::Row::posix(o, owner(o.uid))))
            .collect();
        Ok(match report {
            Report::IndexJson => index::render_json(&rows),
            _ => index::render_table(&rows),
        })
    }

    /// `metrics.prom`: as `index`, one listing of segments (and one fresh reading of their
    /// usage, which then serves `stat` too) and of objects, no attach; plus the system's limits
    /// and totals. With `-o metrics=totals`, the usage and the owners' names are not read.
    fn metrics_text(&self) -> Result<String> {
        let detail = self.options.metrics;
        let usage = match detail {
            metrics::Detail::All => self
                .source
                .segments_usage()
                .inspect_err(|e| log::warn!("reading /proc/sysvipc/shm: {e}"))?,
            metrics::Detail::Totals => HashMap::new(),
        };
        let segments = self.source.segments()?;
        let objects = self.source.objects()?;
        let owners = match detail {
            metrics::Detail::All => index::owner_names(
                segments
                    .iter()
                    .map(|s| s.uid)
                    .chain(objects.iter().map(|o| o.uid)),
                crate::kernel::names::user_name,
            ),
            metrics::Detail::Totals => HashMap::new(),
        };
        let limits = self.source.sysv_limits()?;
        let totals = self.source.sysv_totals()?;
        let space = self.source.shm_space()?;
        let system = metrics::System {
            shmmax: limits.shmmax,
            shmall: limits.shmall,
            shmmni: limits.shmmni,
            pages_allocated: totals.pages_allocated,
            pages_resident: totals.pages_resident,
            pages_swapped: totals.pages_swapped,
            page_size: memory::page_size(),
            shm_dir_size: space.blocks.saturating_mul(space.block_size),
            shm_dir_used: space
                .blocks
                .saturating_sub(space.blocks_free)
                .saturating_mul(space.block_size),
        };
        let input = metrics::Input {
            segments: &segments,
            usage: &usage,
            objects: &objects,
            owners: &owners,
            system,
        };
        Ok(metrics::render(&input, detail))
    }

    /// The `attached` file as `who` may see it: only the holders whose `/proc/PID/maps` the
    /// caller could open itself (the kernel's ptrace-read rule, and hidepid of the daemon's
    /// /proc), checked with the caller's credentials. The daemon's own pid is shown only to a
    /// caller who could read the daemon's maps (uid 0 with CAP_SYS_PTRACE in the daemon's user
    /// namespace): the daemon may always open its own maps, so that check proves nothing for it.
    /// For SysV, whose attachment count is public (`nattch`, as in `ipcs`), a last line
    /// `+N hidden` counts the attachments not listed.
    pub(super) fn attached_text(&self, who: &Caller, id: &ObjectId, live: &Live) -> Result<String> {
        // Every mapping of a segment counts in nattch (a split or forked one too): none to
        // find, and no scan of every process's maps (a third of a millisecond here) for each
        // of the thousands of segments that `grep -r` or a file manager may open.
        if live.attach_record().is_some_and(|r| r.count == 0) {
            return Ok(String::new());
        }
        let target = live.holders(self.env());
        let holders = self.source.holders(&target)?;
        let own = attach::own_pid();
        let mut pids: Vec<u32> = holders
            .iter()
            .map(|h| h.pid)
            .filter(|&pid| Some(pid) != own)
            .collect();
        pids.dedup();
        // Opening another process's `maps` waits on its exec lock, which its owner can hold
        // (an exec stuck behind a jammed mmap lock): opened on a helper, as the caller there.
        let caller = who.clone();
        let mut visible: Vec<u32> =
            crate::kernel::proc_read::each(&pids, "maps, as the caller", move |pid| {
                creds::as_caller(&caller, || {
                    File::open(format!("/proc/{pid}/maps")).map(drop)
                })
            })
            .into_iter()
            .filter_map(|(pid, opened)| opened.ok().map(|()| pid))
            .collect();
        if let Some(own) = own
            && holders.iter().any(|h| h.pid == own)
            && may_read_daemon(who)
        {
            visible.push(own);
        }
        let mut shown: Vec<attach::Holder> = holders
            .into_iter()
            .filter(|h| visible.contains(&h.pid))
            .collect();
        // One line per mapping or descriptor, whatever the scan met twice.
        shown.sort();
        shown.dedup();
        let mut text = attach::render(&shown);
        if live.attach_record().is_some() {
            // The count taken after the scan, of the same object (not a later one with its
            // name).
            let now = self.live_now(id)?.attach_record().unwrap_or_default();
            let hidden = now.count.saturating_sub(shown.len() as u64);
            text.push_str(&attach::render_hidden(hidden));
        }
        Ok(text)
    }

    /// As [`Self::attached_text`], and remembers its length for [`Self::attached_len`].
    pub(super) fn attached_text_noted(
        &self,
        who: &Caller,
        id: &ObjectId,
        live: &Live,
    ) -> Result<String> {
        let text = self.attached_text(who, id, live)?;
        if let Some(record) = live.attach_record() {
            self.note_attached_len(id, Self::attached_key(who, record), text.len());
        }
        Ok(text)
    }

    /// The length of `attached` as `who` would read it now, for `ls -l`, `tar` and the file
    /// managers that copy as many bytes as the size says.
    ///
    /// A segment nobody attaches has an empty `attached`, known from `nattch` alone. Otherwise
    /// the text is rendered (a scan of `/proc`) once per reader and attachment record, and its
    /// length serves until either changes, so that a walk over thousands of segments stays
    /// linear. A POSIX object has no public record of its holders that changes with them, and
    /// a scan of every process for each `stat` would make walks cost objects × processes: its
    /// size is 0, and it is read to its end like a `/proc` file.
    pub(super) fn attached_len(&self, who: &Caller, id: &ObjectId, live: &Live) -> Result<usize> {
        let Some(record) = live.attach_record() else {
            return Ok(0);
        };
        if record.count == 0 {
            return Ok(0);
        }
        let key = Self::attached_key(who, record);
        let known = self
            .attached_lengths
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .filter(|(k, _)| *k == key)
            .map(|(_, len)| *len);
        match known {
            Some(len) => Ok(len),
            None => Ok(self.attached_text_noted(who, id, live)?.len()),
        }
    }

    fn attached_key(who: &Caller, record: kind::AttachRecord) -> AttachedKey {
        AttachedKey {
            record,
            reader: (who.uid, who.gid, who.caps()),
        }
    }

    fn note_attached_len(&self, id: &ObjectId, key: AttachedKey, len: usize) {
        // One entry per segment (the last reader's); bounded like the kernel's own table.
        const MAX_ENTRIES: usize = 1 << 15;
        let mut lengths = self
            .attached_lengths
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if lengths.len() >= MAX_ENTRIES && !lengths.contains_key(id) {
            lengths.clear();
        }
        lengths.insert(id.clone(), (key, len));
    }

    /// What `df` shows: the shm dir's filesystem plus the SysV segments (their sizes count
    /// as capacity, their resident pages as used).
    pub(super) fn usage_totals(&self) -> Result<SpaceUsage> {
        let space = self.source.shm_space()?;
        let totals = self.source.sysv_totals()?;
        let frsize = space.block_size;
        let page = 4096u64;
        let to_blocks = |pages: u64| pages.saturating_mul(page) / frsize;
        let blocks = space
            .blocks
            .saturating_add(to_blocks(totals.pages_allocated));
        let used = (space.blocks.saturating_sub(space.blocks_free))
            .saturating_add(to_blocks(totals.pages_resident));
        Ok(SpaceUsage {
            blocks,
            free: blocks.saturating_sub(used),
            files: space.files.saturating_add(totals.segments),
            files_free: space.files_free,
            block_size: frsize as u32,
        })
    }
}

/// Whether `who` could read the daemon's own maps: root with CAP_SYS_PTRACE in the daemon's
/// user namespace. The in-daemon open of /proc/SELF/maps always succeeds (same thread group),
/// so it proves nothing and is not used.
fn may_read_daemon(who: &Caller) -> bool {
    who.uid == 0 && who.has_cap(creds::cap::SYS_PTRACE) && attach::in_daemon_user_ns(who.pid)
}
