//! Huge pages for the tests that need them: [`HugePages::reserve`] adds pages to the kernel's
//! pool (`/proc/sys/vm/nr_hugepages`) and puts the old value back when the last guard goes.
//!
//! Tests run in parallel, so the pool is shared: one process-wide record (behind a mutex) of
//! the value found before the first reservation and of how many pages the live guards hold.
//! Each guard raises the pool by its own pages on top of what the others hold, and dropping it
//! lowers the pool only by its own, never below what the others still hold; the last one puts
//! back the value found at first.

use std::fs;
use std::sync::Mutex;

/// The kernel's pool of default-size huge pages.
const NR_HUGEPAGES: &str = "/proc/sys/vm/nr_hugepages";

/// What the live guards of this process hold.
struct Pool {
    /// `nr_hugepages` before the first live guard reserved anything.
    old: u64,
    /// Pages the live guards added on top of `old`.
    held: u64,
}

static POOL: Mutex<Pool> = Mutex::new(Pool { old: 0, held: 0 });

/// A value of /proc/meminfo (`name: N kB` or `name: N`), without its unit.
pub fn meminfo(name: &str) -> Option<u64> {
    fs::read_to_string("/proc/meminfo")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// The default huge page size in bytes, if the kernel has huge pages at all.
pub fn huge_page_size() -> Option<usize> {
    meminfo("Hugepagesize")
        .filter(|&kb| kb > 0)
        .map(|kb| (kb * 1024) as usize)
}

fn read_pool() -> Result<u64, String> {
    fs::read_to_string(NR_HUGEPAGES)
        .map_err(|e| format!("cannot read {NR_HUGEPAGES}: {e}"))?
        .trim()
        .parse()
        .map_err(|e| format!("{NR_HUGEPAGES}: {e}"))
}

fn write_pool(n: u64) -> Result<(), String> {
    fs::write(NR_HUGEPAGES, n.to_string())
        .map_err(|e| format!("cannot write {n} to {NR_HUGEPAGES}: {e}"))
}

/// `n` default-size huge pages reserved for a test; given back on drop.
pub struct HugePages {
    n: u64,
}

impl HugePages {
    /// Adds `n` huge pages to the kernel's pool, on top of what other guards hold, or says why
    /// it cannot (no huge pages in this kernel, or the kernel gave fewer: memory too small or
    /// too fragmented). On failure the pool is as it was.
    pub fn reserve(n: u64) -> Result<HugePages, String> {
        if huge_page_size().is_none() {
            return Err("this kernel has no huge pages (no Hugepagesize in /proc/meminfo)".into());
        }
        let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
        if pool.held == 0 {
            pool.old = read_pool()?;
        }
        let before = pool.old + pool.held;
        let want = before + n;
        write_pool(want)?;
        let got = read_pool()?;
        if got < want {
            let undo = write_pool(before);
            return Err(format!(
                "asked the kernel for {n} more huge pages ({NR_HUGEPAGES} {before} -> {want}), \
                 it gave {} (memory too small or too fragmented){}",
                got.saturating_sub(before),
                undo.err().map(|e| format!("; {e}")).unwrap_or_default()
            ));
        }
        pool.held += n;
        Ok(HugePages { n })
    }
}

impl Drop for HugePages {
    fn drop(&mut self) {
        let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
        pool.held -= self.n;
        if let Err(e) = write_pool(pool.old + pool.held) {
            eprintln!("could not give back {} huge pages: {e}", self.n);
        }
    }
}

/// `n` more huge pages and their size in bytes for a test that needs them; if the kernel cannot
/// give them, fails under CI (and otherwise says `skipping:`) and gives None.
pub fn huge_pages_for_test(n: u64) -> Option<(HugePages, usize)> {
    match HugePages::reserve(n) {
        Ok(pages) => {
            let size = huge_page_size().expect("huge pages were reserved, so they have a size");
            Some((pages, size))
        }
        Err(why) => {
            super::preconditions::unavailable(&format!("SHM_HUGETLB cannot be tested: {why}"));
            None
        }
    }
}
