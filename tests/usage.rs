//! `rss` and `swap` at scale (shmfs(5) FRESHNESS): with many segments, `stat` of the
//! first and of the last segment agrees with itself (its size is the length of its text) and with
//! /proc/sysvipc/shm; a change of the kernel's totals is seen within the window one look at the
//! totals serves (at most 20 ms), a change that leaves them equal within 50 ms, and a segment created
//! after the last reading never shows a stale zero.
//!
//! Each test runs in a thread of its own that enters a fresh IPC namespace
//! (`unshare(CLONE_NEWIPC)` changes only the calling thread): its segments, its daemon (spawned
//! from that thread) and its reads of /proc/sysvipc/shm see only that namespace, so hundreds of
//! segments bother no one and no other test moves the totals meanwhile.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::thread;
use std::time::Duration;

use common::*;

/// Segments in the tests' namespaces.
const MANY: usize = 500;
/// The longest a reading serves (shmfs(5) FRESHNESS: 50 ms), with a margin for a slow machine.
const PAST_MAX_AGE: Duration = Duration::from_millis(60);
/// The longest one look at the totals serves (shmfs(5) FRESHNESS: twenty times what the look took,
/// at most 20 ms; about 1 ms at 500 segments), with a margin, and still well inside 50 ms.
const PAST_TOTALS_WINDOW: Duration = Duration::from_millis(25);

/// Runs `test` in a new thread inside a new IPC namespace of its own; panics propagate.
fn in_private_ipc_namespace(test: impl FnOnce() + Send + 'static) {
    let result = thread::spawn(move || {
        let rc = unsafe { libc::unshare(libc::CLONE_NEWIPC) };
        assert_eq!(
            rc,
            0,
            "unshare(CLONE_NEWIPC): {}",
            std::io::Error::last_os_error()
        );
        test();
    })
    .join();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

/// `n` segments of one page, mode 0600.
fn segments(n: usize) -> Vec<SysvSeg> {
    (0..n).map(|_| SysvSeg::private(4096, 0o600)).collect()
}

/// The shmids of /proc/sysvipc/shm in its order.
fn proc_order() -> Vec<i32> {
    let text = fs::read_to_string("/proc/sysvipc/shm").unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    let col = header.iter().position(|h| *h == "shmid").unwrap();
    lines
        .map(|l| l.split_whitespace().nth(col).unwrap().parse().unwrap())
        .collect()
}

fn kernel(id: i32, column: &str) -> u64 {
    proc_sysvipc_row(id).unwrap_or_else(|| panic!("shmid {id} not in /proc/sysvipc/shm"))[column]
        .parse()
        .unwrap()
}

fn stat_rss(m: &Mount, id: i32) -> u64 {
    read_fields(&m.sysv(id, "stat")).num("rss")
}

#[test]
fn stat_text_and_size_agree_with_the_kernel_for_the_first_and_last_of_many() {
    require_fuse!();
    in_private_ipc_namespace(|| {
        let segs = segments(MANY);
        let order = proc_order();
        assert_eq!(
            order.len(),
            MANY,
            "the namespace holds only the test's segments"
        );
        let (first, last) = (order[0], order[MANY - 1]);
        let by_id = |id: i32| segs.iter().find(|s| s.id == id).unwrap();
        // Give them different rss: one page in the first, none in the last.
        let att_first = by_id(first).attach();
        att_first.write(0, b"x");
        let m = Mount::new();
        for id in [first, last] {
            // Twice: a fresh reading, then one shared with the request before.
            for round in 0..2 {
                let stat = m.sysv(id, "stat");
                let size = fs::metadata(&stat).unwrap().len();
                let text = read_text(&stat);
                assert_eq!(
                    size,
                    text.len() as u64,
                    "shmid {id} (round {round}): stat's size is the length of its text {text:?}"
                );
                let f = Fields::parse(&text);
                assert_eq!(f.num("shmid"), id as u64);
                assert_eq!(f.num("size"), 4096);
                assert_eq!(f.num("rss"), kernel(id, "rss"), "shmid {id}: rss vs /proc");
                assert_eq!(
                    f.num("swap"),
                    kernel(id, "swap"),
                    "shmid {id}: swap vs /proc"
                );
                assert_eq!(f.num("nattch"), kernel(id, "nattch"), "shmid {id}: nattch");
                let data = fs::metadata(m.sysv(id, "data")).unwrap();
                assert_eq!(data.blocks() * 512, f.num("rss"), "shmid {id}: du of data");
            }
        }
        assert_eq!(stat_rss(&m, first), 4096);
        assert_eq!(stat_rss(&m, last), 0);
        drop(att_first);
    });
}

/// A page touched through the test's own attachment changes the kernel's resident total: the
/// next `stat` (after at most the totals window, far less than 50 ms) shows it, although a
/// reading taken just before would still be young.
#[test]
fn an_rss_change_that_moves_the_totals_is_seen_within_the_totals_window() {
    require_fuse!();
    in_private_ipc_namespace(|| {
        let segs = segments(MANY);
        let m = Mount::new();
        let last = *proc_order().last().unwrap();
        let seg = segs.iter().find(|s| s.id == last).unwrap();
        let att = seg.attach();
        // Make a reading now, so that it is young when the page is touched.
        let before = stat_rss(&m, last);
        att.write(0, b"y");
        thread::sleep(PAST_TOTALS_WINDOW);
        let after = stat_rss(&m, last);
        assert_eq!(
            (before, after),
            (0, 4096),
            "rss of shmid {last} before and just after touching its page"
        );
        assert_eq!(after, kernel(last, "rss"));
        // And with `grep`, as a script would.
        att.madvise_remove(0, 4096);
        thread::sleep(PAST_TOTALS_WINDOW);
        let out = sh_ok(&format!("grep '^rss:' {}", q(m.sysv(last, "stat"))));
        assert_eq!(out.trim(), "rss: 0", "after MADV_REMOVE of its page");
    });
}

/// One segment gains a page and another loses one: the totals stay equal, so a young reading may
/// still serve, but no longer than 50 ms.
#[test]
fn an_rss_change_that_keeps_the_totals_is_seen_within_50_ms() {
    require_fuse!();
    in_private_ipc_namespace(|| {
        let segs = segments(MANY);
        let (a, b) = (&segs[0], &segs[MANY - 1]);
        let (att_a, att_b) = (a.attach(), b.attach());
        att_b.write(0, b"b");
        let m = Mount::new();
        assert_eq!((stat_rss(&m, a.id), stat_rss(&m, b.id)), (0, 4096));
        att_a.write(0, b"a");
        att_b.madvise_remove(0, 4096);
        thread::sleep(PAST_MAX_AGE);
        let now = (stat_rss(&m, a.id), stat_rss(&m, b.id));
        assert_eq!(now, (kernel(a.id, "rss"), kernel(b.id, "rss")));
        assert_eq!(now, (4096, 0), "rss (A, B) 60 ms after A gained B's page");
    });
}

/// A segment created after the current reading is read again, not shown as rss 0.
#[test]
fn a_segment_newer_than_the_reading_is_not_shown_as_zero() {
    require_fuse!();
    in_private_ipc_namespace(|| {
        let old = segments(MANY);
        let m = Mount::new();
        stat_rss(&m, old[MANY - 1].id); // a young reading without the new segment
        let new = SysvSeg::private(8192, 0o600);
        let att = new.attach();
        att.write(0, b"n");
        att.write(4096, b"n");
        assert_eq!(stat_rss(&m, new.id), 8192, "at once, with no wait");
        let stat = m.sysv(new.id, "stat");
        assert_eq!(
            fs::metadata(&stat).unwrap().len(),
            read_text(&stat).len() as u64
        );
        drop(att);
        // Also when the totals are what they were: a segment with no page goes as this one comes,
        // and its page is one that another segment gives up at the same moment.
        let mut old = old;
        let giver = old[1].attach();
        giver.write(0, b"g");
        stat_rss(&m, old[0].id); // a young reading, with the totals of this moment
        old.pop(); // IPC_RMID of an unattached segment with no page: gone at once
        let newer = SysvSeg::private(4096, 0o600);
        let att = newer.attach();
        att.write(0, b"n");
        giver.madvise_remove(0, 4096);
        assert_eq!(
            stat_rss(&m, newer.id),
            4096,
            "a segment the young reading does not list is read again"
        );
        assert_eq!(kernel(newer.id, "rss"), 4096);
    });
}
