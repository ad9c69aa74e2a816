//! The root `metrics.prom`: the host's shared memory in the Prometheus text exposition format,
//! for node_exporter's textfile collector (`--collector.textfile.directory=MOUNTPOINT`).
//!
//! Every family has `HELP` and `TYPE` lines (once, with all its samples together, however many
//! calls write it: see [`Out`]) and is a gauge named `shmfs_…` in base units (`_bytes`,
//! `_seconds`, plain counts). Per segment (labels `shmid`, `key`, `owner`, `mode`) and per
//! POSIX object (labels `name`, `owner`, `mode`) series come first, then totals; likewise per
//! semaphore set (`semid`, `key`, `owner`, `mode`: [`sem_series_in`]), per message queue
//! (`msqid`, `key`, `owner`, `mode`: [`msg_series_in`]) and per POSIX queue (`name`, `owner`,
//! `mode`: [`mqueue_series_in`]), with their totals ([`sem_totals`], [`msg_totals`]); with
//! [`Detail::Totals`] (`-o metrics=totals`) only the totals. The objects of other IPC
//! namespaces than the mount's own (`ns/N/`) carry a `namespace` label too
//! ([`segment_series_in`], [`object_series_in`]); the per-namespace series
//! ([`namespace_series`]) are totals, labelled with the namespace and its container.
//!
//! Label values are escaped as the format requires (backslash, double quote, newline). A POSIX
//! name is any bytes but `/` and NUL, while label values are UTF-8: a name that is valid UTF-8
//! without control characters is its own `name`; any other name gets a readable `name` (see
//! [`readable_name`]) plus `name_bytes`, its bytes in lower-case hex, so that no two objects
//! ever share a series.

use std::collections::HashMap;
use std::fmt::{Display, Write};
use std::os::unix::ffi::OsStrExt;

use crate::kernel::container::Container;
use crate::kernel::mqueue::MqInfo;
use crate::kernel::msg::{MsgLimits, Queue};
use crate::kernel::posix::Object;
use crate::kernel::sem::{SemLimits, SemSet};
use crate::kernel::sysv::{Segment, Usage};
use crate::render::namespaces::NsRow;

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

/// One family of the text: its `# HELP` and `# TYPE` lines, then its samples.
#[derive(Debug)]
struct Family {
    name: &'static str,
    text: String,
}

/// The text being written: a kind's part of `metrics.prom`, or all of it. It is kept family by
/// family, in the order in which each family first gets a sample, so that a family written by
/// several calls (one per namespace, say) still has its `# HELP` and `# TYPE` once and all its
/// samples together, as the format requires; a family with no sample is not written at all.
#[derive(Debug, Default)]
pub struct Out {
    families: Vec<Family>,
    /// Bytes to reserve for the first family (the rest are sized by their samples).
    capacity: usize,
}

impl Out {
    /// An empty text with room for `capacity` bytes.
    pub fn with_capacity(capacity: usize) -> Out {
        Out {
            families: Vec::new(),
            capacity,
        }
    }

    /// Appends `other`'s text: its samples of a family this text already has go after this
    /// text's samples of it, its other families after this text's families.
    pub fn append(&mut self, other: Out) {
        for family in other.families {
            match self.families.iter_mut().find(|f| f.name == family.name) {
                Some(mine) => {
                    // Past the other's own `# HELP` and `# TYPE` lines.
                    let header = header_len(&family.text);
                    mine.text.push_str(&family.text[header..]);
                }
                None => self.families.push(family),
            }
        }
    }

    /// The text written. The first family's text grows into the whole (no second copy of the
    /// biggest part), and each other family's text is freed once copied.
    pub fn into_text(self) -> String {
        let total: usize = self.families.iter().map(|f| f.text.len()).sum();
        let mut families = self.families.into_iter();
        let Some(first) = families.next() else {
            return String::new();
        };
        let mut text = first.text;
        text.reserve(total - text.len());
        for family in families {
            text.push_str(&family.text);
        }
        text
    }

    /// The text of family `name`, made with its `# HELP` and `# TYPE … gauge` lines (and
    /// `room` more bytes) if it has none yet.
    fn family(&mut self, name: &'static str, help: &str, room: usize) -> &mut String {
        let at = match self.families.iter().position(|f| f.name == name) {
            Some(at) => at,
            None => {
                let first = std::mem::take(&mut self.capacity);
                let mut text =
                    String::with_capacity(2 * name.len() + help.len() + 24 + room.max(first));
                let _ = write!(text, "# HELP {name} {help}\n# TYPE {name} gauge\n");
                self.families.push(Family { name, text });
                self.families.len() - 1
            }
        };
        let text = &mut self.families[at].text;
        text.reserve(room);
        text
    }

    /// A family with one sample and no labels.
    fn single(&mut self, name: &'static str, help: &str, value: impl Display) {
        let text = self.family(name, help, name.len() + 24);
        let _ = writeln!(text, "{name} {value}");
    }

    /// A family with one sample per item of `items`, labelled with its `{…}` (none if
    /// `items` is empty).
    fn each<T, V: Display>(
        &mut self,
        name: &'static str,
        help: &str,
        items: &[(String, T)],
        value: impl Fn(&T) -> V,
    ) {
        if items.is_empty() {
            return;
        }
        let room = items
            .iter()
            .map(|(labels, _)| name.len() + labels.len() + 12)
            .sum();
        let text = self.family(name, help, room);
        for (labels, item) in items {
            let _ = writeln!(text, "{name}{labels} {}", value(item));
        }
    }
}

/// The length of the `# HELP` and `# TYPE` lines at the start of a family's text.
fn header_len(text: &str) -> usize {
    let mut end = 0;
    for _ in 0..2 {
        end += text[end..].find('\n').map_or(text.len() - end, |i| i + 1);
    }
    end
}

/// `{`, and `namespace="N",` if the object is of namespace N.
fn open_labels(namespace: Option<u64>) -> String {
    match namespace {
        Some(ns) => format!("{{namespace=\"{ns}\","),
        None => String::from("{"),
    }
}

/// A segment's labels, escaped: `{[namespace="N",]shmid="…",key="0x…",owner="…",mode="0…"}`.
fn segment_labels(namespace: Option<u64>, seg: &Segment, owner: &str) -> String {
    let mut out = open_labels(namespace);
    let _ = write!(
        out,
        "shmid=\"{}\",key=\"0x{:08x}\",owner=\"",
        seg.shmid, seg.key
    );
    escape_label_into(&mut out, owner);
    let _ = write!(out, "\",mode=\"0{:03o}\"}}", seg.mode);
    out
}

/// An object's labels, escaped:
/// `{[namespace="N",]name="…"[,name_bytes="…"],owner="…",mode="0…"}`.
fn object_labels(namespace: Option<u64>, obj: &Object, owner: &str) -> String {
    let mut out = open_labels(namespace);
    out.push_str(&name_labels(obj.name.as_bytes()));
    out.push_str(",owner=\"");
    escape_label_into(&mut out, owner);
    let _ = write!(out, "\",mode=\"0{:03o}\"}}", obj.mode & 0o7777);
    out
}

/// A System V object's labels, escaped:
/// `{[namespace="N",]ID_NAME="…",key="0x…",owner="…",mode="0…"}`.
fn ipc_labels(
    namespace: Option<u64>,
    id_name: &str,
    id: i32,
    key: u32,
    owner: &str,
    mode: u32,
) -> String {
    let mut out = open_labels(namespace);
    let _ = write!(out, "{id_name}=\"{id}\",key=\"0x{key:08x}\",owner=\"");
    escape_label_into(&mut out, owner);
    let _ = write!(out, "\",mode=\"0{mode:03o}\"}}");
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
    out.into_text()
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
/// (named from `owners`) and mode: the segments of the mount's own namespace (the root's
/// `sysv/`). [`segment_series_in`] labels those of another namespace.
pub fn segment_series(
    out: &mut Out,
    segments: &[Segment],
    usage: &HashMap<i32, Usage>,
    owners: &HashMap<u32, String>,
) {
    segment_series_in(out, None, segments, usage, owners);
}

/// As [`segment_series`], for the segments of IPC namespace `namespace` (its nsfs inode
/// number, the name of its `ns/` directory): each series gets a first label
/// `namespace="N"`. With `None` it is [`segment_series`], for the mount's own namespace,
/// whose series have no `namespace` label; that namespace's segments are written once, by
/// that call, and not again under its number (or every sum over segments counts them twice).
/// Calls for several namespaces may write into one [`Out`]: each family keeps its samples
/// together.
pub fn segment_series_in(
    out: &mut Out,
    namespace: Option<u64>,
    segments: &[Segment],
    usage: &HashMap<i32, Usage>,
    owners: &HashMap<u32, String>,
) {
    let mut fallback = String::new();
    let rows: Vec<(String, (&Segment, Usage))> = segments
        .iter()
        .map(|s| {
            let usage = usage.get(&s.shmid).copied().unwrap_or_default();
            let labels = segment_labels(namespace, s, owner(owners, s.uid, &mut fallback));
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
/// mode: the objects of the mount's own shm dir (the root's `posix/`). [`object_series_in`]
/// labels those of another namespace.
pub fn object_series(out: &mut Out, objects: &[Object], owners: &HashMap<u32, String>) {
    object_series_in(out, None, objects, owners);
}

/// As [`object_series`], for the objects of the `/dev/shm` of IPC namespace `namespace`
/// (`ns/N/posix/`): each series gets a first label `namespace="N"`; `None` is
/// [`object_series`]. As for [`segment_series_in`], the mount's own objects are written once,
/// without the label, and calls for several namespaces may share one [`Out`].
pub fn object_series_in(
    out: &mut Out,
    namespace: Option<u64>,
    objects: &[Object],
    owners: &HashMap<u32, String>,
) {
    let mut fallback = String::new();
    let rows: Vec<(String, &Object)> = objects
        .iter()
        .map(|o| {
            let labels = object_labels(namespace, o, owner(owners, o.uid, &mut fallback));
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

/// One series per semaphore set of each per-set family, labelled with its semid, key, owner
/// (named from `owners`) and mode, and with `namespace="N"` first for a set of another IPC
/// namespace than the mount's own (`None`: the mount's own, as for [`segment_series_in`]):
/// its semaphores, the tasks blocked in `semop` on it (from `waiters` by semid; a set missing
/// there has no such series: its reader may not know), and its last operation and last change
/// times. Calls for several
/// namespaces may share one [`Out`].
pub fn sem_series_in(
    out: &mut Out,
    namespace: Option<u64>,
    sets: &[SemSet],
    waiters: &HashMap<i32, u64>,
    owners: &HashMap<u32, String>,
) {
    let mut fallback = String::new();
    let rows: Vec<(String, (&SemSet, u64))> = sets
        .iter()
        .map(|s| {
            let owner = owner(owners, s.uid, &mut fallback);
            let labels = ipc_labels(namespace, "semid", s.semid, s.key, owner, s.mode);
            (labels, (s, waiters.get(&s.semid).copied().unwrap_or(0)))
        })
        .collect();
    let waiting: Vec<_> = rows
        .iter()
        .filter(|(_, (s, _))| waiters.contains_key(&s.semid))
        .cloned()
        .collect();
    out.each(
        "shmfs_sem_set_semaphores",
        "Semaphores in the System V semaphore set (nsems).",
        &rows,
        |(s, _)| s.nsems,
    );
    out.each(
        "shmfs_sem_set_waiters",
        "Tasks blocked in semop on the semaphore set (as the daemon sees /proc).",
        &waiting,
        |(_, w)| *w,
    );
    out.each(
        "shmfs_sem_set_last_operation_timestamp_seconds",
        "Last semop on the semaphore set (sem_otime), Unix time; 0 if never.",
        &rows,
        |(s, _)| s.otime.max(0),
    );
    out.each(
        "shmfs_sem_set_last_change_timestamp_seconds",
        "Last change of the semaphore set (sem_ctime: creation, IPC_SET, SETVAL, SETALL), Unix time.",
        &rows,
        |(s, _)| s.ctime.max(0),
    );
}

/// One series per System V message queue of each per-queue family, labelled with its msqid,
/// key, owner and mode (and `namespace="N"` first, as [`sem_series_in`]): messages and bytes
/// queued, the most bytes it may hold (qbytes), the tasks blocked in `msgsnd` or `msgrcv` on
/// it (from `waiters` by msqid; a queue missing there has no such series: its reader may not
/// know), and its last send, receive and change times.
pub fn msg_series_in(
    out: &mut Out,
    namespace: Option<u64>,
    queues: &[Queue],
    waiters: &HashMap<i32, u64>,
    owners: &HashMap<u32, String>,
) {
    let mut fallback = String::new();
    let rows: Vec<(String, (&Queue, u64))> = queues
        .iter()
        .map(|q| {
            let owner = owner(owners, q.uid, &mut fallback);
            let labels = ipc_labels(namespace, "msqid", q.msqid, q.key, owner, q.mode);
            (labels, (q, waiters.get(&q.msqid).copied().unwrap_or(0)))
        })
        .collect();
    let waiting: Vec<_> = rows
        .iter()
        .filter(|(_, (q, _))| waiters.contains_key(&q.msqid))
        .cloned()
        .collect();
    out.each(
        "shmfs_msg_queue_messages",
        "Messages in the System V message queue (qnum).",
        &rows,
        |(q, _)| q.qnum,
    );
    out.each(
        "shmfs_msg_queue_bytes",
        "Bytes of the messages in the message queue (cbytes).",
        &rows,
        |(q, _)| q.cbytes,
    );
    out.each(
        "shmfs_msg_queue_limit_bytes",
        "Most bytes the message queue may hold (qbytes): msgsnd blocks beyond.",
        &rows,
        |(q, _)| q.qbytes,
    );
    out.each(
        "shmfs_msg_queue_waiters",
        "Tasks blocked in msgsnd or msgrcv on the message queue (as the daemon sees /proc).",
        &waiting,
        |(_, w)| *w,
    );
    out.each(
        "shmfs_msg_queue_last_send_timestamp_seconds",
        "Last msgsnd to the message queue (msg_stime), Unix time; 0 if never.",
        &rows,
        |(q, _)| q.stime.max(0),
    );
    out.each(
        "shmfs_msg_queue_last_receive_timestamp_seconds",
        "Last msgrcv from the message queue (msg_rtime), Unix time; 0 if never.",
        &rows,
        |(q, _)| q.rtime.max(0),
    );
    out.each(
        "shmfs_msg_queue_last_change_timestamp_seconds",
        "Last change of the message queue (msg_ctime: creation or IPC_SET), Unix time.",
        &rows,
        |(q, _)| q.ctime.max(0),
    );
}

/// A POSIX queue's labels, escaped, as a POSIX object's:
/// `{[namespace="N",]name="…"[,name_bytes="…"],owner="…",mode="0…"}`.
fn mqueue_labels(namespace: Option<u64>, q: &MqInfo, owner: &str) -> String {
    let mut out = open_labels(namespace);
    out.push_str(&name_labels(q.name.as_bytes()));
    out.push_str(",owner=\"");
    escape_label_into(&mut out, owner);
    let _ = write!(out, "\",mode=\"0{:03o}\"}}", q.mode & 0o7777);
    out
}

/// One series per POSIX message queue of each per-queue family, labelled as a POSIX object
/// is (name, and `name_bytes` for a name that is not plain; owner; mode; and
/// `namespace="N"` first, as [`sem_series_in`]): the messages in it, the most it holds
/// (maxmsg) and its largest message (msgsize).
pub fn mqueue_series_in(
    out: &mut Out,
    namespace: Option<u64>,
    queues: &[MqInfo],
    owners: &HashMap<u32, String>,
) {
    let mut fallback = String::new();
    let rows: Vec<(String, &MqInfo)> = queues
        .iter()
        .map(|q| {
            let labels = mqueue_labels(namespace, q, owner(owners, q.uid, &mut fallback));
            (labels, q)
        })
        .collect();
    out.each(
        "shmfs_mqueue_messages",
        "Messages in the POSIX message queue (mq_curmsgs).",
        &rows,
        |q| q.curmsgs.max(0),
    );
    out.each(
        "shmfs_mqueue_messages_limit",
        "Most messages the POSIX message queue holds (mq_maxmsg): mq_send blocks beyond.",
        &rows,
        |q| q.maxmsg.max(0),
    );
    out.each(
        "shmfs_mqueue_message_size_limit_bytes",
        "Largest message the POSIX message queue takes (mq_msgsize).",
        &rows,
        |q| q.msgsize.max(0),
    );
}

/// The semaphore totals of an IPC namespace (`ipcs -s -u` and `ipcs -s -l`): sets and
/// semaphores, and their limits (semmni, semmns).
pub fn sem_totals(out: &mut Out, l: &SemLimits) {
    out.single(
        "shmfs_sem_sets",
        "System V semaphore sets (ipcs -s).",
        l.sets_used,
    );
    out.single(
        "shmfs_sem_sets_limit",
        "Most System V semaphore sets the system allows (kernel.sem semmni).",
        l.semmni,
    );
    out.single(
        "shmfs_sem_semaphores",
        "Semaphores in all System V semaphore sets.",
        l.semaphores_used,
    );
    out.single(
        "shmfs_sem_semaphores_limit",
        "Most semaphores in all sets the system allows (kernel.sem semmns).",
        l.semmns,
    );
}

/// The message queue totals of an IPC namespace (`ipcs -q -u` and `ipcs -q -l`): queues and
/// their limit (msgmni), and the messages and bytes queued in all of them.
pub fn msg_totals(out: &mut Out, l: &MsgLimits) {
    out.single(
        "shmfs_msg_queues",
        "System V message queues (ipcs -q).",
        l.queues_used,
    );
    out.single(
        "shmfs_msg_queues_limit",
        "Most System V message queues the system allows (kernel.msgmni).",
        l.msgmni,
    );
    out.single(
        "shmfs_msg_messages",
        "Messages in all System V message queues.",
        l.messages_used,
    );
    out.single(
        "shmfs_msg_bytes",
        "Bytes of the messages in all System V message queues.",
        l.bytes_used,
    );
}

/// Appends `value` as a label value of a text that a container's owner chooses (a hostname,
/// a container's name or cgroup): escaped as the format requires, and if it is not plain (see
/// [`name_labels`]) made readable first, as [`readable_name`] does, so that no terminal
/// escape reaches `curl | grep`.
fn text_label_into(out: &mut String, value: &str) {
    if is_plain(value.as_bytes()) {
        escape_label_into(out, value);
    } else {
        escape_label_into(out, &readable_name(value.as_bytes()));
    }
}

/// A namespace's labels, escaped, the same names for every namespace:
/// `{namespace="N",runtime="…",container_id="…",pod_uid="…",id="…",hostname="…"}`. The
/// container's four are [`Container::label_pairs`], all empty for a namespace in no container
/// (the host's own); `hostname` is empty when unknown. Prometheus takes an empty value as no
/// label.
fn namespace_labels(row: &NsRow) -> String {
    let mut out = format!("{{namespace=\"{}\"", row.ns);
    let pairs = row.container.as_ref().map(Container::label_pairs);
    let pairs = pairs.unwrap_or([
        ("runtime", ""),
        ("container_id", ""),
        ("pod_uid", ""),
        ("id", ""),
    ]);
    for (name, value) in pairs {
        let _ = write!(out, ",{name}=\"");
        text_label_into(&mut out, value);
        out.push('"');
    }
    out.push_str(",hostname=\"");
    text_label_into(&mut out, row.hostname.as_deref().unwrap_or(""));
    out.push_str("\"}");
    out
}

/// The per-namespace series (`ns/`, issue 23): for each IPC namespace of `rows`, its
/// processes, segments, their bytes, resident bytes and how many are unattached, and its
/// `/dev/shm`'s use and capacity (no sample of these two for a namespace with no `/dev/shm`
/// reachable). Each series has the same labels: `namespace` (the nsfs
/// inode number, the name of `ns/N`), the container's `runtime`, `container_id`, `pod_uid` and
/// `id` (its cgroup, as cAdvisor's `id` label shows it, to join cAdvisor's series), and
/// `hostname` (the four container labels empty for a namespace in no container, the
/// host's own; `hostname` empty when unknown; a value a container's owner chose that is not
/// plain text made readable as [`readable_name`] does).
///
/// These are totals, one series per namespace whatever it holds: they are written with
/// [`Detail::Totals`] (`-o metrics=totals`) as with [`Detail::All`]. Nothing is written for
/// no rows.
pub fn namespace_series(out: &mut Out, rows: &[NsRow]) {
    let rows: Vec<(String, &NsRow)> = rows.iter().map(|r| (namespace_labels(r), r)).collect();
    out.each(
        "shmfs_namespace_processes",
        "Processes in the IPC namespace.",
        &rows,
        |r| r.procs,
    );
    out.each(
        "shmfs_namespace_segments",
        "System V segments of the IPC namespace.",
        &rows,
        |r| r.segments,
    );
    out.each(
        "shmfs_namespace_segment_bytes",
        "Total size of the System V segments of the IPC namespace.",
        &rows,
        |r| r.bytes,
    );
    out.each(
        "shmfs_namespace_segment_rss_bytes",
        "Bytes of the IPC namespace's System V segments resident in memory.",
        &rows,
        |r| r.rss,
    );
    out.each(
        "shmfs_namespace_orphan_segments",
        "System V segments of the IPC namespace that no process has attached (nattch 0).",
        &rows,
        |r| r.orphans,
    );
    let used: Vec<(String, u64)> = rows
        .iter()
        .filter_map(|(labels, r)| Some((labels.clone(), r.shm_used?)))
        .collect();
    out.each(
        "shmfs_namespace_shm_dir_used_bytes",
        "Bytes used on the /dev/shm that the IPC namespace's processes see (df used).",
        &used,
        |n| *n,
    );
    let size: Vec<(String, u64)> = rows
        .iter()
        .filter_map(|(labels, r)| Some((labels.clone(), r.shm_size?)))
        .collect();
    out.each(
        "shmfs_namespace_shm_dir_size_bytes",
        "Capacity of the /dev/shm that the IPC namespace's processes see (df size).",
        &size,
        |n| *n,
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

    use crate::kernel::container::{Container, Runtime};
    use crate::render::namespaces::NsRow;

    const CID: &str = "3f2a9c0b1d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8";

    fn ns_row(ns: u64, container: Option<Container>, hostname: Option<&str>) -> NsRow {
        NsRow {
            ns,
            container,
            hostname: hostname.map(str::to_string),
            procs: 3,
            segments: 2,
            bytes: 8192,
            rss: 4096,
            orphans: 1,
            shm_used: Some(60 << 20),
            shm_size: Some(64 << 20),
        }
    }

    fn pod() -> Container {
        Container {
            runtime: Runtime::Containerd,
            id: CID.into(),
            pod_uid: Some("0b5e3ad2-5b5f-4e4c-9d1a-0123456789ab".into()),
            cgroup: format!(
                "/kubepods.slice/kubepods-pod0b5e3ad2_5b5f_4e4c_9d1a_0123456789ab.slice/cri-containerd-{CID}.scope"
            ),
        }
    }

    fn namespaces_of(rows: &[NsRow]) -> String {
        let mut out = Out::default();
        namespace_series(&mut out, rows);
        out.into_text()
    }

    #[test]
    fn namespace_series_carry_the_namespace_and_its_container() {
        let text = namespaces_of(&[
            ns_row(4026531839, None, Some("host1")),
            ns_row(4026532456, Some(pod()), Some("web-0")),
        ]);
        let host = r#"{namespace="4026531839",runtime="",container_id="",pod_uid="",id="",hostname="host1"}"#;
        let pod = format!(
            "{{namespace=\"4026532456\",runtime=\"containerd\",container_id=\"{CID}\",\
             pod_uid=\"0b5e3ad2-5b5f-4e4c-9d1a-0123456789ab\",id=\"{}\",hostname=\"web-0\"}}",
            pod().cgroup
        );
        for labels in [host.to_string(), pod] {
            for (family, value) in [
                ("shmfs_namespace_processes", 3),
                ("shmfs_namespace_segments", 2),
                ("shmfs_namespace_segment_bytes", 8192),
                ("shmfs_namespace_segment_rss_bytes", 4096),
                ("shmfs_namespace_orphan_segments", 1),
                ("shmfs_namespace_shm_dir_used_bytes", 60 << 20),
                ("shmfs_namespace_shm_dir_size_bytes", 64 << 20),
            ] {
                let line = format!("{family}{labels} {value}");
                assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
            }
        }
        assert_eq!(text.matches("# HELP ").count(), 7, "{text}");
        assert_eq!(text.lines().count(), 7 * 4, "{text}");
        assert_eq!(namespaces_of(&[]), "");
    }

    #[test]
    fn a_namespace_without_a_shm_dir_has_no_shm_dir_samples() {
        let mut row = ns_row(7, None, None);
        row.shm_used = None;
        row.shm_size = None;
        let text = namespaces_of(&[row.clone()]);
        assert!(!text.contains("shm_dir"), "{text}");
        assert!(text.contains("hostname=\"\"} 3\n"), "{text}");
        let text = namespaces_of(&[row, ns_row(8, None, None)]);
        assert_eq!(
            text.matches("shmfs_namespace_shm_dir_size_bytes{").count(),
            1
        );
    }

    /// The label names of every sample of `text`, by family.
    fn label_names(text: &str) -> HashMap<String, std::collections::BTreeSet<Vec<String>>> {
        let mut out: HashMap<String, std::collections::BTreeSet<Vec<String>>> = HashMap::new();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (name, rest) = line.split_once('{').unwrap_or((line, ""));
            let mut names = Vec::new();
            let mut in_value = false;
            let mut escaped = false;
            let mut current = String::new();
            for c in rest.chars() {
                if in_value {
                    match (escaped, c) {
                        (true, _) => escaped = false,
                        (false, '\\') => escaped = true,
                        (false, '"') => in_value = false,
                        _ => {}
                    }
                } else if c == '=' {
                    names.push(std::mem::take(&mut current));
                } else if c == '"' {
                    in_value = true;
                } else if c == '}' {
                    break;
                } else if c != ',' {
                    current.push(c);
                }
            }
            out.entry(name.split(' ').next().unwrap().to_string())
                .or_default()
                .insert(names);
        }
        out
    }

    const HOSTILE: [&str; 6] = [
        "two words",
        "new\nline",
        "\r\x1b[2Jclear",
        "back\\slash \"q\"",
        "\u{85}next}",
        "x=\"y\",z=\"",
    ];

    #[test]
    fn hostile_hostnames_and_names_stay_in_their_label() {
        let rows: Vec<NsRow> = HOSTILE
            .iter()
            .enumerate()
            .map(|(i, text)| {
                let c = Container {
                    runtime: Runtime::Lxc,
                    id: text.to_string(),
                    pod_uid: None,
                    cgroup: format!("/lxc.payload.{text}"),
                };
                ns_row(i as u64, Some(c), Some(text))
            })
            .collect();
        let text = namespaces_of(&rows);
        assert!(
            !text.contains(|c: char| c.is_control() && c != '\n'),
            "{text:?}"
        );
        assert_eq!(text.lines().count(), 7 * (2 + HOSTILE.len()), "{text}");
        // The same label names for every sample of a family.
        for (family, sets) in label_names(&text) {
            assert_eq!(sets.len(), 1, "{family}: {sets:?}");
        }
        assert!(text.contains(r#"hostname="two words"}"#), "{text}");
        assert!(text.contains(r#"hostname="back\\slash \"q\""}"#), "{text}");
        assert!(text.contains(r#"hostname="new\\x0aline"}"#), "{text}");
        assert!(text.contains(r#"hostname="\\x0d\\x1b[2Jclear"}"#), "{text}");
        assert!(text.contains(r#"container_id="\\xc2\\x85next}""#), "{text}");
    }

    fn segments_of_two_namespaces(out: &mut Out) {
        let usage = HashMap::from([(1, Usage { rss: 4096, swap: 0 })]);
        let owners = HashMap::from([(1000, "alice".to_string()), (0, "root".to_string())]);
        segment_series(out, &[seg(1, 1)], &usage, &owners);
        object_series(out, &[obj(b"a")], &owners);
        segment_series_in(
            out,
            Some(4026532456),
            &[seg(1, 0), seg(2, 0)],
            &usage,
            &owners,
        );
        object_series_in(out, Some(4026532456), &[obj(b"a")], &owners);
    }

    #[test]
    fn other_namespaces_objects_carry_their_namespace_in_the_same_families() {
        let mut out = Out::with_capacity(64);
        segments_of_two_namespaces(&mut out);
        let text = out.into_text();
        let root = r#"{shmid="1",key="0x0000162e",owner="alice",mode="0600"}"#;
        let other =
            r#"{namespace="4026532456",shmid="1",key="0x0000162e",owner="alice",mode="0600"}"#;
        let lines: Vec<&str> = text.lines().collect();
        let at = |line: String| {
            lines
                .iter()
                .position(|l| *l == line)
                .unwrap_or_else(|| panic!("no {line:?} in\n{text}"))
        };
        // Each family whole: its HELP, then the root's sample, then the other namespace's.
        let help = at("# HELP shmfs_sysv_segment_attachments Current attachments of the segment (nattch): 0 means no process has it attached.".into());
        assert_eq!(
            at(format!("shmfs_sysv_segment_attachments{root} 1")),
            help + 2
        );
        assert_eq!(
            at(format!("shmfs_sysv_segment_attachments{other} 0")),
            help + 3
        );
        assert!(
            lines.contains(
                &r#"shmfs_posix_object_size_bytes{name="a",owner="root",mode="0640"} 8192"#
            )
        );
        assert!(lines.contains(&r#"shmfs_posix_object_size_bytes{namespace="4026532456",name="a",owner="root",mode="0640"} 8192"#));
        assert_eq!(text.matches("# HELP ").count(), 10, "{text}");
        assert_eq!(text.matches("# TYPE ").count(), 10, "{text}");
    }

    #[test]
    fn appended_parts_join_the_families_they_share() {
        let mut one = Out::default();
        segments_of_two_namespaces(&mut one);
        let whole = one.into_text();
        // The same samples written into two parts and appended: the same text.
        let usage = HashMap::from([(1, Usage { rss: 4096, swap: 0 })]);
        let owners = HashMap::from([(1000, "alice".to_string()), (0, "root".to_string())]);
        let mut first = Out::default();
        segment_series(&mut first, &[seg(1, 1)], &usage, &owners);
        object_series(&mut first, &[obj(b"a")], &owners);
        let mut second = Out::default();
        segment_series_in(
            &mut second,
            Some(4026532456),
            &[seg(1, 0), seg(2, 0)],
            &usage,
            &owners,
        );
        object_series_in(&mut second, Some(4026532456), &[obj(b"a")], &owners);
        first.append(second);
        assert_eq!(first.into_text(), whole);
        assert_eq!(Out::default().into_text(), "");
    }

    #[test]
    fn the_roots_text_is_as_it_was() {
        let text = render_of(&[seg(32769, 2)], &[obj(b"a")], Detail::All);
        let want = "# HELP shmfs_sysv_segment_size_bytes Size of the System V segment (ipcs -m bytes).\n\
            # TYPE shmfs_sysv_segment_size_bytes gauge\n\
            shmfs_sysv_segment_size_bytes{shmid=\"32769\",key=\"0x0000162e\",owner=\"alice\",mode=\"0600\"} 4096\n\
            # HELP shmfs_sysv_segment_resident_bytes ";
        assert!(text.starts_with(want), "{text}");
        assert!(text.ends_with("# HELP shmfs_shm_dir_used_bytes Bytes used on the shm dir's filesystem (df /dev/shm used).\n\
            # TYPE shmfs_shm_dir_used_bytes gauge\nshmfs_shm_dir_used_bytes 8192\n"), "{text}");
        assert!(!text.contains("namespace"), "{text}");
    }

    /// `promtool check metrics` (Debian package `prometheus`) has nothing to say of a text with
    /// every kind of series, namespaces with hostile names among them. Not run where promtool
    /// is not installed (CI installs it).
    #[test]
    fn promtool_check_metrics_has_nothing_to_say() {
        let mut out = Out::default();
        segments_of_two_namespaces(&mut out);
        let mut totals = Out::default();
        sysv_totals(&mut totals, &[seg(1, 0)], &System::default());
        posix_totals(&mut totals, &[obj(b"a")], &System::default());
        let mut rows = vec![
            ns_row(4026531839, None, Some("host1")),
            ns_row(4026532456, Some(pod()), None),
        ];
        for (i, text) in HOSTILE.iter().enumerate() {
            let c = Container {
                runtime: Runtime::Nspawn,
                id: text.to_string(),
                pod_uid: None,
                cgroup: format!("/machine.slice/systemd-nspawn@{text}.service"),
            };
            rows.push(ns_row(100 + i as u64, Some(c), Some(text)));
        }
        rows[2].shm_size = None;
        namespace_series(&mut totals, &rows);
        out.append(totals);
        promtool_has_nothing_to_say(&out.into_text());
    }

    /// Runs `promtool check metrics` on `text` and fails unless it passes silently; does
    /// nothing where promtool is not installed (CI installs it).
    fn promtool_has_nothing_to_say(text: &str) {
        use std::io::Write as _;
        use std::process::{Command, Stdio};
        let child = Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        let mut child = match child {
            Ok(child) => child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                eprintln!("promtool is not installed: the check of the text is not run");
                return;
            }
            Err(e) => panic!("running promtool: {e}"),
        };
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let done = child.wait_with_output().unwrap();
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&done.stdout),
            String::from_utf8_lossy(&done.stderr)
        );
        assert!(
            done.status.success() && said.trim().is_empty(),
            "promtool: {said}\n{text}"
        );
    }

    fn sem_set(semid: i32, key: u32) -> SemSet {
        SemSet {
            semid,
            key,
            nsems: 3,
            mode: 0o600,
            uid: 1000,
            gid: 1000,
            cuid: 1000,
            cgid: 1000,
            otime: 0,
            ctime: 1_700_000_000,
        }
    }

    fn msg_queue(msqid: i32) -> Queue {
        Queue {
            msqid,
            key: 0,
            mode: 0o644,
            uid: 4242,
            gid: 0,
            cuid: 0,
            cgid: 0,
            cbytes: 300,
            qbytes: 16384,
            qnum: 3,
            lspid: 1,
            lrpid: 2,
            stime: 1_700_000_100,
            rtime: -5,
            ctime: 1_700_000_000,
        }
    }

    fn mq(name: &[u8]) -> MqInfo {
        MqInfo {
            ino: 7,
            name: OsString::from_vec(name.to_vec()),
            mode: 0o4660,
            uid: 0,
            gid: 0,
            atime: 0,
            mtime: 0,
            ctime: 0,
            maxmsg: 10,
            msgsize: 8192,
            curmsgs: 4,
        }
    }

    /// The series of every IPC kind, of the mount's namespace and of another, with hostile
    /// owner and queue names.
    fn ipc_text() -> String {
        let owners = HashMap::from([
            (1000, "alice".to_string()),
            (0, "new\nline \"root\"".to_string()),
        ]);
        let waiters = HashMap::from([(98307, 2), (65536, 1)]);
        let mut out = Out::default();
        sem_series_in(
            &mut out,
            None,
            &[sem_set(98307, 0xdeadbeef), sem_set(5, 0)],
            &waiters,
            &owners,
        );
        msg_series_in(&mut out, None, &[msg_queue(65536)], &waiters, &owners);
        mqueue_series_in(&mut out, None, &[mq(b"jobs")], &owners);
        let queues: Vec<MqInfo> = HOSTILE.iter().map(|n| mq(n.as_bytes())).collect();
        let mut other = Out::default();
        sem_series_in(
            &mut other,
            Some(7),
            &[sem_set(98307, 1)],
            &HashMap::new(),
            &owners,
        );
        msg_series_in(
            &mut other,
            Some(7),
            &[msg_queue(65536)],
            &HashMap::new(),
            &owners,
        );
        mqueue_series_in(&mut other, Some(7), &queues, &owners);
        mqueue_series_in(&mut other, Some(7), &[mq(b"bad\xff")], &owners);
        out.append(other);
        sem_totals(
            &mut out,
            &SemLimits {
                semmsl: 32000,
                semmns: 1_024_000_000,
                semopm: 500,
                semmni: 32000,
                semvmx: 32767,
                sets_used: 3,
                semaphores_used: 9,
            },
        );
        msg_totals(
            &mut out,
            &MsgLimits {
                msgmax: 8192,
                msgmnb: 16384,
                msgmni: 32000,
                queues_used: 2,
                messages_used: 6,
                bytes_used: 600,
            },
        );
        out.into_text()
    }

    #[test]
    fn ipc_series_carry_their_ids_keys_owners_and_namespaces() {
        let text = ipc_text();
        let has = |line: &str| assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
        let set = r#"{semid="98307",key="0xdeadbeef",owner="alice",mode="0600"}"#;
        has(&format!("shmfs_sem_set_semaphores{set} 3"));
        has(&format!("shmfs_sem_set_waiters{set} 2"));
        has(&format!(
            "shmfs_sem_set_last_operation_timestamp_seconds{set} 0"
        ));
        has(&format!(
            "shmfs_sem_set_last_change_timestamp_seconds{set} 1700000000"
        ));
        // A set missing from the waiters (its reader may not read it) has no such series.
        let hasnt = |start: &str| assert!(!text.lines().any(|l| l.starts_with(start)), "{text}");
        hasnt(r#"shmfs_sem_set_waiters{semid="5","#);
        hasnt(r#"shmfs_sem_set_waiters{namespace="7","#);
        has(r#"shmfs_sem_set_semaphores{semid="5",key="0x00000000",owner="alice",mode="0600"} 3"#);
        let queue = r#"{msqid="65536",key="0x00000000",owner="4242",mode="0644"}"#;
        has(&format!("shmfs_msg_queue_messages{queue} 3"));
        has(&format!("shmfs_msg_queue_bytes{queue} 300"));
        has(&format!("shmfs_msg_queue_limit_bytes{queue} 16384"));
        has(&format!("shmfs_msg_queue_waiters{queue} 1"));
        has(&format!(
            "shmfs_msg_queue_last_send_timestamp_seconds{queue} 1700000100"
        ));
        has(&format!(
            "shmfs_msg_queue_last_receive_timestamp_seconds{queue} 0"
        ));
        has(&format!(
            "shmfs_msg_queue_last_change_timestamp_seconds{queue} 1700000000"
        ));
        let jobs = r#"{name="jobs",owner="new\nline \"root\"",mode="04660"}"#;
        has(&format!("shmfs_mqueue_messages{jobs} 4"));
        has(&format!("shmfs_mqueue_messages_limit{jobs} 10"));
        has(&format!("shmfs_mqueue_message_size_limit_bytes{jobs} 8192"));
        has(
            r#"shmfs_mqueue_messages{namespace="7",name="bad\\xff",name_bytes="626164ff",owner="new\nline \"root\"",mode="04660"} 4"#,
        );
        for (family, value) in [
            ("shmfs_sem_sets", 3),
            ("shmfs_sem_sets_limit", 32000),
            ("shmfs_sem_semaphores", 9),
            ("shmfs_sem_semaphores_limit", 1_024_000_000),
            ("shmfs_msg_queues", 2),
            ("shmfs_msg_queues_limit", 32000),
            ("shmfs_msg_messages", 6),
            ("shmfs_msg_bytes", 600),
        ] {
            has(&format!("{family} {value}"));
        }
        // One HELP and TYPE per family, whatever the namespaces.
        assert_eq!(text.matches("# HELP ").count(), 4 + 7 + 3 + 8, "{text}");
        assert_eq!(text.matches("# TYPE ").count(), 4 + 7 + 3 + 8, "{text}");
        assert!(
            !text.contains(|c: char| c.is_control() && c != '\n'),
            "{text:?}"
        );
    }

    #[test]
    fn no_sets_or_queues_no_series() {
        let mut out = Out::default();
        let (waiters, owners) = (HashMap::new(), HashMap::new());
        sem_series_in(&mut out, None, &[], &waiters, &owners);
        msg_series_in(&mut out, Some(1), &[], &waiters, &owners);
        mqueue_series_in(&mut out, None, &[], &owners);
        assert_eq!(out.into_text(), "");
    }

    /// `promtool check metrics` has nothing to say of the series of semaphore sets, message
    /// queues and POSIX queues, hostile names among them, with the rest of the text.
    #[test]
    fn promtool_check_metrics_has_nothing_to_say_of_ipc_series() {
        let mut out = Out::default();
        segments_of_two_namespaces(&mut out);
        let text = out.into_text() + &ipc_text();
        promtool_has_nothing_to_say(&text);
    }
}
