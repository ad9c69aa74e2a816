//! What the kernel says in /proc: the machine's CPU time (/proc/stat), a process's memory
//! (/proc/PID/status), the system's shared memory (/proc/meminfo) and the SysV segments in the
//! kernel's order (/proc/sysvipc/shm).

use std::fs;

use crate::common::meminfo;
use crate::config::KIB;
use crate::error::{Context, Error, Result, fail};

/// The machine's CPU time so far, from the first line of /proc/stat (in clock ticks).
pub struct CpuTimes {
    total: u64,
    steal: u64,
}

impl CpuTimes {
    /// Reads /proc/stat; None if it cannot.
    pub fn now() -> Option<CpuTimes> {
        let stat = fs::read_to_string("/proc/stat").ok()?;
        let fields: Vec<u64> = stat
            .lines()
            .next()?
            .split_whitespace()
            .skip(1)
            .map(|f| f.parse().ok())
            .collect::<Option<_>>()?;
        // user nice system idle iowait irq softirq steal [guest guest_nice, inside user/nice]
        Some(CpuTimes {
            total: fields.iter().take(8).sum(),
            steal: *fields.get(7)?,
        })
    }

    /// What share of the machine's CPU time a hypervisor took from it since `self`: on a
    /// virtual machine, the main cause of a run whose spreads are wider than usual.
    pub fn steal_note(&self, after: &CpuTimes) -> String {
        let total = after.total.saturating_sub(self.total).max(1);
        let steal = after.steal.saturating_sub(self.steal);
        format!(
            "CPU time taken by the hypervisor (steal) during the run: {:.1}%{}",
            100.0 * steal as f64 / total as f64,
            if steal * 50 > total {
                " (over 2%: expect wider spreads and ratios than on a quiet host)"
            } else {
                ""
            }
        )
    }
}

/// The peak RSS of process `pid` (VmHWM), in bytes.
pub fn vm_hwm(pid: i32) -> Result<u64> {
    proc_status_bytes(pid, "VmHWM")
}

/// A "Name:   N kB" line of /proc/PID/status, in bytes.
pub fn proc_status_bytes(pid: i32, name: &str) -> Result<u64> {
    kb_line(&format!("/proc/{pid}/status"), name)
}

/// The system's Shmem line of /proc/meminfo, in bytes.
pub fn meminfo_shmem() -> Result<u64> {
    meminfo("Shmem")
        .map(|kb| kb * KIB)
        .ok_or_else(|| Error("no Shmem line in /proc/meminfo".into()))
}

/// Finds "NAME:   N kB" in `path` and returns N × 1024.
fn kb_line(path: &str, name: &str) -> Result<u64> {
    let text = fs::read_to_string(path).context(|| format!("read {path}"))?;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map(|kb| kb * KIB)
        .ok_or_else(|| Error(format!("no {name} line in {path}")))
}

/// The rss column (bytes) of segment `id` in /proc/sysvipc/shm.
pub fn segment_rss(id: i32) -> Result<u64> {
    sysvipc_column("rss")?
        .into_iter()
        .find(|(shmid, _)| *shmid == id)
        .and_then(|(_, rss)| rss.parse().ok())
        .ok_or_else(|| Error(format!("/proc/sysvipc/shm: no rss for shmid {id}")))
}

/// The shmids in /proc/sysvipc/shm, in the kernel's order.
pub fn sysvipc_order() -> Result<Vec<i32>> {
    Ok(sysvipc_column("shmid")?
        .into_iter()
        .map(|(id, _)| id)
        .collect())
}

/// Each row of /proc/sysvipc/shm as (shmid, value of column `name`), in the kernel's order.
fn sysvipc_column(name: &str) -> Result<Vec<(i32, String)>> {
    let path = "/proc/sysvipc/shm";
    let text = fs::read_to_string(path).context(|| format!("read {path}"))?;
    let mut lines = text
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>());
    let header = lines.next().unwrap_or_default();
    let col = |name: &str| header.iter().position(|h| *h == name);
    let (Some(shmid), Some(wanted)) = (col("shmid"), col(name)) else {
        return fail(format!("{path}: no shmid or {name} column in {header:?}"));
    };
    lines
        .map(|l| {
            let id = l.get(shmid).and_then(|v| v.parse().ok());
            match (id, l.get(wanted)) {
                (Some(id), Some(v)) => Ok((id, v.to_string())),
                _ => fail(format!("{path}: cannot read the line {l:?}")),
            }
        })
        .collect()
}
