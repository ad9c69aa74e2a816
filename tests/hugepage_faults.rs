//! Huge pages taken away under the daemon (docs/security.md "Huge pages punched out"): a
//! huge-page segment's pages can be freed at any moment by anyone who can write it (MADV_REMOVE
//! on an attachment, fallocate PUNCH_HOLE on its file), and when the kernel's pool has no free
//! page left, touching such a hole through a mapping raises SIGBUS. The daemon copies through
//! mappings of huge-page segments, so it must get an errno from that copy, never the signal.
//!
//! The test reserves its own huge pages (`HugePages`, tests/common/hugepages.rs: a machine
//! that cannot reserve them fails under CI) and empties the pool with a huge-page memfd of its
//! own, given back at the end. It lives in a binary of its own: it empties the pool for a few
//! seconds, which would fail other huge-page tests running beside it.

mod common;

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::*;

/// How long the attack runs: long enough for thousands of writes to meet a punched page.
const ATTACK: Duration = Duration::from_secs(5);

/// A huge-page memfd that holds every free huge page of the pool (fallocate, one page at a
/// time, until the kernel answers ENOSPC) and can give one back and take it again.
struct Hog {
    file: File,
    page: usize,
    pages: usize,
}

impl Hog {
    fn take_every_free_page(page: usize) -> Hog {
        // SAFETY: a constant NUL-terminated name; the result is checked.
        let fd = unsafe {
            libc::memfd_create(
                c"shmfs-test-hog".as_ptr(),
                libc::MFD_CLOEXEC | libc::MFD_HUGETLB,
            )
        };
        assert!(
            fd >= 0,
            "memfd_create(MFD_HUGETLB): {}",
            io::Error::last_os_error()
        );
        // SAFETY: a descriptor just returned, owned by nothing else.
        let file = unsafe { File::from_raw_fd(fd) };
        let mut hog = Hog {
            file,
            page,
            pages: 0,
        };
        while hog.take(hog.pages).is_ok() {
            hog.pages += 1;
            assert!(hog.pages < 100_000, "a huge page pool that never runs out");
        }
        hog
    }

    /// Allocates page `i` of the memfd (fails with ENOSPC when the pool is empty).
    fn take(&self, i: usize) -> io::Result<()> {
        self.fallocate(0, i)
    }

    /// Gives page `i` back to the pool.
    fn give_back(&self, i: usize) -> io::Result<()> {
        self.fallocate(libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE, i)
    }

    fn fallocate(&self, mode: i32, i: usize) -> io::Result<()> {
        let (off, len) = ((i * self.page) as libc::off_t, self.page as libc::off_t);
        // SAFETY: plain system call on our own descriptor.
        match unsafe { libc::fallocate(self.file.as_raw_fd(), mode, off, len) } {
            0 => Ok(()),
            _ => Err(io::Error::last_os_error()),
        }
    }
}

fn free_huge_pages() -> u64 {
    meminfo("HugePages_Free").unwrap_or(0) - meminfo("HugePages_Rsvd").unwrap_or(0)
}

/// Root writes a huge-page segment through `data` over and over while another thread punches
/// its page out (MADV_REMOVE on the test's own attachment) and at once takes the freed page
/// from the pool, so that the page the daemon is copying into disappears and cannot come
/// back. Every write either lands or fails with ENOSPC (the same answer as when the pool is
/// out of pages before the write starts); the daemon lives through it, and once the pool has
/// pages again the segment is written and read as before.
#[test]
fn a_write_into_huge_pages_punched_out_with_the_pool_empty_fails_with_enospc() {
    require_fuse!();
    let Some((_pages, huge)) = huge_pages_for_test(2) else {
        return;
    };
    let m = Mount::new();
    let _hang = KillOnHang::new(&m, Duration::from_secs(300));
    let seg = SysvSeg::private(huge, 0o600 | libc::SHM_HUGETLB as u32);
    // Attached here, the segment is served through this process's mapping of its file.
    let att = seg.attach();
    att.write(0, b"first");
    let data = OpenOptions::new()
        .read(true)
        .write(true)
        .open(m.sysv(seg.id, "data"))
        .unwrap();
    assert_eq!(
        data.write_at(b"hello", 0).unwrap(),
        5,
        "a write before the attack"
    );

    let hog = Arc::new(Hog::take_every_free_page(huge));
    assert_eq!(
        free_huge_pages(),
        0,
        "the pool is empty (the hog holds {} pages)",
        hog.pages
    );
    let spare = hog.pages;
    let stop = Arc::new(AtomicBool::new(false));
    let punches = Arc::new(AtomicU64::new(0));
    // A second attachment of our own for the puncher thread (raw pointers do not cross threads).
    // SAFETY: the kernel picks the address; checked below, detached at the end.
    let addr = unsafe { libc::shmat(seg.id, std::ptr::null(), 0) } as usize;
    assert_ne!(addr as isize, -1, "shmat: {}", io::Error::last_os_error());
    let puncher = {
        let (hog, stop, punches) = (hog.clone(), stop.clone(), punches.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                // SAFETY: the test's own attachment, alive until the thread is joined.
                let r =
                    unsafe { libc::madvise(addr as *mut libc::c_void, huge, libc::MADV_REMOVE) };
                assert_eq!(r, 0, "MADV_REMOVE: {}", io::Error::last_os_error());
                // The freed page goes to the hog: the pool stays empty and the hole stays.
                let took = hog.take(spare).is_ok();
                punches.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_micros(200));
                if took {
                    hog.give_back(spare).unwrap();
                }
                std::thread::sleep(Duration::from_micros(50));
            }
        })
    };

    let chunk = pattern(128 << 10, 7);
    let (mut landed, mut refused) = (0u64, 0u64);
    let start = Instant::now();
    while start.elapsed() < ATTACK {
        match data.write_at(&chunk, 0) {
            // A write whose copy met the hole after its first pages is short, as on a full
            // disk: the bytes before the hole landed.
            Ok(n) => {
                assert!(
                    n > 0 && n <= chunk.len(),
                    "a write of {} bytes returned {n}",
                    chunk.len()
                );
                landed += 1;
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => refused += 1,
            Err(e) => {
                stop.store(true, Ordering::Relaxed);
                let _ = puncher.join();
                let mut m = m;
                let log = m.log();
                let status = match daemon_alive(&m) {
                    true => "alive".to_string(),
                    false => format!("dead ({:?})", m.signal_and_wait(libc::SIGTERM)),
                };
                panic!(
                    "a write during the attack failed with {e} (after {landed} writes that \
                     landed and {refused} refused); the daemon is {status}; its log:\n{log}"
                );
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    puncher.join().unwrap();
    // SAFETY: the attachment made above; the thread that used it is gone.
    unsafe { libc::shmdt(addr as *const libc::c_void) };
    drop(hog);
    eprintln!(
        "{landed} writes landed, {refused} failed with ENOSPC, {} punches",
        punches.load(Ordering::Relaxed)
    );
    assert!(daemon_alive(&m), "the daemon died; its log:\n{}", m.log());
    assert!(
        refused > 0,
        "no write met an empty pool: the attack did not happen"
    );
    assert!(landed > 0, "no write landed between the punches");

    let fresh = pattern(4096, 9);
    assert_eq!(
        data.write_at(&fresh, 4096).unwrap(),
        fresh.len(),
        "a write after the attack"
    );
    assert_eq!(
        att.read(4096, fresh.len()),
        fresh,
        "the write reached the segment"
    );
    let mut back = vec![0u8; fresh.len()];
    assert_eq!(data.read_at(&mut back, 4096).unwrap(), fresh.len());
    assert_eq!(back, fresh, "read back through data");
    assert!(
        m.ls_sysv().contains(&seg.id),
        "the mount still lists the segment"
    );
}

/// A daemon run by an ordinary user keeps an attachment of each segment whose `data` is open
/// and copies through it the same way (`process_vm_writev` on itself, which its seccomp filter
/// allows for its own memory only): reads and writes work, and the filter refuses nothing.
#[test]
fn a_users_daemon_copies_through_its_attachment_under_its_filter() {
    const USER: u32 = 12346;
    require_fuse!();
    require_tools!("fusermount3" => "Debian package fuse3", "ipcmk" => "util-linux");
    let w = World::new();
    if !w.allow_user(USER) {
        return;
    }
    let (bin, home, mnt) = w.user_mount_dirs(USER);
    let log = home.join("daemon.log");
    let r = w.sh_as(
        USER,
        &home,
        &format!("{} -f {} >{} 2>&1 </dev/null &", q(&bin), q(&mnt), q(&log)),
    );
    assert!(r.ok(), "shmfs -f MNT as user {USER}: {r:?}");
    let start = Instant::now();
    while w.mount_at(&mnt).is_none() {
        assert!(
            start.elapsed() < MOUNT_TIMEOUT,
            "the user's mount did not come up"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let id = parse_ipcmk(&w.sh_ok(&format!(
        "setpriv --reuid={USER} --regid={USER} --clear-groups ipcmk -M 8192 -p 0600"
    )));
    let data = mnt.join(format!("sysv/{id}/data"));
    let r = w.sh_as(
        USER,
        &home,
        &format!(
            "printf hello-from-the-user > {d} && dd if={d} bs=1 skip=6 count=8 2>/dev/null && \
             echo && wc -c < {d}",
            d = q(&data)
        ),
    );
    let unmounted = w.sh_as(USER, &home, &format!("fusermount3 -u {}", q(&mnt)));
    w.sh_ok(&format!("ipcrm -m {id}"));
    assert!(r.ok(), "write and read data as the user: {r:?}");
    assert_eq!(
        r.stdout_str(),
        "from-the\n8192\n",
        "what the user read back"
    );
    assert!(unmounted.ok(), "fusermount3 -u: {unmounted:?}");
    let log = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        !log.contains("seccomp refused"),
        "the filter refused a call:\n{log}"
    );
}
