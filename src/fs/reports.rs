//! The text that `stat`, `perm`, `limits`, `index`, `index.json` and `attached` show, and
//! what `df` reports: gathered from the kernel, rendered by `crate::text` and `crate::index`.

use super::*;

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

    pub(super) fn stat_text(&self, live: &Live) -> Result<String> {
        Ok(match live {
            Live::Sysv(seg) => {
                let usage = self.source.segment_usage(seg.shmid).inspect_err(|e| {
                    log::warn!("reading /proc/sysvipc/shm for shmid {}: {e}", seg.shmid)
                })?;
                text::sysv_stat(seg, usage, self.sysv_hugetlb(seg))
            }
            Live::Posix(obj) => text::posix_stat(obj),
        })
    }

    /// Whether a segment uses huge pages: remembered, or read from an attacher's smaps (its
    /// last and creating pids first), or "no" when the system has no huge pages at all.
    pub(super) fn sysv_hugetlb(&self, seg: &Segment) -> Option<bool> {
        let id = Self::sysv_id(seg);
        let known = self.inodes().hugetlb(&id);
        if known.is_some() {
            return known;
        }
        let found = if seg.nattch > 0 {
            let candidates: Vec<u32> = [seg.lpid, seg.cpid]
                .iter()
                .filter_map(|&p| u32::try_from(p).ok())
                .collect();
            attach::sysv_hugetlb(seg.shmid, &candidates).or_else(|| {
                let pids: Vec<u32> = attach::holders(&attach::Target::Sysv { shmid: seg.shmid })
                    .unwrap_or_default()
                    .iter()
                    .map(|h| h.pid)
                    .collect();
                attach::sysv_hugetlb(seg.shmid, &pids)
            })
        } else {
            None
        };
        match found {
            Some(yes) => {
                self.remember_hugetlb(id, yes);
                Some(yes)
            }
            None if !sysv::system_has_huge_pages() => Some(false),
            None => None,
        }
    }

    /// Remembers in the object's block (while the kernel holds it) whether it uses huge pages.
    pub(super) fn remember_hugetlb(&self, id: ObjectId, yes: bool) {
        self.inodes().set_hugetlb(&id, yes);
    }

    pub(super) fn report_text(&self, report: Report) -> Result<String> {
        if report == Report::Limits {
            return self.limits_text();
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
        let names = index::owner_names(uids, crate::names::user_name);
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

    /// The `attached` file as `who` may see it: only the holders whose `/proc/PID/maps` the
    /// caller could open itself (the kernel's ptrace-read rule, and hidepid of the daemon's
    /// /proc), checked with the caller's credentials. The daemon's own pid is shown only to a
    /// caller who could read the daemon's maps (uid 0 with CAP_SYS_PTRACE in the daemon's user
    /// namespace): the daemon may always open its own maps, so that check proves nothing for it.
    /// For SysV, whose attachment count is public (`nattch`, as in `ipcs`), a last line
    /// `+N hidden` counts the attachments not listed.
    pub(super) fn attached_text(&self, who: &Caller, live: &Live) -> Result<String> {
        let target = live.holders_target(self.source.as_ref());
        let holders = attach::holders(&target)?;
        let own = attach::own_pid();
        let mut pids: Vec<u32> = holders
            .iter()
            .map(|h| h.pid)
            .filter(|&pid| Some(pid) != own)
            .collect();
        pids.dedup();
        let mut visible: Vec<u32> = creds::as_caller(who, || {
            io::Result::Ok(
                pids.into_iter()
                    .filter(|pid| File::open(format!("/proc/{pid}/maps")).is_ok())
                    .collect(),
            )
        })?;
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
        if let Live::Sysv(seg) = live {
            // nattch taken after the scan, of the same segment (not a later one with its id).
            let now = self.source.segment(seg.shmid)?;
            if now.incarnation() != seg.incarnation() {
                return Err(errno(libc::ENOENT));
            }
            let hidden = now.nattch.saturating_sub(shown.len() as u64);
            text.push_str(&attach::render_hidden(hidden));
        }
        Ok(text)
    }

    pub(super) fn perm_text(live: &Live) -> String {
        let meta = live.meta();
        text::perm(meta.mode, meta.uid, meta.gid)
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

/// Capacity and use for `statfs`, in blocks of `block_size` bytes.
pub struct SpaceUsage {
    pub blocks: u64,
    pub free: u64,
    pub files: u64,
    pub files_free: u64,
    pub block_size: u32,
}
