//! Behaviour shmfs(5) documents beyond docs/design.md §1: `attached`, `index`,
//! `index.json`, and that reading a segment's `data` allocates nothing.

mod common;

use std::fs;
use std::io::Read;

use common::*;

#[test]
fn attached_lists_the_attaching_process() {
    require_fuse!();
    let m = Mount::new();
    let seg = SysvSeg::keyed(8192, 0o600);
    let me = std::process::id().to_string();
    let att = seg.attach();
    let text = read_text(&m.sysv(seg.id, "attached"));
    let line = text
        .lines()
        .find(|l| l.split(' ').next() == Some(me.as_str()))
        .unwrap_or_else(|| panic!("`cat attached` does not list the test (pid {me}): {text:?}"));
    let cols: Vec<&str> = line.splitn(4, ' ').collect();
    assert_eq!(cols.len(), 4, "`PID PLACE ACCESS COMM` line: {line:?}");
    let (start, end) = cols[1]
        .split_once('-')
        .unwrap_or_else(|| panic!("PLACE is not START-END: {line:?}"));
    assert!(
        u64::from_str_radix(start, 16).is_ok() && u64::from_str_radix(end, 16).is_ok(),
        "PLACE is not hex START-END: {line:?}"
    );
    assert_eq!(cols[2], "rw", "ACCESS of a read-write shmat: {line:?}");

    drop(att);
    let text = read_text(&m.sysv(seg.id, "attached"));
    assert!(
        !text
            .lines()
            .any(|l| l.split(' ').next() == Some(me.as_str())),
        "`attached` still lists the test after shmdt: {text:?}"
    );
}

#[test]
fn index_lists_segments_and_objects() {
    require_fuse!();
    let m = Mount::new();
    let seg = SysvSeg::keyed(4096, 0o640);
    create_posix(m.shm_dir(), "indexed", 0o600, b"abc");
    let index = read_text(&m.p("index"));
    let cols = |l: &str| l.split_whitespace().map(String::from).collect::<Vec<_>>();
    assert!(
        index
            .lines()
            .map(cols)
            .any(|c| c.len() >= 2 && c[0] == "sysv" && c[1] == seg.id.to_string()),
        "`cat index` has no `sysv {}` line: {index}",
        seg.id
    );
    assert!(
        index
            .lines()
            .map(cols)
            .any(|c| c.len() >= 2 && c[0] == "posix" && c[1] == "indexed"),
        "`cat index` has no `posix indexed` line: {index}"
    );
    let json: String = read_text(&m.p("index.json"))
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    assert!(
        json.starts_with('[') && json.ends_with(']'),
        "index.json: {json}"
    );
    assert!(
        json.contains(&format!("\"shmid\":{},", seg.id))
            || json.contains(&format!("\"shmid\":{}}}", seg.id)),
        "index.json has no entry with shmid {}",
        seg.id
    );
    assert!(json.contains("\"name\":\"indexed\""), "index.json: {json}");
}

#[test]
fn reading_untouched_data_allocates_nothing() {
    require_fuse!();
    let m = Mount::new();
    let seg = SysvSeg::private(64 << 20, 0o600);
    let mut f = fs::File::open(m.sysv(seg.id, "data")).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0;
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        assert!(buf[..n].iter().all(|b| *b == 0));
        total += n;
    }
    assert_eq!(total, 64 << 20, "read all of data");
    assert_eq!(
        proc_sysvipc_row(seg.id).unwrap()["rss"],
        "0",
        "reading a never-touched segment through data allocated pages"
    );
    drop(f);
    assert_eq!(
        seg.stat().shm_nattch,
        0,
        "data closed but segment still attached"
    );
}
