//! The man pages: `man/shmfs.1` (the command) and `man/shmfs.5` (the files) render without a
//! warning, `shmfs --man` and `shmfs --man 5` print them as they are, and they hold the
//! reference: every long option `shmfs --help` lists, and every field name of the `stat` files
//! of a real mount (a System V segment's and a POSIX object's).

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;

const TIMEOUT: Duration = Duration::from_secs(30);

fn page_path(section: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("man/shmfs.{section}"))
}

/// `man --warnings -l PAGE` as most people read it: UTF-8, 80 columns, no hyphenation (so
/// that names can be searched in the text). Returns the text; fails on any warning.
fn render(section: &str) -> String {
    let page = page_path(section);
    let r = run_with_timeout(
        Command::new("env")
            .args(["LC_ALL=C.UTF-8", "man", "--warnings", "-l"])
            .arg(&page)
            .env("MANWIDTH", "80")
            .env("MANROFFOPT", "-rHY=0")
            .env("MANPAGER", "cat")
            .env("PAGER", "cat"),
        TIMEOUT,
    );
    assert!(r.ok(), "man -l {}: {r:?}", page.display());
    assert!(
        r.stderr.trim().is_empty(),
        "man --warnings -l {} complained:\n{}",
        page.display(),
        r.stderr
    );
    r.stdout_str()
}

/// Whether `word` appears in `text` as a whole word (not inside a longer name).
fn has_word(text: &str, word: &str) -> bool {
    let is_name = |c: char| c.is_alphanumeric() || c == '_' || c == '-';
    text.match_indices(word).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + word.len()..].chars().next();
        !before.is_some_and(is_name) && !after.is_some_and(is_name)
    })
}

#[test]
fn the_man_option_prints_the_pages_as_they_are() {
    for (args, section) in [
        (&["--man"][..], "1"),
        (&["--man", "1"], "1"),
        (&["--man", "5"], "5"),
    ] {
        let r = run_with_timeout(Command::new(BIN).args(args), TIMEOUT);
        assert!(r.ok(), "shmfs {args:?}: {r:?}");
        assert_eq!(
            r.stdout,
            std::fs::read(page_path(section)).unwrap(),
            "shmfs {args:?} prints man/shmfs.{section}"
        );
    }
    let r = run_with_timeout(Command::new(BIN).args(["--man", "7"]), TIMEOUT);
    assert_eq!(r.status.code(), Some(2), "shmfs --man 7: {r:?}");
}

#[test]
fn both_pages_render_without_warnings_and_hold_their_sections() {
    require_tools!("man" => "Debian package man-db");
    let one = render("1");
    for heading in [
        "NAME",
        "SYNOPSIS",
        "DESCRIPTION",
        "OPTIONS",
        "MOUNT OPTIONS",
        "USAGE",
        "LOGGING",
        "EXIT STATUS",
        "ENVIRONMENT",
        "FILES",
        "EXAMPLES",
        "SEE ALSO",
    ] {
        assert!(
            one.lines().any(|l| l == heading),
            "shmfs(1) has no section {heading}"
        );
    }
    for needle in [
        "mount -t fuse.shmfs",
        "fuse.shmfs  allow_other,nofail",
        "mnt-shmfs.mount",
        "shmfs.service",
        "RUST_LOG",
        "journalctl -t shmfs",
        "metrics=totals",
        "--no-sandbox",
    ] {
        assert!(one.contains(needle), "shmfs(1) does not mention {needle:?}");
    }
    let five = render("5");
    for heading in [
        "STAT",
        "PERM",
        "DATA",
        "ATTACHED",
        "LIMITS",
        "INDEX",
        "INDEX.JSON",
        "BY-KEY",
        "CREATING AND REMOVING",
        "ATTRIBUTES",
        "FRESHNESS",
        "WHAT TOUCHES A SEGMENT",
        "WHO MAY DO WHAT",
    ] {
        assert!(
            five.lines().any(|l| l == heading),
            "shmfs(5) has no section {heading}"
        );
    }
    assert!(five.contains("metrics.prom"), "shmfs(5) names metrics.prom");
}

/// The long options as `shmfs --help` lists them.
fn long_options() -> BTreeSet<String> {
    let r = run_with_timeout(Command::new(BIN).arg("--help"), TIMEOUT);
    assert!(r.ok(), "shmfs --help: {r:?}");
    let help = r.stdout_str();
    let options: BTreeSet<String> = help
        .lines()
        .map(str::trim_start)
        .filter(|l| l.starts_with('-'))
        .flat_map(|l| l.split([' ', ',', '=', '<', '[']))
        .filter(|w| w.starts_with("--") && w.len() > 2)
        .map(String::from)
        .collect();
    assert!(
        options.len() >= 8,
        "too few long options found in --help: {options:?}\n{help}"
    );
    options
}

#[test]
fn every_option_and_every_stat_field_is_in_the_pages() {
    require_fuse!();
    require_tools!("man" => "Debian package man-db");
    let one = render("1");
    let missing: Vec<String> = long_options()
        .into_iter()
        .filter(|o| !has_word(&one, o))
        .collect();
    assert!(missing.is_empty(), "shmfs(1) lacks the options {missing:?}");

    let m = Mount::new();
    let seg = SysvSeg::private(4096, 0o600);
    create_posix(m.shm_dir(), "man-page", 0o600, b"x");
    let five = render("5");
    let stat_section = five
        .split("\nSTAT\n")
        .nth(1)
        .and_then(|s| s.split("\nPERM\n").next())
        .expect("shmfs(5) has a STAT section followed by PERM");
    for stat in [m.sysv(seg.id, "stat"), m.posix("man-page", "stat")] {
        let fields = read_fields(&stat);
        let names = fields.names();
        assert!(names.len() >= 9, "{}: {names:?}", stat.display());
        let missing: Vec<&str> = names
            .into_iter()
            .filter(|n| !has_word(stat_section, n))
            .collect();
        assert!(
            missing.is_empty(),
            "the STAT section of shmfs(5) lacks the fields {missing:?} of {}",
            stat.display()
        );
    }
}
