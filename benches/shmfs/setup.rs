//! What the bench sets up and takes down: the private IPC namespace and its limits, the mount
//! ([`Bench`]), the SysV segments it makes ([`Segments`]), and the big filled objects of the data
//! rows ([`BigObjects`]).

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;

use tempfile::TempDir;

use crate::common::{MOUNT_TIMEOUT, Mount};
use crate::config::{Config, MIB};
use crate::error::{Context, Error, Result, fail, finding};
use crate::measure::{check_interrupted, watch_daemon};

/// Moves this process into a new IPC namespace of its own (`unshare(CLONE_NEWIPC)`).
pub fn enter_private_ipc_namespace() -> Result<()> {
    if unsafe { libc::unshare(libc::CLONE_NEWIPC) } != 0 {
        return fail(format!(
            "unshare(CLONE_NEWIPC): {}",
            io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// Raises /proc/sys/kernel/NAME to `want` if it is lower (IPC sysctls are per IPC namespace, so
/// this changes only the bench's private namespace).
pub fn ensure_sysctl_at_least(name: &str, want: u64) -> Result<()> {
    let path = format!("/proc/sys/kernel/{name}");
    let text = fs::read_to_string(&path).context(|| format!("read {path}"))?;
    let have: u64 = text
        .trim()
        .parse()
        .context(|| format!("{path} holds {text:?}"))?;
    if have < want {
        eprintln!("shmfs bench: raising {path} from {have} to {want} in the private IPC namespace");
        fs::write(&path, want.to_string()).context(|| format!("write {want} to {path}"))?;
    }
    Ok(())
}

/// The size of a memory page in bytes.
pub fn page_size() -> u64 {
    unsafe { libc::sysconf(libc::_SC_PAGESIZE) as u64 }
}

/// The release binary cargo built for this bench, or target/release/shmfs.
pub fn shmfs_binary() -> Result<PathBuf> {
    let candidates = [
        option_env!("CARGO_BIN_EXE_shmfs").map(PathBuf::from),
        Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/shmfs")),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|p| p.is_file())
        .ok_or_else(|| {
            Error("no shmfs binary: neither CARGO_BIN_EXE_shmfs nor target/release/shmfs exists (run `cargo build --release`)".into())
        })
}

/// Everything the bench made. Fields drop in order: the mount first, then segments, then
/// directories.
pub struct Bench {
    /// The running daemon and its mount point.
    pub mount: Mount,
    /// The SysV segments made so far.
    pub segments: Segments,
    /// Shown by shmfs as `posix/`.
    pub posix_dir: TempDir,
    /// Holds the tmpfs reference file of the SysV rows.
    ref_dir: TempDir,
}

impl Bench {
    /// Makes the two directories and mounts `bin` (with `SHMFS_BENCH_MOUNT_ARGS`).
    pub fn new(bin: &Path) -> Result<Bench> {
        let posix_dir = shm_private_dir("shmfs-bench-posix.")?;
        let ref_dir = shm_private_dir("shmfs-bench-ref.")?;
        // Extra daemon arguments, e.g. `--no-sandbox` to compare with the sandbox off.
        let args: Vec<String> = std::env::var("SHMFS_BENCH_MOUNT_ARGS")
            .unwrap_or_default()
            .split_whitespace()
            .map(String::from)
            .collect();
        let mount = Mount::builder()
            .binary(bin)
            .shm_dir(posix_dir.path())
            .args(&args)
            .try_mount()
            .map_err(Error)?;
        watch_daemon(Some(mount.pid() as i32));
        eprintln!(
            "shmfs bench: shmfs (pid {}) mounted on {}",
            mount.pid(),
            mount.path().display()
        );
        Ok(Bench {
            mount,
            segments: Segments::default(),
            posix_dir,
            ref_dir,
        })
    }

    /// `MOUNT/rel`.
    pub fn at(&self, rel: &str) -> PathBuf {
        self.mount.p(rel)
    }

    /// `MOUNT/sysv/ID/FILE`.
    pub fn sysv(&self, id: i32, file: &str) -> PathBuf {
        self.mount.sysv(id, file)
    }

    /// Unmounts, checks the daemon's exit and its log, and removes everything (by dropping).
    pub fn finish(mut self) -> Result<()> {
        let status = self.stop()?;
        if !status.success() {
            finding(format!(
                "shmfs exited with {status} after SIGTERM; it should unmount cleanly and exit 0"
            ));
        }
        if let Some(log) = self.mount.take_panic_log() {
            return fail(format!("the shmfs daemon panicked; its log:\n{log}"));
        }
        Ok(())
    }

    /// SIGTERM, wait; if it does not exit in time, SIGKILL. Returns the daemon's exit status.
    fn stop(&mut self) -> Result<ExitStatus> {
        watch_daemon(None);
        self.mount.signal_and_wait(libc::SIGTERM).ok_or_else(|| {
            Error(format!(
                "shmfs did not exit within {MOUNT_TIMEOUT:?} of SIGTERM (killed it); its log:\n{}",
                self.mount.log()
            ))
        })
    }
}

impl Drop for Bench {
    /// The watchdog lets go of the daemon before the mount stops it (and its pid may be reused).
    fn drop(&mut self) {
        watch_daemon(None);
    }
}

/// A new directory `PREFIX*` in /dev/shm, removed when dropped.
fn shm_private_dir(prefix: &str) -> Result<TempDir> {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in("/dev/shm")
        .context(|| format!("create a private directory {prefix}* in /dev/shm"))
}

/// SysV segments the bench created; Drop removes those still there.
#[derive(Default)]
pub struct Segments {
    ids: Vec<i32>,
}

impl Segments {
    /// A new IPC_PRIVATE segment of `size` bytes, mode 0600.
    pub fn create(&mut self, size: u64) -> Result<i32> {
        let id = unsafe { libc::shmget(libc::IPC_PRIVATE, size as usize, libc::IPC_CREAT | 0o600) };
        if id < 0 {
            return fail(format!(
                "shmget(IPC_PRIVATE, {size}) after {} segments: {}",
                self.ids.len(),
                io::Error::last_os_error()
            ));
        }
        self.ids.push(id);
        Ok(id)
    }

    /// Removes segment `id` (IPC_RMID) and forgets it.
    pub fn remove(&mut self, id: i32) -> Result<()> {
        self.ids.retain(|&i| i != id);
        if unsafe { libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()) } != 0 {
            return fail(format!(
                "shmctl({id}, IPC_RMID): {}",
                io::Error::last_os_error()
            ));
        }
        Ok(())
    }

    /// How many segments the bench holds.
    pub fn len(&self) -> usize {
        self.ids.len()
    }
}

impl Drop for Segments {
    fn drop(&mut self) {
        for &id in &self.ids {
            unsafe { libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()) };
        }
    }
}

/// 1 MiB of pseudo-random bytes (xorshift): the content every big object is filled with.
fn pattern() -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..MIB / 8)
        .flat_map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()
        })
        .collect()
}

/// Writes `size` bytes of [`pattern`] to a new file at `path` (a whole number of MiB).
fn fill_file(path: &Path, size: u64) -> Result<()> {
    let chunk = pattern();
    let mut f = File::create(path).context(|| format!("create {}", path.display()))?;
    for _ in 0..size / MIB {
        f.write_all(&chunk)
            .context(|| format!("fill {}", path.display()))?;
    }
    Ok(())
}

/// Fills a segment by attaching it in this process (which allocates all its pages).
fn fill_segment(id: i32, size: u64) -> Result<()> {
    let addr = unsafe { libc::shmat(id, std::ptr::null(), 0) };
    if addr as isize == -1 {
        return fail(format!("shmat({id}): {}", io::Error::last_os_error()));
    }
    let chunk = pattern();
    let mem = unsafe { std::slice::from_raw_parts_mut(addr as *mut u8, size as usize) };
    for piece in mem.chunks_mut(chunk.len()) {
        piece.copy_from_slice(&chunk[..piece.len()]);
    }
    unsafe { libc::shmdt(addr) };
    Ok(())
}

/// The big, filled objects of the data rows.
pub struct BigObjects {
    /// Name of the POSIX object in the shm dir.
    posix: &'static str,
    /// The filled SysV segment.
    sysv: i32,
    /// The tmpfs reference file for the SysV rows.
    pub reference: PathBuf,
}

impl BigObjects {
    /// Makes and fills the three objects, each of `cfg.data_bytes`.
    pub fn create(cfg: &Config, bench: &mut Bench) -> Result<BigObjects> {
        eprintln!(
            "shmfs bench: filling a {} POSIX object, SysV segment and tmpfs file",
            cfg.data_size()
        );
        let big = BigObjects {
            posix: "big",
            sysv: bench.segments.create(cfg.data_bytes)?,
            reference: bench.ref_dir.path().join("big"),
        };
        fill_file(&big.posix_direct(bench), cfg.data_bytes)?;
        fill_segment(big.sysv, cfg.data_bytes)?;
        fill_file(&big.reference, cfg.data_bytes)?;
        Ok(big)
    }

    /// The POSIX object as a file of the shm dir.
    pub fn posix_direct(&self, bench: &Bench) -> PathBuf {
        bench.posix_dir.path().join(self.posix)
    }

    /// The POSIX object's `data` under the mount.
    pub fn posix_data(&self, bench: &Bench) -> PathBuf {
        bench.at(&format!("posix/{}/data", self.posix))
    }

    /// The SysV segment's `data` under the mount.
    pub fn sysv_data(&self, bench: &Bench) -> PathBuf {
        bench.sysv(self.sysv, "data")
    }

    /// Reads the first and last MiB of both `data` files and compares them with what was
    /// written: a fast read of wrong bytes is no result.
    pub fn check_contents(&self, bench: &Bench) {
        let want = pattern();
        for path in [self.posix_data(bench), self.sysv_data(bench)] {
            let got = File::open(&path).and_then(|f| {
                let size = f.metadata()?.len();
                let mut first = vec![0; MIB as usize];
                let mut last = vec![0; MIB as usize];
                f.read_exact_at(&mut first, 0)?;
                f.read_exact_at(&mut last, size.saturating_sub(MIB))?;
                Ok((first, last))
            });
            match got {
                Ok((first, last)) if first == want && last == want => {}
                Ok(_) => finding(format!(
                    "{} does not hold the bytes written to it",
                    path.display()
                )),
                Err(e) => finding(format!("reading {}: {e}", path.display())),
            }
        }
    }

    /// Removes the three objects.
    pub fn remove(self, bench: &mut Bench) -> Result<()> {
        bench.segments.remove(self.sysv)?;
        for p in [self.posix_direct(bench), self.reference] {
            fs::remove_file(&p).context(|| format!("remove {}", p.display()))?;
        }
        Ok(())
    }
}

/// Creates 4 KiB segments until the bench holds `total`.
pub fn create_segments(bench: &mut Bench, total: usize) -> Result<()> {
    eprintln!("shmfs bench: creating SysV segments up to {total}");
    while bench.segments.len() < total {
        check_interrupted()?;
        bench.segments.create(4096)?;
    }
    Ok(())
}
