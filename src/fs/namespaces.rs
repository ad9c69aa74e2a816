//! The IPC namespaces of `ns/`: which there are, which a caller may see, and the way into one
//! for a request.
//!
//! A namespace is known by its 64-bit id (`NS_GET_ID`, never reused), shown by its nsfs inode
//! number, and reached through one of its members, held by a pidfd (which pins nothing), or,
//! for a namespace that has no process, through the nsfs bind mount that keeps it alive.
//! Nothing else of it is kept between requests: its source holds no descriptor of the
//! namespace or of its `/dev/shm` (see `kernel::enter` and `kernel::posix::ShmDir::in_root`).
//!
//! A request on a node of `ns/N/` runs in [`ShmFs::in_scope`]: the caller's right to see N is
//! checked with the caller's credentials, the worker enters N with the daemon's, and the
//! namespace's source is the one the kinds use (through `ShmFs::env`) until the worker comes
//! back, on every path.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use super::error::{Error, Result};
use super::inode::{HOME, NAMESPACE, Name, ObjectId, Scope};
use super::source::{Kernel, Source};
use crate::kernel::context::IpcContext;
use crate::kernel::creds::{self, Caller};
use crate::kernel::enter::{self, Entered};
use crate::kernel::ipc_namespaces;
use crate::kernel::namespace::{self, IpcNs};
use crate::kernel::pidfd::Pidfd;
use crate::kernel::posix::ShmDir;

/// How many members of a namespace a scan tries before it gives up on learning its id (each
/// try is a pidfd and two ioctls; members that exit meanwhile are skipped).
const TRIES: usize = 8;

/// One IPC namespace that `ns/` shows.
pub(super) struct Known {
    /// Its nsfs inode number: the name of its directory.
    pub(super) inum: u32,
    /// Its 64-bit id: the scope of its nodes.
    pub(super) id: Scope,
    /// The device of nsfs, with `inum` what `stat` of a member's `ns/ipc` gives.
    pub(super) ns: IpcNs,
    way: Way,
    /// Its segments and objects, made inside it at the first request that enters it: kept,
    /// since it holds no descriptor of the namespace (its shm dir is resolved for each
    /// operation) and keeps the fingerprints that let its segments be read without attaching.
    source: OnceLock<Arc<dyn Source>>,
}

/// The way into a namespace.
enum Way {
    /// Through one of its processes.
    Member(Pidfd),
    /// Through the nsfs file bind-mounted at `mount_point` in the mount namespace of `holder`:
    /// a namespace that no process is in.
    Pinned { holder: Pidfd, mount_point: PathBuf },
}

impl Known {
    /// The member it is entered through, if it has one.
    pub(super) fn member(&self) -> Option<&Pidfd> {
        match &self.way {
            Way::Member(pidfd) => Some(pidfd),
            Way::Pinned { .. } => None,
        }
    }

    /// Whether it is kept alive by a bind mount alone (no process is in it).
    pub(super) fn is_pinned(&self) -> bool {
        matches!(self.way, Way::Pinned { .. })
    }

    /// Whether its way in is the bind mount `pinned`.
    fn is_pinned_at(&self, pinned: &ipc_namespaces::Pinned) -> bool {
        matches!(&self.way, Way::Pinned { holder, mount_point }
            if holder.pid() == pinned.holder && *mount_point == pinned.mount_point)
    }

    /// Whether the way into it still leads there: its member is still in it (a process may
    /// leave with `unshare` or `setns`) and runs, or its holder runs.
    fn way_holds(&self) -> bool {
        match &self.way {
            Way::Member(pidfd) => {
                creds::as_daemon(|| IpcNs::of_process(pidfd.pid())).is_ok_and(|ns| ns == self.ns)
                    && pidfd.is_running()
            }
            Way::Pinned { holder, .. } => holder.is_running(),
        }
    }

    fn enter(&self) -> io::Result<Entered> {
        match &self.way {
            Way::Member(pidfd) => enter::enter(pidfd, self.id),
            Way::Pinned {
                holder,
                mount_point,
            } => enter::enter_pinned(holder, mount_point, self.id),
        }
    }
}

/// One namespace as a scan found it, with its members.
#[derive(Clone)]
pub(super) struct Found {
    pub(super) known: Arc<Known>,
    /// Its processes, as the daemon's `/proc` numbers them, ascending; empty for a pinned one.
    pub(super) members: Vec<u32>,
}

/// How long a caller's right to see a namespace is remembered.
const SEEN_FOR: Duration = Duration::from_secs(1);
/// How many such rights are remembered at most.
const SEEN_MOST: usize = 4096;

/// A caller's right to see a namespace: the namespace, and the calling thread, its uid and gid.
type SeenKey = (Scope, u32, u32, u32);

/// How long a scan serves the lookups that need one (see [`Namespaces::recent_scan`]).
const RECENT: Duration = Duration::from_millis(250);

/// A scan: when it was made, whether it looked for bind mounts, and what it found.
type LastScan = (Instant, bool, Arc<Vec<Found>>);

/// The namespaces `ns/` knows, by id.
pub(super) struct Namespaces {
    known: Mutex<HashMap<Scope, Arc<Known>>>,
    /// The last scan: when it was made, and whether it looked for bind mounts.
    last_scan: Mutex<Option<LastScan>>,
    /// When each caller was last found to see each namespace.
    seen: Mutex<HashMap<SeenKey, Instant>>,
    /// The daemon's own source, whose settings the sources of other namespaces copy.
    home: Arc<Kernel>,
}

thread_local! {
    /// The namespace this worker is in for its request, and that namespace's source.
    static CURRENT: RefCell<Option<(Scope, Arc<dyn Source>)>> = const { RefCell::new(None) };
}

/// The source of the scope the calling worker is in, if it is `ns` (see [`ShmFs::in_scope`]).
pub(super) fn current_source(ns: Scope) -> Option<Arc<dyn Source>> {
    CURRENT.with_borrow(|current| match current {
        Some((scope, source)) if *scope == ns => Some(source.clone()),
        _ => None,
    })
}

/// Marks the worker as in a namespace with its source, until dropped.
struct Current;

impl Current {
    fn set(ns: Scope, source: Arc<dyn Source>) -> Current {
        CURRENT.set(Some((ns, source)));
        Current
    }
}

impl Drop for Current {
    /// Back at home: [`Namespaces::run_in`] refuses to nest, so there is no outer scope to
    /// give back.
    fn drop(&mut self) {
        CURRENT.set(None);
    }
}

impl Namespaces {
    /// No namespace known yet; `home` is the daemon's own source.
    pub(super) fn new(home: Arc<Kernel>) -> Namespaces {
        Namespaces {
            known: Mutex::new(HashMap::new()),
            last_scan: Mutex::new(None),
            seen: Mutex::new(HashMap::new()),
            home,
        }
    }

    fn known(&self) -> MutexGuard<'_, HashMap<Scope, Arc<Known>>> {
        self.known.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// As [`Namespaces::scan`], or the last scan if it is younger than [`RECENT`]: for what
    /// may be asked at every request (a name that is not known, a caller's right to see, the
    /// members of one namespace), so that no caller can make each of its requests walk
    /// `/proc`. Listings (`ls ns/`, `ns/index`) scan anew. With `pinned`, the scan must have
    /// looked for bind mounts (see [`Namespaces::scan`]).
    pub(super) fn recent_scan(&self, pinned: bool) -> io::Result<Arc<Vec<Found>>> {
        if let Some((at, looked, found)) = &*self.last_scan()
            && at.elapsed() < RECENT
            && (*looked || !pinned)
        {
            return Ok(found.clone());
        }
        self.scan(pinned)
    }

    fn last_scan(&self) -> MutexGuard<'_, Option<LastScan>> {
        self.last_scan.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every IPC namespace on the host now (those with a process the daemon may look at, and
    /// those kept by a bind mount), in ascending order of inode number; what it knew of the
    /// ones still there is kept, the rest forgotten.
    ///
    /// Bind mounts are looked for (every mount namespace's mountinfo read) only with `pinned`,
    /// which only a scan for a caller who may see such namespaces (CAP_SYS_ADMIN) asks: the
    /// mount tables are any user's to make long, and must not slow everyone's `ls ns/`.
    /// Without it, the pinned namespaces known from an earlier scan are kept while their
    /// holder runs.
    pub(super) fn scan(&self, pinned: bool) -> io::Result<Arc<Vec<Found>>> {
        let listed = creds::as_daemon(ipc_namespaces::list)?;
        let old: HashMap<u64, Arc<Known>> = self
            .known()
            .values()
            .map(|k| (k.ns.ino, k.clone()))
            .collect();
        let mut found = Vec::with_capacity(listed.len());
        for ns in listed {
            let kept = old.get(&ns.ns.ino).filter(|k| {
                k.ns == ns.ns
                    && k.member()
                        .is_some_and(|m| ns.members.contains(&m.pid()) && m.is_running())
            });
            let known = match kept {
                Some(k) => k.clone(),
                None => match learn(ns.ns, &ns.members) {
                    Some(k) => Arc::new(k),
                    None => continue,
                },
            };
            found.push(Found {
                known,
                members: ns.members,
            });
        }
        if !pinned {
            for k in old.values() {
                if k.is_pinned() && !found.iter().any(|f| f.known.ns == k.ns) && k.way_holds() {
                    found.push(Found {
                        known: k.clone(),
                        members: Vec::new(),
                    });
                }
            }
        }
        let bind_mounts = if pinned {
            creds::as_daemon(ipc_namespaces::pinned).unwrap_or_else(|e| {
                log::debug!("namespaces kept by bind mounts: {e}");
                Vec::new()
            })
        } else {
            Vec::new()
        };
        for pinned in bind_mounts {
            if found.iter().any(|f| f.known.ns == pinned.ns) {
                continue;
            }
            // Kept only for the very bind mount this scan found: another one may have taken
            // the path since.
            let kept = old
                .get(&pinned.ns.ino)
                .filter(|k| k.ns == pinned.ns && k.is_pinned_at(&pinned) && k.way_holds());
            let known = match kept {
                Some(k) => k.clone(),
                None => match learn_pinned(&pinned) {
                    Some(k) => Arc::new(k),
                    None => continue,
                },
            };
            found.push(Found {
                known,
                members: Vec::new(),
            });
        }
        found.sort_by_key(|f| (f.known.inum, f.known.ns.dev));
        *self.known() = found
            .iter()
            .map(|f| (f.known.id, f.known.clone()))
            .collect();
        let found = Arc::new(found);
        *self.last_scan() = Some((Instant::now(), pinned, found.clone()));
        Ok(found)
    }

    /// The namespace with id `ns`, as last known (a request's entering checks that it is
    /// still there, see [`Namespaces::run_in`]), or as a scan finds it.
    pub(super) fn get(&self, ns: Scope) -> Option<Arc<Known>> {
        let known = self.known().get(&ns).cloned();
        known.or_else(|| self.rescan(ns, false))
    }

    /// The namespace with id `ns` as a new scan finds it (looking for bind mounts with
    /// `pinned`).
    fn rescan(&self, ns: Scope, pinned: bool) -> Option<Arc<Known>> {
        self.scan(pinned)
            .ok()?
            .iter()
            .map(|f| f.known.clone())
            .find(|k| k.id == ns)
    }

    /// The namespace whose directory is named `inum`, if there is one now: as last known
    /// while its way in holds, else as a recent scan finds it (one that looked for bind mounts
    /// with `pinned`).
    pub(super) fn by_inum(&self, inum: u32, pinned: bool) -> Option<Arc<Known>> {
        let known = self.known().values().find(|k| k.inum == inum).cloned();
        match known {
            Some(k) if k.way_holds() => Some(k),
            _ => self
                .recent_scan(pinned)
                .ok()?
                .iter()
                .map(|f| f.known.clone())
                .find(|k| k.inum == inum),
        }
    }

    /// Whether `who` may see namespace `known` (see [`may_see`]); for a namespace known only
    /// by its way in, its members are found by a scan first, if the way in's is refused. A
    /// yes is remembered for [`SEEN_FOR`], for the same calling thread with the same uid and
    /// gid, so that each request of a walk does not ask `/proc` again (nor learn the caller's
    /// capabilities, which costs as much); a no is never remembered.
    pub(super) fn may_see_known(&self, who: &Caller, known: &Known) -> bool {
        let key = (known.id, who.pid, who.uid, who.gid);
        let now = Instant::now();
        if self
            .seen()
            .get(&key)
            .is_some_and(|&at| now.duration_since(at) < SEEN_FOR)
        {
            return true;
        }
        let yes = self.may_see_now(who, known);
        if yes {
            let mut seen = self.seen();
            if seen.len() >= SEEN_MOST {
                seen.retain(|_, at| now.duration_since(*at) < SEEN_FOR);
                if seen.len() >= SEEN_MOST {
                    seen.clear();
                }
            }
            seen.insert(key, now);
        }
        yes
    }

    fn seen(&self) -> MutexGuard<'_, HashMap<SeenKey, Instant>> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// [`Namespaces::may_see_known`], asked of the kernel now.
    fn may_see_now(&self, who: &Caller, known: &Known) -> bool {
        if let Some(member) = known.member()
            && may_see(who, known, &[member.pid()])
        {
            return true;
        }
        let members = match self.recent_scan(false) {
            Ok(found) => found
                .iter()
                .find(|f| f.known.id == known.id)
                .map(|f| f.members.clone())
                .unwrap_or_default(),
            Err(_) => Vec::new(),
        };
        may_see(who, known, &members)
    }

    /// The source of namespace `known`, made now if it has none; the calling worker must be
    /// in that namespace.
    fn source_of(&self, known: &Known) -> io::Result<Arc<dyn Source>> {
        if let Some(source) = known.source.get() {
            return Ok(source.clone());
        }
        let shm = match known.member() {
            Some(member) => ShmDir::in_root_lazily(member.try_clone()?),
            None => ShmDir::nowhere(),
        };
        let ctx = IpcContext::of_entered_thread(shm)?;
        let source: Arc<dyn Source> = Arc::new(self.home.sibling(ctx));
        Ok(known.source.get_or_init(|| source).clone())
    }

    /// Runs `f` inside namespace `known`, with its source as the worker's current one; the
    /// worker comes back on every path. Entered with the daemon's credentials.
    pub(super) fn run_in<T>(&self, known: &Arc<Known>, f: impl FnOnce() -> Result<T>) -> Result<T> {
        // The daemon's own namespace, where every worker is: nothing to enter (which needs
        // CAP_SYS_ADMIN, that a daemon run by an ordinary user lacks), and its source is the
        // root's.
        // One namespace at a time: inside another, the thread-local source and the way home
        // would be the inner one's.
        if current_scope() != HOME || enter::is_entered() {
            log::error!(
                "a request asked for IPC namespace {} from inside another",
                known.inum
            );
            return Err(Error::refused(libc::EBUSY));
        }
        if self.home.ipc_ns_id() == Some(known.id) {
            let _current = Current::set(known.id, self.home.clone());
            return f();
        }
        let failed = |e: io::Error| match e.raw_os_error() {
            Some(libc::ESRCH | libc::ESTALE | libc::ENOENT) => Error::stale(),
            _ => {
                log::warn!("cannot enter IPC namespace {}: {e}", known.inum);
                Error::from(e)
            }
        };
        let (_entered, known) = match creds::as_daemon(|| known.enter()) {
            Ok(entered) => (entered, known.clone()),
            // Its way in has gone (the member exited, or left for another namespace; the bind
            // mount went, or its path now leads elsewhere), or the namespace has: a scan finds
            // another way in, if there is one. Not for what a scan cannot change.
            Err(e)
                if !matches!(
                    e.raw_os_error(),
                    Some(libc::EPERM | libc::EBUSY | libc::EMFILE | libc::ENFILE | libc::ENOMEM)
                ) =>
            {
                let again = self
                    .rescan(known.id, known.is_pinned())
                    .ok_or_else(Error::stale)?;
                (creds::as_daemon(|| again.enter()).map_err(failed)?, again)
            }
            Err(e) => return Err(failed(e)),
        };
        let source = self.source_of(&known)?;
        let _current = Current::set(known.id, source);
        f()
    }
}

/// What a scan learns of a namespace from one of its members: its id, and that member as the
/// way in. None if none of the first members tried could tell (all exited, or refused).
fn learn(ns: IpcNs, members: &[u32]) -> Option<Known> {
    let inum = u32::try_from(ns.ino).ok()?;
    for &pid in members.iter().take(TRIES) {
        let Ok(pidfd) = Pidfd::open(pid) else {
            continue;
        };
        match creds::as_daemon(|| enter::namespace_of(&pidfd)) {
            Ok((now, id)) if now == ns => {
                return Some(Known {
                    inum,
                    id,
                    ns,
                    way: Way::Member(pidfd),
                    source: OnceLock::new(),
                });
            }
            Ok(_) => continue,
            Err(e) => log::debug!("IPC namespace {inum}: member {pid}: {e}"),
        }
    }
    None
}

/// What a scan learns of a namespace kept by a bind mount.
fn learn_pinned(pinned: &ipc_namespaces::Pinned) -> Option<Known> {
    let inum = u32::try_from(pinned.ns.ino).ok()?;
    let holder = Pidfd::open(pinned.holder).ok()?;
    match creds::as_daemon(|| enter::pinned_namespace(&holder, &pinned.mount_point)) {
        Ok((ns, id)) if ns == pinned.ns => Some(Known {
            inum,
            id,
            ns,
            way: Way::Pinned {
                holder,
                mount_point: pinned.mount_point.clone(),
            },
            source: OnceLock::new(),
        }),
        Ok(_) => None,
        Err(e) => {
            log::debug!("IPC namespace {inum} at {:?}: {e}", pinned.mount_point);
            None
        }
    }
}

/// Whether `who` may see a namespace with these members: it is the caller's own, or the
/// kernel lets the caller open `/proc/PID/ns/ipc` of one of them (ptrace read access, judged
/// with the caller's credentials). A namespace that no process is in (kept by a bind mount)
/// is shown to callers with CAP_SYS_ADMIN only.
pub(super) fn may_see(who: &Caller, known: &Known, members: &[u32]) -> bool {
    if known.is_pinned() {
        return who.has_cap(creds::cap::SYS_ADMIN);
    }
    if members.contains(&who.pid)
        || creds::as_daemon(|| IpcNs::of_process(who.pid)).is_ok_and(|ns| ns == known.ns)
    {
        return true;
    }
    // The daemon's check of its own process always succeeds: it proves nothing for a caller.
    let daemon = std::process::id();
    creds::as_caller(who, || {
        Ok(members
            .iter()
            .any(|&pid| pid != daemon && namespace::may_look_at(pid, known.ns)))
    })
    .unwrap_or(false)
}

/// The scope of the worker now: [`HOME`] unless it is inside [`Namespaces::run_in`].
pub(super) fn current_scope() -> Scope {
    CURRENT.with_borrow(|current| current.as_ref().map_or(HOME, |(ns, _)| *ns))
}

/// The identity of namespace `known`'s directory `ns/N/` in the inode table: its block
/// numbers the directory and everything in it that is not an object.
pub(super) fn dir_id(known: &Known) -> ObjectId {
    ObjectId {
        ns: known.id,
        kind: NAMESPACE,
        name: Name::Number(known.inum),
        stamp: [known.ns.dev, 0, 0],
    }
}
