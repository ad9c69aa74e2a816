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
use crate::kernel::mqueue::{MqInfo, MqueueDir};
use crate::kernel::msg::{self, MsgLimits, Queue};
use crate::kernel::namespace::IpcNs;
use crate::kernel::posix::ShmDir;
use crate::kernel::proc_sysvipc::{self, Readings};
use crate::kernel::sem::{self, SemLimits, SemSet, SemValue};
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
    /// Where its POSIX message queues are: its mqueue filesystem, kept for the daemon's own
    /// namespace; for an entered one, reached for each call and closed after it, since a
    /// descriptor of it keeps the namespace alive.
    mqueue: Mqueue,
}

/// How a context reaches its IPC namespace's mqueue filesystem.
enum Mqueue {
    /// Opened when the context was made (or why it could not be: an errno).
    Kept(Result<MqueueDir, i32>),
    /// Reached anew for each call, from the calling thread's namespace.
    PerCall,
}

/// The mqueue filesystem of the calling thread's IPC namespace: a private, detached mount of
/// it (which needs CAP_SYS_ADMIN), or else `/dev/mqueue` when it is one (a daemon without
/// that capability, on a system that mounts it there).
fn own_mqueue() -> Result<MqueueDir, i32> {
    let private = MqueueDir::of_thread_namespace();
    private
        .or_else(|e| {
            MqueueDir::open(std::path::Path::new("/dev/mqueue")).map_err(|_| {
                // A daemon run by an ordinary user cannot make one: expected, said quietly.
                let level = if crate::kernel::creds::daemon_is_root() {
                    log::Level::Warn
                } else {
                    log::Level::Debug
                };
                log::log!(
                    level,
                    "no mqueue filesystem of the IPC namespace ({e}), and /dev/mqueue is not \
                     one: mqueue/ is empty"
                );
                e
            })
        })
        .map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))
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
            mqueue: Mqueue::Kept(own_mqueue()),
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
            mqueue: Mqueue::PerCall,
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

    /// Runs `f` on the namespace's mqueue filesystem.
    fn with_mqueue<T>(&self, f: impl FnOnce(&MqueueDir) -> io::Result<T>) -> io::Result<T> {
        match &self.mqueue {
            Mqueue::Kept(Ok(dir)) => f(dir),
            Mqueue::Kept(Err(code)) => Err(io::Error::from_raw_os_error(*code)),
            // Reaching the filesystem is the daemon's own step (it needs CAP_SYS_ADMIN); what
            // is done in it is the caller's.
            Mqueue::PerCall => f(&crate::kernel::creds::as_daemon(
                MqueueDir::of_thread_namespace,
            )?),
        }
    }

    /// Every POSIX message queue, with its attributes, read as the calling thread.
    /// None when the daemon's own namespace has no mqueue filesystem it can reach (said in
    /// the log when the context was made).
    pub fn mqueues(&self) -> io::Result<Vec<MqInfo>> {
        if let Mqueue::Kept(Err(_)) = self.mqueue {
            return Ok(Vec::new());
        }
        self.with_mqueue(|dir| dir.list())
    }

    /// The POSIX message queue `name`, or `ENOENT`.
    pub fn mqueue(&self, name: &std::ffi::OsStr) -> io::Result<MqInfo> {
        self.with_mqueue(|dir| dir.get(name))
    }

    /// Removes a POSIX message queue (`mq_unlink`), with the calling thread's credentials.
    pub fn remove_mqueue(&self, name: &std::ffi::OsStr) -> io::Result<()> {
        self.with_mqueue(|dir| dir.unlink(name))
    }

    /// Changes a POSIX message queue's mode and owner (`None` keeps one), with the calling
    /// thread's credentials.
    pub fn set_mqueue_perm(
        &self,
        name: &std::ffi::OsStr,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
    ) -> io::Result<()> {
        self.with_mqueue(|dir| dir.set_perm(name, mode, uid, gid))
    }

    /// The namespace's limits of POSIX message queues.
    pub fn mqueue_limits(&self) -> io::Result<crate::kernel::mqueue::MqLimits> {
        crate::kernel::mqueue::limits()
    }

    /// The semaphore set `semid`, or `ENOENT`.
    pub fn sem_set(&self, semid: i32) -> io::Result<SemSet> {
        sem::set(semid)
    }

    /// Every semaphore set, in the kernel's index order (`ipcs -s`).
    pub fn sem_sets(&self) -> io::Result<Vec<SemSet>> {
        sem::sets()
    }

    /// The semaphore set with this (non-private) key, or `ENOENT`.
    pub fn sem_set_with_key(&self, key: u32) -> io::Result<SemSet> {
        sem::set_with_key(key)
    }

    /// The values of a set's semaphores (one `GETALL`), with the calling thread's
    /// credentials (read permission).
    pub fn sem_values(&self, semid: i32, nsems: u64) -> io::Result<Vec<SemValue>> {
        sem::values(semid, nsems)
    }

    /// Sets every semaphore of a set (`SETALL`), with the calling thread's credentials.
    pub fn set_sem_values(&self, semid: i32, values: &[u16]) -> io::Result<()> {
        sem::set_values(semid, values)
    }

    /// Sets one semaphore (`SETVAL`), with the calling thread's credentials.
    pub fn set_sem_value(&self, semid: i32, num: u16, value: u16) -> io::Result<()> {
        sem::set_value(semid, num, value)
    }

    /// Changes a set's mode bits and owner (`IPC_SET`), with the calling thread's credentials.
    pub fn set_sem_perm(&self, semid: i32, mode: u32, uid: u32, gid: u32) -> io::Result<()> {
        sem::set_perm(semid, mode, uid, gid)
    }

    /// Removes a set (`IPC_RMID`), with the calling thread's credentials.
    pub fn remove_sem_set(&self, semid: i32) -> io::Result<()> {
        sem::remove(semid)
    }

    /// The namespace's semaphore limits and use.
    pub fn sem_limits(&self) -> io::Result<SemLimits> {
        sem::limits()
    }

    /// How many tasks of the namespace are blocked on each set (one walk of `/proc`).
    pub fn sem_waiter_counts(&self) -> io::Result<HashMap<i32, u64>> {
        sem::blocked_counts()
    }

    /// The tasks of the namespace blocked in `semop` on set `semid`.
    pub fn sem_waiters(&self, semid: i32) -> io::Result<Vec<sem::Waiter>> {
        sem::blocked_on(semid)
    }

    /// The message queue `msqid`, or `ENOENT`.
    pub fn queue(&self, msqid: i32) -> io::Result<Queue> {
        msg::queue(msqid)
    }

    /// Every message queue, in the kernel's index order (`ipcs -q`).
    pub fn queues(&self) -> io::Result<Vec<Queue>> {
        msg::queues()
    }

    /// The message queue with this (non-private) key, or `ENOENT`.
    pub fn queue_with_key(&self, key: u32) -> io::Result<Queue> {
        msg::queue_with_key(key)
    }

    /// A copy of the message at `position` (`MSG_COPY`: nothing moves), with the calling
    /// thread's credentials (read permission).
    pub fn message(&self, msqid: i32, position: usize, longest: usize) -> io::Result<msg::Message> {
        msg::peek(msqid, position, longest)
    }

    /// The type and size of the first `most` messages (see [`msg::listing`]).
    pub fn messages(
        &self,
        msqid: i32,
        longest: usize,
        most: usize,
    ) -> io::Result<Vec<(i64, usize)>> {
        msg::listing(msqid, longest, most)
    }

    /// Changes a queue's mode bits, owner and, if given, qbytes (`IPC_SET`), with the calling
    /// thread's credentials.
    pub fn set_queue_perm(
        &self,
        msqid: i32,
        mode: u32,
        uid: u32,
        gid: u32,
        qbytes: Option<u64>,
    ) -> io::Result<()> {
        msg::set_perm(msqid, mode, uid, gid, qbytes)
    }

    /// Removes a queue (`IPC_RMID`), with the calling thread's credentials.
    pub fn remove_queue(&self, msqid: i32) -> io::Result<()> {
        msg::remove(msqid)
    }

    /// The namespace's message-queue limits and use.
    pub fn msg_limits(&self) -> io::Result<MsgLimits> {
        msg::limits()
    }

    /// How many tasks of the namespace are blocked on each queue (one walk of `/proc`).
    pub fn queue_waiter_counts(&self) -> io::Result<HashMap<i32, u64>> {
        msg::blocked_counts()
    }

    /// The tasks of the namespace blocked in `msgsnd`/`msgrcv` on queue `msqid`.
    pub fn queue_waiters(&self, msqid: i32) -> io::Result<Vec<msg::Waiter>> {
        msg::blocked_on(msqid)
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
