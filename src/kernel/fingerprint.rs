//! Fingerprints of segments' memory files: what proves that another process's mapping is of a
//! given segment before shmfs reads or writes memory through it.
//!
//! Nothing a mapping shows can prove that: segments of every IPC namespace live on one internal
//! filesystem, and whoever owns a user namespace chooses a segment's shmid (`shm_next_id`),
//! size and key there, then can leave the mapping in a process of the daemon's namespaces (a
//! `CLONE_VM` sibling). What such a user cannot choose or learn is the random generation the
//! kernel gives every inode of that filesystem: it is in the file handle of the memory file
//! (`name_to_handle_at`), and a handle is only had from a descriptor of the file, which for a
//! segment needs `/proc/PID/map_files` (CAP_SYS_ADMIN in the initial namespace). So the daemon
//! takes the fingerprint of the memory file it reaches through its own `shmat` of the shmid
//! in its own namespace (which the kernel vouches for), and later trusts a mapping only if its
//! file has the same fingerprint. The file's birth time is kept too: a forgery made after the
//! segment is born carries a later one, so guessing the generation is confined to the instant
//! of the segment's birth.
//!
//! Huge-page segments live on hugetlbfs, which gives no handle (EOPNOTSUPP) and no generation:
//! no fingerprint is taken, so they are never reached through another process's mapping.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::sync::Mutex;
use std::time::SystemTime;

/// What tells a segment from a later one with the same shmid: `Segment::incarnation` and its
/// `ctime` (see [`incarnation_of`]).
pub type Incarnation = (u32, u32, i32, u64, i64);

/// The incarnation a fingerprint is kept under. Creator, creating pid and size can all repeat
/// when a program makes its segment again after the shmid came round (which anyone can hasten
/// with a few million `shmget`s); the change time, set at creation and by every `IPC_SET`,
/// does not repeat unless that happens within the same second. A fingerprint taken before an
/// `IPC_SET` is not used after it: the next open attaches briefly and takes it again.
pub fn incarnation_of(seg: &crate::kernel::sysv::Segment) -> Incarnation {
    let (cuid, cgid, cpid, size) = seg.incarnation();
    (cuid, cgid, cpid, size, seg.ctime)
}

/// `FILEID_INO32_GEN`: the handle type of tmpfs (shmem) files, whose first four bytes are the
/// inode's random generation.
const FILEID_INO32_GEN: i32 = 1;

/// What identifies one segment memory file against forgeries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fingerprint {
    dev: u64,
    ino: u64,
    /// `struct file_handle` as `name_to_handle_at` gives it (bytes, type, then the handle).
    handle: Vec<u8>,
    born: Option<SystemTime>,
}

impl Fingerprint {
    /// The fingerprint of `file` (with metadata `st`), or None if its filesystem gives no handle
    /// with a generation (hugetlbfs), so that nothing can prove a mapping to be this file.
    pub fn of(file: &File, st: &std::fs::Metadata) -> Option<Fingerprint> {
        let handle = crate::kernel::posix::file_identity(file)?;
        let kind = i32::from_ne_bytes(handle.get(4..8)?.try_into().ok()?);
        // The generation and the inode number, at least.
        if kind != FILEID_INO32_GEN || handle.len() < 8 + 8 {
            return None;
        }
        Some(Fingerprint {
            dev: st.dev(),
            ino: st.ino(),
            handle,
            born: st.created().ok(),
        })
    }

    /// Whether a file with metadata `st` can be the one fingerprinted, from its metadata alone
    /// (a cheap filter before the file handle is asked for).
    pub fn may_match(&self, st: &std::fs::Metadata) -> bool {
        st.dev() == self.dev && st.ino() == self.ino && st.created().ok() == self.born
    }
}

/// At most this many fingerprints are kept: one per segment is 100-odd bytes, and a namespace
/// holds at most 32768 segments unless booted with `ipcmni_extend`.
const CAPACITY: usize = 32768;

struct Entry {
    incarnation: Incarnation,
    print: Fingerprint,
    /// When it was last recorded or used, on a counter of calls.
    used: u64,
}

/// Below this many entries, gone segments' fingerprints are not swept.
const SWEEP_FLOOR: usize = 64;

/// The fingerprints of segments the daemon attached itself, by shmid and incarnation.
/// Kept in proportion to the segments that exist: once as many fingerprints have been recorded
/// since the last sweep as half the table holds, those of gone segments are dropped (so each
/// record costs two `IPC_STAT`s on average, and churning segments do not grow the table).
/// Bounded: when full, the least recently used go too; a dropped entry only means the next open
/// attaches briefly again.
#[derive(Default)]
pub struct Fingerprints {
    inner: Mutex<Table>,
}

#[derive(Default)]
struct Table {
    map: HashMap<i32, Entry>,
    /// A counter of calls, for "least recently used".
    clock: u64,
    /// Records since the gone segments were last swept out.
    since_sweep: usize,
}

impl Fingerprints {
    /// Records the fingerprint of segment `shmid` (incarnation `incarnation`); `alive` says
    /// whether a recorded segment still exists (asked when the table is swept).
    pub fn record(
        &self,
        shmid: i32,
        incarnation: Incarnation,
        print: Fingerprint,
        alive: impl Fn(i32, &Incarnation) -> bool,
    ) {
        let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let Table {
            map,
            clock,
            since_sweep,
        } = &mut *guard;
        *clock += 1;
        *since_sweep += 1;
        if map.len() >= CAPACITY && !map.contains_key(&shmid) {
            make_room(map, CAPACITY * 3 / 4, &alive);
            *since_sweep = 0;
        } else if map.len() >= SWEEP_FLOOR && *since_sweep >= map.len() / 2 {
            map.retain(|&shmid, e| alive(shmid, &e.incarnation));
            if map.capacity() > 2 * map.len() + SWEEP_FLOOR {
                map.shrink_to_fit();
            }
            *since_sweep = 0;
        }
        map.insert(
            shmid,
            Entry {
                incarnation,
                print,
                used: *clock,
            },
        );
    }

    /// The fingerprint recorded for segment `shmid` of this incarnation, if any.
    pub fn get(&self, shmid: i32, incarnation: &Incarnation) -> Option<Fingerprint> {
        let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let Table { map, clock, .. } = &mut *guard;
        *clock += 1;
        let entry = map.get_mut(&shmid)?;
        if entry.incarnation != *incarnation {
            // An earlier segment with this shmid: gone for good.
            map.remove(&shmid);
            return None;
        }
        entry.used = *clock;
        Some(entry.print.clone())
    }

    /// How many fingerprints are kept.
    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .map
            .len()
    }

    /// Whether none are.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Drops the entries of gone segments, then, if more than `keep` remain, the least recently
/// used ones down to `keep` (so that a full table is swept once per `CAPACITY - keep` records).
fn make_room(
    map: &mut HashMap<i32, Entry>,
    keep: usize,
    alive: &impl Fn(i32, &Incarnation) -> bool,
) {
    map.retain(|&shmid, e| alive(shmid, &e.incarnation));
    if map.len() > keep {
        let mut uses: Vec<u64> = map.values().map(|e| e.used).collect();
        uses.sort_unstable();
        let cut = uses[map.len() - keep];
        map.retain(|_, e| e.used >= cut);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn print(n: u8) -> Fingerprint {
        Fingerprint {
            dev: 1,
            ino: u64::from(n),
            handle: vec![n; 20],
            born: None,
        }
    }

    #[test]
    fn kept_per_incarnation() {
        let f = Fingerprints::default();
        f.record(5, (1, 1, 10, 4096, 0), print(5), |_, _| true);
        assert_eq!(f.get(5, &(1, 1, 10, 4096, 0)), Some(print(5)));
        // A later segment with the same shmid: no fingerprint, and the old one is dropped.
        assert_eq!(f.get(5, &(1, 1, 11, 4096, 0)), None);
        assert!(f.is_empty());
    }

    #[test]
    fn gone_segments_are_swept_as_others_are_recorded() {
        let f = Fingerprints::default();
        // Segments that come and go, each fingerprinted once: only the live ones stay.
        for id in 0..10_000 {
            f.record(id, (0, 0, id, 1, 0), print(1), |other, _| other > id - 10);
        }
        assert!(f.len() < 2 * SWEEP_FLOOR, "{} kept", f.len());
    }

    #[test]
    fn bounded_dropping_gone_then_least_used() {
        let f = Fingerprints::default();
        for id in 0..CAPACITY as i32 {
            f.record(id, (0, 0, id, 1, 0), print(1), |_, _| true);
        }
        f.get(0, &(0, 0, 0, 1, 0));
        // Full: gone segments (odd shmids here) go first, then the least recently used.
        f.record(-1, (0, 0, -1, 1, 0), print(2), |id, _| id % 2 == 0);
        assert!(f.len() <= CAPACITY * 3 / 4 + 1);
        assert!(
            f.get(0, &(0, 0, 0, 1, 0)).is_some(),
            "recently used is kept"
        );
        assert!(f.get(-1, &(0, 0, -1, 1, 0)).is_some(), "new one is kept");
        assert!(f.get(1, &(0, 0, 1, 1, 0)).is_none(), "gone one is dropped");
    }

    #[test]
    fn memory_file_fingerprint_has_a_generation() {
        use std::os::fd::FromRawFd;
        // A memfd lives on the same internal tmpfs as segments.
        // SAFETY: a constant C string; the descriptor is owned by the File.
        let fd = unsafe { libc::memfd_create(c"fp".as_ptr(), libc::MFD_CLOEXEC) };
        assert!(fd >= 0);
        // SAFETY: just returned, owned by nothing else.
        let file = unsafe { File::from_raw_fd(fd) };
        let st = file.metadata().unwrap();
        let fp = Fingerprint::of(&file, &st).expect("tmpfs gives a handle with a generation");
        assert!(fp.may_match(&st));
        assert_eq!(Fingerprint::of(&file, &st), Some(fp));
    }
}
