//! `rss` and `swap` of SysV segments from one reading of `/proc/sysvipc/shm` shared by the
//! requests of one moment (docs/design.md §1 "Freshness").
//!
//! The kernel has these two numbers per segment only in that file, whose cost grows with the
//! number of segments: reading it for every `stat` made every walk of the mount quadratic. So one
//! reading serves every request while both hold:
//! - the line it gives is no older than [`MAX_AGE`] (its age counts from before the read(2)
//!   that brought its first byte: the kernel formats whole lines, and keeps what does not fit for
//!   the next read), and
//! - `shmctl(SHM_INFO)`'s totals (segments, pages allocated, resident, swapped) are what they were
//!   before the reading began: a page touched or dropped, a segment created or removed anywhere in
//!   the namespace forces a new reading (seen through the last look at the totals, see below).
//!
//! A reading is made a piece at a time (one read(2), about a page of lines: formatting the lines
//! is what it costs the kernel), only as far as the requests need: a request for a segment not
//! yet reached reads on until its line. The file lists segments in the order in which the
//! mount's directory lists them, so a walk (`ls -lR`, `du`, `find`, `tar`, a shell glob) reads
//! the file once from end to end as it goes, instead of once every 50 ms of its length: that was
//! a sixth of the cost of a walk at 4,000 segments, and the part that grew with their square.
//! A request for a line older than [`MAX_AGE`] starts a new reading.
//!
//! `SHM_INFO` is no constant-cost call either: the kernel sums the totals over every segment,
//! taking a lock for each. During a walk, whose own work has pushed those segments out of the CPU's
//! caches, that is 100–200 ns a segment here (0.4 ms at 4,000). Asked on every request, it alone
//! made walks quadratic again. So one look at the totals serves the requests of the next
//! [`totals_window`] after it: twenty times what the look took, at most [`MAX_TOTALS_WINDOW`].
//! That keeps the time spent on `SHM_INFO` to about 5% of a busy worker's at any number of
//! segments and on any machine (a window of a fixed 1 µs a segment gave it 10–20% here), and a
//! change of the totals is seen at most that long after it happens (about 8 ms at 4,000
//! segments, 40 µs at 10), inside the 50 ms that bound every reading.
//!
//! A shmid that a valid reading read to its end does not list is a segment created after it
//! (the caller has just found it alive): a new reading is made once before answering, so a new
//! segment never shows zeros from an old reading. A reading that fails is an error, never zeros.
//!
//! Requests share one reading: the lock is held while the file is read, so workers that arrive
//! meanwhile wait for that reading and use it instead of reading the file again each.
//!
//! A reading is of one IPC namespace (`/proc/sysvipc/shm` and `SHM_INFO` show the reader's):
//! each `kernel::context::IpcContext` keeps its own [`Shared`] reading, and asks it only from
//! threads in its namespace.
//!
//! An open `/proc/sysvipc/shm` pins its namespace: kept between requests, it would keep a
//! container's segments, and their memory, after the container ended (issue 23, "Nothing
//! pinned"). So the reading of a namespace the daemon visits ([`Shared::closing`]) is read to
//! its end by the call that begins it, and no part of it is left open when any call returns,
//! on every path (an error, a panic): its lines serve as the others do, by the same rules. A
//! walk of more than [`MAX_AGE`] then reads the file once per [`MAX_AGE`] instead of once; the
//! daemon's own namespace ([`Shared::new`]) keeps the piecewise reading. The kernel's side of a reading is in `kernel::proc_sysvipc`; this
//! module holds only the rules, over any [`Source`].

use std::collections::HashMap;
use std::io;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::kernel::sysv::{Totals, Usage};

/// The oldest a line of a reading may be and still serve a request.
pub const MAX_AGE: Duration = Duration::from_millis(50);

/// The longest one look at the kernel's totals serves later requests.
pub const MAX_TOTALS_WINDOW: Duration = Duration::from_millis(20);

/// How long a look at the totals that took `cost` serves later requests: twenty times its cost
/// (so that looking takes about 5% of a busy worker's time), at most [`MAX_TOTALS_WINDOW`].
pub fn totals_window(cost: Duration) -> Duration {
    cost.saturating_mul(20).min(MAX_TOTALS_WINDOW)
}

/// Where readings come from: the kernel in the daemon, a script in the unit tests.
pub trait Source {
    /// A reading in progress.
    type Pass;
    /// `shmctl(SHM_INFO)`'s totals now.
    fn totals(&self) -> io::Result<Totals>;
    /// Starts a reading of `/proc/sysvipc/shm` at its first line.
    fn start(&self) -> io::Result<Self::Pass>;
    /// Reads the next piece of `pass`, `read_at` being the time just before; gives `row` the
    /// shmid and usage of each segment line it completes, with the time before the read that
    /// brought the line's first byte. False once the file has no more.
    fn next_piece(
        &self,
        pass: &mut Self::Pass,
        read_at: Instant,
        row: &mut dyn FnMut(i32, Usage, Instant),
    ) -> io::Result<bool>;
    /// The monotonic clock.
    fn now(&self) -> Instant;
}

/// One segment's line in a reading.
#[derive(Clone, Copy, Debug)]
struct Line {
    usage: Usage,
    /// Taken before the read(2) that brought the line's first byte, so the age is never
    /// understated.
    read_at: Instant,
}

/// One reading of the per-segment usage, as far as it has been read.
struct Reading<P> {
    /// What the kernel's totals were just before it began.
    totals: Totals,
    lines: HashMap<i32, Line>,
    /// The rest of the file; None once read to its end.
    rest: Option<P>,
}

/// The current reading of one namespace, shared by all its requests.
pub struct Shared<S: Source> {
    source: S,
    /// Whether no pass may outlive a call (see [`Shared::closing`]).
    closing: bool,
    current: Mutex<State<S::Pass>>,
}

/// The lock on a [`Shared`]'s state. Released, it drops the pass of a closing reading if one
/// is left, on every path out of a call, a panic's unwinding included.
struct Locked<'a, P> {
    guard: MutexGuard<'a, State<P>>,
    closing: bool,
}

impl<P> std::ops::Deref for Locked<'_, P> {
    type Target = State<P>;
    fn deref(&self) -> &State<P> {
        &self.guard
    }
}

impl<P> std::ops::DerefMut for Locked<'_, P> {
    fn deref_mut(&mut self) -> &mut State<P> {
        &mut self.guard
    }
}

impl<P> Drop for Locked<'_, P> {
    fn drop(&mut self) {
        if self.closing
            && let Some(reading) = self.guard.reading.as_mut()
        {
            reading.rest = None;
        }
    }
}

/// What the lock guards: the reading, and the last look at the totals.
struct State<P> {
    reading: Option<Reading<P>>,
    /// The last look at the totals.
    looked: Option<Look>,
}

/// One look at the kernel's totals.
#[derive(Clone, Copy, Debug)]
struct Look {
    /// Taken before the call, so that the window is never overstated.
    at: Instant,
    totals: Totals,
    /// How long it serves: see [`totals_window`].
    window: Duration,
}

impl<S: Source> Shared<S> {
    /// No reading yet: the first request makes one, and reads only as far as it needs; the
    /// rest is read by later requests (for the daemon's own namespace).
    pub const fn new(source: S) -> Shared<S> {
        Shared {
            source,
            closing: false,
            current: Mutex::new(State {
                reading: None,
                looked: None,
            }),
        }
    }

    /// No reading yet, and none ever left open between calls: each reading is read to its end
    /// by the call that begins it (for a namespace the daemon visits, which an open reading
    /// would pin; see the module's comment).
    pub const fn closing(source: S) -> Shared<S> {
        Shared {
            source,
            closing: true,
            current: Mutex::new(State {
                reading: None,
                looked: None,
            }),
        }
    }

    fn lock(&self) -> Locked<'_, S::Pass> {
        // A panic elsewhere cannot leave a half-made reading that serves stale lines: every
        // line carries its own time.
        Locked {
            guard: self.current.lock().unwrap_or_else(|p| p.into_inner()),
            closing: self.closing,
        }
    }

    /// How far a request for `shmid` reads a new reading: to its line, or (closing) to the end.
    fn read_to(&self, shmid: i32) -> Option<i32> {
        (!self.closing).then_some(shmid)
    }

    /// The totals at `now`: the last look if it is recent enough, otherwise a new look.
    fn totals(&self, state: &mut State<S::Pass>, now: Instant) -> io::Result<Totals> {
        if let Some(look) = state.looked
            && now.saturating_duration_since(look.at) < look.window
        {
            return Ok(look.totals);
        }
        Ok(self.look(state, now)?.totals)
    }

    /// Looks at the totals now (`now` being the time before the call) and keeps the look.
    fn look(&self, state: &mut State<S::Pass>, now: Instant) -> io::Result<Look> {
        let totals = self.source.totals()?;
        let cost = self.source.now().saturating_duration_since(now);
        Ok(*state.looked.insert(Look {
            at: now,
            totals,
            window: totals_window(cost),
        }))
    }

    /// Starts a new reading now (under the caller's lock): it becomes the current one. Its
    /// totals are those of the last look if that is still in its window (a request that found
    /// the totals changed has just looked), else of a new look.
    fn begin<'a>(&self, state: &'a mut State<S::Pass>) -> io::Result<&'a mut Reading<S::Pass>> {
        state.reading = None;
        let now = self.source.now();
        let totals = self.totals(state, now)?;
        let pass = self.source.start()?;
        Ok(state.reading.insert(Reading {
            totals,
            lines: HashMap::new(),
            rest: Some(pass),
        }))
    }

    /// Reads `reading` on, a piece at a time, until it has `shmid`'s line or its end (`None`
    /// for `shmid` then reads it to its end). A piece that fails ends the reading: the caller
    /// drops it and answers the error.
    fn read_on(&self, reading: &mut Reading<S::Pass>, shmid: Option<i32>) -> io::Result<()> {
        while let Some(pass) = reading.rest.as_mut() {
            if shmid.is_some_and(|id| reading.lines.contains_key(&id)) {
                return Ok(());
            }
            let lines = &mut reading.lines;
            let more =
                self.source
                    .next_piece(pass, self.source.now(), &mut |id, usage, read_at| {
                        lines.insert(id, Line { usage, read_at });
                    })?;
            if !more {
                reading.rest = None;
            }
        }
        Ok(())
    }

    /// Usage of one segment, by the rules above; zeros only for a segment that a reading begun
    /// after this call and read to its end does not list (it is gone).
    pub fn usage_of(&self, shmid: i32) -> io::Result<Usage> {
        let mut guard = self.lock();
        let state = &mut *guard;
        if state.reading.is_some() {
            let totals = self.totals(state, self.source.now())?;
            if let Some(reading) = state.reading.as_mut()
                && reading.totals == totals
            {
                if let Err(e) = self.read_on(reading, Some(shmid)) {
                    state.reading = None;
                    return Err(e);
                }
                // The age at the moment of answering, after the look and any reading on.
                if let Some(line) = reading.lines.get(&shmid)
                    && self.source.now().saturating_duration_since(line.read_at) <= MAX_AGE
                {
                    return Ok(line.usage);
                }
            }
        }
        let result = self
            .begin(state)
            .and_then(|reading| self.read_on(reading, self.read_to(shmid)).map(|()| reading));
        match result {
            Ok(reading) => Ok(reading
                .lines
                .get(&shmid)
                .map(|line| line.usage)
                .unwrap_or_default()),
            Err(e) => {
                state.reading = None;
                Err(e)
            }
        }
    }

    /// A whole reading made now (for the reports, which cost one listing per request anyway);
    /// it becomes the current reading, so `stat` read just after agrees with it.
    pub fn fresh_table(&self) -> io::Result<HashMap<i32, Usage>> {
        let mut guard = self.lock();
        let state = &mut *guard;
        let result = self
            .begin(state)
            .and_then(|reading| self.read_on(reading, None).map(|()| reading));
        match result {
            Ok(reading) => Ok(reading
                .lines
                .iter()
                .map(|(&id, line)| (id, line.usage))
                .collect()),
            Err(e) => {
                state.reading = None;
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

    /// A kernel in a test: totals, a table listed in pieces of a few rows, and a clock that the
    /// test moves by hand.
    struct Script {
        start: Instant,
        /// Microseconds since `start`.
        clock_us: AtomicU64,
        totals: Mutex<Totals>,
        /// The table in the file's order.
        table: Mutex<Vec<(i32, Usage)>>,
        rows_per_piece: usize,
        /// Readings begun, and pieces read.
        starts: AtomicUsize,
        pieces: AtomicUsize,
        looks: AtomicUsize,
        /// How long a look at the totals and a piece of the file take, in microseconds of the
        /// script's clock.
        look_cost_us: AtomicU64,
        piece_cost_us: AtomicU64,
        fail_reads: Mutex<bool>,
        /// Passes begun and not yet dropped.
        open: AtomicUsize,
    }

    impl Script {
        fn new(table: &[(i32, u64)]) -> Script {
            Script::in_pieces_of(table, 1000)
        }

        fn in_pieces_of(table: &[(i32, u64)], rows_per_piece: usize) -> Script {
            let s = Script {
                start: Instant::now(),
                clock_us: AtomicU64::new(0),
                totals: Mutex::new(Totals::default()),
                table: Mutex::new(Vec::new()),
                rows_per_piece,
                starts: AtomicUsize::new(0),
                pieces: AtomicUsize::new(0),
                looks: AtomicUsize::new(0),
                look_cost_us: AtomicU64::new(0),
                piece_cost_us: AtomicU64::new(0),
                fail_reads: Mutex::new(false),
                open: AtomicUsize::new(0),
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

        fn set_rss(&self, id: i32, rss: u64) {
            for row in self.table.lock().unwrap().iter_mut() {
                if row.0 == id {
                    row.1.rss = rss;
                }
            }
        }

        fn set_resident(&self, pages: u64) {
            self.totals.lock().unwrap().pages_resident = pages;
        }

        fn set_look_cost_us(&self, us: u64) {
            self.look_cost_us.store(us, Ordering::SeqCst);
        }

        fn advance_us(&self, us: u64) {
            self.clock_us.fetch_add(us, Ordering::SeqCst);
        }

        fn advance(&self, ms: u64) {
            self.advance_us(ms * 1000);
        }

        fn starts(&self) -> usize {
            self.starts.load(Ordering::SeqCst)
        }

        fn pieces(&self) -> usize {
            self.pieces.load(Ordering::SeqCst)
        }
    }

    /// How far a reading of the script has got; counted open until dropped.
    struct ScriptPass<'a> {
        at: usize,
        open: &'a AtomicUsize,
    }

    impl Drop for ScriptPass<'_> {
        fn drop(&mut self) {
            self.open.fetch_sub(1, Ordering::SeqCst);
        }
    }

    impl<'a> Source for &'a Script {
        type Pass = ScriptPass<'a>;

        fn totals(&self) -> io::Result<Totals> {
            self.looks.fetch_add(1, Ordering::SeqCst);
            self.advance_us(self.look_cost_us.load(Ordering::SeqCst));
            Ok(*self.totals.lock().unwrap())
        }

        fn start(&self) -> io::Result<ScriptPass<'a>> {
            self.starts.fetch_add(1, Ordering::SeqCst);
            self.open.fetch_add(1, Ordering::SeqCst);
            Ok(ScriptPass {
                at: 0,
                open: &self.open,
            })
        }

        fn next_piece(
            &self,
            pass: &mut ScriptPass<'a>,
            read_at: Instant,
            row: &mut dyn FnMut(i32, Usage, Instant),
        ) -> io::Result<bool> {
            if *self.fail_reads.lock().unwrap() {
                return Err(io::Error::from_raw_os_error(libc::EMFILE));
            }
            self.advance_us(self.piece_cost_us.load(Ordering::SeqCst));
            let table = self.table.lock().unwrap();
            if pass.at >= table.len() {
                return Ok(false);
            }
            self.pieces.fetch_add(1, Ordering::SeqCst);
            for &(id, usage) in table.iter().skip(pass.at).take(self.rows_per_piece) {
                row(id, usage, read_at);
            }
            pass.at += self.rows_per_piece;
            Ok(true)
        }

        fn now(&self) -> Instant {
            self.start + Duration::from_micros(self.clock_us.load(Ordering::SeqCst))
        }
    }

    fn rss<S: Source>(shared: &Shared<S>, id: i32) -> u64 {
        shared.usage_of(id).unwrap().rss
    }

    /// Segments 1..=n, segment i with i pages.
    fn segments(n: i32) -> Vec<(i32, u64)> {
        (1..=n).map(|id| (id, id as u64 * 4096)).collect()
    }

    #[test]
    fn one_reading_serves_many_requests_while_young_and_totals_hold() {
        let k = Script::new(&[(1, 4096), (2, 0)]);
        let shared = Shared::new(&k);
        for _ in 0..100 {
            assert_eq!(rss(&shared, 1), 4096);
            assert_eq!(rss(&shared, 2), 0);
        }
        assert_eq!(k.starts(), 1, "200 requests of one moment, one reading");
    }

    #[test]
    fn an_old_line_is_read_again() {
        let k = Script::new(&[(1, 4096)]);
        let shared = Shared::new(&k);
        assert_eq!(rss(&shared, 1), 4096);
        // A page moves from one segment to another: totals unchanged.
        k.set_table(&[(1, 8192)]);
        k.advance(50);
        assert_eq!(rss(&shared, 1), 4096, "50 ms old: still serves");
        assert_eq!(k.starts(), 1);
        k.advance(1);
        assert_eq!(rss(&shared, 1), 8192, "51 ms old: read again");
        assert_eq!(k.starts(), 2);
    }

    #[test]
    fn changed_totals_force_a_reading_at_once() {
        let k = Script::new(&[(1, 0)]);
        let shared = Shared::new(&k);
        assert_eq!(rss(&shared, 1), 0);
        k.set_table(&[(1, 4096)]);
        k.set_resident(1);
        assert_eq!(rss(&shared, 1), 4096, "totals differ: no wait for the age");
        assert_eq!(k.starts(), 2);
        assert_eq!(rss(&shared, 1), 4096);
        assert_eq!(k.starts(), 2, "and the new reading serves the next request");
    }

    #[test]
    fn a_request_reads_only_as_far_as_its_line() {
        let k = Script::in_pieces_of(&segments(100), 10);
        let shared = Shared::new(&k);
        assert_eq!(rss(&shared, 25), 25 * 4096);
        assert_eq!(k.pieces(), 3, "rows 1–30 read, 31–100 not yet");
        assert_eq!(rss(&shared, 7), 7 * 4096);
        assert_eq!(k.pieces(), 3, "an earlier line is there already");
    }

    #[test]
    fn a_walk_in_the_files_order_reads_it_once_however_long_it_takes() {
        let k = Script::in_pieces_of(&segments(100), 10);
        let shared = Shared::new(&k);
        // 1 ms per segment: the walk takes twice the age limit.
        for id in 1..=100 {
            if id % 10 == 1 {
                // Each piece is read when the walk reaches it, and shows what is true then.
                (id..id + 10).for_each(|later| k.set_rss(later, 1));
            }
            assert_eq!(rss(&shared, id), 1);
            k.advance(1);
        }
        assert_eq!(k.starts(), 1);
        assert_eq!(k.pieces(), 10);
        // After the walk, a line read 91 ms ago is old: a new reading.
        assert_eq!(rss(&shared, 10), 1);
        assert_eq!(k.starts(), 2);
    }

    #[test]
    fn a_line_read_ahead_that_grew_old_is_read_again() {
        let k = Script::in_pieces_of(&segments(100), 10);
        let shared = Shared::new(&k);
        assert_eq!(rss(&shared, 1), 4096);
        // Row 5 came in the same piece as row 1, and changed since.
        k.set_rss(5, 0);
        k.advance(51);
        assert_eq!(rss(&shared, 5), 0, "51 ms old: read again");
        assert_eq!(k.starts(), 2);
    }

    #[test]
    fn the_totals_window_is_twenty_looks_long_and_bounded() {
        let us = Duration::from_micros;
        assert_eq!(totals_window(Duration::ZERO), Duration::ZERO);
        assert_eq!(totals_window(us(2)), us(40));
        assert_eq!(totals_window(us(400)), us(8000));
        assert_eq!(totals_window(us(1000)), MAX_TOTALS_WINDOW);
        assert_eq!(totals_window(Duration::MAX), MAX_TOTALS_WINDOW);
    }

    #[test]
    fn one_look_at_the_totals_serves_its_window_then_they_are_asked_again() {
        let k = Script::new(&[(1, 0)]);
        k.set_look_cost_us(50); // a window of 1 ms
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
        k.advance_us(949); // 999 µs after the look began
        assert_eq!(rss(&shared, 1), 0, "inside the window the last look holds");
        k.advance_us(1);
        assert_eq!(rss(&shared, 1), 4096, "past it the change is seen");
        assert_eq!(
            k.looks.load(Ordering::SeqCst),
            looks + 1,
            "the new reading takes the totals of the look that saw them change"
        );
        assert_eq!(k.starts(), 2);
    }

    #[test]
    fn a_segment_absent_from_a_valid_reading_is_read_again_once() {
        let k = Script::new(&[(1, 0)]);
        let shared = Shared::new(&k);
        assert_eq!(rss(&shared, 1), 0);
        // Created after the reading, with the same totals (another segment went meanwhile).
        k.set_table(&[(7, 4096), (1, 0)]);
        assert_eq!(rss(&shared, 7), 4096, "a new segment is not shown as zeros");
        assert_eq!(k.starts(), 2);
        // Listed in no reading at all (gone since the caller saw it): one reading, then zeros.
        assert_eq!(rss(&shared, 9), 0);
        assert_eq!(k.starts(), 3);
    }

    #[test]
    fn the_age_counts_from_before_each_piece() {
        let k = Script::in_pieces_of(&segments(20), 10);
        k.piece_cost_us.store(2000, Ordering::SeqCst);
        let shared = Shared::new(&k);
        k.advance(5);
        // The first piece is read from 5 to 7 ms: it serves until 55 ms.
        assert_eq!(rss(&shared, 1), 4096);
        k.advance(28);
        // The second is read from 35 to 37 ms: it serves until 85 ms.
        assert_eq!(rss(&shared, 15), 15 * 4096);
        k.set_table(
            &segments(20)
                .iter()
                .map(|&(id, _)| (id, 0))
                .collect::<Vec<_>>(),
        );
        k.advance(48);
        assert_eq!(rss(&shared, 15), 15 * 4096, "read 50 ms ago: serves");
        assert_eq!(k.starts(), 1);
        assert_eq!(rss(&shared, 1), 0, "read 80 ms ago: read again");
        assert_eq!(k.starts(), 2);
    }

    #[test]
    fn the_age_is_judged_after_the_look_at_the_totals() {
        let k = Script::new(&[(1, 4096)]);
        k.set_look_cost_us(200); // a window of 4 ms
        let shared = Shared::new(&k);
        assert_eq!(rss(&shared, 1), 4096);
        k.set_table(&[(1, 0)]);
        // The line was read 200 µs in; 49.9 ms later the look's window is over, and the new
        // look takes the line past 50 ms.
        k.advance_us(49_900);
        assert_eq!(rss(&shared, 1), 0, "50.1 ms old once the look is done");
        assert_eq!(k.starts(), 2);
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
    fn a_piece_that_fails_midway_ends_the_reading() {
        let k = Script::in_pieces_of(&segments(30), 10);
        let shared = Shared::new(&k);
        assert_eq!(rss(&shared, 1), 4096);
        *k.fail_reads.lock().unwrap() = true;
        assert!(shared.usage_of(25).is_err(), "an error, not zeros");
        *k.fail_reads.lock().unwrap() = false;
        assert_eq!(rss(&shared, 25), 25 * 4096);
        assert_eq!(k.starts(), 2, "the broken reading is not read on");
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
        assert_eq!(k.starts(), 2);
    }

    #[test]
    fn concurrent_requests_share_one_reading() {
        /// A source whose pieces take a while, so that workers pile up behind them.
        struct Slow<'a>(&'a Script);
        impl<'a> Source for Slow<'a> {
            type Pass = ScriptPass<'a>;
            fn totals(&self) -> io::Result<Totals> {
                (&self.0).totals()
            }
            fn start(&self) -> io::Result<ScriptPass<'a>> {
                (&self.0).start()
            }
            fn next_piece(
                &self,
                pass: &mut ScriptPass<'a>,
                read_at: Instant,
                row: &mut dyn FnMut(i32, Usage, Instant),
            ) -> io::Result<bool> {
                std::thread::sleep(Duration::from_millis(20));
                (&self.0).next_piece(pass, read_at, row)
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
        assert_eq!(k.starts(), 1, "8 workers at one moment, one reading");
    }

    fn open_passes(k: &Script) -> usize {
        k.open.load(Ordering::SeqCst)
    }

    #[test]
    fn a_closing_reading_leaves_no_pass_open_when_a_call_returns() {
        let k = Script::in_pieces_of(&segments(100), 10);
        let shared = Shared::closing(&k);
        assert_eq!(rss(&shared, 5), 5 * 4096);
        assert_eq!(open_passes(&k), 0, "after a call that began a reading");
        assert_eq!(k.pieces(), 10, "read to its end by that call");
        assert_eq!(rss(&shared, 95), 95 * 4096);
        assert_eq!(k.starts(), 1, "and it serves the others by the usual rules");
        k.advance(51);
        assert_eq!(rss(&shared, 1), 4096);
        assert_eq!(
            (k.starts(), open_passes(&k)),
            (2, 0),
            "an old line: read again"
        );
        // A segment created since, with the same totals: read again, and closed again.
        k.set_table(&[(1, 4096), (200, 8192)]);
        assert_eq!(rss(&shared, 200), 8192);
        assert_eq!((k.starts(), open_passes(&k)), (3, 0));
        assert_eq!(shared.fresh_table().unwrap().len(), 2);
        assert_eq!(open_passes(&k), 0, "after a report");
        // A piece that fails: an error, and nothing open.
        *k.fail_reads.lock().unwrap() = true;
        k.advance(51);
        assert!(shared.usage_of(1).is_err());
        assert!(shared.fresh_table().is_err());
        assert_eq!(open_passes(&k), 0, "after errors");
        *k.fail_reads.lock().unwrap() = false;

        // The daemon's own namespace keeps its reading open between calls, to read on later.
        let own = Shared::new(&k);
        k.set_table(&segments(100));
        assert_eq!(rss(&own, 5), 5 * 4096);
        assert_eq!(
            open_passes(&k),
            1,
            "the piecewise reading waits for the next call"
        );
        drop(own);
        assert_eq!(open_passes(&k), 0);
    }

    #[test]
    fn a_panic_while_reading_leaves_no_pass_open() {
        /// A source whose second piece panics.
        struct Panicky<'a>(&'a Script);
        impl<'a> Source for Panicky<'a> {
            type Pass = ScriptPass<'a>;
            fn totals(&self) -> io::Result<Totals> {
                (&self.0).totals()
            }
            fn start(&self) -> io::Result<ScriptPass<'a>> {
                (&self.0).start()
            }
            fn next_piece(
                &self,
                pass: &mut ScriptPass<'a>,
                read_at: Instant,
                row: &mut dyn FnMut(i32, Usage, Instant),
            ) -> io::Result<bool> {
                assert!(pass.at == 0, "a bug in the reading (expected by this test)");
                (&self.0).next_piece(pass, read_at, row)
            }
            fn now(&self) -> Instant {
                (&self.0).now()
            }
        }
        let k = Script::in_pieces_of(&segments(30), 10);
        let shared = Shared::closing(Panicky(&k));
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| shared.usage_of(1)));
        assert!(caught.is_err());
        assert_eq!(open_passes(&k), 0);
    }
}
