//! The data rows (1 to 3): reading and writing the big objects' `data` through the mount,
//! against the same bytes read or written directly on tmpfs.

use std::path::Path;

use crate::config::{Config, MIB};
use crate::error::Result;
use crate::measure::{compare, dd, time_cmd};
use crate::report::{Report, Row, Target, Unit};
use crate::setup::{Bench, BigObjects};

/// How a row reads a file from start to end.
#[derive(Clone, Copy)]
enum Reader {
    Dd,
    Cat,
}

impl Reader {
    /// The reader in words, for the label.
    fn name(self) -> &'static str {
        match self {
            Reader::Dd => "dd bs=1M",
            Reader::Cat => "cat",
        }
    }

    /// Reads all `bytes` of `path` into /dev/null; returns bytes per second.
    fn read(self, path: &Path, bytes: u64) -> Result<f64> {
        match self {
            Reader::Dd => dd(
                &[
                    format!("if={}", path.display()),
                    "of=/dev/null".into(),
                    "bs=1M".into(),
                ],
                bytes,
            ),
            Reader::Cat => Ok(bytes as f64 / time_cmd("cat", &[path])?),
        }
    }
}

/// `dd if=/dev/zero of=PATH bs=1M count=N conv=notrunc`; returns bytes per second.
fn dd_write(path: &Path, mib: u64) -> Result<f64> {
    dd(
        &[
            "if=/dev/zero".into(),
            format!("of={}", path.display()),
            "bs=1M".into(),
            format!("count={mib}"),
            "conv=notrunc".into(),
        ],
        mib * MIB,
    )
}

/// One data row: `op` (which returns bytes per second) on a path under the mount and on its
/// reference path, `runs` times each.
fn data_row(
    cfg: &Config,
    report: &mut Report,
    label: String,
    target: f64,
    (via, direct): (&Path, &Path),
    op: impl Fn(&Path) -> Result<f64>,
) -> Result<()> {
    let (s, r) = compare(cfg.runs, || op(via), || op(direct))?;
    let target = Target::RatioAtLeast(target);
    report.add(Row::compare(label, Unit::Rate, s, r, target));
    Ok(())
}

/// Row 1: sequential read of the POSIX object's `data` vs the same file in the shm dir.
pub fn row_read_posix(
    cfg: &Config,
    bench: &Bench,
    big: &BigObjects,
    report: &mut Report,
) -> Result<()> {
    let paths = (&*big.posix_data(bench), &*big.posix_direct(bench));
    for how in [Reader::Dd, Reader::Cat] {
        let label = format!("1 read POSIX {}, {}", cfg.data_size(), how.name());
        data_row(cfg, report, label, 0.9, paths, |p| {
            how.read(p, cfg.data_bytes)
        })?;
    }
    Ok(())
}

/// Row 2: sequential read of the SysV segment's `data` vs a tmpfs file of the same size.
pub fn row_read_sysv(
    cfg: &Config,
    bench: &Bench,
    big: &BigObjects,
    report: &mut Report,
) -> Result<()> {
    let paths = (&*big.sysv_data(bench), &*big.reference);
    for how in [Reader::Dd, Reader::Cat] {
        let label = format!("2 read SysV {}, {}", cfg.data_size(), how.name());
        data_row(cfg, report, label, 0.9, paths, |p| {
            how.read(p, cfg.data_bytes)
        })?;
    }
    Ok(())
}

/// Row 3: `dd conv=notrunc` writes to the SysV `data` (reference: the tmpfs file) and to the
/// POSIX `data` (reference: the object's file itself).
pub fn row_write(cfg: &Config, bench: &Bench, big: &BigObjects, report: &mut Report) -> Result<()> {
    let write = |p: &Path| dd_write(p, cfg.data_mib());
    let size = cfg.data_size();
    let sysv = (&*big.sysv_data(bench), &*big.reference);
    data_row(
        cfg,
        report,
        format!("3 write SysV {size}, dd bs=1M"),
        0.8,
        sysv,
        write,
    )?;
    let posix = (&*big.posix_data(bench), &*big.posix_direct(bench));
    data_row(
        cfg,
        report,
        format!("3 write POSIX {size}, dd bs=1M"),
        0.8,
        posix,
        write,
    )?;
    Ok(())
}
