//! The memory rows: what reading an untouched segment allocates (row 8), and the daemon's peak
//! RSS after rounds of walking the whole mount (row 7).

use std::path::Path;
use std::time::Instant;

use crate::config::{Config, MIB};
use crate::error::Result;
use crate::kernel::{meminfo_shmem, proc_status_bytes, segment_rss, vm_hwm};
use crate::measure::time_cmd;
use crate::report::{Report, Row, Stats, Unit, num, yes_no};
use crate::setup::Bench;

/// Rounds of `ls -lR` and `cat */*/stat` in the memory row.
const RSS_ROUNDS: usize = 10;
/// Target for the daemon's peak RSS.
const RSS_TARGET: u64 = 32 * MIB;

/// Row 8: reading all of a never-touched segment through `data` must allocate nothing: its
/// rss in /proc/sysvipc/shm before and after, and the system's Shmem (other users of the
/// machine move that one too).
pub fn row_untouched_segment(cfg: &Config, bench: &mut Bench, report: &mut Report) -> Result<()> {
    let id = bench.segments.create(cfg.data_bytes)?;
    let data = bench.sysv(id, "data");
    let (rss0, shmem0) = (segment_rss(id)?, meminfo_shmem()?);
    let secs = time_cmd("cat", &[&data])?;
    let (rss1, shmem1) = (segment_rss(id)?, meminfo_shmem()?);
    bench.segments.remove(id)?;

    report.note(format!(
        "row 8: `cat data` of the untouched {} segment took {} ({})",
        cfg.data_size(),
        Unit::Secs.one(secs),
        Unit::Rate.one(cfg.data_bytes as f64 / secs)
    ));
    let delta = |a: u64, b: u64| b as f64 - a as f64;
    report.add(Row {
        label: format!("8 untouched SysV {}: rss after `cat data`", cfg.data_size()),
        shmfs: format!("after {}", Unit::Bytes.one(rss1 as f64)),
        reference: format!("before {}", Unit::Bytes.one(rss0 as f64)),
        ratio: format!("Δ {}", Unit::Bytes.one(delta(rss0, rss1))),
        target: "0 bytes".into(),
        met: yes_no(rss1 == 0),
    });
    report.add(Row {
        label: "8 … system Shmem (/proc/meminfo) around it".into(),
        shmfs: format!("after {}", Unit::Bytes.one(shmem1 as f64)),
        reference: format!("before {}", Unit::Bytes.one(shmem0 as f64)),
        ratio: format!("Δ {}", Unit::Bytes.one(delta(shmem0, shmem1))),
        target: "(info)".into(),
        met: "-",
    });
    Ok(())
}

/// Row 7: the daemon's peak RSS after rounds of `ls -lR` of the mount and `cat */*/stat`.
/// `ls` leaves out `ns/`, as the walks do (rows 12 and 13 walk it once, before this row).
pub fn row_daemon_memory(cfg: &Config, bench: &Bench, report: &mut Report) -> Result<()> {
    let mnt = bench.mount.path();
    let pid = bench.mount.pid() as i32;
    let cat_stats = [
        Path::new("-c"),
        Path::new(r#"cat "$1"/*/*/stat"#),
        Path::new("sh"),
        mnt,
    ];
    let (mut hwm, mut ls_secs, mut cat_secs) = (Vec::new(), Vec::new(), Vec::new());
    let start = Instant::now();
    for round in 1..=RSS_ROUNDS {
        eprintln!("shmfs bench: memory round {round}/{RSS_ROUNDS}");
        ls_secs.push(time_cmd("ls", &[Path::new("-lR"), Path::new("-Ins"), mnt])?);
        cat_secs.push(time_cmd("sh", &cat_stats)?);
        hwm.push(vm_hwm(pid)?);
        if (2..RSS_ROUNDS).contains(&round) && start.elapsed() > cfg.rss_budget {
            report.note(format!(
                "row 7: stopped after {round} of {RSS_ROUNDS} rounds: they took longer than {:?}",
                cfg.rss_budget
            ));
            break;
        }
    }
    let (first, last, rounds) = (hwm[0], hwm[hwm.len() - 1], hwm.len());
    let mib: Vec<String> = hwm.iter().map(|&b| num(b as f64 / MIB as f64)).collect();
    report.note(format!(
        "row 7: over {} segments and {} objects, `ls -lR -I ns` takes {} and `cat */*/stat` {}",
        bench.segments.len(),
        cfg.objects,
        Unit::Secs.stats(Stats::of(&ls_secs)),
        Unit::Secs.stats(Stats::of(&cat_secs))
    ));
    report.note(format!(
        "row 7: daemon VmHWM after each round (MiB): {}; VmRSS at the end: {}",
        mib.join(", "),
        Unit::Bytes.one(proc_status_bytes(pid, "VmRSS")? as f64)
    ));
    report.add(Row {
        label: format!("7 daemon VmHWM after round {rounds} (ref: after round 1)"),
        shmfs: Unit::Bytes.one(last as f64),
        reference: Unit::Bytes.one(first as f64),
        ratio: format!("{:.2}", last as f64 / first as f64),
        target: format!("≤ {}", Unit::Bytes.one(RSS_TARGET as f64)),
        met: yes_no(last <= RSS_TARGET),
    });
    Ok(())
}
