//! The table: statistics of the samples ([`Stats`]), numbers in words ([`Unit`]), what a row
//! must reach ([`Target`]), the rows and notes collected ([`Report`]) and printing them.

use crate::error::FINDINGS;

/// One kibibyte.
pub const KIB: u64 = 1 << 10;
/// One mebibyte.
pub const MIB: u64 = 1 << 20;
/// One gibibyte.
pub const GIB: u64 = 1 << 30;

/// Median and spread of a few samples.
#[derive(Clone, Copy, Debug)]
pub struct Stats {
    /// The middle sample (the mean of the two middle ones for an even count).
    pub median: f64,
    /// The smallest sample.
    pub min: f64,
    /// The largest sample.
    pub max: f64,
}

impl Stats {
    /// Median, min and max of `samples` (at least one).
    pub fn of(samples: &[f64]) -> Stats {
        assert!(!samples.is_empty(), "Stats of no samples");
        let mut s = samples.to_vec();
        s.sort_by(f64::total_cmp);
        let n = s.len();
        let median = if n % 2 == 1 {
            s[n / 2]
        } else {
            (s[n / 2 - 1] + s[n / 2]) / 2.0
        };
        Stats {
            median,
            min: s[0],
            max: s[n - 1],
        }
    }
}

/// What a sample measures, for printing.
#[derive(Clone, Copy)]
pub enum Unit {
    /// Seconds per operation.
    Secs,
    /// Bytes per second.
    Rate,
    /// Bytes.
    Bytes,
}

impl Unit {
    /// Divisor and suffix that suit `v`.
    fn scale(self, v: f64) -> (f64, &'static str) {
        let v = v.abs();
        match self {
            Unit::Secs if v >= 1.0 => (1.0, "s"),
            Unit::Secs if v >= 1e-3 => (1e-3, "ms"),
            Unit::Secs => (1e-6, "µs"),
            Unit::Rate if v >= 1e9 => (1e9, "GB/s"),
            Unit::Rate => (1e6, "MB/s"),
            Unit::Bytes if v >= GIB as f64 => (GIB as f64, "GiB"),
            Unit::Bytes if v >= MIB as f64 => (MIB as f64, "MiB"),
            Unit::Bytes if v >= KIB as f64 => (KIB as f64, "KiB"),
            Unit::Bytes => (1.0, "B"),
        }
    }

    /// `v` in words, with the unit that suits it (`1.5 GiB`).
    pub fn one(self, v: f64) -> String {
        let (div, suffix) = self.scale(v);
        format!("{} {suffix}", num(v / div))
    }

    /// "median unit (min–max)", all in the median's unit.
    pub fn stats(self, s: Stats) -> String {
        let (div, suffix) = self.scale(s.median);
        format!(
            "{} {suffix} ({}–{})",
            num(s.median / div),
            num(s.min / div),
            num(s.max / div)
        )
    }
}

/// Three significant digits or so.
pub fn num(x: f64) -> String {
    if x.abs() >= 100.0 || x.fract() == 0.0 {
        format!("{x:.0}")
    } else if x.abs() >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

/// What a row must reach.
#[derive(Clone, Copy)]
pub enum Target {
    /// shmfs/reference of the medians at least this (throughput rows).
    RatioAtLeast(f64),
    /// shmfs/reference of the medians at most this (time rows).
    RatioAtMost(f64),
}

impl Target {
    /// The target in words (`≥ 0.9`).
    fn text(self) -> String {
        match self {
            Target::RatioAtLeast(t) => format!("≥ {t}"),
            Target::RatioAtMost(t) => format!("≤ {t}"),
        }
    }

    /// Whether `ratio` reaches the target.
    fn met(self, ratio: f64) -> bool {
        match self {
            Target::RatioAtLeast(t) => ratio >= t,
            Target::RatioAtMost(t) => ratio <= t,
        }
    }
}

/// One line of the table, already in words.
pub struct Row {
    /// The row's number and what it measures; the number sets its place in the table.
    pub label: String,
    /// What shmfs did.
    pub shmfs: String,
    /// What the reference did.
    pub reference: String,
    /// Usually shmfs / reference of the medians.
    pub ratio: String,
    /// What the row must reach.
    pub target: String,
    /// `yes`, `NO`, or `-` for a row that only informs.
    pub met: &'static str,
}

impl Row {
    /// A row that compares shmfs with its reference: ratio of the medians against `target`.
    pub fn compare(
        label: String,
        unit: Unit,
        shmfs: Stats,
        reference: Stats,
        target: Target,
    ) -> Row {
        let ratio = shmfs.median / reference.median;
        Row {
            label,
            shmfs: unit.stats(shmfs),
            reference: unit.stats(reference),
            ratio: format!("{ratio:.2}"),
            target: target.text(),
            met: yes_no(target.met(ratio)),
        }
    }
}

/// `yes` or `NO`, for the `met` column.
pub fn yes_no(ok: bool) -> &'static str {
    if ok { "yes" } else { "NO" }
}

/// The rows and notes collected so far; printed at the end even if a step failed.
#[derive(Default)]
pub struct Report {
    /// The rows, in the order they were measured.
    pub rows: Vec<Row>,
    /// Lines printed after the table.
    notes: Vec<String>,
}

impl Report {
    /// Adds `row` (and prints it at once on stderr).
    pub fn add(&mut self, row: Row) {
        eprintln!(
            "shmfs bench: {}: shmfs {} | reference {} | ratio {}",
            row.label, row.shmfs, row.reference, row.ratio
        );
        self.rows.push(row);
    }

    /// Adds a note for after the table (and prints it at once on stderr).
    pub fn note(&mut self, note: String) {
        eprintln!("shmfs bench: {note}");
        self.notes.push(note);
    }

    /// Prints the table on stdout under `title` (what was measured, from the configuration),
    /// rows in their numbered order, then the notes and findings.
    pub fn print(&self, title: &str) {
        let header = Row {
            label: "row".into(),
            shmfs: "shmfs: median (min–max)".into(),
            reference: "reference: median (min–max)".into(),
            ratio: "ratio".into(),
            target: "target".into(),
            met: "met",
        };
        let cells = |r: &Row| {
            [
                r.label.clone(),
                r.shmfs.clone(),
                r.reference.clone(),
                r.ratio.clone(),
                r.target.clone(),
                r.met.to_string(),
            ]
        };
        // Rows in their numbered order (they are measured in another); the sort is stable.
        let mut rows: Vec<&Row> = self.rows.iter().collect();
        rows.sort_by_key(|r| {
            r.label
                .split(' ')
                .next()
                .and_then(|n| n.parse::<u32>().ok())
        });
        let lines: Vec<[String; 6]> = std::iter::once(&header).chain(rows).map(cells).collect();
        let mut widths = [0usize; 6];
        for line in &lines {
            for (w, cell) in widths.iter_mut().zip(line) {
                *w = (*w).max(cell.chars().count());
            }
        }
        println!();
        println!("{title}");
        for (i, line) in lines.iter().enumerate() {
            let text: Vec<String> = line
                .iter()
                .zip(widths)
                .map(|(cell, w)| pad(cell, w))
                .collect();
            println!("{}", text.join("  ").trim_end());
            if i == 0 {
                let rule: Vec<String> = widths.iter().map(|&w| "-".repeat(w)).collect();
                println!("{}", rule.join("  "));
            }
        }
        println!();
        println!(
            "ratio = shmfs / reference of the medians: for GB/s rows higher is better, for time rows lower is better."
        );
        for note in &self.notes {
            println!("note: {note}");
        }
        let findings = FINDINGS.lock().unwrap_or_else(|e| e.into_inner());
        for f in findings.iter() {
            println!("LOOKS WRONG: {f}");
        }
    }
}

/// `s` padded with spaces to `width` characters.
fn pad(s: &str, width: usize) -> String {
    let n = s.chars().count();
    format!("{s}{}", " ".repeat(width.saturating_sub(n)))
}
