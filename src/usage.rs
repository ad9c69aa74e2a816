//! `rss` and `swap` of SysV segments from one reading of `/proc/sysvipc/shm` shared by the
//! requests of one moment (docs/design.md §1 "Freshness").
//!
//! The kernel has these two numbers per segment only in that file, whose cost grows with the
//! number of segments: reading it for every `stat` made every walk of the mount quadratic. So one
//! reading (a [`Snapshot`]) serves every request while both hold:
//! - it is no older than [`MAX_AGE`] (its age counts from before the file was opened), and
//! - `shmctl(SHM_INFO)`'s totals (segments, pages allocated, resident, swapped) are what they were
//!   just before it was read: a page touched or dropped, a segment created or removed anywhere in
//!   the namespace forces a new reading.
//!
//! `SHM_INFO` is no constant-cost call either: the kernel sums the totals over every segment,
//! taking a lock for each (about 60 ns a segment here, 0.24 ms at 4,000). Asked on every request,
//! it alone made walks quadratic again. So one look at the totals serves the requests of the next
//! [`totals_window`] after it: 1 µs per segment (10 µs with 10 segments, 4 ms at 4,000), at most
//! [`MAX_TOTALS_WINDOW`]. That keeps the time spent on `SHM_INFO` to a few percent of a busy
//! worker's at any number of segments, and a change of the totals is seen at most that long after
//! it happens, well inside the 50 ms that bound every reading.
//!
//! A shmid absent from a valid snapshot is a segment created after it (the caller has just found
//! it alive): the file is read again once before answering, so a new segment never shows zeros
//! from an old reading. A reading that fails is an error, never zeros.
//!
//! Requests share one reading: the lock is held while the file is read, so workers that arrive
//! meanwhile wait for that reading and use it instead of reading the file again each.
//!
//! The snapshot is per process, like the IPC namespace the daemon serves (`--ipc-ns` enters it
//! before any worker starts; `/proc/sysvipc/shm` shows the namespace of the reader).

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::sysv::{Totals, Usage};

/// The oldest a reading may be and still serve a request.
pub const MAX_AGE: Duration = Duration::from_millis(50);

/// The longest one look at the kernel's totals serves later requests.
pub const MAX_TOTALS_WINDOW: Duration = Duration::from_millis(5);

/// How long a look at the totals serves later requests: 1 µs per segment (about 20 times what
/// `SHM_INFO` costs per segment), at most [`MAX_TOTALS_WINDOW`].
pub fn totals_window(totals: &Totals) -> Duration {
    let per_segment = Duration::from_micros(1);
    per_segment
        .saturating_mul(u32::try_from(totals.segments).unwrap_or(u32::MAX))
        .min(MAX_TOTALS_WINDOW)
}

/// Where readings come from: the kernel in the daemon, a script in the unit tests.
pub trait Source {
    /// `shmctl(SHM_INFO)`'s totals now.
    fn totals(&self) -> io::Result<Totals>;
    /// One whole reading of `/proc/sysvipc/shm`: shmid → usage.
    fn read(&self) -> io::Result<HashMap<i32, Usage>>;
    /// The monotonic clock.
    fn now(&self) -> Instant;
}

/// One reading of the per-segment usage and what the kernel's totals were just before it.
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// Taken before the totals and the file were read, so the age is never understated.
    pub taken_at: Instant,
    pub totals: Totals,
    pub table: Arc<HashMap<i32, Usage>>,
}

impl Snapshot {
    /// May this reading serve a request made at `now`, when the totals are `totals`?
    pub fn serves(&self, now: Instant, totals: &Totals) -> bool {
        now.saturating_duration_since(self.taken_at) <= MAX_AGE && self.totals == *totals
    }
}

/// The process's current reading, shared by all requests.
pub struct Shared<S> {
    source: S,
    current: Mutex<State>,
}

/// What the lock guards: the reading, and the last look at the totals.
#[derive(Default)]
struct State {
    snapshot: Option<Snapshot>,
    /// When the totals were last asked for, and what they were.
    looked: Option<(Instant, Totals)>,
}

impl<S: Source> Shared<S> {
    pub const fn new(source: S) -> Shared<S> {
        Shared {
            source,
            current: Mutex::new(State {
                snapshot: None,
                looked: None,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere cannot leave a half-made snapshot: it is replaced whole.
        self.current.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The totals at `now`: the last look if it is recent enough, otherwise a new look.
    fn totals(&self, state: &mut State, now: Instant) -> io::Result<Totals> {
        if let Some((at, totals)) = state.looked
            && now.saturating_duration_since(at) < totals_window(&totals)
        {
            return Ok(totals);
        }
        let totals = self.source.totals()?;
        state.looked = Some((now, totals));
        Ok(totals)
    }

    /// Reads the file now (under the caller's lock) and makes that the current snapshot.
    fn take(&self, state: &mut State) -> io::Result<Snapshot> {
        let taken_at = self.source.now();
        let totals = self.source.totals()?;
        state.looked = Some((taken_at, totals));
        let table = Arc::new(self.source.read()?);
        let snapshot = Snapshot {
            taken_at,
            totals,
            table,
        };
        state.snapshot = Some(snapshot.clone());
        Ok(snapshot)
    }

    /// Usage of one segment, by the rules above; zeros only for a segment that a reading made
    /// after this call began does not list (it is gone).
    pub fn usage_of(&self, shmid: i32) -> io::Result<Usage> {
        let mut state = self.lock();
        if state.snapshot.is_some() {
            let now = self.source.now();
            let totals = self.totals(&mut state, now)?;
            if let Some(snapshot) = &state.snapshot
                && snapshot.serves(now, &totals)
                && let Some(usage) = snapshot.table.get(&shmid)
            {
                return Ok(*usage);
            }
        }
        let snapshot = self.take(&mut state)?;
        Ok(snapshot.table.get(&shmid).copied().unwrap_or_default())
    }

    /// A reading made now (for the reports, which cost one listing per request anyway); it
    /// becomes the current snapshot, so `stat` read just after agrees with it.
    pub fn fresh_table(&self) -> io::Result<Arc<HashMap<i32, Usage>>> {
        let mut state = self.lock();
        Ok(self.take(&mut state)?.table)
    }

    /// The current snapshot, if any (for tests).
    pub fn current(&self) -> Option<Snapshot> {
        self.lock().snapshot.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

    /// A kernel in a test: totals, a table and a clock that the test moves by hand.
    struct Script {
        start: Instant,
        /// Microseconds since `start`.
        clock_us: AtomicU64,
        totals: Mutex<Totals>,
        table: Mutex<HashMap<i32, Usage>>,
        reads: AtomicUsize,
        looks: AtomicUsize,
        fail_reads: Mutex<bool>,
    }

    impl Script {
        fn new(table: &[(i32, u64)]) -> Script {
            let s = Script {
                start: Instant::now(),
                clock_us: AtomicU64::new(0),
                totals: Mutex::new(Totals::default()),
                table: Mutex::new(HashMap::new()),
                reads: AtomicUsize::new(0),
                looks: AtomicUsize::new(0),
                fail_reads: Mutex::new(false),
            };
            s.set_table(table);
            s
        }

        fn set_table(&self, rows: &[(i32, u64)]) {
            *self.table.lock().unwrap() = rows
                .iter()
                .map(|&(id, rss)| (id, Usage { rss, swap: 0 }))
                .collect();
        }

        fn set_resident(&self, pages: u64) {
            self.totals.lock().unwrap().pages_resident = pages;
        }

        fn set_segments(&self, n: u64) {
            self.totals.lock().unwrap().segments = n;
        }

        fn advance_us(&self, us: u64) {
            self.clock_us.fetch_add(us, Ordering::SeqCst);
        }

        fn advance(&self, ms: u64) {
            self.advance_us(ms * 1000);
        }

        fn reads(&self) -> usize {
            self.reads.load(Ordering::SeqCst)
        }
    }

    impl Source for &Script {
        fn totals(&self) -> io::Result<Totals> {
            self.looks.fetch_add(1, Ordering::SeqCst);
            Ok(*self.totals.lock().unwrap())
        }

        fn read(&self) -> io::Result<HashMap<i32, Usage>> {
            if *self.fail_reads.lock().unwrap() {
                return Err(io::Error::from_raw_os_error(libc::EMFILE));
            }
            self.reads.fetch_add(1, Ordering::SeqCst);
            Ok(self.table.lock().unwrap().clone())
        }

        fn now(&self) -> Instant {
            self.start + Duration::from_micros(self.clock_us.load(Ordering::SeqCst))
        }
    }

    fn rss<S: Source>(shared: &Shared<S>, id: i32) -> u64 {
        shared.usage_of(id).unwrap().rss
    }

    #[test]
    fn one_reading_serves_many_requests_while_young_and_totals_hold() {
        let k = Script::new(&[(1, 4096), (2, 0)]);
        let shared = Shared::new(&k);
        for _ in 0..100 {
            assert_eq!(rss(&shared, 1), 4096);
            assert_eq!(rss(&shared, 2), 0);
        }
        assert_eq!(k.reads(), 1, "200 requests of one moment, one reading");
    }

    #[test]
    fn an_old_reading_is_read_again() {
        let k = Script::new(&[(1, 4096)]);
        let shared = Shared::new(&k);
        assert_eq!(rss(&shared, 1), 4096);
        // A page moves from one segment to another: totals unchanged.
        k.set_table(&[(1, 8192)]);
        k.advance(50);
        assert_eq!(rss(&shared, 1), 4096, "50 ms old: still serves");
        assert_eq!(k.reads(), 1);
        k.advance(1);
        assert_eq!(rss(&shared, 1), 8192, "51 ms old: read again");
        assert_eq!(k.reads(), 2);
    }

    #[test]
    fn changed_totals_force_a_reading_at_once() {
        let k = Script::new(&[(1, 0)]);
        let shared = Shared::new(&k);
        assert_eq!(rss(&shared, 1), 0);
        k.set_table(&[(1, 4096)]);
        k.set_resident(1);
        assert_eq!(rss(&shared, 1), 4096, "totals differ: no wait for the age");
        assert_eq!(k.reads(), 2);
        assert_eq!(rss(&shared, 1), 4096);
        assert_eq!(k.reads(), 2, "and the new reading serves the next request");
    }

    #[test]
    fn the_totals_window_grows_with_the_segments_and_is_bounded() {
        let with = |segments| Totals {
            segments,
            ..Totals::default()
        };
        assert_eq!(totals_window(&with(0)), Duration::ZERO);
        assert_eq!(totals_window(&with(10)), Duration::from_micros(10));
        assert_eq!(totals_window(&with(1000)), Duration::from_millis(1));
        assert_eq!(totals_window(&with(4000)), Duration::from_millis(4));
        assert_eq!(totals_window(&with(32768)), MAX_TOTALS_WINDOW);
        assert_eq!(totals_window(&with(u64::MAX)), MAX_TOTALS_WINDOW);
    }

    #[test]
    fn one_look_at_the_totals_serves_its_window_then_they_are_asked_again() {
        let k = Script::new(&[(1, 0)]);
        k.set_segments(1000); // a window of 1 ms
        let shared = Shared::new(&k);
        assert_eq!(rss(&shared, 1), 0);
        let looks = k.looks.load(Ordering::SeqCst);
        for _ in 0..10 {
            assert_eq!(rss(&shared, 1), 0);
        }
        assert_eq!(
            k.looks.load(Ordering::SeqCst),
            looks,
            "requests of one moment share the look"
        );
        // A page is touched: the totals change.
        k.set_table(&[(1, 4096)]);
        k.set_resident(1);
        k.advance_us(999);
        assert_eq!(rss(&shared, 1), 0, "inside the window the last look holds");
        k.advance_us(1);
        assert_eq!(rss(&shared, 1), 4096, "past it the change is seen");
        assert_eq!(k.looks.load(Ordering::SeqCst), looks + 2);
        assert_eq!(k.reads(), 2);
    }

    #[test]
    fn a_segment_absent_from_a_valid_reading_is_read_again_once() {
        let k = Script::new(&[(1, 0)]);
        let shared = Shared::new(&k);
        assert_eq!(rss(&shared, 1), 0);
        // Created after the reading, with the same totals (another segment went meanwhile).
        k.set_table(&[(1, 0), (7, 4096)]);
        assert_eq!(rss(&shared, 7), 4096, "a new segment is not shown as zeros");
        assert_eq!(k.reads(), 2);
        // Listed in no reading at all (gone since the caller saw it): one reading, then zeros.
        assert_eq!(rss(&shared, 9), 0);
        assert_eq!(k.reads(), 3);
    }

    #[test]
    fn the_age_counts_from_before_the_reading() {
        let k = Script::new(&[(1, 0)]);
        let shared = Shared::new(&k);
        k.advance(5);
        shared.usage_of(1).unwrap();
        let snap = shared.current().unwrap();
        assert_eq!(snap.taken_at, k.start + Duration::from_millis(5));
        assert!(snap.serves(snap.taken_at + MAX_AGE, &snap.totals));
        assert!(!snap.serves(
            snap.taken_at + MAX_AGE + Duration::from_millis(1),
            &snap.totals
        ));
    }

    #[test]
    fn a_failed_reading_is_an_error_and_keeps_nothing_stale() {
        let k = Script::new(&[(1, 4096)]);
        let shared = Shared::new(&k);
        assert_eq!(rss(&shared, 1), 4096);
        *k.fail_reads.lock().unwrap() = true;
        k.advance(60);
        let err = shared.usage_of(1).unwrap_err();
        assert_eq!(
            err.raw_os_error(),
            Some(libc::EMFILE),
            "an error, not zeros"
        );
        assert!(shared.fresh_table().is_err());
        *k.fail_reads.lock().unwrap() = false;
        assert_eq!(rss(&shared, 1), 4096);
    }

    #[test]
    fn the_reports_read_now_and_share_their_reading() {
        let k = Script::new(&[(1, 4096)]);
        let shared = Shared::new(&k);
        assert_eq!(rss(&shared, 1), 4096);
        k.set_table(&[(1, 8192)]);
        let table = shared.fresh_table().unwrap();
        assert_eq!(table[&1].rss, 8192, "a report reads at that moment");
        assert_eq!(rss(&shared, 1), 8192, "stat after it agrees with it");
        assert_eq!(k.reads(), 2);
    }

    #[test]
    fn concurrent_requests_share_one_reading() {
        /// A source whose reading takes a while, so that workers pile up behind it.
        struct Slow<'a>(&'a Script);
        impl Source for Slow<'_> {
            fn totals(&self) -> io::Result<Totals> {
                (&self.0).totals()
            }
            fn read(&self) -> io::Result<HashMap<i32, Usage>> {
                std::thread::sleep(Duration::from_millis(20));
                (&self.0).read()
            }
            fn now(&self) -> Instant {
                (&self.0).now()
            }
        }
        let k = Script::new(&[(1, 4096), (2, 8192)]);
        let shared = Shared::new(Slow(&k));
        std::thread::scope(|s| {
            for i in 0..8 {
                let shared = &shared;
                s.spawn(move || {
                    assert_eq!(shared.usage_of(1 + i % 2).unwrap().rss, 4096 << (i % 2));
                });
            }
        });
        assert_eq!(k.reads(), 1, "8 workers at one moment, one reading");
    }
}
