//! Which IPC namespace and which shm dir the kernel's calls work on: [`IpcContext`], the one
//! way the rest of shmfs reaches every call that depends on either.
//!
//! System V calls (`shmctl`, `shmget`, `shmat`), `/proc/sysvipc/shm` and `/proc/sys/kernel/shm*`
//! act in the IPC namespace of the calling thread; a POSIX object lives in a shm dir. A context
//! names one of each. Its namespace is the one its making thread was in (the daemon's, or the
//! one `--pid`/`--ipc-ns` entered before any other thread started), and its methods must be
//! called from threads in that namespace: today every thread of the daemon is. Whatever is
//! kept per namespace (the shared reading of `/proc/sysvipc/shm`) is kept here, so that a
//! second context, for another namespace, shares nothing with the first.
//!
//! Who is attached to a segment is judged against the context's namespace, as its identity
//! was read from `/proc/thread-self/ns/ipc` when the context was made: never `/proc/self`,
//! which names the main thread's.

use std::collections::HashMap;
use std::fs::File;
use std::io;

use crate::kernel::attach::{self, Holder, Target};
use crate::kernel::fingerprint::Fingerprint;
use crate::kernel::namespace::IpcNs;
use crate::kernel::posix::ShmDir;
use crate::kernel::proc_sysvipc::{self, Readings};
use crate::kernel::sysv::{self, Attachment, Limits, Segment, Totals, Usage};

/// One IPC namespace and its shm dir: the segments, objects, usage and holders that the calls
/// made through it see.
pub struct IpcContext {
    /// The IPC namespace, as `/proc/thread-self/ns/ipc` named it when the context was made.
    ipc_ns: IpcNs,
    /// The kernel's 64-bit id of it (`NS_GET_ID`), where the kernel tells it.
    ipc_ns_id: Option<u64>,
    shm: ShmDir,
    /// The namespace's shared reading of `/proc/sysvipc/shm` (see [`crate::kernel::usage`]).
    usage: Readings,
}

impl std::fmt::Debug for IpcContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IpcContext")
            .field("ipc_ns", &self.ipc_ns)
            .field("ipc_ns_id", &self.ipc_ns_id)
            .field("shm", &self.shm)
            .finish_non_exhaustive()
    }
}

impl IpcContext {
    /// The context of the calling thread's IPC namespace, with `shm` as its shm dir.
    pub fn of_thread(shm: ShmDir) -> io::Result<IpcContext> {
        let (ipc_ns, ipc_ns_id) = IpcNs::of_thread()?;
        Ok(IpcContext {
            ipc_ns,
            ipc_ns_id,
            shm,
            usage: proc_sysvipc::readings(),
        })
    }

    /// The context of the IPC namespace the calling thread has entered (`kernel::enter`),
    /// for the time it stays there, with `shm` as its shm dir. As [`Self::of_thread`], but
    /// nothing of the namespace is left open when any of its calls returns: its reading of
    /// `/proc/sysvipc/shm` is read to its end by the call that begins it and closed then
    /// (see [`crate::kernel::usage::Shared::closing`]), since an open one would keep the
    /// namespace, and a container's memory, alive after its last process. Its lines still
    /// serve later calls by the usual rules, from threads entered into the same namespace.
    pub fn of_entered_thread(shm: ShmDir) -> io::Result<IpcContext> {
        let (ipc_ns, ipc_ns_id) = IpcNs::of_thread()?;
        Ok(IpcContext {
            ipc_ns,
            ipc_ns_id,
            shm,
            usage: proc_sysvipc::closing_readings(),
        })
    }

    /// The IPC namespace.
    pub fn ipc_ns(&self) -> IpcNs {
        self.ipc_ns
    }

    /// The kernel's 64-bit id of the IPC namespace (`NS_GET_ID`), if it tells one.
    pub fn ipc_ns_id(&self) -> Option<u64> {
        self.ipc_ns_id
    }

    /// Whether the calling thread is in the context's IPC namespace, where its calls must be
    /// made (false too if `/proc/thread-self` cannot tell).
    pub fn is_entered(&self) -> bool {
        IpcNs::of_thread().is_ok_and(|(ns, _)| ns == self.ipc_ns)
    }

    /// The shm dir, home of the POSIX objects.
    pub fn shm_dir(&self) -> &ShmDir {
        &self.shm
    }

    /// The segment with this shmid, or `ENOENT` (see [`sysv::lookup`]).
    pub fn segment(&self, shmid: i32) -> io::Result<Segment> {
        sysv::lookup(shmid)
    }

    /// Every segment, in the kernel's index order: what `ipcs -m` lists.
    pub fn segments(&self) -> io::Result<Vec<Segment>> {
        sysv::list()
    }

    /// The shmid of the live segment with this (non-private) key, or `ENOENT`.
    pub fn segment_with_key(&self, key: u32) -> io::Result<i32> {
        sysv::id_for_key(key)
    }

    /// The namespace's usage (`ipcs -m -u`).
    pub fn sysv_totals(&self) -> io::Result<Totals> {
        sysv::totals()
    }

    /// The namespace's limits (`/proc/sys/kernel/shm*`).
    pub fn sysv_limits(&self) -> io::Result<Limits> {
        sysv::limits()
    }

    /// Changes a segment's mode bits and owner (`IPC_SET`), with the calling thread's
    /// credentials.
    pub fn set_segment_perm(&self, shmid: i32, mode: u32, uid: u32, gid: u32) -> io::Result<()> {
        sysv::set_perm(shmid, mode, uid, gid)
    }

    /// Marks a segment for removal (`IPC_RMID`), with the calling thread's credentials.
    pub fn remove_segment(&self, shmid: i32) -> io::Result<()> {
        sysv::remove(shmid)
    }

    /// Attaches a segment (`shmat`), with the calling thread's credentials.
    pub fn attach(&self, shmid: i32, writable: bool) -> io::Result<Attachment> {
        Attachment::attach(shmid, writable)
    }

    /// Resident and swapped bytes of one segment, from the namespace's shared reading of
    /// `/proc/sysvipc/shm` (see [`crate::kernel::usage::Shared::usage_of`]).
    pub fn segment_usage(&self, shmid: i32) -> io::Result<Usage> {
        self.usage.usage_of(shmid)
    }

    /// Resident and swapped bytes of every segment, read now; the reading then serves
    /// [`Self::segment_usage`] too.
    pub fn segments_usage(&self) -> io::Result<HashMap<i32, Usage>> {
        self.usage.fresh_table()
    }

    /// Every holder of `target`, sorted by pid: for a segment, the processes of the context's
    /// namespace that map it; for a POSIX object, every process that maps or holds it open.
    pub fn holders(&self, target: &Target) -> io::Result<Vec<Holder>> {
        attach::holders(target, self.ipc_ns)
    }

    /// The memory file of segment `seg` of this namespace, reached through another process's
    /// mapping of it that has the fingerprint `print` (see [`attach::open_mapped_segment`]).
    pub fn open_mapped_segment(
        &self,
        seg: &Segment,
        writable: bool,
        shm_dev: u64,
        print: &Fingerprint,
    ) -> Option<File> {
        attach::open_mapped_segment(seg, writable, shm_dev, print, self.ipc_ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn context() -> IpcContext {
        IpcContext::of_thread(ShmDir::open(Path::new("/dev/shm")).unwrap()).unwrap()
    }

    fn shmget(size: usize) -> i32 {
        // SAFETY: plain system call.
        let id = unsafe { libc::shmget(libc::IPC_PRIVATE, size, libc::IPC_CREAT | 0o600) };
        assert!(id >= 0, "shmget: {}", io::Error::last_os_error());
        id
    }

    #[test]
    fn holders_of_a_segment_are_judged_against_the_contexts_namespace() {
        let ctx = context();
        assert!(ctx.is_entered());
        let id = shmget(4096);
        let attached = ctx.attach(id, false).unwrap();
        ctx.remove_segment(id).unwrap();
        let me = attach::own_pid().unwrap();
        let target = Target::Sysv { shmid: id };
        let found = ctx.holders(&target).unwrap();
        assert!(found.iter().any(|h| h.pid == me), "{found:?}");
        // The same shmid seen from a context of another namespace: not this process's.
        let other = IpcContext {
            ipc_ns: IpcNs {
                dev: ctx.ipc_ns.dev,
                ino: ctx.ipc_ns.ino ^ 1,
            },
            ..context()
        };
        assert!(!other.is_entered());
        let found = other.holders(&target).unwrap();
        assert!(found.iter().all(|h| h.pid != me), "{found:?}");
        drop(attached);
    }

    /// The descriptors of this process open on `/proc/sysvipc/shm`.
    fn open_readings() -> usize {
        std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .flatten()
            .filter(|e| {
                std::fs::read_link(e.path()).is_ok_and(|l| l == Path::new("/proc/sysvipc/shm"))
            })
            .count()
    }

    #[test]
    fn a_context_of_an_entered_thread_keeps_no_reading_open() {
        std::thread::spawn(|| {
            // SAFETY: plain system call, affecting this thread only.
            if unsafe { libc::unshare(libc::CLONE_NEWIPC) } != 0 {
                eprintln!("skipped: unshare: {}", io::Error::last_os_error());
                return;
            }
            let ctx = IpcContext::of_entered_thread(ShmDir::open(Path::new("/dev/shm")).unwrap())
                .unwrap();
            assert!(ctx.is_entered());
            let ids: Vec<i32> = (0..3).map(|_| shmget(4096)).collect();
            for &id in &ids {
                assert_eq!(ctx.segment_usage(id).unwrap().rss, 0);
                assert_eq!(open_readings(), 0, "after segment_usage");
            }
            assert_eq!(ctx.segments_usage().unwrap().len(), 3);
            assert_eq!(open_readings(), 0, "after segments_usage");
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_context_made_on_a_thread_sees_that_threads_namespace() {
        let outer = context();
        // On a thread of its own: it leaves the process's IPC namespace.
        let inner_ns = std::thread::spawn(|| {
            // SAFETY: plain system call, affecting this thread only.
            if unsafe { libc::unshare(libc::CLONE_NEWIPC) } != 0 {
                eprintln!("skipped: unshare: {}", io::Error::last_os_error());
                return None;
            }
            let inner = context();
            assert!(inner.is_entered());
            let id = shmget(4096);
            assert_eq!(
                inner.segments().unwrap().len(),
                1,
                "a new namespace's only one"
            );
            assert_eq!(inner.segment(id).unwrap().size, 4096);
            assert_eq!(inner.sysv_totals().unwrap().segments, 1);
            assert!(inner.segments_usage().unwrap().contains_key(&id));
            Some(inner.ipc_ns())
        })
        .join()
        .unwrap();
        if let Some(inner_ns) = inner_ns {
            assert_ne!(inner_ns, outer.ipc_ns());
            assert!(outer.is_entered(), "this thread stayed where it was");
        }
    }
}
