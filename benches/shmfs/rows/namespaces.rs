//! The namespace rows (12 and 13): `ls ns/` and `cat ns/index` with many IPC namespaces
//! against `lsns -t ipc`, and one request inside another namespace against the same request at
//! the root.

use std::fs;
use std::path::Path;
use std::process::Command;

use crate::config::Config;
use crate::error::{Context, Result, fail, finding};
use crate::fleet::{Fleet, Namespace};
use crate::kernel::vm_hwm;
use crate::measure::{compare, per_op, run_cmd, time_cmd};
use crate::report::{Report, Row, Stats, Target, Unit, num, yes_no};
use crate::setup::Bench;

/// Row 13's target: what a request inside a namespace may cost more than at the root.
const NS_EXTRA_TARGET: f64 = 5e-6;

/// Rows 12 and 13, with `cfg.namespaces` IPC namespaces of `cfg.ns_procs` processes each,
/// ended before it returns. Wants the bench's own namespace to hold no segment (row 13 makes
/// one there, as each namespace of the fleet holds one). Fails at once if the mount has no `ns/`.
pub fn row_namespaces(cfg: &Config, bench: &mut Bench, report: &mut Report) -> Result<()> {
    let ns_dir = bench.at("ns");
    if !ns_dir.is_dir() {
        return fail(format!(
            "{} is not a directory: this shmfs has no `ns/` (issue 23), so rows 12 and 13 cannot run",
            ns_dir.display()
        ));
    }
    eprintln!(
        "shmfs bench: making {} IPC namespaces of {} processes, each with one segment",
        cfg.namespaces, cfg.ns_procs
    );
    let fleet = Fleet::create(cfg.namespaces, cfg.ns_procs)?;
    let procs = fleet.processes();
    if procs != cfg.namespaces * cfg.ns_procs {
        finding(format!(
            "the bench's {} namespaces hold {procs} processes, not {} (the bench's own setup?)",
            cfg.namespaces,
            cfg.namespaces * cfg.ns_procs
        ));
    }
    row_ns_listing(cfg, bench, &fleet, report)?;
    row_ns_request(cfg, bench, &fleet, report)?;
    walk_ns(bench, report);
    report.note(format!(
        "rows 12, 13: daemon VmHWM with the namespaces up, after the rows and one `ls -lR ns/`: {} (row 7's peak includes it)",
        Unit::Bytes.one(vm_hwm(bench.mount.pid() as i32)? as f64)
    ));
    fleet.stop()
}

/// Row 12: `ls ns/` and `cat ns/index` against `lsns -t ipc`, which lists the same namespaces
/// (every one on the host, not only the fleet's).
fn row_ns_listing(cfg: &Config, bench: &Bench, fleet: &Fleet, report: &mut Report) -> Result<()> {
    let (ns_dir, index) = (bench.at("ns"), bench.at("ns/index"));
    let listed = check_ns_listing(&ns_dir, &index, fleet)?;
    let lsns = || time_cmd("lsns", &["-t", "ipc"]);
    let lsns_count = lsns_namespaces()?;
    let (ls, ls_ref) = compare(cfg.runs, || time_cmd("ls", &[&ns_dir]), lsns)?;
    let (cat, cat_ref) = compare(cfg.runs, || time_cmd("cat", &[&index]), lsns)?;
    let (n, p) = (cfg.namespaces, cfg.namespaces * cfg.ns_procs);
    report.note(format!(
        "row 12: the bench made {n} IPC namespaces of {} processes ({procs} in all); `ns/` listed {listed} namespaces and `lsns -t ipc` {lsns_count} (the host's and the bench's own too)",
        cfg.ns_procs,
        procs = fleet.processes(),
    ));
    report.add(Row::compare(
        format!("12 `ls ns/` vs `lsns -t ipc`, {n} namespaces, {p} processes"),
        Unit::Secs,
        ls,
        ls_ref,
        Target::RatioAtMost(1.0),
    ));
    report.add(Row::compare(
        format!("12 `cat ns/index` vs `lsns -t ipc`, {n} namespaces, {p} processes"),
        Unit::Secs,
        cat,
        cat_ref,
        Target::RatioAtMost(1.0),
    ));
    Ok(())
}

/// Checks that `ns/` and `ns/index` name every namespace of the fleet (a finding if not) and
/// returns how many entries `ns/` lists besides `index`.
fn check_ns_listing(ns_dir: &Path, index: &Path, fleet: &Fleet) -> Result<usize> {
    let names: Vec<String> = fs::read_dir(ns_dir)
        .context(|| format!("readdir {}", ns_dir.display()))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let table = fs::read_to_string(index).context(|| format!("read {}", index.display()))?;
    let rows: Vec<&str> = table
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let shown = |ns: &Namespace| names.contains(&ns.inode.to_string());
    if !fleet.members.is_empty() && !fleet.members.iter().any(shown) {
        return fail(format!(
            "{} lists none of the {} IPC namespaces the bench made (it lists {names:?}); the daemon's log may say why",
            ns_dir.display(),
            fleet.members.len()
        ));
    }
    for ns in &fleet.members {
        let name = ns.inode.to_string();
        if !names.contains(&name) {
            finding(format!(
                "{} does not list namespace {name}, one the bench made",
                ns_dir.display()
            ));
        }
        if !rows.contains(&name.as_str()) {
            finding(format!(
                "{} has no row for namespace {name}",
                index.display()
            ));
        }
    }
    Ok(names.iter().filter(|n| n.parse::<u64>().is_ok()).count())
}

/// The namespaces `lsns -t ipc` lists.
fn lsns_namespaces() -> Result<usize> {
    let out = Command::new("lsns")
        .args(["-t", "ipc", "-n", "-o", "NS"])
        .output()
        .context(|| "run lsns -t ipc")?;
    if !out.status.success() {
        return fail(format!(
            "lsns -t ipc failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).lines().count())
}

/// Row 13: `cat ns/N/sysv/ID/stat` of the segment in one of the fleet's namespaces against
/// `cat sysv/ID/stat` of a segment of the bench's own namespace, each of them then holding one
/// segment; then the same as open+read+close in-process, which shows the difference better (a
/// `cat` costs about 1 ms). Shows the ratio and the difference of the medians per request.
fn row_ns_request(
    cfg: &Config,
    bench: &mut Bench,
    fleet: &Fleet,
    report: &mut Report,
) -> Result<()> {
    let Some(ns) = fleet.members.first() else {
        return fail("row 13: the bench made no namespace");
    };
    let inside = bench.at(&format!("ns/{}/sysv/{}/stat", ns.inode, ns.shmid));
    if bench.segments.len() != 0 {
        return fail(format!(
            "row 13 wants the bench's namespace empty, it holds {} segments",
            bench.segments.len()
        ));
    }
    let id = bench.segments.create(4096)?;
    let root = bench.sysv(id, "stat");
    for p in [&inside, &root] {
        fs::read(p).context(|| format!("read {}", p.display()))?;
    }
    let cat = |p: &Path| run_cmd(Command::new("cat").arg(p)).map(drop);
    let read = |p: &Path| {
        fs::read(p)
            .map(drop)
            .context(|| format!("read {}", p.display()))
    };
    let (cats, reads, budget) = (cfg.cats, cfg.cats * 10, cfg.op_budget);
    let by_cat = compare(
        cfg.runs,
        || per_op(cats, budget, || cat(&inside)),
        || per_op(cats, budget, || cat(&root)),
    )?;
    let by_read = compare(
        cfg.runs,
        || per_op(reads, budget, || read(&inside)),
        || per_op(reads, budget, || read(&root)),
    )?;
    bench.segments.remove(id)?;

    report.note(format!(
        "row 13: namespace {}, segment {}; each run does {cats} cats ({reads} in-process reads) of each `stat`, alternating, or as many as fit in {budget:?}",
        ns.inode, ns.shmid
    ));
    report.add(extra_row(
        "13 `cat ns/N/sysv/ID/stat` vs `cat sysv/ID/stat`, per cat".into(),
        by_cat,
    ));
    report.add(extra_row(
        "13 … open+read+close in-process, ns/N vs root, per read".into(),
        by_read,
    ));
    Ok(())
}

/// A row of shmfs inside a namespace against shmfs at the root: ratio and difference of the
/// medians, judged on the difference.
fn extra_row(label: String, (inside, root): (Stats, Stats)) -> Row {
    let extra = inside.median - root.median;
    Row {
        label,
        shmfs: Unit::Secs.stats(inside),
        reference: Unit::Secs.stats(root),
        ratio: format!(
            "{:.2} (Δ {}{} µs)",
            inside.median / root.median,
            if extra >= 0.0 { "+" } else { "" },
            num(extra * 1e6)
        ),
        target: format!("Δ ≤ {} µs", num(NS_EXTRA_TARGET * 1e6)),
        met: yes_no(extra <= NS_EXTRA_TARGET),
    }
}

/// One `ls -lR ns/` with the namespaces up, so that the daemon's peak memory (row 7) includes a
/// walk of every namespace: timed as a note. A namespace of the host that ends during the walk
/// makes `ls` complain; that fails nothing.
fn walk_ns(bench: &Bench, report: &mut Report) {
    let ns_dir = bench.at("ns");
    match time_cmd("ls", &[Path::new("-lR"), &ns_dir]) {
        Ok(secs) => report.note(format!(
            "rows 12, 13: one `ls -lR ns/` took {}",
            Unit::Secs.one(secs)
        )),
        Err(e) => report.note(format!(
            "rows 12, 13: `ls -lR ns/` failed (a namespace of the host changed under it?): {}",
            e.0.lines().next().unwrap_or_default()
        )),
    }
}
