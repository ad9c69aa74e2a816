//! The metrics row (11): `cat metrics.prom` against `cat index`, the same listing in
//! Prometheus form.

use std::fs;
use std::path::Path;

use crate::config::Config;
use crate::error::{Result, finding};
use crate::measure::{compare, time_cmd};
use crate::report::{Report, Row, Target, Unit};
use crate::setup::Bench;

/// Row 11: `cat metrics.prom` against `cat index` over all the segments (the target: within 3×):
/// the same listing, eight series a segment instead of one row.
pub fn row_metrics(cfg: &Config, bench: &Bench, report: &mut Report) -> Result<()> {
    let (metrics, index) = (bench.at("metrics.prom"), bench.at("index"));
    check_metrics_count(&metrics, bench.segments.len());
    let (s, r) = compare(
        cfg.runs,
        || time_cmd("cat", &[&metrics]),
        || time_cmd("cat", &[&index]),
    )?;
    report.add(Row::compare(
        format!(
            "11 `cat metrics.prom` vs `cat index`, {} segments",
            bench.segments.len()
        ),
        Unit::Secs,
        s,
        r,
        Target::RatioAtMost(3.0),
    ));
    Ok(())
}

/// Notes a finding unless `metrics.prom` has one size series for each of `want` segments of
/// the mount's own namespace (those of other namespaces carry a first label `namespace="N"`).
fn check_metrics_count(path: &Path, want: usize) {
    match fs::read_to_string(path) {
        Ok(text) => {
            let got = text
                .lines()
                .filter_map(|l| l.strip_prefix("shmfs_sysv_segment_size_bytes{"))
                .filter(|labels| !labels.starts_with("namespace="))
                .count();
            if got != want {
                finding(format!(
                    "{} has {got} segments' sizes, but {want} segments exist",
                    path.display()
                ));
            }
        }
        Err(e) => finding(format!("read {}: {e}", path.display())),
    }
}
