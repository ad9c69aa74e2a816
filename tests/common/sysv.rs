//! System V segments the test owns: `SysvSeg` (removed on drop) and `Attachment` (the test's
//! own shmat, detached on drop), `IPC_STAT`, random keys.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use super::errno::errno;

/// A random, non-zero key, unlikely to collide with other tests or other users of the machine.
pub fn random_key() -> i32 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut x =
        (u64::from(std::process::id()) << 32) ^ nanos ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    // splitmix64 finaliser
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    match x as u32 as i32 {
        0 => random_key(),
        k => k,
    }
}

/// `shmctl(id, IPC_STAT)`.
pub fn ipc_stat(id: i32) -> io::Result<libc::shmid_ds> {
    let mut ds: libc::shmid_ds = unsafe { std::mem::zeroed() };
    if unsafe { libc::shmctl(id, libc::IPC_STAT, &mut ds) } == 0 {
        Ok(ds)
    } else {
        Err(io::Error::last_os_error())
    }
}

pub const SHM_DEST: u32 = 0o1000;
pub const SHM_LOCKED: u32 = 0o2000;

/// A System V segment created by this test; removed (IPC_RMID) when dropped.
pub struct SysvSeg {
    pub id: i32,
    pub key: i32,
    pub size: usize,
    removed: bool,
}

impl SysvSeg {
    /// `shmget(IPC_PRIVATE, size, IPC_CREAT|IPC_EXCL|mode)`.
    pub fn private(size: usize, mode: u32) -> SysvSeg {
        Self::create(libc::IPC_PRIVATE, size, mode).expect("shmget(IPC_PRIVATE)")
    }

    /// A segment with a fresh random key.
    pub fn keyed(size: usize, mode: u32) -> SysvSeg {
        for _ in 0..100 {
            match Self::create(random_key(), size, mode) {
                Ok(s) => return s,
                Err(e) if errno(&e) == libc::EEXIST => continue,
                Err(e) => panic!("shmget(key, {size}): {e}"),
            }
        }
        panic!("could not find a free random key");
    }

    fn create(key: i32, size: usize, mode: u32) -> io::Result<SysvSeg> {
        let id = unsafe { libc::shmget(key, size, libc::IPC_CREAT | libc::IPC_EXCL | mode as i32) };
        if id < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(SysvSeg {
            id,
            key,
            size,
            removed: false,
        })
    }

    /// Takes ownership of a segment this test created by other means (e.g. `ipcmk`).
    pub fn adopt(id: i32) -> SysvSeg {
        let ds = ipc_stat(id).unwrap_or_else(|e| panic!("IPC_STAT of adopted shmid {id}: {e}"));
        SysvSeg {
            id,
            key: ds.shm_perm.__key,
            size: ds.shm_segsz,
            removed: false,
        }
    }

    /// `shmctl(IPC_STAT)`; panics on error.
    #[track_caller]
    pub fn stat(&self) -> libc::shmid_ds {
        ipc_stat(self.id).unwrap_or_else(|e| panic!("IPC_STAT of shmid {}: {e}", self.id))
    }

    /// What `ipcs -m -i` shows that an attach would move: (lpid, atime, dtime, nattch, ctime).
    #[track_caller]
    pub fn attach_evidence(&self) -> (i32, i64, i64, u64, i64) {
        let ds = self.stat();
        (
            ds.shm_lpid,
            ds.shm_atime,
            ds.shm_dtime,
            ds.shm_nattch,
            ds.shm_ctime,
        )
    }

    /// Mode bits (permission bits only).
    pub fn mode(&self) -> u32 {
        u32::from(self.stat().shm_perm.mode) & 0o777
    }

    /// `shmctl(IPC_SET)` changing only what is given.
    pub fn set(&self, mode: Option<u32>, uid: Option<u32>, gid: Option<u32>) {
        let mut ds = self.stat();
        if let Some(m) = mode {
            ds.shm_perm.mode = m as u16;
        }
        if let Some(u) = uid {
            ds.shm_perm.uid = u;
        }
        if let Some(g) = gid {
            ds.shm_perm.gid = g;
        }
        let r = unsafe { libc::shmctl(self.id, libc::IPC_SET, &mut ds) };
        assert_eq!(
            r,
            0,
            "IPC_SET on shmid {}: {}",
            self.id,
            io::Error::last_os_error()
        );
    }

    /// `shmctl(SHM_LOCK)`.
    pub fn lock(&self) {
        let r = unsafe { libc::shmctl(self.id, libc::SHM_LOCK, std::ptr::null_mut()) };
        assert_eq!(r, 0, "SHM_LOCK: {}", io::Error::last_os_error());
    }

    /// `shmctl(IPC_RMID)` now.
    pub fn remove(&mut self) {
        let r = unsafe { libc::shmctl(self.id, libc::IPC_RMID, std::ptr::null_mut()) };
        assert_eq!(r, 0, "IPC_RMID: {}", io::Error::last_os_error());
        self.removed = true;
    }

    /// Forget the segment: it has been removed by other means (e.g. `ipcrm` run by the test).
    pub fn forget(&mut self) {
        self.removed = true;
    }

    /// Attaches the segment in this process (shmat).
    pub fn attach(&self) -> Attachment {
        let addr = unsafe { libc::shmat(self.id, std::ptr::null(), 0) };
        assert!(
            addr as isize != -1,
            "shmat({}): {}",
            self.id,
            io::Error::last_os_error()
        );
        Attachment {
            addr: addr as *mut u8,
            len: self.size,
        }
    }
}

impl Drop for SysvSeg {
    fn drop(&mut self) {
        if !self.removed {
            unsafe {
                libc::shmctl(self.id, libc::IPC_RMID, std::ptr::null_mut());
            }
        }
    }
}

/// The test's own attachment of a segment: direct access to its bytes. Detaches on drop.
pub struct Attachment {
    addr: *mut u8,
    len: usize,
}

impl Attachment {
    pub fn write(&self, offset: usize, bytes: &[u8]) {
        assert!(offset + bytes.len() <= self.len, "write past segment end");
        for (i, b) in bytes.iter().enumerate() {
            unsafe { std::ptr::write_volatile(self.addr.add(offset + i), *b) };
        }
    }

    pub fn read(&self, offset: usize, len: usize) -> Vec<u8> {
        assert!(offset + len <= self.len, "read past segment end");
        (0..len)
            .map(|i| unsafe { std::ptr::read_volatile(self.addr.add(offset + i)) })
            .collect()
    }

    /// All bytes of the segment.
    pub fn all(&self) -> Vec<u8> {
        self.read(0, self.len)
    }

    /// `madvise(MADV_REMOVE)` on `len` bytes from `offset`: frees those pages of the segment
    /// (its rss drops), as a process that punches a hole does.
    pub fn madvise_remove(&self, offset: usize, len: usize) {
        assert!(offset + len <= self.len, "madvise past segment end");
        let r = unsafe {
            libc::madvise(
                self.addr.add(offset) as *mut libc::c_void,
                len,
                libc::MADV_REMOVE,
            )
        };
        assert_eq!(r, 0, "madvise(MADV_REMOVE): {}", io::Error::last_os_error());
    }
}

impl Drop for Attachment {
    fn drop(&mut self) {
        unsafe {
            libc::shmdt(self.addr as *const libc::c_void);
        }
    }
}
