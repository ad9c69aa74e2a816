//! The text that `stat`, `perm`, `limits`, `index`, `index.json`, `metrics.prom` and
//! `attached` show, and what `df` reports: gathered from the kernel, rendered by
//! `crate::render::text`, `crate::render::index` and `crate::render::metrics`.

use super::kind::Space;
use super::*;
use crate::render::index::Owners;

impl ShmFs {
    /// `limits`: each kind's limits, in the registry's order.
    pub(super) fn limits_text(&self, ns: Scope) -> Result<String> {
        let env = self.env(ns)?;
        let mut text = String::new();
        for kind in KINDS {
            if let Some(part) = kind.limits(&env)? {
                text.push_str(&part);
            }
        }
        Ok(text)
    }

    /// The text of report `report` of scope `ns`, for `who`.
    pub(super) fn report_text(&self, who: &Caller, ns: Scope, report: Report) -> Result<String> {
        match report {
            Report::Limits => return self.limits_text(ns),
            Report::Metrics => return self.metrics_text(who),
            Report::Namespaces => return self.namespaces_text(who),
            Report::Members => return self.members_text(who, ns),
            Report::Container => return self.container_text(ns),
            Report::Index | Report::IndexJson => {}
        }
        let env = self.env(ns)?;
        let mut owners = Owners::new(crate::kernel::names::user_name);
        let mut rows = Vec::new();
        for kind in KINDS {
            rows.extend(kind.index_rows(&env, who, &mut owners)?);
        }
        Ok(match report {
            Report::IndexJson => index::render_json(&rows),
            _ => index::render_table(&rows),
        })
    }

    /// `metrics.prom`: as `index`, one listing of each kind, no attach; the series of every
    /// object first (unless `-o metrics=totals`), then every kind's totals.
    fn metrics_text(&self, who: &Caller) -> Result<String> {
        let detail = self.options.metrics;
        let env = self.env(HOME)?;
        let mut owners = Owners::new(crate::kernel::names::user_name);
        let mut series = metrics::Out::with_capacity(4096);
        let mut totals = metrics::Out::with_capacity(2048);
        for kind in KINDS {
            kind.metrics(
                &env,
                who,
                detail,
                &mut owners,
                None,
                &mut series,
                Some(&mut totals),
            )?;
        }
        self.namespaces_metrics(who, detail, &mut owners, &mut series, &mut totals)?;
        series.append(totals);
        Ok(series.into_text())
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
        let Some(target) = live.holders(&self.env(id.ns)?) else {
            return Ok(String::new());
        };
        let holders = self.env(id.ns)?.source.holders(&target)?;
        let pids: Vec<u32> = holders.iter().map(|h| h.pid).collect();
        let visible = traceable_by(who, &pids);
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

    /// What `df` shows: every kind's share (the shm dir's filesystem, and the SysV segments,
    /// whose sizes count as capacity and resident pages as used), in blocks of the shm dir's
    /// filesystem.
    pub(super) fn usage_totals(&self) -> Result<SpaceUsage> {
        let env = self.env(HOME)?;
        let mut shares = Vec::with_capacity(KINDS.len());
        for kind in KINDS {
            shares.push(kind.space(&env)?);
        }
        let frsize = shares
            .iter()
            .find_map(|s| s.block_size)
            .filter(|&b| b > 0)
            .unwrap_or(4096);
        let total = |part: &dyn Fn(&Space) -> u64| {
            shares
                .iter()
                .fold(0u64, |sum, s| sum.saturating_add(part(s)))
        };
        let blocks = total(&|s| s.bytes / frsize);
        let used = total(&|s| s.used / frsize);
        Ok(SpaceUsage {
            blocks,
            free: blocks.saturating_sub(used),
            files: total(&|s| s.files),
            files_free: total(&|s| s.files_free),
            block_size: u32::try_from(frsize).unwrap_or(u32::MAX),
        })
    }
}

/// Which of `pids` `who` may look at: those whose `/proc/PID/maps` the caller could open
/// itself (the kernel's ptrace-read rule, and hidepid of the daemon's /proc), checked with the
/// caller's credentials. The daemon's own pid only for a caller who could read the daemon's
/// maps (uid 0 with CAP_SYS_PTRACE in the daemon's user namespace): the daemon may always
/// open its own maps, so that check proves nothing for it.
pub(crate) fn traceable_by(who: &Caller, pids: &[u32]) -> Vec<u32> {
    let own = attach::own_pid();
    let mut others: Vec<u32> = pids.iter().copied().filter(|&p| Some(p) != own).collect();
    others.sort_unstable();
    others.dedup();
    // Opening another process's `maps` waits on its exec lock, which its owner can hold
    // (an exec stuck behind a jammed mmap lock): opened on a helper, as the caller there.
    let caller = who.clone();
    let mut visible: Vec<u32> =
        crate::kernel::proc_read::each(&others, "maps, as the caller", move |pid| {
            creds::as_caller(&caller, || {
                File::open(format!("/proc/{pid}/maps")).map(drop)
            })
        })
        .into_iter()
        .filter_map(|(pid, opened)| opened.ok().map(|()| pid))
        .collect();
    if let Some(own) = own
        && pids.contains(&own)
        && attach::may_look_at_daemon(who)
    {
        visible.push(own);
    }
    visible
}
