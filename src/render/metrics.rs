//! The root `metrics.prom`: the host's shared memory in the Prometheus text exposition format,
//! for node_exporter's textfile collector (`--collector.textfile.directory=MOUNTPOINT`).
//!
//! Every family has `HELP` and `TYPE` lines and is a gauge named `shmfs_…` in base units
//! (`_bytes`, `_seconds`, plain counts). Per segment (labels `shmid`, `key`, `owner`, `mode`)
//! and per POSIX object (labels `name`, `owner`, `mode`) series come first, then totals; with
//! [`Detail::Totals`] (`-o metrics=totals`) only the totals.
//!
//! Label values are escaped as the format requires (backslash, double quote, newline). A POSIX
//! name is any bytes but `/` and NUL, while label values are UTF-8: a name that is valid UTF-8
//! without control characters is its own `name`; any other name gets a readable `name` (see
//! [`readable_name`]) plus `name_bytes`, its bytes in lower-case hex, so that no two objects
//! ever share a series.

use std::collections::HashMap;
use std::fmt::{Display, Write};
use std::os::unix::ffi::OsStrExt;

use crate::kernel::posix::Object;
use crate::kernel::sysv::{Segment, Usage};

/// How much `metrics.prom` holds (`-o metrics=…`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Detail {
    /// One series per segment and per object, and the totals (`metrics=all`, the default).
    #[default]
    All,
    /// The totals alone (`metrics=totals`): a fixed number of series, whatever the host holds.
    Totals,
}

impl Detail {
    /// The value of `-o metrics=VALUE`.
    pub fn parse(value: &str) -> Result<Detail, String> {
        match value {
            "all" => Ok(Detail::All),
            "totals" => Ok(Detail::Totals),
            other => Err(format!(
                "mount option metrics={other:?}: want metrics=all or metrics=totals"
            )),
        }
    }
}

/// System-wide facts the totals are made of.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct System {
    /// `kernel.shmmax`, bytes.
    pub shmmax: u64,
    /// `kernel.shmall`, pages.
    pub shmall: u64,
    /// `kernel.shmmni`, segments.
    pub shmmni: u64,
    /// `SHM_INFO`: pages allocated, resident and swapped (`ipcs -m -u`).
    pub pages_allocated: u64,
    pub pages_resident: u64,
    pub pages_swapped: u64,
    /// The page size, bytes.
    pub page_size: u64,
    /// Capacity and use of the shm dir's filesystem (`df /dev/shm`), bytes.
    pub shm_dir_size: u64,
    pub shm_dir_used: u64,
}

/// What one rendering is made of: one listing of each kind, taken for this open.
pub struct Input<'a> {
    pub segments: &'a [Segment],
    /// Resident and swapped bytes by shmid (unused with [`Detail::Totals`]).
    pub usage: &'a HashMap<i32, Usage>,
    pub objects: &'a [Object],
    /// Owner names by uid (unused with [`Detail::Totals`]).
    pub owners: &'a HashMap<u32, String>,
    pub system: System,
}

/// Appends `value` to `out` as a label value: backslash, double quote and newline escaped.
pub fn escape_label_into(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// `value` escaped as a label value.
pub fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    escape_label_into(&mut out, value);
    out
}

/// Whether a name is shown as it is: valid UTF-8 without control characters.
fn is_plain(name: &[u8]) -> bool {
    std::str::from_utf8(name).is_ok_and(|s| !s.chars().any(char::is_control))
}

/// The `name` of a name that is not plain: its printable UTF-8 as it is, each backslash
/// doubled, and each control character's and each invalid byte's bytes as `\xHH` (lower-case
/// hex). It is for people; `name_bytes` beside it is exact.
pub fn readable_name(name: &[u8]) -> String {
    let mut out = String::with_capacity(name.len() + 8);
    let byte = |out: &mut String, b: u8| {
        let _ = write!(out, "\\x{b:02x}");
    };
    for chunk in name.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c == '\\' {
                out.push_str("\\\\");
            } else if c.is_control() {
                for b in c.encode_utf8(&mut [0; 4]).bytes() {
                    byte(&mut out, b);
                }
            } else {
                out.push(c);
            }
        }
        for &b in chunk.invalid() {
            byte(&mut out, b);
        }
    }
    out
}

/// The labels naming a POSIX object, escaped: `name="…"`, and for a name that is not plain
/// `name="…",name_bytes="HEX"`.
pub fn name_labels(name: &[u8]) -> String {
    let mut out = String::from("name=\"");
    if is_plain(name) {
        // is_plain checked it is UTF-8.
        escape_label_into(&mut out, std::str::from_utf8(name).unwrap_or_default());
        out.push('"');
    } else {
        escape_label_into(&mut out, &readable_name(name));
        out.push_str("\",name_bytes=\"");
        for b in name {
            let _ = write!(out, "{b:02x}");
        }
        out.push('"');
    }
    out
}

/// The text being written: a kind's part of `metrics.prom`, or all of it.
#[derive(Debug, Default)]
pub struct Out {
    text: String,
}

impl Out {
    /// An empty text with room for `capacity` bytes.
    pub fn with_capacity(capacity: usize) -> Out {
        Out {
            text: String::with_capacity(capacity),
        }
    }

    /// Appends `other`'s text.
    pub fn append(&mut self, other: Out) {
        self.text.push_str(&other.text);
    }

    /// The text written.
    pub fn into_text(self) -> String {
        self.text
    }

    /// `# HELP` and `# TYPE … gauge` of a family.
    fn family(&mut self, name: &str, help: &str) {
        let _ = write!(self.text, "# HELP {name} {help}\n# TYPE {name} gauge\n");
    }

    /// One sample; `labels` is `{…}` or empty.
    fn sample(&mut self, name: &str, labels: &str, value: impl Display) {
        let _ = writeln!(self.text, "{name}{labels} {value}");
    }

    /// A family with one sample and no labels.
    fn single(&mut self, name: &str, help: &str, value: impl Display) {
        self.family(name, help);
        self.sample(name, "", value);
    }

    /// A family with one sample per item of `items`.
    fn each<T, V: Display>(
        &mut self,
        name: &str,
        help: &str,
        items: &[(String, T)],
        value: impl Fn(&T) -> V,
    ) {
        if items.is_empty() {
            return;
        }
        self.family(name, help);
        for (labels, item) in items {
            self.sample(name, labels, value(item));
        }
    }
}

/// A segment's labels, escaped: `{shmid="…",key="0x…",owner="…",mode="0…"}`.
fn segment_labels(seg: &Segment, owner: &str) -> String {
    let mut out = format!(
        "{{shmid=\"{}\",key=\"0x{:08x}\",owner=\"",
        seg.shmid, seg.key
    );
    escape_label_into(&mut out, owner);
    let _ = write!(out, "\",mode=\"0{:03o}\"}}", seg.mode);
    out
}

/// An object's labels, escaped: `{name="…"[,name_bytes="…"],owner="…",mode="0…"}`.
fn object_labels(obj: &Object, owner: &str) -> String {
    let mut out = String::from("{");
    out.push_str(&name_labels(obj.name.as_bytes()));
    out.push_str(",owner=\"");
    escape_label_into(&mut out, owner);
    let _ = write!(out, "\",mode=\"0{:03o}\"}}", obj.mode & 0o7777);
    out
}

/// About how many bytes the series of one object take (eight families of ~110 bytes for a
/// segment; a quarter of that for an object), to size the text at once.
pub const SEGMENT_SERIES_BYTES: usize = 8 * 110;
/// As [`SEGMENT_SERIES_BYTES`], for a POSIX object.
pub const OBJECT_SERIES_BYTES: usize = SEGMENT_SERIES_BYTES / 4;

/// The whole `metrics.prom` text of one listing of each kind: the series of every object
/// (with [`Detail::All`]), then the totals. (The filesystem writes the same parts kind by kind.)
pub fn render(input: &Input, detail: Detail) -> String {
    let mut out = Out::with_capacity(4096);
    if detail == Detail::All {
        segment_series(&mut out, input.segments, input.usage, input.owners);
        object_series(&mut out, input.objects, input.owners);
    }
    sysv_totals(&mut out, input.segments, &input.system);
    posix_totals(&mut out, input.objects, &input.system);
    out.text
}

fn owner<'a>(owners: &'a HashMap<u32, String>, uid: u32, fallback: &'a mut String) -> &'a str {
    match owners.get(&uid) {
        Some(name) => name,
        None => {
            *fallback = uid.to_string();
            fallback
        }
    }
}

/// One series per segment of each per-segment family, labelled with its shmid, key, owner
/// (named from `owners`) and mode.
pub fn segment_series(
    out: &mut Out,
    segments: &[Segment],
    usage: &HashMap<i32, Usage>,
    owners: &HashMap<u32, String>,
) {
    let mut fallback = String::new();
    let rows: Vec<(String, (&Segment, Usage))> = segments
        .iter()
        .map(|s| {
            let usage = usage.get(&s.shmid).copied().unwrap_or_default();
            let labels = segment_labels(s, owner(owners, s.uid, &mut fallback));
            (labels, (s, usage))
        })
        .collect();
    out.each(
        "shmfs_sysv_segment_size_bytes",
        "Size of the System V segment (ipcs -m bytes).",
        &rows,
        |(s, _)| s.size,
    );
    out.each(
        "shmfs_sysv_segment_resident_bytes",
        "Bytes of the segment resident in memory (/proc/sysvipc/shm rss).",
        &rows,
        |(_, u)| u.rss,
    );
    out.each(
        "shmfs_sysv_segment_swapped_bytes",
        "Bytes of the segment swapped out (/proc/sysvipc/shm swap).",
        &rows,
        |(_, u)| u.swap,
    );
    out.each(
        "shmfs_sysv_segment_attachments",
        "Current attachments of the segment (nattch): 0 means no process has it attached.",
        &rows,
        |(s, _)| s.nattch,
    );
    out.each(
        "shmfs_sysv_segment_last_change_timestamp_seconds",
        "Last change of the segment (shm_ctime: creation, IPC_SET or IPC_RMID), Unix time.",
        &rows,
        |(s, _)| s.ctime.max(0),
    );
    out.each(
        "shmfs_sysv_segment_last_attach_timestamp_seconds",
        "Last shmat of the segment (shm_atime), Unix time; 0 if never attached.",
        &rows,
        |(s, _)| s.atime.max(0),
    );
    out.each(
        "shmfs_sysv_segment_last_detach_timestamp_seconds",
        "Last shmdt of the segment (shm_dtime), Unix time; 0 if never detached.",
        &rows,
        |(s, _)| s.dtime.max(0),
    );
    out.each(
        "shmfs_sysv_segment_removal_pending",
        "1 if the segment is marked for removal (SHM_DEST) and goes at its last detach.",
        &rows,
        |(s, _)| u8::from(s.dest),
    );
}

/// One series per POSIX object of each per-object family, labelled with its name, owner and
/// mode.
pub fn object_series(out: &mut Out, objects: &[Object], owners: &HashMap<u32, String>) {
    let mut fallback = String::new();
    let rows: Vec<(String, &Object)> = objects
        .iter()
        .map(|o| {
            let labels = object_labels(o, owner(owners, o.uid, &mut fallback));
            (labels, o)
        })
        .collect();
    out.each(
        "shmfs_posix_object_size_bytes",
        "Size of the POSIX shared memory object (its file in the shm dir).",
        &rows,
        |o| o.size,
    );
    out.each(
        "shmfs_posix_object_allocated_bytes",
        "Bytes allocated to the POSIX object (st_blocks * 512).",
        &rows,
        |o| o.allocated,
    );
}

/// The System V totals: counts of `segments`, and the system's limits and usage of `sys`.
pub fn sysv_totals(out: &mut Out, segments: &[Segment], sys: &System) {
    let pages = |n: u64| u128::from(n) * u128::from(sys.page_size);
    let unattached = segments.iter().filter(|s| s.nattch == 0);
    out.single(
        "shmfs_sysv_segments",
        "System V segments (ipcs -m).",
        segments.len(),
    );
    out.single(
        "shmfs_sysv_segments_limit",
        "Most System V segments the system allows (kernel.shmmni).",
        sys.shmmni,
    );
    out.single(
        "shmfs_sysv_segments_unattached",
        "System V segments that no process has attached (nattch 0).",
        unattached.clone().count(),
    );
    out.single(
        "shmfs_sysv_segments_unattached_bytes",
        "Total size of the System V segments that no process has attached.",
        unattached.map(|s| u128::from(s.size)).sum::<u128>(),
    );
    out.single(
        "shmfs_sysv_segment_size_limit_bytes",
        "Largest System V segment the system allows (kernel.shmmax).",
        sys.shmmax,
    );
    out.single(
        "shmfs_sysv_allocated_bytes",
        "Pages allocated to all System V segments, in bytes (ipcs -m -u pages allocated).",
        pages(sys.pages_allocated),
    );
    out.single(
        "shmfs_sysv_allocated_limit_bytes",
        "Most pages all System V segments may have, in bytes (kernel.shmall).",
        pages(sys.shmall),
    );
    out.single(
        "shmfs_sysv_resident_bytes",
        "Bytes of all System V segments resident in memory (ipcs -m -u pages resident).",
        pages(sys.pages_resident),
    );
    out.single(
        "shmfs_sysv_swapped_bytes",
        "Bytes of all System V segments swapped out (ipcs -m -u pages swapped).",
        pages(sys.pages_swapped),
    );
}

/// The POSIX totals: counts and sizes of `objects`, and the shm dir's capacity and use of
/// `sys`.
pub fn posix_totals(out: &mut Out, objects: &[Object], sys: &System) {
    out.single(
        "shmfs_posix_objects",
        "POSIX shared memory objects (regular files of the shm dir).",
        objects.len(),
    );
    out.single(
        "shmfs_posix_objects_size_bytes",
        "Total size of the POSIX objects.",
        objects.iter().map(|o| u128::from(o.size)).sum::<u128>(),
    );
    out.single(
        "shmfs_posix_objects_allocated_bytes",
        "Total bytes allocated to the POSIX objects.",
        objects
            .iter()
            .map(|o| u128::from(o.allocated))
            .sum::<u128>(),
    );
    out.single(
        "shmfs_shm_dir_size_bytes",
        "Capacity of the shm dir's filesystem (df /dev/shm size).",
        sys.shm_dir_size,
    );
    out.single(
        "shmfs_shm_dir_used_bytes",
        "Bytes used on the shm dir's filesystem (df /dev/shm used).",
        sys.shm_dir_used,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;
    use std::os::unix::ffi::OsStringExt;

    fn seg(shmid: i32, nattch: u64) -> Segment {
        Segment {
            shmid,
            key: 0x162e,
            size: 4096,
            mode: 0o600,
            uid: 1000,
            gid: 1000,
            cuid: 1000,
            cgid: 1000,
            cpid: 1,
            lpid: 0,
            nattch,
            atime: 0,
            dtime: 0,
            ctime: 1_700_000_000,
            dest: false,
            locked: false,
        }
    }

    fn obj(name: &[u8]) -> Object {
        Object {
            name: OsString::from_vec(name.to_vec()),
            size: 8192,
            mode: 0o640,
            uid: 0,
            gid: 0,
            atime: 0,
            mtime: 0,
            ctime: 0,
            allocated: 4096,
            ino: 7,
        }
    }

    fn render_of(segments: &[Segment], objects: &[Object], detail: Detail) -> String {
        let usage = HashMap::from([(32769, Usage { rss: 4096, swap: 0 })]);
        let owners = HashMap::from([(1000, "alice".to_string()), (0, "root".to_string())]);
        let input = Input {
            segments,
            usage: &usage,
            objects,
            owners: &owners,
            system: System {
                shmmax: 1 << 40,
                shmall: u64::MAX - (1 << 24),
                shmmni: 4096,
                pages_allocated: 2,
                pages_resident: 1,
                pages_swapped: 0,
                page_size: 4096,
                shm_dir_size: 1 << 30,
                shm_dir_used: 8192,
            },
        };
        render(&input, detail)
    }

    #[test]
    fn a_segment_has_one_sample_per_family_with_its_labels() {
        let text = render_of(&[seg(32769, 2)], &[], Detail::All);
        let labels = r#"{shmid="32769",key="0x0000162e",owner="alice",mode="0600"}"#;
        for line in [
            format!("shmfs_sysv_segment_size_bytes{labels} 4096"),
            format!("shmfs_sysv_segment_resident_bytes{labels} 4096"),
            format!("shmfs_sysv_segment_swapped_bytes{labels} 0"),
            format!("shmfs_sysv_segment_attachments{labels} 2"),
            format!("shmfs_sysv_segment_last_change_timestamp_seconds{labels} 1700000000"),
            format!("shmfs_sysv_segment_removal_pending{labels} 0"),
            "shmfs_sysv_segments 1".into(),
            "shmfs_sysv_segments_unattached 0".into(),
            "shmfs_sysv_allocated_bytes 8192".into(),
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
        }
    }

    #[test]
    fn every_family_has_help_and_type_before_its_samples_and_once() {
        let text = render_of(&[seg(1, 0), seg(2, 1)], &[obj(b"a")], Detail::All);
        let mut seen = std::collections::HashSet::new();
        let mut current = String::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let name = rest.split(' ').next().unwrap().to_string();
                assert!(seen.insert(name.clone()), "{name} twice");
                current = name;
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                assert_eq!(rest, format!("{current} gauge"));
            } else {
                let name = line.split(['{', ' ']).next().unwrap();
                assert_eq!(name, current, "sample outside its family: {line}");
                assert!(name.starts_with("shmfs_"));
            }
        }
    }

    #[test]
    fn totals_only_has_a_fixed_set_of_unlabelled_series() {
        let few = render_of(&[seg(1, 0)], &[obj(b"a")], Detail::Totals);
        let many = render_of(
            &(1..50).map(|i| seg(i, 0)).collect::<Vec<_>>(),
            &[obj(b"a"), obj(b"b")],
            Detail::Totals,
        );
        assert_eq!(few.lines().count(), many.lines().count());
        assert!(!few.contains('{'), "no labels in totals:\n{few}");
        assert!(many.contains("\nshmfs_sysv_segments_unattached 49\n"));
        assert!(many.contains("\nshmfs_sysv_segments_unattached_bytes 200704\n"));
        assert!(many.contains("\nshmfs_posix_objects 2\n"));
    }

    #[test]
    fn huge_limits_are_exact_integers() {
        let text = render_of(&[], &[], Detail::Totals);
        let want = u128::from(u64::MAX - (1 << 24)) * 4096;
        assert!(
            text.contains(&format!("\nshmfs_sysv_allocated_limit_bytes {want}\n")),
            "{text}"
        );
    }

    #[test]
    fn label_values_are_escaped_as_the_format_requires() {
        assert_eq!(escape_label(r#"a\b"c"#), r#"a\\b\"c"#);
        assert_eq!(escape_label("a\nb"), "a\\nb");
        assert_eq!(escape_label("ü\t"), "ü\t");
    }

    #[test]
    fn plain_names_are_their_own_label() {
        assert_eq!(name_labels(b"my obj"), r#"name="my obj""#);
        assert_eq!(name_labels(br#"say "hi""#), r#"name="say \"hi\"""#);
        assert_eq!(name_labels(br"back\slash"), r#"name="back\\slash""#);
        assert_eq!(name_labels("ü".as_bytes()), r#"name="ü""#);
    }

    #[test]
    fn other_names_get_a_readable_name_and_their_bytes() {
        assert_eq!(
            name_labels(b"a\nb"),
            r#"name="a\\x0ab",name_bytes="610a62""#
        );
        assert_eq!(
            name_labels(b"x\xff\\y"),
            r#"name="x\\xff\\\\y",name_bytes="78ff5c79""#
        );
        assert_eq!(readable_name(b"esc\x1b[0m"), "esc\\x1b[0m");
        assert_eq!(readable_name("\u{85}".as_bytes()), "\\xc2\\x85");
        // A plain name that reads like the escape has no name_bytes: no two objects collide.
        assert_eq!(name_labels(br"x\xff"), r#"name="x\\xff""#);
        assert_ne!(name_labels(b"x\xff"), name_labels(br"x\xff"));
    }

    #[test]
    fn objects_carry_name_owner_and_mode() {
        let text = render_of(&[], &[obj(b"a\"b")], Detail::All);
        assert!(text.contains(
            "\nshmfs_posix_object_size_bytes{name=\"a\\\"b\",owner=\"root\",mode=\"0640\"} 8192\n"
        ));
        assert!(text.contains(
            "\nshmfs_posix_object_allocated_bytes{name=\"a\\\"b\",owner=\"root\",mode=\"0640\"} 4096\n"
        ));
    }

    #[test]
    fn detail_parses_its_two_values_only() {
        assert_eq!(Detail::parse("all"), Ok(Detail::All));
        assert_eq!(Detail::parse("totals"), Ok(Detail::Totals));
        let err = Detail::parse("Totals").unwrap_err();
        assert!(err.contains("metrics=all or metrics=totals"), "{err}");
    }
}
