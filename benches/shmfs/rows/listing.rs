//! The listing and lookup rows (4 to 6): `ls -l` of `sysv/` and `posix/` against `ipcs -m`
//! and the shm dir, and `cat sysv/ID/stat` with many segments against few.

use std::fs::{self, File};
use std::path::Path;
use std::process::Command;

use crate::config::Config;
use crate::error::{Context, Result, fail, finding};
use crate::kernel::sysvipc_order;
use crate::measure::{compare, per_op, run_cmd, sample, time_cmd};
use crate::report::{Report, Row, Target, Unit};
use crate::setup::{Bench, create_segments};

/// Segments present in the reference run of the `cat stat` row.
const BASELINE_SEGMENTS: usize = 10;

/// Row 6: `cat sysv/ID/stat` of one segment with all the segments present, then with 10. The
/// segment is the last in the kernel's order (/proc/sysvipc/shm lists by index) in both phases,
/// so a lookup that walks the list pays for all of it. Leaves all the segments in place.
pub fn row_stat(cfg: &Config, bench: &mut Bench, report: &mut Report) -> Result<()> {
    create_segments(bench, cfg.segments)?;
    let order = sysvipc_order()?;
    let Some(&target) = order.last() else {
        return fail("/proc/sysvipc/shm lists no segment");
    };
    let stat = bench.sysv(target, "stat");
    let cat = || run_cmd(Command::new("cat").arg(&stat)).map(drop);
    let read = || {
        fs::read(&stat)
            .map(drop)
            .context(|| format!("read {}", stat.display()))
    };
    let (cats, reads, budget) = (cfg.cats, cfg.cats * 10, cfg.op_budget);
    let many_cat = sample(cfg.runs, || per_op(cats, budget, cat))?;
    let many_read = sample(cfg.runs, || per_op(reads, budget, read))?;

    eprintln!("shmfs bench: keeping {BASELINE_SEGMENTS} segments, {target} last");
    for &id in &order[..order.len().saturating_sub(BASELINE_SEGMENTS)] {
        bench.segments.remove(id)?;
    }
    let few_cat = sample(cfg.runs, || per_op(cats, budget, cat))?;
    let few_read = sample(cfg.runs, || per_op(reads, budget, read))?;
    create_segments(bench, cfg.segments)?;

    let n = cfg.segments;
    report.note(format!(
        "row 6: each run does {cats} cats ({reads} in-process reads) of the stat of the segment listed last, or as many as fit in {budget:?}"
    ));
    report.add(Row::compare(
        format!("6 `cat sysv/ID/stat`, {n} vs {BASELINE_SEGMENTS} segments, per cat"),
        Unit::Secs,
        many_cat,
        few_cat,
        Target::RatioAtMost(1.2),
    ));
    report.add(Row::compare(
        format!("6 … open+read+close in-process, {n} vs {BASELINE_SEGMENTS}, per read"),
        Unit::Secs,
        many_read,
        few_read,
        Target::RatioAtMost(1.2),
    ));
    Ok(())
}

/// Row 4: `ls -l sysv/` against `ipcs -m` over all the segments.
pub fn row_ls_sysv(cfg: &Config, bench: &Bench, report: &mut Report) -> Result<()> {
    let sysv = bench.at("sysv");
    check_listing(&sysv, bench.segments.len());
    let (s, r) = compare(
        cfg.runs,
        || time_cmd("ls", &[Path::new("-l"), &sysv]),
        || time_cmd("ipcs", &["-m"]),
    )?;
    report.add(Row::compare(
        format!(
            "4 `ls -l sysv/` vs `ipcs -m`, {} segments",
            bench.segments.len()
        ),
        Unit::Secs,
        s,
        r,
        Target::RatioAtMost(2.0),
    ));
    Ok(())
}

/// Notes a finding if `dir` does not list exactly `want` entries.
fn check_listing(dir: &Path, want: usize) {
    match fs::read_dir(dir) {
        Ok(entries) => {
            let got = entries.count();
            if got != want {
                finding(format!(
                    "{} lists {got} entries, but {want} exist",
                    dir.display()
                ));
            }
        }
        Err(e) => finding(format!("readdir {}: {e}", dir.display())),
    }
}

/// Row 5: `ls -l posix/` vs `ls -l` of the shm dir, with `cfg.objects` objects.
pub fn row_ls_posix(cfg: &Config, bench: &Bench, report: &mut Report) -> Result<()> {
    eprintln!("shmfs bench: creating {} POSIX objects", cfg.objects);
    for i in 0..cfg.objects {
        let p = bench.posix_dir.path().join(format!("obj-{i:05}"));
        File::create(&p).context(|| format!("create {}", p.display()))?;
    }
    let posix = bench.at("posix");
    check_listing(&posix, cfg.objects);
    let direct = bench.posix_dir.path();
    let (s, r) = compare(
        cfg.runs,
        || time_cmd("ls", &[Path::new("-l"), &posix]),
        || time_cmd("ls", &[Path::new("-l"), direct]),
    )?;
    report.add(Row::compare(
        format!(
            "5 `ls -l posix/` vs `ls -l` shm dir, {} objects",
            cfg.objects
        ),
        Unit::Secs,
        s,
        r,
        Target::RatioAtMost(2.0),
    ));
    Ok(())
}
