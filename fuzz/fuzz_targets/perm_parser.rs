//! Fuzzes the parser of what is written to `perm`: `shmfs::render::text::parse_perm`.
//!
//! Run from the repository root (nightly toolchain, `cargo install cargo-fuzz`):
//! `cargo +nightly fuzz run perm_parser -- -max_total_time=60`
//!
//! Whatever the bytes, the parser must not panic, and whatever it accepts must be a real change
//! within range (a mode of at most 07777, since POSIX objects keep the special bits and a
//! segment refuses them after parsing; ids other than u32::MAX, which the kernel takes as "no
//! change") that parses back the same once rendered as `perm` shows it.

#![no_main]

use libfuzzer_sys::fuzz_target;
use shmfs::render::text::{MAX_PERM_WRITE, PermChange, parse_perm, perm};

fn unknown(_: &str) -> Option<u32> {
    None
}

/// One known user and one known group, as a system's name service would answer.
fn user(name: &str) -> Option<u32> {
    (name == "alice").then_some(1000)
}

fn group(name: &str) -> Option<u32> {
    (name == "staff").then_some(50)
}

/// Every name resolves, to a fixed id.
fn any_name(_: &str) -> Option<u32> {
    Some(4242)
}

fn check(data: &[u8], change: PermChange) {
    assert!(
        data.len() <= MAX_PERM_WRITE,
        "accepted {} bytes",
        data.len()
    );
    assert_ne!(
        change,
        PermChange::default(),
        "accepted {data:?} as no change"
    );
    if let Some(mode) = change.mode {
        assert!(mode <= 0o7777, "mode {mode:o} from {data:?}");
    }
    assert_ne!(change.uid, Some(u32::MAX), "uid -1 from {data:?}");
    assert_ne!(change.gid, Some(u32::MAX), "gid -1 from {data:?}");
    assert_ne!(change.qbytes, Some(0), "qbytes 0 from {data:?}");
    // Rendered as `perm` reads, the accepted values parse back to themselves.
    let (mode, uid, gid) = (
        change.mode.unwrap_or(0o600),
        change.uid.unwrap_or(1),
        change.gid.unwrap_or(2),
    );
    let again = parse_perm(perm(mode, uid, gid).as_bytes(), &unknown, &unknown);
    assert_eq!(
        again,
        Ok(PermChange {
            mode: Some(mode),
            uid: Some(uid),
            gid: Some(gid),
            qbytes: None,
        })
    );
}

fuzz_target!(|data: &[u8]| {
    let without_names = parse_perm(data, &unknown, &unknown);
    if let Ok(change) = without_names {
        check(data, change);
    }
    if let Ok(change) = parse_perm(data, &user, &group) {
        check(data, change);
    }
    if let Ok(change) = parse_perm(data, &any_name, &any_name) {
        check(data, change);
    }
    // Knowing more names never turns an accepted write into a refused one.
    if without_names.is_ok() {
        assert_eq!(without_names, parse_perm(data, &any_name, &any_name));
    }
});
