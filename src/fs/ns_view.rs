//! What `ns/` shows: the namespaces a caller may see, their directories, and the reports
//! `ns/index`, `ns/N/members` and `ns/N/container`, and their part of `metrics.prom`.

use std::collections::HashSet;

use super::inode::NAMESPACE;
use super::namespaces::{Found, Known};
use super::*;
use crate::kernel::attach::{self, comm_of};
use crate::kernel::container::{self, Container};
use crate::kernel::hostname;
use crate::kernel::memory;
use crate::kernel::namespace;
use crate::render::index::Owners;
use crate::render::namespaces::{self as render_ns, Member, NsRow};

impl ShmFs {
    /// Every namespace on the host now that `who` may see (see `namespaces::may_see`). What
    /// the table numbered of namespaces that are gone (their directories, and every object
    /// in them) is forgotten.
    pub(super) fn visible_namespaces(&self, who: &Caller) -> Result<Vec<Found>> {
        let Some(registry) = &self.namespaces else {
            return Ok(Vec::new());
        };
        let since = self.inodes().mark();
        let found = registry.scan(who.has_cap(creds::cap::SYS_ADMIN))?;
        let live: HashSet<Scope> = found.iter().map(|f| f.known.id).collect();
        let ids: Vec<ObjectId> = found.iter().map(|f| namespaces::dir_id(&f.known)).collect();
        let held = {
            let mut table = self.inodes();
            // The objects of gone namespaces first, while their directories still have
            // numbers to tell the kernel about.
            let (mut held, _) = table.retain(
                |id| id.ns != HOME && id.kind != NAMESPACE && !live.contains(&id.ns),
                &[],
                since,
            );
            let (dirs, _) = table.retain(|id| id.kind == NAMESPACE, &ids, since);
            held.extend(dirs);
            held
        };
        self.listed_gone(held);
        Ok(found
            .iter()
            .filter(|f| namespaces::may_see(who, &f.known, &f.members))
            .cloned()
            .collect())
    }

    /// The namespace whose directory in `ns/` is `name`, if `who` may see it; else ENOENT.
    pub(super) fn namespace_named(&self, who: &Caller, name: &OsStr) -> Result<Arc<Known>> {
        let inum = std::str::from_utf8(name.as_bytes())
            .ok()
            .filter(|n| !n.starts_with(['0', '+']))
            .and_then(|n| n.parse::<u32>().ok())
            .ok_or_else(enoent)?;
        let registry = self.namespaces.as_ref().ok_or_else(enoent)?;
        let known = registry
            .by_inum(inum, who.has_cap(creds::cap::SYS_ADMIN))
            .ok_or_else(enoent)?;
        if !registry.may_see_known(who, &known) {
            return Err(enoent());
        }
        Ok(known)
    }

    /// `ns/index`: one row per namespace `who` may see.
    pub(super) fn namespaces_text(&self, who: &Caller) -> Result<String> {
        let rows = self.namespace_rows(who)?;
        Ok(render_ns::ns_index(&rows))
    }

    /// The row of `ns/index` of each namespace `who` may see.
    fn namespace_rows(&self, who: &Caller) -> Result<Vec<NsRow>> {
        let Some(registry) = &self.namespaces else {
            return Ok(Vec::new());
        };
        let mut rows = Vec::new();
        for found in self.visible_namespaces(who)? {
            match registry.run_in(&found.known, || self.namespace_row(who, &found)) {
                Ok(row) => rows.push(row),
                // Gone since the scan, or that one namespace cannot be read: not a row, and
                // the others are still shown (one user's namespace cannot take the table away
                // from everyone).
                Err(e) => skipped(&found, &e),
            }
        }
        Ok(rows)
    }

    /// The row of `ns/index` of namespace `found` for `who`, made inside it.
    fn namespace_row(&self, who: &Caller, found: &Found) -> Result<NsRow> {
        let env = self.env(found.known.id)?;
        let segments = env.source.segments()?;
        let totals = env.source.sysv_totals()?;
        let space = env.source.shm_space().ok().filter(|s| s.blocks > 0);
        let (container, hostname) = self.belongs_to(found);
        Ok(NsRow {
            ns: u64::from(found.known.inum),
            container,
            hostname,
            procs: self.visible_members(who, found).len(),
            segments: segments.len() as u64,
            bytes: segments.iter().map(|s| s.size).sum(),
            rss: totals.pages_resident.saturating_mul(memory::page_size()),
            orphans: segments.iter().filter(|s| s.nattch == 0).count() as u64,
            shm_used: space.map(|s| {
                s.blocks
                    .saturating_sub(s.blocks_free)
                    .saturating_mul(s.block_size)
            }),
            shm_size: space.map(|s| s.blocks.saturating_mul(s.block_size)),
        })
    }

    /// What namespace `found` belongs to: the container of its first member, and the
    /// hostname its members see.
    fn belongs_to(&self, found: &Found) -> (Option<Container>, Option<String>) {
        let Some(member) = found.known.member() else {
            return (None, None);
        };
        let container = creds::as_daemon(|| container::container_of(member.pid()))
            .ok()
            .flatten();
        let hostname = creds::as_daemon(|| hostname::hostname_of(member))
            .inspect_err(|e| log::debug!("hostname of process {}: {e}", member.pid()))
            .ok();
        // Read from a process that was still this one afterwards.
        if !member.is_running() {
            return (None, None);
        }
        (container, hostname)
    }

    /// The namespace of scope `ns` as recently found, with its members.
    fn found(&self, ns: Scope) -> Result<Found> {
        let registry = self.namespaces.as_ref().ok_or_else(Error::stale)?;
        registry
            .recent_scan(false)?
            .iter()
            .find(|f| f.known.id == ns)
            .cloned()
            .ok_or_else(Error::stale)
    }

    /// The members of `found` that `who` may look at (as `attached` lists holders): all of
    /// them for a caller with CAP_SYS_PTRACE, else those whose `/proc/PID/ns/ipc` the kernel
    /// lets the caller read, so that `hidepid=` of `/proc` counts too (the daemon itself as
    /// for `attached`: its own check of itself proves nothing).
    fn visible_members(&self, who: &Caller, found: &Found) -> Vec<u32> {
        if who.has_cap(creds::cap::SYS_PTRACE) {
            return found.members.clone();
        }
        let daemon = std::process::id();
        let daemon_shown = attach::may_look_at_daemon(who);
        creds::as_caller(who, || {
            Ok(found
                .members
                .iter()
                .copied()
                .filter(|&pid| if pid == daemon { daemon_shown } else { true })
                .filter(|&pid| namespace::may_look_at(pid, found.known.ns))
                .collect())
        })
        .unwrap_or_default()
    }

    /// `ns/N/members`: the processes in the namespace that `who` may look at.
    pub(super) fn members_text(&self, who: &Caller, ns: Scope) -> Result<String> {
        let found = self.found(ns)?;
        let members: Vec<Member> = self
            .visible_members(who, &found)
            .iter()
            .map(|&pid| Member {
                pid,
                command: comm_of(pid),
                container: container::container_of(pid).ok().flatten(),
            })
            .collect();
        Ok(render_ns::members(&members))
    }

    /// `ns/N/container`: what the namespace belongs to.
    pub(super) fn container_text(&self, ns: Scope) -> Result<String> {
        let found = self.found(ns)?;
        let (container, hostname) = self.belongs_to(&found);
        Ok(render_ns::container_text(
            container.as_ref(),
            hostname.as_deref(),
        ))
    }

    /// The namespaces' part of `metrics.prom`: the totals of each namespace `who` may see,
    /// and, with [`metrics::Detail::All`], the series of each object of the namespaces other
    /// than the daemon's own, labelled with their namespace.
    pub(super) fn namespaces_metrics(
        &self,
        who: &Caller,
        detail: metrics::Detail,
        owners: &mut Owners,
        series: &mut metrics::Out,
        totals: &mut metrics::Out,
    ) -> Result<()> {
        let Some(registry) = &self.namespaces else {
            return Ok(());
        };
        let home = self.source.ipc_ns_id();
        let mut rows = Vec::new();
        for found in self.visible_namespaces(who)? {
            let result = registry.run_in(&found.known, || {
                let row = self.namespace_row(who, &found)?;
                if detail == metrics::Detail::All && Some(found.known.id) != home {
                    let env = self.env(found.known.id)?;
                    let inum = Some(u64::from(found.known.inum));
                    for kind in KINDS {
                        kind.metrics(&env, who, detail, owners, inum, series, None)?;
                    }
                }
                Ok(row)
            });
            match result {
                Ok(row) => rows.push(row),
                Err(e) => skipped(&found, &e),
            }
        }
        metrics::namespace_series(totals, &rows);
        Ok(())
    }
}

/// A namespace left out of `ns/index` or `metrics.prom`: gone since the scan (quietly), or
/// that could not be read (logged).
fn skipped(found: &Found, e: &Error) {
    if e.is_stale() {
        log::debug!("IPC namespace {} went while it was read", found.known.inum);
    } else {
        log::info!("IPC namespace {} left out: {e}", found.known.inum);
    }
}
