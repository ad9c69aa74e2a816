//! Every IPC namespace that has a process on the host, and which processes are in it: the
//! ground of `ns/` (issue 23), not yet used by the mount.
//!
//! Found by scanning `/proc`: for each process, one `stat` of `/proc/PID/ns/ipc` (its
//! namespace's device and inode in nsfs, see [`IpcNs`]), nothing else read, nothing kept open,
//! so the cost is one `readdir` of `/proc` and one `stat` per process, and no namespace is
//! pinned. A namespace kept alive by nothing but a bind mount or an open nsfs descriptor has no
//! process and is not found here.
//!
//! Pids are as the daemon's `/proc` numbers them: the pid namespace of that procfs mount
//! (normally the daemon's own), so that an operator on the host can act on them. A process
//! the daemon may not look at (`/proc/PID/ns/ipc` needs ptrace read access; `hidepid=` hides
//! others' `/proc/PID` altogether), one that exits meanwhile, and a zombie (whose namespaces
//! are already released) are not members of anything. Threads are not separate members: only
//! the processes that `/proc` lists are looked at, and a process's `ns/ipc` is its main
//! thread's, which is what its segments and attachments belong to.

use std::collections::BTreeMap;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::kernel::namespace::IpcNs;

/// One IPC namespace and the processes in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpcNamespace {
    /// The namespace, as nsfs names it (`ipc:[INODE]`).
    pub ns: IpcNs,
    /// Its processes, as the daemon's `/proc` numbers them, in ascending order; never empty.
    pub members: Vec<u32>,
}

/// Every IPC namespace that has a process the daemon may look at, in ascending order of inode
/// (then device), each with its members (see the module's comment). An error only if `/proc`
/// itself cannot be read; a process that vanishes or refuses is left out.
pub fn list() -> io::Result<Vec<IpcNamespace>> {
    list_in(Path::new("/proc"))
}

/// The processes in IPC namespace `ns`, as [`list`] finds them, in ascending order: empty if
/// it has none the daemon may look at.
pub fn members_of(ns: IpcNs) -> io::Result<Vec<u32>> {
    Ok(list()?
        .into_iter()
        .find(|n| n.ns == ns)
        .map(|n| n.members)
        .unwrap_or_default())
}

/// [`list`] over the tree at `proc` (the unit tests give it one of their own).
fn list_in(proc: &Path) -> io::Result<Vec<IpcNamespace>> {
    // Keyed by (ino, dev): the order of the answer.
    let mut found: BTreeMap<(u64, u64), Vec<u32>> = BTreeMap::new();
    for entry in std::fs::read_dir(proc)? {
        let Ok(entry) = entry else {
            // A process that went while /proc was being read.
            continue;
        };
        let Some(pid) = pid_of(&entry.file_name()) else {
            continue;
        };
        match std::fs::metadata(entry.path().join("ns/ipc")) {
            Ok(st) => found.entry((st.ino(), st.dev())).or_default().push(pid),
            Err(e) if is_expected(&e) => {}
            Err(e) => log::debug!("stat {proc:?}/{pid}/ns/ipc: {e}; left out"),
        }
    }
    Ok(found
        .into_iter()
        .map(|((ino, dev), mut members)| {
            members.sort_unstable();
            IpcNamespace {
                ns: IpcNs { dev, ino },
                members,
            }
        })
        .collect())
}

/// The pid an entry of `/proc` names, if it names one (all digits: not `self`, `sys`, …).
fn pid_of(name: &std::ffi::OsStr) -> Option<u32> {
    let name = name.to_str()?;
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    name.parse().ok()
}

/// The refusals of a `stat` of `/proc/PID/ns/ipc` that are no news: the process is gone or a
/// zombie (ENOENT, ESRCH), or the daemon may not look at it (EACCES, EPERM).
fn is_expected(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOENT | libc::ESRCH | libc::EACCES | libc::EPERM)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn this_process_is_in_its_own_namespace() {
        let mine = IpcNs::of_process(std::process::id()).unwrap();
        let all = list().unwrap();
        let ours = all
            .iter()
            .find(|n| n.ns == mine)
            .expect("this process's namespace is listed");
        assert!(ours.members.contains(&std::process::id()));
        assert!(ours.members.is_sorted());
        assert!(all.iter().all(|n| !n.members.is_empty()));
        // Every process is in one namespace only.
        let mut pids: Vec<u32> = all.iter().flat_map(|n| n.members.clone()).collect();
        let count = pids.len();
        pids.sort_unstable();
        pids.dedup();
        assert_eq!(pids.len(), count);
        assert!(members_of(mine).unwrap().contains(&std::process::id()));
    }

    #[test]
    fn threads_are_not_members() {
        // A thread of this process has a /proc/TID that readdir of /proc does not list.
        let (tx, rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let t = std::thread::spawn(move || {
            // SAFETY: plain system call without arguments.
            let tid = unsafe { libc::gettid() } as u32;
            tx.send(tid).unwrap();
            let _ = done_rx.recv();
        });
        let tid = rx.recv().unwrap();
        let all = list().unwrap();
        drop(done_tx);
        t.join().unwrap();
        assert_ne!(tid, std::process::id());
        assert!(all.iter().all(|n| !n.members.contains(&tid)));
    }

    /// A tree like `/proc`: `N/ns/ipc` files, hard links of one another where their
    /// processes share a namespace.
    #[test]
    fn processes_are_grouped_by_the_identity_of_their_ns_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        let ns = |pid: &str| {
            fs::create_dir_all(p.join(pid).join("ns")).unwrap();
            p.join(pid).join("ns/ipc")
        };
        fs::write(ns("30"), "a").unwrap();
        fs::hard_link(ns("30"), ns("4")).unwrap();
        fs::hard_link(ns("30"), ns("200")).unwrap();
        fs::write(ns("7"), "b").unwrap();
        // Gone (no ns), not a pid, not a plain number.
        fs::create_dir(p.join("9")).unwrap();
        fs::write(ns("self"), "c").unwrap();
        fs::write(ns("+5"), "d").unwrap();
        fs::write(p.join("uptime"), "").unwrap();

        let a = IpcNs::of_path(&ns("30"));
        let b = IpcNs::of_path(&ns("7"));
        let mut want = vec![
            IpcNamespace {
                ns: a,
                members: vec![4, 30, 200],
            },
            IpcNamespace {
                ns: b,
                members: vec![7],
            },
        ];
        want.sort_by_key(|n| (n.ns.ino, n.ns.dev));
        assert_eq!(list_in(p).unwrap(), want);
    }

    #[test]
    fn a_proc_that_cannot_be_read_is_an_error() {
        assert!(list_in(Path::new("/nonexistent-shmfs-proc")).is_err());
    }

    impl IpcNs {
        fn of_path(p: &Path) -> IpcNs {
            let st = fs::metadata(p).unwrap();
            IpcNs {
                dev: st.dev(),
                ino: st.ino(),
            }
        }
    }
}
