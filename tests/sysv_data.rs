//! System V `data`: a fixed-size, block-device-like view of the segment's bytes.

mod common;

use std::fs;
use std::os::unix::fs::FileExt;

use common::*;

/// Not a multiple of the page size, so "the end" is shm_segsz, not the page-rounded size.
const SEGSZ: usize = 10000;

fn seg_with_pattern(seed: u8) -> (SysvSeg, Attachment, Vec<u8>) {
    let seg = SysvSeg::private(SEGSZ, 0o600);
    let att = seg.attach();
    let pat = pattern(SEGSZ, seed);
    att.write(0, &pat);
    (seg, att, pat)
}

#[test]
fn reads_return_the_bytes_at_any_offset() {
    require_fuse!();
    let m = Mount::new();
    let (seg, _att, pat) = seg_with_pattern(1);
    let data = m.sysv(seg.id, "data");

    let all = fs::read(&data).expect("read whole data");
    assert_eq!(all.len(), SEGSZ, "data must be exactly shm_segsz bytes");
    assert!(all == pat, "data differs from the bytes written via shmat");

    let f = fs::File::open(&data).unwrap();
    for (off, len) in [
        (0, 1),
        (1, 7),
        (4095, 3),
        (4094, 4),
        (8191, 2),
        (5000, 5000),
        (9990, 10),
        (9999, 1),
    ] {
        let mut buf = vec![0u8; len];
        f.read_exact_at(&mut buf, off as u64)
            .unwrap_or_else(|e| panic!("pread({len} bytes at {off}): {e}"));
        assert!(
            buf == pat[off..off + len],
            "pread({len} bytes at {off}) returned other bytes"
        );
    }

    let out = sh(&format!(
        "dd if={} bs=1 skip=1234 count=100 status=none",
        q(&data)
    ));
    assert!(out.ok(), "dd skip=1234: {out:?}");
    assert!(out.stdout == pat[1234..1334], "dd bs=1 skip=1234 count=100");
    let out = sh(&format!("dd if={} bs=4096 skip=1 status=none", q(&data)));
    assert!(out.ok(), "dd bs=4096 skip=1: {out:?}");
    assert_eq!(out.stdout.len(), SEGSZ - 4096, "dd bs=4096 skip=1 length");
    assert!(out.stdout == pat[4096..], "dd bs=4096 skip=1 bytes");
}

#[test]
fn reads_see_changes_made_meanwhile() {
    require_fuse!();
    let m = Mount::new();
    let (seg, att, _pat) = seg_with_pattern(2);
    let data = m.sysv(seg.id, "data");
    let f = fs::File::open(&data).unwrap();
    let mut buf = [0u8; 6];
    f.read_exact_at(&mut buf, 100).unwrap();
    fs::read(&data).unwrap();

    att.write(100, b"fresh!");
    f.read_exact_at(&mut buf, 100).unwrap();
    assert_eq!(&buf, b"fresh!", "an open data fd returned stale bytes");
    let again = fs::read(&data).unwrap();
    assert_eq!(
        &again[100..106],
        b"fresh!",
        "a new read of data returned stale bytes"
    );
}

#[test]
fn cat_cmp_and_cp_give_exactly_segsz_bytes() {
    require_fuse!();
    let m = Mount::new();
    let (seg, _att, pat) = seg_with_pattern(3);
    let tmp = tempfile::tempdir().unwrap();
    let expected = tmp.path().join("expected");
    fs::write(&expected, &pat).unwrap();
    let data = m.sysv(seg.id, "data");

    let r = sh(&format!("cat {} | cmp - {}", q(&data), q(&expected)));
    assert!(
        r.ok(),
        "`cat data | cmp - expected` reports a difference: {r:?}"
    );

    let copy = tmp.path().join("x");
    sh_ok(&format!("cp {} {}", q(&data), q(&copy)));
    let copied = fs::read(&copy).unwrap();
    assert_eq!(
        copied.len(),
        SEGSZ,
        "`cp data x` copied {} bytes",
        copied.len()
    );
    assert!(copied == pat, "`cp data x` copied other bytes");
}

#[test]
fn hexdump_shows_the_bytes() {
    require_fuse!();
    let m = Mount::new();
    let seg = SysvSeg::private(4096, 0o600);
    let att = seg.attach();
    att.write(0, b"shmfs-hexdump-ok, second line...");
    let tmp = tempfile::tempdir().unwrap();
    let expected = tmp.path().join("expected");
    fs::write(&expected, att.all()).unwrap();
    let ours = sh_ok(&format!("hexdump -C {} | head", q(m.sysv(seg.id, "data"))));
    let want = sh_ok(&format!("hexdump -C {} | head", q(&expected)));
    assert_eq!(ours, want, "`hexdump -C data | head`");
    assert!(ours.starts_with("00000000  73 68 6d 66 73 2d"), "{ours}");
}

#[test]
fn writes_through_data_are_seen_by_attachment() {
    require_fuse!();
    let m = Mount::new();
    let seg = SysvSeg::private(SEGSZ, 0o600);
    let att = seg.attach();
    let data = m.sysv(seg.id, "data");

    sh_ok(&format!(
        "printf hello | dd of={} conv=notrunc status=none",
        q(&data)
    ));
    assert_eq!(
        att.read(0, 5),
        b"hello",
        "after `printf hello | dd of=data`"
    );

    sh_ok(&format!(
        "printf world | dd of={} bs=1 seek=5000 conv=notrunc status=none",
        q(&data)
    ));
    assert_eq!(att.read(5000, 5), b"world", "after `dd seek=5000`");

    let f = fs::OpenOptions::new().write(true).open(&data).unwrap();
    assert_eq!(
        f.write_at(b"cross", 4094).unwrap(),
        5,
        "pwrite across a page boundary"
    );
    assert_eq!(att.read(4094, 5), b"cross");
    assert_eq!(
        f.write_at(b"last", 9996).unwrap(),
        4,
        "pwrite of the last 4 bytes"
    );
    assert_eq!(att.read(9996, 4), b"last");

    let all = att.all();
    let untouched: Vec<usize> = (0..SEGSZ)
        .filter(|&i| !(0..5).contains(&i))
        .filter(|&i| !(4094..4099).contains(&i))
        .filter(|&i| !(5000..5005).contains(&i))
        .filter(|&i| !(9996..10000).contains(&i))
        .collect();
    assert!(
        untouched.iter().all(|&i| all[i] == 0),
        "writes through data changed bytes they did not cover"
    );
}

#[test]
fn read_past_end_returns_zero_bytes() {
    require_fuse!();
    let m = Mount::new();
    let (seg, _att, pat) = seg_with_pattern(4);
    let f = fs::File::open(m.sysv(seg.id, "data")).unwrap();
    let mut buf = [0u8; 10];
    assert_eq!(f.read_at(&mut buf, SEGSZ as u64).unwrap(), 0, "read at end");
    assert_eq!(
        f.read_at(&mut buf, SEGSZ as u64 + 4096).unwrap(),
        0,
        "read past end"
    );
    assert_eq!(
        f.read_at(&mut buf, SEGSZ as u64 - 2).unwrap(),
        2,
        "read crossing the end returns what is left"
    );
    assert_eq!(&buf[..2], &pat[SEGSZ - 2..]);
    let out = sh(&format!(
        "dd if={} bs=1 skip={SEGSZ} status=none | wc -c",
        q(m.sysv(seg.id, "data"))
    ));
    assert_eq!(out.stdout_str().trim(), "0", "dd skip=SEGSZ: {out:?}");
}

#[test]
fn write_crossing_end_returns_short_count() {
    require_fuse!();
    let m = Mount::new();
    let (seg, att, pat) = seg_with_pattern(5);
    let f = fs::OpenOptions::new()
        .write(true)
        .open(m.sysv(seg.id, "data"))
        .unwrap();
    let n = f
        .write_at(b"abcdef", SEGSZ as u64 - 3)
        .expect("write crossing the end");
    assert_eq!(n, 3, "write of 6 bytes at segsz-3 should write 3");
    assert_eq!(att.read(SEGSZ - 3, 3), b"abc");
    assert!(att.read(0, SEGSZ - 3) == pat[..SEGSZ - 3]);
    assert_eq!(seg.stat().shm_segsz, SEGSZ, "segment size changed");
}

#[test]
fn write_at_or_after_end_fails_enospc() {
    require_fuse!();
    let m = Mount::new();
    let (seg, att, pat) = seg_with_pattern(6);
    let data = m.sysv(seg.id, "data");
    let f = fs::OpenOptions::new().write(true).open(&data).unwrap();
    assert_errno(
        f.write_at(b"x", SEGSZ as u64),
        libc::ENOSPC,
        "pwrite at the end of data",
    );
    assert_errno(
        f.write_at(b"x", SEGSZ as u64 + 8192),
        libc::ENOSPC,
        "pwrite past the end of data",
    );
    let r = sh(&format!(
        "printf x | dd of={} bs=1 seek={SEGSZ} conv=notrunc status=none",
        q(&data)
    ));
    assert!(
        !r.ok() && r.stderr.contains("No space left on device"),
        "dd seek=SEGSZ: {r:?}"
    );
    assert!(att.all() == pat, "segment bytes changed");
    assert_eq!(fs::metadata(&data).unwrap().len(), SEGSZ as u64);
}

#[test]
fn truncate_to_zero_or_current_size_changes_nothing() {
    require_fuse!();
    let m = Mount::new();
    let (seg, att, pat) = seg_with_pattern(7);
    let data = m.sysv(seg.id, "data");
    for size in [0, SEGSZ] {
        let r = sh(&format!("truncate -s {size} {}", q(&data)));
        assert!(r.ok(), "`truncate -s {size} data` should succeed: {r:?}");
        assert!(att.all() == pat, "`truncate -s {size}` changed the bytes");
        assert_eq!(seg.stat().shm_segsz, SEGSZ);
        assert_eq!(
            fs::metadata(&data).unwrap().len(),
            SEGSZ as u64,
            "size of data after `truncate -s {size}`"
        );
    }
    // O_TRUNC on open is accepted too
    let f = fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&data)
        .expect("open data with O_TRUNC");
    drop(f);
    assert!(att.all() == pat, "O_TRUNC changed the bytes");
}

#[test]
fn truncate_to_other_sizes_fails_einval() {
    require_fuse!();
    let m = Mount::new();
    let (seg, att, pat) = seg_with_pattern(8);
    let data = m.sysv(seg.id, "data");
    for size in [1, 100, SEGSZ - 1, SEGSZ + 1, 1 << 20] {
        assert_errno(
            truncate(&data, size as i64),
            libc::EINVAL,
            &format!("truncate(data, {size})"),
        );
        let r = sh(&format!("truncate -s {size} {}", q(&data)));
        assert!(
            !r.ok() && r.stderr.contains("Invalid argument"),
            "`truncate -s {size} data`: {r:?}"
        );
    }
    let f = fs::OpenOptions::new().write(true).open(&data).unwrap();
    assert_errno(f.set_len(4096), libc::EINVAL, "ftruncate(data, 4096)");
    assert!(att.all() == pat, "a refused truncate changed the bytes");
    assert_eq!(seg.stat().shm_segsz, SEGSZ);
}

#[test]
fn echo_redirect_overwrites_first_bytes() {
    require_fuse!();
    let m = Mount::new();
    let (seg, att, pat) = seg_with_pattern(9);
    let data = m.sysv(seg.id, "data");
    let r = sh(&format!("echo hi > {}", q(&data)));
    assert!(r.ok(), "`echo hi > data` should succeed: {r:?}");
    let all = att.all();
    assert_eq!(&all[..3], b"hi\n", "first bytes after `echo hi > data`");
    assert!(
        all[3..] == pat[3..],
        "`echo hi > data` changed bytes after the 3rd"
    );
    assert_eq!(fs::metadata(&data).unwrap().len(), SEGSZ as u64);
}

#[test]
fn open_data_keeps_referring_to_removed_segment() {
    require_fuse!();
    let m = Mount::new();
    let (mut seg, att, pat) = seg_with_pattern(10);
    let f = fs::File::open(m.sysv(seg.id, "data")).unwrap();
    drop(att);
    seg.remove(); // not attached any more: the shmid is gone at once
    let mut buf = vec![0u8; 64];
    f.read_exact_at(&mut buf, 1000)
        .expect("read from data opened before the segment was removed");
    assert!(
        buf == pat[1000..1064],
        "data opened before removal returned other bytes"
    );
}
