//! The walks (rows 9 and 10): `grep`, `du`, `ls -lR`, `find` and `tar` over the mount with a
//! quarter of the segments and with all of them, and `grep` over every `stat` against `ipcs -m`.
//! The walks of the whole mount leave out `ns/`: it shows every IPC namespace of the host, the
//! bench's own a second time and others' that change under the walk (a segment removed between
//! listing and `stat` fails `ls`).

use std::path::Path;
use std::process::{Command, Stdio};

use crate::config::Config;
use crate::error::{Result, finding};
use crate::measure::{sample, time_cmd};
use crate::report::{Report, Row, Stats, Target, Unit};
use crate::setup::{Bench, create_segments};

/// The tools that walk the mount (rows 9 and 10), as a shell runs them: `$1` is the mount point.
/// `ls -I ns` and `find -prune` leave out `ns/` (see the module's comment).
const WALKS: [(&str, &str); 5] = [
    (
        "grep -l 'nattch: 0' sysv/*/stat",
        r#"grep -l 'nattch: 0' "$1"/sysv/*/stat | wc -l"#,
    ),
    ("du -s sysv", r#"du -s "$1/sysv""#),
    ("ls -lR -I ns MNT", r#"ls -lR -I ns "$1""#),
    (
        "find MNT -name data -size +1M",
        r#"find "$1" -path "$1/ns" -prune -o -name data -size +1M -print"#,
    ),
    (
        "tar -cf /dev/null -C MNT sysv",
        r#"tar -cf /dev/null -C "$1" sysv"#,
    ),
];

/// Rows 9 and 10: each walk with a quarter of the segments and with all of them (1,000 and
/// 4,000 in a full run): the ratio shows whether the cost per segment stays flat (4× the
/// segments, at most 4.5× the time). Then `grep` over every `stat` against `ipcs -m`, which
/// prints the same facts. Leaves `cfg.segments` segments in place.
pub fn row_walks(cfg: &Config, bench: &mut Bench, report: &mut Report) -> Result<()> {
    let mnt = bench.mount.path().to_path_buf();
    let walk = |script: &str| -> Result<f64> {
        time_cmd(
            "sh",
            &[Path::new("-c"), Path::new(script), Path::new("sh"), &mnt],
        )
    };
    let measure = |bench: &mut Bench, n: usize| -> Result<(Vec<Stats>, Stats)> {
        create_segments(bench, n)?;
        check_grep_count(&mnt, bench.segments.len());
        eprintln!("shmfs bench: walks over {n} segments");
        let walks = WALKS
            .iter()
            .map(|(_, script)| sample(cfg.runs, || walk(script)))
            .collect::<Result<Vec<Stats>>>()?;
        let ipcs = sample(cfg.runs, || time_cmd("ipcs", &["-m"]))?;
        Ok((walks, ipcs))
    };
    let (few, many) = (cfg.segments / 4, cfg.segments);
    let (at_few, _) = measure(bench, few)?;
    let (at_many, ipcs) = measure(bench, many)?;
    for (((label, _), a), b) in WALKS.iter().zip(&at_few).zip(&at_many) {
        report.add(Row::compare(
            format!("9 `{label}`, {many} vs {few} segments"),
            Unit::Secs,
            *b,
            *a,
            Target::RatioAtMost(4.5),
        ));
    }
    report.add(Row::compare(
        format!("10 `{}` vs `ipcs -m`, {many} segments", WALKS[0].0),
        Unit::Secs,
        at_many[0],
        ipcs,
        Target::RatioAtMost(10.0),
    ));
    Ok(())
}

/// Notes a finding unless `grep -l 'nattch: 0'` over every `stat` names all `want` segments
/// (none of the bench's segments is attached).
fn check_grep_count(mnt: &Path, want: usize) {
    let out = Command::new("sh")
        .args(["-c", WALKS[0].1, "sh"])
        .arg(mnt)
        .env("LC_ALL", "C")
        .stderr(Stdio::null())
        .output();
    match out {
        Ok(o) if String::from_utf8_lossy(&o.stdout).trim() == want.to_string() => {}
        Ok(o) => finding(format!(
            "`{}` counted {:?}, but {want} unattached segments exist",
            WALKS[0].0,
            String::from_utf8_lossy(&o.stdout).trim()
        )),
        Err(e) => finding(format!("running `{}`: {e}", WALKS[0].0)),
    }
}
