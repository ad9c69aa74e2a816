//! Row 14 (issue 24): listing and `stat` of semaphore sets scale linearly. `ls -l sem/` and
//! `cat sem/*/stat` with a quarter of the sets and with all of them (500 and 2,000 in a full
//! run, 3 semaphores each), beside `ipcs -s` over the same sets, which is the reference: its own
//! ratio shows what the kernel's side costs as the sets grow.

use std::fs;
use std::io;
use std::path::Path;

use crate::config::Config;
use crate::error::{Context, Result, fail, finding};
use crate::measure::{check_interrupted, compare, time_cmd};
use crate::report::{Report, Row, Stats, Target, Unit, num};
use crate::setup::Bench;

/// Semaphores in each set the row makes.
const SEMS_PER_SET: usize = 3;

/// What the bench times over `sem/`, as a shell runs it: `$1` is the mount point.
const CAT_STATS: &str = r#"cat "$1"/sem/*/stat"#;

/// Semaphore sets the row made (`semget(IPC_PRIVATE)` in the bench's private IPC namespace);
/// Drop removes those still there, also when a step failed.
#[derive(Default)]
struct SemSets {
    ids: Vec<i32>,
}

impl SemSets {
    /// Makes sets until there are `total`.
    fn create_up_to(&mut self, total: usize) -> Result<()> {
        eprintln!("shmfs bench: creating semaphore sets up to {total}");
        while self.ids.len() < total {
            check_interrupted()?;
            let id = unsafe {
                libc::semget(
                    libc::IPC_PRIVATE,
                    SEMS_PER_SET as libc::c_int,
                    libc::IPC_CREAT | 0o600,
                )
            };
            if id < 0 {
                return fail(format!(
                    "semget(IPC_PRIVATE, {SEMS_PER_SET}) after {} sets: {}",
                    self.ids.len(),
                    io::Error::last_os_error()
                ));
            }
            self.ids.push(id);
        }
        Ok(())
    }

    /// Removes every set (IPC_RMID); fails on the first that cannot be removed.
    fn remove_all(&mut self) -> Result<()> {
        while let Some(id) = self.ids.pop() {
            if unsafe { libc::semctl(id, 0, libc::IPC_RMID) } != 0 {
                return fail(format!(
                    "semctl({id}, IPC_RMID): {}",
                    io::Error::last_os_error()
                ));
            }
        }
        Ok(())
    }
}

impl Drop for SemSets {
    fn drop(&mut self) {
        for &id in &self.ids {
            unsafe { libc::semctl(id, 0, libc::IPC_RMID) };
        }
    }
}

/// Raises the limits of `/proc/sys/kernel/sem` (`semmsl semmns semopm semmni`, per IPC
/// namespace: only the bench's private one changes) so that `sets` sets of
/// [`SEMS_PER_SET`] fit.
fn ensure_sem_limits(sets: usize) -> Result<()> {
    let path = "/proc/sys/kernel/sem";
    let text = fs::read_to_string(path).context(|| format!("read {path}"))?;
    let have: Vec<u64> = text
        .split_whitespace()
        .map(str::parse)
        .collect::<std::result::Result<_, _>>()
        .context(|| format!("{path} holds {text:?}"))?;
    let [semmsl, semmns, semopm, semmni] = have[..] else {
        return fail(format!("{path} holds {text:?}, not four numbers"));
    };
    let want = [
        semmsl.max(SEMS_PER_SET as u64),
        semmns.max((sets * SEMS_PER_SET) as u64),
        semopm,
        semmni.max(sets as u64),
    ];
    if want != [semmsl, semmns, semopm, semmni] {
        let line = want.map(|n| n.to_string()).join(" ");
        eprintln!("shmfs bench: setting {path} to {line} in the private IPC namespace");
        fs::write(path, &line).context(|| format!("write {line:?} to {path}"))?;
    }
    Ok(())
}

/// The samples at one number of sets.
struct AtSize {
    /// `ls -l sem/`, and `ipcs -s` alternating with it.
    ls: Stats,
    ipcs_beside_ls: Stats,
    /// `cat sem/*/stat`, and `ipcs -s` alternating with it.
    stat: Stats,
    ipcs_beside_stat: Stats,
}

/// Row 14: `ls -l sem/` and `cat sem/*/stat` at a quarter of `cfg.sem_sets` sets and at all of
/// them, each alternating with `ipcs -s` over the same sets. Leaves no set behind. If the mount
/// has no `sem/` (a shmfs before issue 24), says so in a note and measures nothing.
pub fn row_semaphores(cfg: &Config, bench: &Bench, report: &mut Report) -> Result<()> {
    let sem = bench.at("sem");
    if !sem.is_dir() {
        report.note(format!(
            "row 14 not run: {} is not a directory (this shmfs has no `sem/`, issue 24)",
            sem.display()
        ));
        return Ok(());
    }
    let (few, many) = (cfg.sem_sets / 4, cfg.sem_sets);
    ensure_sem_limits(many + 16)?;
    let mut sets = SemSets::default();
    let at_few = measure(cfg, bench, &mut sets, few)?;
    let at_many = measure(cfg, bench, &mut sets, many)?;
    sets.remove_all()?;

    let scaling = |label: &str, many_s: Stats, few_s: Stats| {
        Row::compare(
            format!("14 `{label}`, {many} vs {few} semaphore sets"),
            Unit::Secs,
            many_s,
            few_s,
            Target::RatioAtMost(4.5),
        )
    };
    report.add(scaling("ls -l sem/", at_many.ls, at_few.ls));
    report.add(scaling("cat sem/*/stat", at_many.stat, at_few.stat));
    // The reference's own scaling, over the same sets: informs, judges nothing.
    let mut ipcs = scaling("ipcs -s", at_many.ipcs_beside_ls, at_few.ipcs_beside_ls);
    ipcs.label = format!("14 … reference `ipcs -s`, {many} vs {few} sets");
    ipcs.target = "(info)".into();
    ipcs.met = "-";
    report.add(ipcs);
    let versus = |at: &AtSize| {
        format!(
            "`ls -l sem/` {} × `ipcs -s`, `cat sem/*/stat` {} ×",
            num(at.ls.median / at.ipcs_beside_ls.median),
            num(at.stat.median / at.ipcs_beside_stat.median)
        )
    };
    report.note(format!(
        "row 14: sets of {SEMS_PER_SET} semaphores (semget IPC_PRIVATE) in the bench's IPC namespace; at {few} sets {}; at {many} sets {}",
        versus(&at_few),
        versus(&at_many)
    ));
    Ok(())
}

/// Makes sets up to `n`, checks that `sem/` shows them, and samples the three commands.
fn measure(cfg: &Config, bench: &Bench, sets: &mut SemSets, n: usize) -> Result<AtSize> {
    sets.create_up_to(n)?;
    let mnt = bench.mount.path().to_path_buf();
    let sem = bench.at("sem");
    check_sem_listing(&sem, n);
    eprintln!("shmfs bench: row 14 over {n} semaphore sets");
    let ls = || time_cmd("ls", &[Path::new("-l"), &sem]);
    let stat = || {
        time_cmd(
            "sh",
            &[Path::new("-c"), Path::new(CAT_STATS), Path::new("sh"), &mnt],
        )
    };
    let ipcs = || time_cmd("ipcs", &["-s"]);
    let (ls, ipcs_beside_ls) = compare(cfg.runs, ls, ipcs)?;
    let (stat, ipcs_beside_stat) = compare(cfg.runs, stat, ipcs)?;
    Ok(AtSize {
        ls,
        ipcs_beside_ls,
        stat,
        ipcs_beside_stat,
    })
}

/// Notes a finding unless `sem/` lists `want` entries, each with a readable `stat`.
fn check_sem_listing(sem: &Path, want: usize) {
    let entries = match fs::read_dir(sem) {
        Ok(entries) => entries.flatten().map(|e| e.path()).collect::<Vec<_>>(),
        Err(e) => return finding(format!("readdir {}: {e}", sem.display())),
    };
    if entries.len() != want {
        finding(format!(
            "{} lists {} entries, but the bench made {want} semaphore sets",
            sem.display(),
            entries.len()
        ));
    }
    let unreadable = entries
        .iter()
        .filter(|dir| fs::read(dir.join("stat")).is_err())
        .count();
    if unreadable > 0 {
        finding(format!(
            "{unreadable} of the {} entries of {} have no readable `stat`",
            entries.len(),
            sem.display()
        ));
    }
}
