//! `shmfs::kernel::enter` against real namespaces (groundwork of `ns/`, issue 23): a thread
//! that enters a container's IPC namespace sees that container's segments and none of the
//! host's, and back home the reverse; many threads entering two containers and home at random
//! never see the wrong one; a panic or an error inside, and a wrong expected id, leave the
//! thread at home; and nothing is kept: no descriptor or thread of this process is left in a
//! container's namespace, which disappears once its last process has exited.
//!
//! No mount. It needs root (`unshare` to make the containers, CAP_SYS_ADMIN for `setns`) and
//! `unshare` and `ipcmk`; without them it is skipped, or fails when `CI` is set.
//!
//! Also the namespaces kept alive only by an nsfs bind mount (`unshare --ipc=FILE`), found by
//! `ipc_namespaces::pinned()` through the mount table of the mount namespace that has the
//! mount and entered with `enter::enter_pinned`; and the hostname of a container's UTS
//! namespace (`hostname::hostname_of`), read from a thread entered elsewhere.
//!
//! Each container makes one segment of a size of its own with `ipcmk`, inside; the host
//! segment this test makes has a third: what a thread sees is told by the sizes in the
//! `/proc/sysvipc/shm` it opens (bound to the namespace of the thread that opens it).

mod common;

use std::collections::BTreeSet;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use std::path::{Path, PathBuf};

use shmfs::kernel::enter::{self, in_namespace, in_pinned_namespace, is_entered, namespace_of};
use shmfs::kernel::hostname::hostname_of;
use shmfs::kernel::ipc_namespaces::{self, Pinned};
use shmfs::kernel::namespace::IpcNs;
use shmfs::kernel::pidfd::Pidfd;

use common::*;

/// The size of the segment container A makes.
const A_SIZE: u64 = 40961;
/// The size of the segment container B makes.
const B_SIZE: u64 = 40963;
/// The size of the segment this test makes at home.
const HOST_SIZE: u64 = 40967;

/// Whether this test can run here (root and the tools), else skipped (or failed under CI).
fn can_run() -> bool {
    // SAFETY: plain system call without arguments.
    if unsafe { libc::geteuid() } != 0 {
        return unavailable("not root: setns needs CAP_SYS_ADMIN, unshare --ipc needs root");
    }
    tools_available(&[
        ("unshare", "Debian package util-linux"),
        ("ipcmk", "Debian package util-linux"),
    ])
}

/// A container with one segment of `size` bytes in its IPC namespace, and what a worker would
/// hold of it: a pidfd and the namespace's id.
struct Ctr {
    container: Container,
    pidfd: Pidfd,
    ns: IpcNs,
    id: u64,
}

impl Ctr {
    fn start(size: u64) -> Ctr {
        let container = Container::start(&format!("ipcmk -M {size} >/dev/null"));
        let pidfd = Pidfd::open(container.pid()).expect("pidfd of the container");
        let (ns, id) = namespace_of(&pidfd).expect("the container's namespace");
        Ctr {
            container,
            pidfd,
            ns,
            id,
        }
    }
}

/// A segment at home, removed on drop.
struct HostSeg(i32);

impl HostSeg {
    fn make() -> HostSeg {
        assert!(!is_entered());
        // SAFETY: plain system call.
        let id = unsafe {
            libc::shmget(
                libc::IPC_PRIVATE,
                HOST_SIZE as usize,
                libc::IPC_CREAT | 0o600,
            )
        };
        assert!(id >= 0, "shmget: {}", io::Error::last_os_error());
        HostSeg(id)
    }
}

impl Drop for HostSeg {
    fn drop(&mut self) {
        // SAFETY: plain system call; IPC_RMID takes no buffer.
        unsafe { libc::shmctl(self.0, libc::IPC_RMID, std::ptr::null_mut()) };
    }
}

/// The sizes of the segments `/proc/sysvipc/shm` shows, opened by the calling thread.
fn sizes_seen() -> Vec<u64> {
    let text = std::fs::read_to_string("/proc/sysvipc/shm").expect("read /proc/sysvipc/shm");
    text.lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(3)?.parse().ok())
        .collect()
}

/// `SHM_INFO` of linux/shm.h (which the libc crate lacks).
const SHM_INFO: libc::c_int = 14;

/// `struct shm_info` of linux/shm.h, which `shmctl(SHM_INFO)` fills (its `unsigned long`s are
/// 64 bits on the 64-bit targets this runs on).
#[repr(C)]
#[derive(Default)]
struct ShmInfo {
    used_ids: libc::c_int,
    shm_tot: u64,
    shm_rss: u64,
    shm_swp: u64,
    swap_attempts: u64,
    swap_successes: u64,
}

/// `shmctl(SHM_INFO)` of the calling thread's namespace: how many segments, how many pages.
fn shm_info() -> (i32, u64) {
    let mut info = ShmInfo::default();
    // SAFETY: SHM_INFO writes a struct shm_info into the buffer, which is one.
    let rc = unsafe {
        libc::shmctl(
            0,
            SHM_INFO,
            &mut info as *mut ShmInfo as *mut libc::shmid_ds,
        )
    };
    assert!(rc >= 0, "shmctl(SHM_INFO): {}", io::Error::last_os_error());
    (info.used_ids, info.shm_tot)
}

/// The namespaces the descriptors of this process name (`ipc:[INO]` links of /proc/self/fd).
fn fds_on_ipc_namespaces() -> BTreeSet<String> {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .map(|l| l.to_string_lossy().into_owned())
        .filter(|l| l.starts_with("ipc:["))
        .collect()
}

/// The IPC namespaces the threads of this process are in.
fn threads_namespaces() -> BTreeSet<String> {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path().join("ns/ipc")).ok())
        .map(|l| l.to_string_lossy().into_owned())
        .collect()
}

fn here() -> IpcNs {
    IpcNs::of_thread().unwrap().0
}

#[test]
fn an_entered_thread_sees_the_containers_segments_and_at_home_its_own() {
    if !can_run() {
        return;
    }
    let a = Ctr::start(A_SIZE);
    let _host = HostSeg::make();
    let home = here();
    assert_ne!(a.ns, home);
    std::thread::spawn(move || {
        let (seen, info, ns) =
            in_namespace(&a.pidfd, a.id, || Ok((sizes_seen(), shm_info(), here()))).unwrap();
        assert_eq!(ns, a.ns, "/proc/thread-self/ns/ipc names the container's");
        assert_eq!(
            seen,
            vec![A_SIZE],
            "the container's one segment, and only it"
        );
        assert_eq!(
            info,
            (1, A_SIZE.div_ceil(4096)),
            "SHM_INFO of the container"
        );

        assert!(!is_entered());
        assert_eq!(here(), home);
        let seen = sizes_seen();
        assert!(seen.contains(&HOST_SIZE), "home: {seen:?}");
        assert!(
            !seen.contains(&A_SIZE),
            "home sees the container's: {seen:?}"
        );
        let (used, _) = shm_info();
        assert!(used >= 1);
    })
    .join()
    .unwrap();
}

/// 8 threads × 2000 rounds, each round in container A, container B or at home at random;
/// meanwhile a thread that never enters watches home. Each sees what is where it is.
#[test]
fn many_threads_entering_two_containers_at_random_never_see_the_wrong_one() {
    if !can_run() {
        return;
    }
    const THREADS: u64 = 8;
    const ROUNDS: u32 = 2000;
    let a = Arc::new(Ctr::start(A_SIZE));
    let b = Arc::new(Ctr::start(B_SIZE));
    let _host = HostSeg::make();
    let home = here();
    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut looks = 0u64;
            while !done.load(Ordering::Relaxed) || looks == 0 {
                let seen = sizes_seen();
                assert!(seen.contains(&HOST_SIZE), "home: {seen:?}");
                assert!(
                    !seen.contains(&A_SIZE) && !seen.contains(&B_SIZE),
                    "home sees a container's segment: {seen:?}"
                );
                looks += 1;
            }
            looks
        })
    };
    let start = Instant::now();
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let (a, b) = (a.clone(), b.clone());
            std::thread::spawn(move || {
                // xorshift64, a seed of its own per thread.
                let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ (t + 1).wrapping_mul(0x2545_F491_4F6C_DD1D);
                let mut counts = [0u32; 3];
                for round in 0..ROUNDS {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let place = (x % 3) as usize;
                    counts[place] += 1;
                    let seen = match place {
                        0 => sizes_seen(),
                        1 => in_namespace(&a.pidfd, a.id, || Ok(sizes_seen())).unwrap(),
                        _ => in_namespace(&b.pidfd, b.id, || Ok(sizes_seen())).unwrap(),
                    };
                    match place {
                        0 => assert!(
                            seen.contains(&HOST_SIZE)
                                && !seen.contains(&A_SIZE)
                                && !seen.contains(&B_SIZE),
                            "thread {t} round {round} at home: {seen:?}"
                        ),
                        1 => assert_eq!(seen, vec![A_SIZE], "thread {t} round {round} in A"),
                        _ => assert_eq!(seen, vec![B_SIZE], "thread {t} round {round} in B"),
                    }
                    assert!(!is_entered());
                }
                assert_eq!(here(), home, "thread {t} ends at home");
                counts
            })
        })
        .collect();
    let mut counts = [0u32; 3];
    for w in workers {
        let c = w.join().expect("a worker failed");
        for (all, one) in counts.iter_mut().zip(c) {
            *all += one;
        }
    }
    let elapsed = start.elapsed();
    done.store(true, Ordering::Relaxed);
    let looks = watcher
        .join()
        .expect("the watcher saw a container's segment at home");
    eprintln!(
        "{} rounds (home, A, B: {counts:?}) in {elapsed:?}; the watcher looked {looks} times",
        THREADS * u64::from(ROUNDS)
    );
    assert!(counts.iter().all(|&c| c > 0));
}

#[test]
fn a_panic_inside_leaves_the_thread_at_home() {
    if !can_run() {
        return;
    }
    let a = Ctr::start(A_SIZE);
    let _host = HostSeg::make();
    let home = here();
    std::thread::spawn(move || {
        let caught = std::panic::catch_unwind(|| {
            in_namespace(&a.pidfd, a.id, || -> io::Result<()> {
                assert_eq!(sizes_seen(), vec![A_SIZE]);
                panic!("a bug inside the namespace");
            })
        });
        assert!(caught.is_err(), "the panic went through");
        assert!(!is_entered());
        assert_eq!(here(), home);
        let seen = sizes_seen();
        assert!(
            seen.contains(&HOST_SIZE) && !seen.contains(&A_SIZE),
            "{seen:?}"
        );
        // The thread may enter again.
        let again = in_namespace(&a.pidfd, a.id, || Ok(sizes_seen())).unwrap();
        assert_eq!(again, vec![A_SIZE]);
    })
    .join()
    .unwrap();
}

#[test]
fn a_wrong_expected_id_is_estale_and_leaves_the_thread_at_home() {
    if !can_run() {
        return;
    }
    let a = Ctr::start(A_SIZE);
    let b = Ctr::start(B_SIZE);
    assert_ne!(a.id, b.id);
    let home = here();
    for wrong in [b.id, a.id ^ 1, 0] {
        let e = enter::enter(&a.pidfd, wrong).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ESTALE), "{e}");
        assert!(!is_entered());
        assert_eq!(here(), home);
        let ran = in_namespace(&a.pidfd, wrong, || -> io::Result<()> {
            panic!("ran in a namespace with the wrong id")
        });
        assert_eq!(ran.unwrap_err().raw_os_error(), Some(libc::ESTALE));
        assert_eq!(here(), home);
    }
}

/// After many entries (with an error and a panic among them) no descriptor and no thread of
/// this process is in the container's namespace; once the container exits, its namespace is
/// gone from `ipc_namespaces::list()` and cannot be entered.
#[test]
fn nothing_is_kept_of_a_container_that_exits() {
    if !can_run() {
        return;
    }
    let mut a = Ctr::start(A_SIZE);
    let theirs = a.ns.to_string();
    let members = ipc_namespaces::members_of(a.ns).unwrap();
    assert!(members.contains(&a.container.pid()), "{members:?}");
    std::thread::scope(|s| {
        for t in 0..4 {
            let a = &a;
            s.spawn(move || {
                for i in 0..200 {
                    let r = std::panic::catch_unwind(|| {
                        in_namespace(&a.pidfd, a.id, || {
                            let seen = sizes_seen();
                            match i % 50 {
                                7 => Err(io::Error::from_raw_os_error(libc::EIO)),
                                13 if t == 0 => panic!("a bug inside"),
                                _ => Ok(seen),
                            }
                        })
                    });
                    if let Ok(Ok(seen)) = r {
                        assert_eq!(seen, vec![A_SIZE]);
                    }
                    assert!(!is_entered());
                }
            });
        }
    });
    let fds = fds_on_ipc_namespaces();
    assert!(
        !fds.contains(&theirs),
        "a descriptor of this process holds the container's {theirs}: {fds:?}"
    );
    let threads = threads_namespaces();
    assert!(
        !threads.contains(&theirs),
        "a thread of this process is in the container's {theirs}: {threads:?}"
    );

    a.container.stop();
    let e = enter::enter(&a.pidfd, a.id).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::ESRCH), "{e}");
    // nsfs reuses inode numbers, and other tests make namespaces: the inode listed again with
    // none of the container's processes is a new namespace.
    let start = Instant::now();
    loop {
        let list = ipc_namespaces::list().expect("list the IPC namespaces");
        let Some(left) = list
            .iter()
            .find(|n| n.ns == a.ns && n.members.iter().any(|m| members.contains(m)))
        else {
            break;
        };
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "5 s after the container exited, its {theirs} is still listed: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The size of the segment made in a namespace kept alive by a bind mount only.
const PINNED_SIZE: u64 = 40969;

/// An IPC namespace that no process is in, kept alive by a bind mount of it on a file of a
/// fresh directory of this test's mount namespace (`unshare --ipc=FILE`), with one segment
/// made inside by a process that has exited. Dropping it unmounts the file (ending the
/// namespace) and removes the directory.
struct HostPin {
    /// Removed on drop, after the unmount.
    _dir: tempfile::TempDir,
    file: PathBuf,
}

impl HostPin {
    fn make(size: u64) -> HostPin {
        let dir = tempfile::Builder::new()
            .prefix("shmfs-pin-")
            .tempdir()
            .expect("make a directory for the bind mount");
        let file = dir.path().join("ipc ns");
        std::fs::write(&file, "").expect("create the mount point");
        let pin = HostPin { _dir: dir, file };
        let r = sh(&format!(
            "unshare --ipc={} ipcmk -M {size} >/dev/null",
            q(&pin.file)
        ));
        assert!(r.ok(), "unshare --ipc=FILE ipcmk: {r:?}");
        pin
    }

    /// Unmounts the file: the namespace ends. Idempotent.
    fn unmount(&self) {
        let path = std::ffi::CString::new(self.file.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid C string; fails harmlessly (EINVAL) once nothing is mounted there.
        unsafe { libc::umount2(path.as_ptr(), libc::MNT_DETACH) };
    }
}

impl Drop for HostPin {
    fn drop(&mut self) {
        // Before the directory goes (with TempDir's drop): a mount point cannot be removed.
        self.unmount();
    }
}

/// The mount namespace of process `pid`, as `readlink` names it.
fn mount_ns(pid: u32) -> Option<PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/ns/mnt")).ok()
}

/// The pinned namespace `pinned()` finds mounted at `at`, if any.
fn pinned_at(at: &Path) -> Option<Pinned> {
    ipc_namespaces::pinned()
        .expect("find the pinned namespaces")
        .into_iter()
        .find(|p| p.mount_point == at)
}

#[test]
fn a_namespace_kept_only_by_a_bind_mount_is_found_and_entered_until_unmounted() {
    if !can_run() {
        return;
    }
    let _host = HostSeg::make();
    let pin = HostPin::make(PINNED_SIZE);
    let found = pinned_at(&pin.file).unwrap_or_else(|| {
        panic!(
            "the bind mount at {:?} is not found: {:?}",
            pin.file,
            ipc_namespaces::pinned()
        )
    });
    let by_stat = std::fs::metadata(&pin.file).unwrap();
    assert_eq!(
        (found.ns.dev, found.ns.ino),
        (
            std::os::unix::fs::MetadataExt::dev(&by_stat),
            std::os::unix::fs::MetadataExt::ino(&by_stat)
        ),
        "the namespace stat of the mounted file names"
    );
    assert!(
        ipc_namespaces::list()
            .unwrap()
            .iter()
            .all(|n| n.ns != found.ns),
        "no process is in it"
    );
    assert!(
        ipc_namespaces::pinned()
            .unwrap()
            .iter()
            .all(|p| ipc_namespaces::members_of(p.ns).unwrap().is_empty()),
        "no namespace with members is listed as pinned"
    );
    let holder = Pidfd::open(found.holder).expect("pidfd of the holder");
    let (ns, id) = enter::pinned_namespace(&holder, &found.mount_point).unwrap();
    assert_eq!(ns, found.ns);
    let home = here();
    std::thread::spawn(move || {
        let (seen, ns) = in_pinned_namespace(&holder, &found.mount_point, id, || {
            Ok((sizes_seen(), here()))
        })
        .unwrap();
        assert_eq!(ns, found.ns);
        assert_eq!(seen, vec![PINNED_SIZE], "the segment made inside, only it");
        assert_eq!(here(), home);
        assert!(sizes_seen().contains(&HOST_SIZE));
        // A wrong id, and a path that is no nsfs mount, leave the thread at home.
        let e = enter::enter_pinned(&holder, &found.mount_point, id ^ 1).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ESTALE), "{e}");
        let parent = found.mount_point.parent().unwrap();
        let e = enter::enter_pinned(&holder, parent, id).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ESTALE), "a directory: {e}");
        assert_eq!(here(), home);
        // Nested in an entered thread: refused.
        let nested = enter::in_pinned_namespace(&holder, &found.mount_point, id, || {
            Ok(enter::enter_pinned(&holder, &found.mount_point, id).map(drop))
        })
        .unwrap();
        assert_eq!(nested.unwrap_err().raw_os_error(), Some(libc::EBUSY));
        let fds = fds_on_ipc_namespaces();
        assert!(
            !fds.contains(&found.ns.to_string()),
            "a descriptor of this process holds {}: {fds:?}",
            found.ns
        );

        pin.unmount();
        let e = enter::enter_pinned(&holder, &found.mount_point, id).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ESTALE), "unmounted: {e}");
        // A container another test starts meanwhile copies this mount namespace, the bind
        // mount with it, and keeps its copy: gone from this mount namespace is what counts.
        let ours = mount_ns(std::process::id());
        let left = pinned_at(&found.mount_point);
        assert!(
            left.as_ref().is_none_or(|p| mount_ns(p.holder) != ours),
            "still pinned here once unmounted: {left:?}"
        );
    })
    .join()
    .unwrap();
}

/// The bind mount in a container's own mount namespace, which a process of the container
/// keeps: found through that mount namespace's table, opened inside the container's root.
#[test]
fn a_bind_mount_in_another_mount_namespace_is_found_through_its_holder() {
    if !can_run() {
        return;
    }
    // Not `unshare --ipc=FILE`: in the container's pid namespace it would look for its child
    // under a pid number of that namespace in the machine's /proc.
    let mut container = Container::start(&format!(
        "hostname shmfs-pinning\n: > \"$DIR/pin\"\n\
         unshare --ipc sh -c 'mount --bind /proc/self/ns/ipc \"$1\" && \
         ipcmk -M {PINNED_SIZE} >/dev/null' sh \"$DIR/pin\""
    ));
    let at = container.dir().join("pin");
    let found = pinned_at(&at).unwrap_or_else(|| {
        panic!(
            "the container's bind mount at {at:?} is not found: {:?}",
            ipc_namespaces::pinned()
        )
    });
    let holder = Pidfd::open(found.holder).expect("pidfd of the holder");
    assert_eq!(
        hostname_of(&holder).unwrap(),
        "shmfs-pinning",
        "the holder is in the container: {found:?}"
    );
    // Not seen from this mount namespace: the file here is the empty one.
    assert!(std::fs::metadata(&at).unwrap().len() == 0);
    assert_ne!(
        std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&at).unwrap()),
        found.ns.ino
    );
    let (_, id) = enter::pinned_namespace(&holder, &found.mount_point).unwrap();
    let seen = std::thread::spawn(move || {
        in_pinned_namespace(&holder, &found.mount_point, id, || Ok(sizes_seen()))
    })
    .join()
    .unwrap()
    .unwrap();
    assert_eq!(seen, vec![PINNED_SIZE]);
    container.stop();
    assert!(
        pinned_at(&at).is_none_or(|p| p.holder != found.holder),
        "the container's mount namespace ended, and the namespace with it"
    );
}

#[test]
fn the_hostname_of_a_container_is_read_from_inside_another_namespace() {
    if !can_run() {
        return;
    }
    let a = Container::start("hostname shmfs-ctr-a\nipcmk -M 40961 >/dev/null");
    let b = Container::start("hostname shmfs-ctr-b");
    let (a, b) = (
        Pidfd::open(a.pid()).map(|p| (a, p)).unwrap(),
        Pidfd::open(b.pid()).map(|p| (b, p)).unwrap(),
    );
    let own = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(hostname_of(&a.1).unwrap(), "shmfs-ctr-a");
    assert_eq!(hostname_of(&b.1).unwrap(), "shmfs-ctr-b");
    let me = Pidfd::open(std::process::id()).unwrap();
    assert_eq!(hostname_of(&me).unwrap(), own.trim_end());
    let (_, id) = namespace_of(&a.1).unwrap();
    std::thread::spawn(move || {
        let (names, seen) = in_namespace(&a.1, id, || {
            let names = (hostname_of(&a.1)?, hostname_of(&b.1)?);
            Ok((names, sizes_seen()))
        })
        .unwrap();
        assert_eq!(names, ("shmfs-ctr-a".into(), "shmfs-ctr-b".into()));
        assert_eq!(
            seen,
            vec![A_SIZE],
            "still in A's IPC namespace after the visits"
        );
        assert_eq!(
            std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap(),
            own,
            "back in the test's own UTS namespace"
        );
        drop((a, b));
    })
    .join()
    .unwrap();
}
