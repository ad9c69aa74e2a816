//! The text files: rendering `stat`, `perm` and `limits`, and parsing what is written to
//! `perm`. Pure functions, no system calls.

use std::fmt::Write;

use crate::kernel::posix::Object;
use crate::kernel::sysv::{Segment, Totals, Usage};

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// The `stat` file of a System V segment (docs/design.md §1).
pub fn sysv_stat(seg: &Segment, usage: Usage, hugetlb: Option<bool>) -> String {
    let mut s = String::with_capacity(320);
    // Writing to a String cannot fail.
    let _ = write!(
        s,
        "kind: sysv\nshmid: {}\nkey: 0x{:08x}\nsize: {}\nmode: 0{:03o}\nuid: {}\ngid: {}\n\
         cuid: {}\ncgid: {}\ncpid: {}\nlpid: {}\nnattch: {}\natime: {}\ndtime: {}\nctime: {}\n\
         rss: {}\nswap: {}\ndest: {}\nlocked: {}\nhugetlb: {}\n",
        seg.shmid,
        seg.key,
        seg.size,
        seg.mode,
        seg.uid,
        seg.gid,
        seg.cuid,
        seg.cgid,
        seg.cpid,
        seg.lpid,
        seg.nattch,
        seg.atime,
        seg.dtime,
        seg.ctime,
        usage.rss,
        usage.swap,
        yes_no(seg.dest),
        yes_no(seg.locked),
        hugetlb.map_or("unknown", yes_no),
    );
    s
}

/// The `stat` file of a POSIX object (docs/design.md §1). The name is shown lossily if it is not
/// UTF-8.
pub fn posix_stat(obj: &Object) -> String {
    let mut s = String::with_capacity(200);
    let _ = write!(
        s,
        "kind: posix\nname: {}\nsize: {}\nmode: 0{:03o}\nuid: {}\ngid: {}\n\
         atime: {}\nmtime: {}\nctime: {}\nrss: {}\n",
        obj.name.to_string_lossy().escape_debug(),
        obj.size,
        obj.mode,
        obj.uid,
        obj.gid,
        obj.atime,
        obj.mtime,
        obj.ctime,
        obj.allocated,
    );
    s
}

/// The `perm` file: mode, uid, gid.
pub fn perm(mode: u32, uid: u32, gid: u32) -> String {
    format!("mode: 0{mode:03o}\nuid: {uid}\ngid: {gid}\n")
}

/// System-wide limits from /proc/sys/kernel and the usage `ipcs -m -u` shows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    pub shmmax: u64,
    pub shmall: u64,
    pub shmmni: u64,
    pub shm_rmid_forced: u64,
    pub totals: Totals,
}

/// The `limits` file.
pub fn limits(l: &Limits) -> String {
    format!(
        "shmmax: {}\nshmall: {}\nshmmni: {}\nshm_rmid_forced: {}\nsegments: {}\n\
         pages_allocated: {}\npages_resident: {}\npages_swapped: {}\n",
        l.shmmax,
        l.shmall,
        l.shmmni,
        l.shm_rmid_forced,
        l.totals.segments,
        l.totals.pages_allocated,
        l.totals.pages_resident,
        l.totals.pages_swapped,
    )
}

/// A change asked for by a write to `perm`; `None` keeps the current value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PermChange {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// The most bytes a System V message queue may hold (`msg_qbytes`), from a `qbytes:`
    /// line: a message queue's `perm` shows it (see `render::ipc::msg_perm`). Parsed for any
    /// object; the filesystem refuses it for objects that are not queues.
    pub qbytes: Option<u64>,
}

/// Why a `perm` write was refused (it becomes EINVAL).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PermError(pub String);

impl std::fmt::Display for PermError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn err<T>(msg: impl Into<String>) -> Result<T, PermError> {
    Err(PermError(msg.into()))
}

/// The largest `perm` write accepted; anything longer is not a permission change.
pub const MAX_PERM_WRITE: usize = 4096;

/// An octal mode as `chmod` takes it: one to four octal digits, or five with a leading 0
/// (as `perm` shows a mode with set-id or sticky bits, `04755`). Whether the object can hold
/// the set-id and sticky bits is for the caller to decide: a POSIX object can, a segment not.
fn parse_mode(value: &str) -> Result<u32, PermError> {
    let digits = value
        .strip_prefix('0')
        .filter(|d| d.len() == 4)
        .unwrap_or(value);
    if digits.is_empty() || digits.len() > 4 || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b))
    {
        return err(format!("mode {value:?} is not an octal mode"));
    }
    match u32::from_str_radix(digits, 8) {
        Ok(m) if m <= 0o7777 => Ok(m),
        _ => err(format!("mode {value:?} is outside 0..07777")),
    }
}

/// A queue's qbytes: decimal digits only, more than 0, at most u64::MAX (the kernel's
/// `unsigned long`; whether the caller may raise it above msgmnb is the kernel's to say).
fn parse_qbytes(value: &str) -> Result<u64, PermError> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return err(format!("qbytes {value:?} is not a decimal number"));
    }
    match value.parse::<u64>() {
        Ok(0) => err("qbytes 0: a queue must be able to hold something"),
        Ok(q) => Ok(q),
        Err(_) => err(format!("qbytes {value:?} is out of range")),
    }
}

/// A numeric id, or a name looked up with `resolve`. `-1` (u32::MAX) means "no change"
/// to the kernel, so it is refused rather than silently ignored.
fn parse_id(
    value: &str,
    what: &str,
    resolve: &dyn Fn(&str) -> Option<u32>,
) -> Result<u32, PermError> {
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return match value.parse::<u32>() {
            Ok(id) if id != u32::MAX => Ok(id),
            _ => err(format!("{what} {value:?} is out of range")),
        };
    }
    match resolve(value) {
        Some(id) if id != u32::MAX => Ok(id),
        Some(_) => err(format!("{what} {value:?} has id -1, which means no change")),
        None => err(format!("unknown {what} {value:?}")),
    }
}

/// Parses one write to `perm`: a bare octal mode (`640`, `0640`), or `name: value` /
/// `name=value` pairs (names `mode`, `uid`, `gid`, and `qbytes` for a message queue)
/// separated by spaces or newlines. Users and groups may be given by name, resolved by the
/// two functions.
pub fn parse_perm(
    input: &[u8],
    resolve_user: &dyn Fn(&str) -> Option<u32>,
    resolve_group: &dyn Fn(&str) -> Option<u32>,
) -> Result<PermChange, PermError> {
    if input.len() > MAX_PERM_WRITE {
        return err("too long");
    }
    let Ok(text) = std::str::from_utf8(input) else {
        return err("not text");
    };
    let text = text.trim();
    if text.is_empty() {
        return err("empty");
    }
    if !text.contains([':', '=']) && !text.contains(char::is_whitespace) {
        return Ok(PermChange {
            mode: Some(parse_mode(text)?),
            ..PermChange::default()
        });
    }
    let mut change = PermChange::default();
    let mut tokens = text.split_whitespace();
    while let Some(token) = tokens.next() {
        let (name, value) = if let Some(name) = token.strip_suffix(':') {
            match tokens.next() {
                Some(value) => (name, value),
                None => return err(format!("{name}: has no value")),
            }
        } else if let Some((name, value)) = token.split_once(['=', ':']) {
            (name, value)
        } else {
            return err(format!("{token:?} is not name: value"));
        };
        if name == "qbytes" {
            if change.qbytes.is_some() {
                return err("qbytes given twice");
            }
            change.qbytes = Some(parse_qbytes(value)?);
            continue;
        }
        let slot = match name {
            "mode" => &mut change.mode,
            "uid" => &mut change.uid,
            "gid" => &mut change.gid,
            _ => return err(format!("unknown field {name:?}")),
        };
        if slot.is_some() {
            return err(format!("{name} given twice"));
        }
        *slot = Some(match name {
            "mode" => parse_mode(value)?,
            "uid" => parse_id(value, "user", resolve_user)?,
            _ => parse_id(value, "group", resolve_group)?,
        });
    }
    Ok(change)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users(name: &str) -> Option<u32> {
        (name == "alice").then_some(1000)
    }
    fn groups(name: &str) -> Option<u32> {
        (name == "staff").then_some(50)
    }
    fn parse(s: &str) -> Result<PermChange, PermError> {
        parse_perm(s.as_bytes(), &users, &groups)
    }
    fn change(mode: Option<u32>, uid: Option<u32>, gid: Option<u32>) -> PermChange {
        PermChange {
            mode,
            uid,
            gid,
            qbytes: None,
        }
    }

    #[test]
    fn sysv_stat_matches_design() {
        let seg = Segment {
            shmid: 32769,
            key: 0x162e,
            size: 4096,
            mode: 0o600,
            uid: 1000,
            gid: 1000,
            cuid: 1000,
            cgid: 1000,
            cpid: 4242,
            lpid: 4250,
            nattch: 2,
            atime: 1763900000,
            dtime: 1763899990,
            ctime: 1763899000,
            dest: false,
            locked: false,
        };
        let expected = "kind: sysv\nshmid: 32769\nkey: 0x0000162e\nsize: 4096\nmode: 0600\n\
            uid: 1000\ngid: 1000\ncuid: 1000\ncgid: 1000\ncpid: 4242\nlpid: 4250\nnattch: 2\n\
            atime: 1763900000\ndtime: 1763899990\nctime: 1763899000\nrss: 4096\nswap: 0\n\
            dest: no\nlocked: no\nhugetlb: no\n";
        let usage = Usage { rss: 4096, swap: 0 };
        assert_eq!(sysv_stat(&seg, usage, Some(false)), expected);
    }

    #[test]
    fn sysv_stat_shows_negative_keys_as_hex_and_status_bits() {
        let seg = Segment {
            shmid: 0,
            key: 0xdeadbeef,
            size: 5 << 30,
            mode: 0o644,
            uid: 70000,
            gid: 0,
            cuid: 0,
            cgid: 0,
            cpid: 1,
            lpid: 0,
            nattch: 0,
            atime: 0,
            dtime: 0,
            ctime: 1,
            dest: true,
            locked: true,
        };
        let text = sysv_stat(&seg, Usage::default(), None);
        assert!(text.contains("key: 0xdeadbeef\n"));
        assert!(text.contains("size: 5368709120\n"));
        assert!(text.contains("uid: 70000\n"));
        assert!(text.ends_with("dest: yes\nlocked: yes\nhugetlb: unknown\n"));
    }

    #[test]
    fn posix_stat_matches_design() {
        let obj = Object {
            name: "myobject".into(),
            size: 8192,
            mode: 0o600,
            uid: 1000,
            gid: 1000,
            atime: 1,
            mtime: 2,
            ctime: 3,
            allocated: 8192,
            ino: 99,
        };
        assert_eq!(
            posix_stat(&obj),
            "kind: posix\nname: myobject\nsize: 8192\nmode: 0600\nuid: 1000\ngid: 1000\n\
             atime: 1\nmtime: 2\nctime: 3\nrss: 8192\n"
        );
    }

    #[test]
    fn posix_stat_name_stays_on_one_line() {
        let obj = Object {
            name: "a\nb".into(),
            size: 0,
            mode: 0o600,
            uid: 0,
            gid: 0,
            atime: 0,
            mtime: 0,
            ctime: 0,
            allocated: 0,
            ino: 1,
        };
        assert!(posix_stat(&obj).contains("name: a\\nb\n"));
    }

    #[test]
    fn perm_renders_three_lines() {
        assert_eq!(perm(0o640, 1, 2), "mode: 0640\nuid: 1\ngid: 2\n");
    }

    #[test]
    fn limits_renders_every_field() {
        let l = Limits {
            shmmax: 1,
            shmall: 2,
            shmmni: 3,
            shm_rmid_forced: 0,
            totals: Totals {
                segments: 4,
                pages_allocated: 5,
                pages_resident: 6,
                pages_swapped: 7,
            },
        };
        assert_eq!(
            limits(&l),
            "shmmax: 1\nshmall: 2\nshmmni: 3\nshm_rmid_forced: 0\nsegments: 4\n\
             pages_allocated: 5\npages_resident: 6\npages_swapped: 7\n"
        );
    }

    #[test]
    fn bare_octal_modes() {
        assert_eq!(parse("600\n"), Ok(change(Some(0o600), None, None)));
        assert_eq!(parse("0640"), Ok(change(Some(0o640), None, None)));
        assert_eq!(parse("0"), Ok(change(Some(0), None, None)));
        assert!(parse("800").is_err());
        assert_eq!(parse("1777"), Ok(change(Some(0o1777), None, None)));
        assert_eq!(parse("04755"), Ok(change(Some(0o4755), None, None)));
        assert!(parse("14755").is_err());
        assert!(parse("00000640").is_err());
        assert!(parse("000640").is_err());
        assert!(parse("rw").is_err());
    }

    #[test]
    fn named_fields() {
        assert_eq!(
            parse("mode: 0640\nuid: 12345\n"),
            Ok(change(Some(0o640), Some(12345), None))
        );
        assert_eq!(
            parse("mode=640 gid=23456"),
            Ok(change(Some(0o640), None, Some(23456)))
        );
        assert_eq!(
            parse("uid:alice gid: staff"),
            Ok(change(None, Some(1000), Some(50)))
        );
        assert_eq!(
            parse("mode: 0600\nuid: 1000\ngid: 1000\n"),
            Ok(change(Some(0o600), Some(1000), Some(1000)))
        );
        assert_eq!(parse("uid: 70000"), Ok(change(None, Some(70000), None)));
    }

    #[test]
    fn qbytes_of_a_queue() {
        let qbytes = |q| PermChange {
            qbytes: Some(q),
            ..PermChange::default()
        };
        assert_eq!(parse("qbytes: 16384\n"), Ok(qbytes(16384)));
        assert_eq!(parse("qbytes=1"), Ok(qbytes(1)));
        assert_eq!(
            parse(&format!("qbytes: {}", u64::MAX)),
            Ok(qbytes(u64::MAX))
        );
        assert_eq!(
            parse("mode: 0600\nuid: 1000\ngid: 50\nqbytes: 65536\n"),
            Ok(PermChange {
                mode: Some(0o600),
                uid: Some(1000),
                gid: Some(50),
                qbytes: Some(65536),
            })
        );
        for bad in [
            "qbytes: 0",
            "qbytes: 000",
            "qbytes: -1",
            "qbytes: +5",
            "qbytes: 0x100",
            "qbytes: 1e6",
            "qbytes: 18446744073709551616",
            "qbytes: 99999999999999999999999999",
            "qbytes:",
            "qbytes: 5 qbytes: 6",
            "qbytes: 5 junk",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn invalid_input_is_refused_whole() {
        for bad in [
            "",
            "   \n",
            "mode: 999",
            "bogus: 1",
            "mode: 0600 junk",
            "mode:",
            "uid: bob",
            "gid: nogroup",
            "uid: 4294967295",
            "uid: 99999999999",
            "uid: -1",
            "mode: 0600 mode: 0644",
            "mode: 0600\nuid: bob",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(parse_perm(b"\xff\xfe", &users, &groups).is_err());
        assert!(parse_perm(b"qbytes: 1\0", &users, &groups).is_err());
        assert!(parse_perm(&[b'7'; MAX_PERM_WRITE + 1], &users, &groups).is_err());
    }
}

#[cfg(test)]
mod proptests {
    //! Properties of the `perm` parser over arbitrary input.

    use super::*;
    use proptest::prelude::*;

    /// Name resolvers: one known user and one known group, everything else unknown.
    fn users(name: &str) -> Option<u32> {
        (name == "alice").then_some(1000)
    }
    fn groups(name: &str) -> Option<u32> {
        (name == "staff").then_some(50)
    }
    fn parse(input: &[u8]) -> Result<PermChange, PermError> {
        parse_perm(input, &users, &groups)
    }

    /// Any id the kernel can take as a change (u32::MAX means "no change" to it).
    fn id() -> impl Strategy<Value = u32> {
        prop_oneof![0..u32::MAX, Just(0), Just(u32::MAX - 1), 0..70_000u32]
    }

    /// Whitespace that may separate or surround fields.
    fn space() -> impl Strategy<Value = String> {
        proptest::string::string_regex("[ \t\n\r]{1,3}").unwrap()
    }

    /// One well-formed `name: value` / `name=value` pair and what it asks for.
    fn field() -> impl Strategy<Value = (&'static str, String, u32)> {
        let mode = (0..=0o777u32, prop::bool::ANY).prop_map(|(m, zero)| {
            let text = if zero {
                format!("0{m:03o}")
            } else {
                format!("{m:o}")
            };
            ("mode", text, m)
        });
        let uid = prop_oneof![
            id().prop_map(|u| ("uid", u.to_string(), u)),
            Just(("uid", "alice".to_string(), 1000)),
        ];
        let gid = prop_oneof![
            id().prop_map(|g| ("gid", g.to_string(), g)),
            Just(("gid", "staff".to_string(), 50)),
        ];
        prop_oneof![mode, uid, gid]
    }

    /// A name that is not a field of `perm`.
    fn unknown_name() -> impl Strategy<Value = String> {
        proptest::string::string_regex("[A-Za-z_][A-Za-z0-9_.-]{0,15}")
            .unwrap()
            .prop_filter("a known field", |n| {
                !matches!(n.as_str(), "mode" | "uid" | "gid" | "qbytes")
            })
    }

    fn sep() -> impl Strategy<Value = &'static str> {
        prop_oneof![Just(": "), Just("="), Just(":"), Just(":\n"), Just(": \t")]
    }

    proptest! {
        // No regression files: the tests must not write into the source tree.
        #![proptest_config(ProptestConfig {
            cases: 2000,
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        /// Never panics, whatever the bytes, and anything accepted is a real change within
        /// range: a mode of permission, set-id and sticky bits only, ids other than "no change".
        #[test]
        fn arbitrary_bytes_never_panic_and_accepted_values_are_in_range(
            input in prop_oneof![
                prop::collection::vec(any::<u8>(), 0..64),
                prop::collection::vec(any::<u8>(), 0..(MAX_PERM_WRITE + 64)),
                proptest::string::string_regex("[ -~\t\n]{0,64}").unwrap().prop_map(String::into_bytes),
                proptest::string::string_regex("((mode|uid|gid|x)[:=] ?[0-9a-z-]{0,12}[ \n]?){0,4}")
                    .unwrap()
                    .prop_map(String::into_bytes),
            ]
        ) {
            if let Ok(change) = parse(&input) {
                prop_assert!(change != PermChange::default(), "accepted {input:?} as no change");
                if let Some(mode) = change.mode {
                    prop_assert!(mode <= 0o7777, "mode {mode:o} from {input:?}");
                }
                prop_assert!(change.uid != Some(u32::MAX), "uid -1 from {input:?}");
                prop_assert!(change.gid != Some(u32::MAX), "gid -1 from {input:?}");
                prop_assert!(input.len() <= MAX_PERM_WRITE);
            }
        }

        /// What `perm` reads back parses to exactly the values it shows.
        #[test]
        fn rendered_perm_parses_back(mode in 0..=0o7777u32, uid in id(), gid in id()) {
            let text = perm(mode, uid, gid);
            prop_assert_eq!(
                parse(text.as_bytes()),
                Ok(PermChange { mode: Some(mode), uid: Some(uid), gid: Some(gid), qbytes: None })
            );
        }

        /// Any well-formed write (fields in any order, any separators and whitespace) gives
        /// exactly the fields written.
        #[test]
        fn well_formed_writes_give_exactly_their_fields(
            fields in prop::collection::vec(field(), 1..=3),
            seps in prop::collection::vec(sep(), 3),
            spaces in prop::collection::vec(space(), 4),
        ) {
            let mut seen = std::collections::HashSet::new();
            let fields: Vec<_> = fields.into_iter().filter(|f| seen.insert(f.0)).collect();
            let mut text = spaces[0].clone();
            let mut want = PermChange::default();
            for (i, (name, value, parsed)) in fields.iter().enumerate() {
                if i > 0 {
                    text.push_str(&spaces[i]);
                }
                text.push_str(&format!("{name}{}{value}", seps[i]));
                let slot = match *name {
                    "mode" => &mut want.mode,
                    "uid" => &mut want.uid,
                    _ => &mut want.gid,
                };
                *slot = Some(*parsed);
            }
            text.push_str(&spaces[3]);
            prop_assert_eq!(parse(text.as_bytes()), Ok(want), "{:?}", text);
        }

        /// A bare octal mode is accepted exactly when it is at most 07777 in at most four
        /// digits, or five with a leading 0.
        #[test]
        fn bare_octal_modes(value in 0..0o100000u32, width in 1..=6usize) {
            let text = format!("{value:0width$o}");
            let accepted = parse(text.as_bytes());
            if value <= 0o7777 && (text.len() <= 4 || (text.len() == 5 && text.starts_with('0'))) {
                prop_assert_eq!(accepted, Ok(PermChange { mode: Some(value), ..Default::default() }));
            } else {
                prop_assert!(accepted.is_err(), "{text:?} accepted as {accepted:?}");
            }
        }

        /// An unknown field name anywhere refuses the whole write, however valid the rest.
        #[test]
        fn unknown_field_names_are_refused(
            name in unknown_name(),
            value in "[0-9]{1,4}",
            before in prop::option::of(field()),
            after in prop::option::of(field()),
            sep in sep(),
        ) {
            let mut parts = Vec::new();
            if let Some((n, v, _)) = &before {
                parts.push(format!("{n}: {v}"));
            }
            parts.push(format!("{name}{sep}{value}"));
            if let Some((n, v, _)) = &after {
                parts.push(format!("{n}={v}"));
            }
            let text = parts.join("\n");
            prop_assert!(parse(text.as_bytes()).is_err(), "{text:?} was accepted");
        }

        /// Ids out of range, and names no resolver knows, are refused.
        #[test]
        fn bad_ids_are_refused(
            field in prop_oneof![Just("uid"), Just("gid")],
            value in prop_oneof![
                (u64::from(u32::MAX)..u64::MAX).prop_map(|v| v.to_string()),
                "[1-9][0-9]{10,29}",
                "-[0-9]{1,10}",
                "[a-z][a-z0-9_-]{0,20}".prop_filter("known", |n| n != "alice" && n != "staff"),
            ],
        ) {
            let text = format!("mode: 0600 {field}: {value}");
            prop_assert!(parse(text.as_bytes()).is_err(), "{text:?} was accepted");
        }
    }
}
