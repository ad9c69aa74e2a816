//! The root `index` and `index.json` files: every object in one table, for people (in place
//! of `ipcs` and `lsipc`) and for `jq`. The `kind` column says which: `sysv` (a System V
//! segment), `sem` (a semaphore set), `msg` (a message queue), `posix` (a POSIX shared memory
//! object) or `mqueue` (a POSIX message queue).

use std::collections::HashMap;

use std::os::unix::ffi::OsStrExt;

use crate::kernel::mqueue::MqInfo;
use crate::kernel::msg::Queue;
use crate::kernel::posix::Object;
use crate::kernel::sem::SemSet;
use crate::kernel::sysv::{Segment, Usage};

/// One row: a segment, a semaphore set, a message queue, an object or a POSIX queue.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// `sysv`, `sem`, `msg`, `posix` or `mqueue`.
    pub kind: &'static str,
    /// shmid, semid or msqid for System V, the name (as [`escape_name`] writes it) for POSIX.
    pub id: String,
    pub key: Option<u32>,
    /// Bytes of a segment or object; semaphores of a set; bytes queued in a message queue;
    /// messages in a POSIX queue.
    pub size: u64,
    pub mode: u32,
    pub uid: u32,
    pub owner: String,
    pub nattch: Option<u64>,
    /// Resident bytes of a segment, allocated bytes of an object; None for the other kinds,
    /// which hold no pages of their own to count.
    pub rss: Option<u64>,
    /// The POSIX object's or queue's name as the kernel has it (any bytes but `/` and NUL).
    pub name: Option<Vec<u8>>,
    /// What `index.json` shows of a kind beyond the columns of `index`.
    pub extra: Extra,
}

/// The fields of a row that only `index.json` shows, by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Extra {
    /// Nothing more (a segment, a POSIX object).
    #[default]
    None,
    /// A semaphore set: its number of semaphores.
    Sem { nsems: u64 },
    /// A message queue: messages and bytes queued, and the most bytes it may hold.
    Msg { qnum: u64, cbytes: u64, qbytes: u64 },
    /// A POSIX queue: its attributes (`mq_getattr`).
    Mqueue {
        maxmsg: i64,
        msgsize: i64,
        curmsgs: i64,
    },
}

impl Row {
    /// The row of a segment.
    pub fn sysv(seg: &Segment, usage: Usage, owner: String) -> Row {
        Row {
            kind: "sysv",
            id: seg.shmid.to_string(),
            key: Some(seg.key),
            size: seg.size,
            mode: seg.mode,
            uid: seg.uid,
            owner,
            nattch: Some(seg.nattch),
            rss: Some(usage.rss),
            name: None,
            extra: Extra::None,
        }
    }

    /// The row of a POSIX object; its name is shown as [`escape_name`] writes it.
    pub fn posix(obj: &Object, owner: String) -> Row {
        Row {
            kind: "posix",
            id: escape_name(obj.name.as_bytes()),
            key: None,
            size: obj.size,
            mode: obj.mode,
            uid: obj.uid,
            owner,
            nattch: None,
            rss: Some(obj.allocated),
            name: Some(obj.name.as_bytes().to_vec()),
            extra: Extra::None,
        }
    }

    /// The row of a semaphore set: its semid and key; its size is its number of semaphores.
    pub fn sem(set: &SemSet, owner: String) -> Row {
        Row {
            kind: "sem",
            id: set.semid.to_string(),
            key: Some(set.key),
            size: set.nsems,
            mode: set.mode,
            uid: set.uid,
            owner,
            nattch: None,
            rss: None,
            name: None,
            extra: Extra::Sem { nsems: set.nsems },
        }
    }

    /// The row of a message queue: its msqid and key; its size is the bytes queued (cbytes).
    pub fn msg(q: &Queue, owner: String) -> Row {
        Row {
            kind: "msg",
            id: q.msqid.to_string(),
            key: Some(q.key),
            size: q.cbytes,
            mode: q.mode,
            uid: q.uid,
            owner,
            nattch: None,
            rss: None,
            name: None,
            extra: Extra::Msg {
                qnum: q.qnum,
                cbytes: q.cbytes,
                qbytes: q.qbytes,
            },
        }
    }

    /// The row of a POSIX message queue: its name shown as [`escape_name`] writes it (as a
    /// POSIX object's); its size is the messages in it (curmsgs).
    pub fn mqueue(q: &MqInfo, owner: String) -> Row {
        Row {
            kind: "mqueue",
            id: escape_name(q.name.as_bytes()),
            key: None,
            size: u64::try_from(q.curmsgs).unwrap_or(0),
            mode: q.mode,
            uid: q.uid,
            owner,
            nattch: None,
            rss: None,
            name: Some(q.name.as_bytes().to_vec()),
            extra: Extra::Mqueue {
                maxmsg: q.maxmsg,
                msgsize: q.msgsize,
                curmsgs: q.curmsgs,
            },
        }
    }
}

/// Owners' names for one render: each uid looked up once, and its number if it has no name.
pub struct Owners {
    names: HashMap<u32, String>,
    lookup: fn(u32) -> Option<String>,
}

impl Owners {
    /// No name known yet; `lookup` names a uid.
    pub fn new(lookup: fn(u32) -> Option<String>) -> Owners {
        Owners {
            names: HashMap::new(),
            lookup,
        }
    }

    /// The name of `uid`.
    pub fn name(&mut self, uid: u32) -> String {
        let lookup = self.lookup;
        self.names
            .entry(uid)
            .or_insert_with(|| lookup(uid).unwrap_or_else(|| uid.to_string()))
            .clone()
    }

    /// The names of `uids`, looked up as needed, with every name known so far.
    pub fn names_of(&mut self, uids: impl Iterator<Item = u32>) -> &HashMap<u32, String> {
        for uid in uids {
            self.name(uid);
        }
        &self.names
    }
}

/// The eight cells of a row of the `index` table.
fn cells(r: &Row) -> [String; 8] {
    [
        r.kind.to_string(),
        r.id.clone(),
        r.key.map_or("-".into(), |k| format!("0x{k:08x}")),
        r.size.to_string(),
        format!("0{:03o}", r.mode),
        r.owner.clone(),
        r.nattch.map_or("-".into(), |n| n.to_string()),
        r.rss.map_or("-".into(), |n| n.to_string()),
    ]
}

/// The `index` table: a header and one aligned line per row. The cells are made twice (for
/// the widths, then for the text) rather than kept: with thousands of rows, keeping eight
/// strings per row cost the daemon more memory than the text itself.
pub fn render_table(rows: &[Row]) -> String {
    let header = [
        "KIND", "ID", "KEY", "SIZE", "MODE", "OWNER", "NATTCH", "RSS",
    ];
    let mut widths = header.map(str::len);
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(cells(row)) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[&str]| {
        let last = cells.len() - 1;
        for (i, cell) in cells.iter().enumerate() {
            out.push_str(cell);
            if i < last {
                let pad = widths[i] - cell.chars().count() + 2;
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push('\n');
    };
    line(&header);
    for row in rows {
        line(&cells(row).each_ref().map(String::as_str));
    }
    out
}

/// A POSIX object's name as the `index` table shows it: one word, so that `awk` and `sort -k`
/// see the same columns on every line. Each character as Rust's `escape_debug` writes it
/// (`\\`, `\"`, `\'`, `\t`, `\n`, `\r`, `\0`, `\u{HEX}` for other control and non-printing
/// characters), a space as `\x20`, any other white space as `\u{HEX}`, and each byte that is
/// not part of valid UTF-8 as `\xHH`. `index.json` has the name itself.
pub fn escape_name(name: &[u8]) -> String {
    let mut out = String::with_capacity(name.len() + 8);
    for chunk in name.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                ' ' => out.push_str("\\x20"),
                '\t' | '\n' | '\r' => out.extend(c.escape_debug()),
                c if c.is_whitespace() => out.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
                c => out.extend(c.escape_debug()),
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// The `name` text of a name that is not valid UTF-8: its valid UTF-8 runs as they are, each
/// backslash doubled, each byte that is not part of valid UTF-8 as `\xHH` (lower-case hex).
/// Different names give different texts; it is shown beside `name_bytes`, which is exact.
pub fn escape_non_utf8(name: &[u8]) -> String {
    let mut out = String::with_capacity(name.len() + 8);
    for chunk in name.utf8_chunks() {
        out.push_str(&chunk.valid().replace('\\', "\\\\"));
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// `index.json`: an array of objects, numbers as numbers, keys in alphabetical order, laid out
/// as `serde_json`'s pretty printer does. Written field by field rather than through a JSON
/// value per row, which with thousands of rows cost the daemon tens of megabytes.
///
/// Every row has `kind`, `mode`, `mode_octal`, `owner`, `size` and `uid`. A System V object is
/// named by its id (`shmid`, `semid` or `msqid`) and `key`; a segment has `nattch` and `rss`, a
/// set `nsems`, a queue `qnum`, `cbytes` and `qbytes`. A POSIX object or queue is named by
/// `name` alone when its name is valid UTF-8 (the name itself, which JSON escapes once);
/// otherwise by `name` as `escape_non_utf8` writes it plus `name_bytes`, the name's bytes as
/// numbers; an object has `rss`, a queue `maxmsg`, `msgsize` and `curmsgs`.
pub fn render_json(rows: &[Row]) -> String {
    use std::fmt::Write;
    if rows.is_empty() {
        return "[]\n".to_string();
    }
    let mut out = String::from("[\n");
    let string = |s: &str| serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into());
    let number = |n: Option<u64>| n.map_or("null".to_string(), |n| n.to_string());
    for (i, r) in rows.iter().enumerate() {
        let mut fields: Vec<(&str, String)> = Vec::with_capacity(12);
        fields.push(("kind", string(r.kind)));
        fields.push(("mode", r.mode.to_string()));
        fields.push(("mode_octal", string(&format!("0{:03o}", r.mode))));
        fields.push(("owner", string(&r.owner)));
        fields.push(("size", r.size.to_string()));
        fields.push(("uid", r.uid.to_string()));
        if let Some(rss) = r.rss {
            fields.push(("rss", rss.to_string()));
        }
        let sysv_id = match r.kind {
            "sysv" => Some("shmid"),
            "sem" => Some("semid"),
            "msg" => Some("msqid"),
            _ => None,
        };
        if let Some(id_name) = sysv_id {
            fields.push(("key", number(r.key.map(u64::from))));
            let id =
                r.id.parse::<i64>()
                    .ok()
                    .map_or("null".to_string(), |n| n.to_string());
            fields.push((id_name, id));
        } else {
            let name = r.name.as_deref().unwrap_or(r.id.as_bytes());
            match std::str::from_utf8(name) {
                Ok(text) => fields.push(("name", string(text))),
                Err(_) => {
                    fields.push(("name", string(&escape_non_utf8(name))));
                    let mut bytes = String::from("[");
                    for (j, b) in name.iter().enumerate() {
                        let sep = if j == 0 { "" } else { "," };
                        let _ = write!(bytes, "{sep}\n      {b}");
                    }
                    bytes.push_str("\n    ]");
                    fields.push(("name_bytes", bytes));
                }
            }
        }
        if r.kind == "sysv" {
            fields.push(("nattch", number(r.nattch)));
        }
        match r.extra {
            Extra::None => {}
            Extra::Sem { nsems } => fields.push(("nsems", nsems.to_string())),
            Extra::Msg {
                qnum,
                cbytes,
                qbytes,
            } => {
                fields.push(("qnum", qnum.to_string()));
                fields.push(("cbytes", cbytes.to_string()));
                fields.push(("qbytes", qbytes.to_string()));
            }
            Extra::Mqueue {
                maxmsg,
                msgsize,
                curmsgs,
            } => {
                fields.push(("maxmsg", maxmsg.to_string()));
                fields.push(("msgsize", msgsize.to_string()));
                fields.push(("curmsgs", curmsgs.to_string()));
            }
        }
        fields.sort_unstable_by(|a, b| a.0.cmp(b.0));
        out.push_str("  {\n");
        for (j, (key, value)) in fields.iter().enumerate() {
            let comma = if j + 1 < fields.len() { "," } else { "" };
            let _ = writeln!(out, "    \"{key}\": {value}{comma}");
        }
        out.push_str(if i + 1 < rows.len() {
            "  },\n"
        } else {
            "  }\n"
        });
    }
    out.push_str("]\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_are_looked_up_once_and_numbered_without_a_name() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static ASKED: AtomicUsize = AtomicUsize::new(0);
        fn lookup(uid: u32) -> Option<String> {
            ASKED.fetch_add(1, Ordering::Relaxed);
            (uid == 0).then(|| "root".to_string())
        }
        let mut owners = Owners::new(lookup);
        assert_eq!(owners.name(0), "root");
        assert_eq!(owners.name(0), "root");
        assert_eq!(owners.name(4242), "4242");
        let names = owners.names_of([0, 4242, 7].into_iter());
        assert_eq!(names.get(&7).map(String::as_str), Some("7"));
        assert_eq!(ASKED.load(Ordering::Relaxed), 3);
    }

    use serde_json::{Value, json};

    /// `index.json` as it was made before, through a JSON value per row: the layout the
    /// hand-written renderer must keep, byte for byte.
    fn through_values(rows: &[Row]) -> String {
        let values: Vec<Value> = rows
            .iter()
            .map(|r| {
                let mut v = json!({
                    "kind": r.kind, "size": r.size, "mode": r.mode,
                    "mode_octal": format!("0{:03o}", r.mode), "uid": r.uid,
                    "owner": r.owner,
                });
                if let Some(rss) = r.rss {
                    v["rss"] = json!(rss);
                }
                match r.extra {
                    Extra::None => {}
                    Extra::Sem { nsems } => v["nsems"] = json!(nsems),
                    Extra::Msg {
                        qnum,
                        cbytes,
                        qbytes,
                    } => {
                        v["qnum"] = json!(qnum);
                        v["cbytes"] = json!(cbytes);
                        v["qbytes"] = json!(qbytes);
                    }
                    Extra::Mqueue {
                        maxmsg,
                        msgsize,
                        curmsgs,
                    } => {
                        v["maxmsg"] = json!(maxmsg);
                        v["msgsize"] = json!(msgsize);
                        v["curmsgs"] = json!(curmsgs);
                    }
                }
                let id_name = match r.kind {
                    "sysv" => Some("shmid"),
                    "sem" => Some("semid"),
                    "msg" => Some("msqid"),
                    _ => None,
                };
                if let Some(id_name) = id_name {
                    v[id_name] = json!(r.id.parse::<i64>().ok());
                    v["key"] = json!(r.key);
                    if r.kind == "sysv" {
                        v["nattch"] = json!(r.nattch);
                    }
                } else {
                    let name = r.name.as_deref().unwrap_or(r.id.as_bytes());
                    match std::str::from_utf8(name) {
                        Ok(text) => v["name"] = json!(text),
                        Err(_) => {
                            v["name"] = json!(escape_non_utf8(name));
                            v["name_bytes"] = json!(name);
                        }
                    }
                }
                v
            })
            .collect();
        serde_json::to_string_pretty(&values).unwrap() + "\n"
    }

    #[test]
    fn json_is_laid_out_as_serde_json_pretty_prints_it() {
        let mut all = rows();
        for name in [
            &b"plain"[..],
            b"with \"quote\" and \\",
            b"ctl\x1b\n",
            b"bad\xff\xfe",
            b"\xc3",
        ] {
            let obj_row = Row {
                kind: "posix",
                id: escape_name(name),
                key: None,
                size: 3,
                mode: 0o640,
                uid: 7,
                owner: "o\u{e9}".into(),
                nattch: None,
                rss: Some(0),
                name: Some(name.to_vec()),
                extra: Extra::None,
            };
            all.push(obj_row);
            all.push(Row::mqueue(&mq(name), "o\u{e9}".into()));
        }
        all.extend(ipc_rows());
        assert_eq!(render_json(&all), through_values(&all));
        assert_eq!(render_json(&[]), through_values(&[]));
    }

    fn rows() -> Vec<Row> {
        vec![
            Row {
                kind: "sysv",
                id: "32769".into(),
                key: Some(0x162e),
                size: 4096,
                mode: 0o600,
                uid: 1000,
                owner: "alice".into(),
                nattch: Some(2),
                rss: Some(4096),
                name: None,
                extra: Extra::None,
            },
            Row {
                kind: "posix",
                id: "my obj".into(),
                key: None,
                size: 8192,
                mode: 0o640,
                uid: 0,
                owner: "root".into(),
                nattch: None,
                rss: Some(0),
                name: Some(b"my obj".to_vec()),
                extra: Extra::None,
            },
        ]
    }

    fn mq(name: &[u8]) -> MqInfo {
        use std::os::unix::ffi::OsStringExt;
        MqInfo {
            ino: 7,
            name: std::ffi::OsString::from_vec(name.to_vec()),
            mode: 0o4620,
            uid: 0,
            gid: 0,
            atime: 0,
            mtime: 0,
            ctime: 0,
            maxmsg: 10,
            msgsize: 8192,
            curmsgs: 3,
        }
    }

    /// A semaphore set, a message queue and a POSIX queue.
    fn ipc_rows() -> Vec<Row> {
        let set = SemSet {
            semid: 98307,
            key: 0xdeadbeef,
            nsems: 3,
            mode: 0o600,
            uid: 26,
            gid: 26,
            cuid: 26,
            cgid: 26,
            otime: 0,
            ctime: 1,
        };
        let queue = Queue {
            msqid: 65536,
            key: 0,
            mode: 0o644,
            uid: 1000,
            gid: 1000,
            cuid: 1000,
            cgid: 1000,
            cbytes: 300,
            qbytes: 16384,
            qnum: 3,
            lspid: 1,
            lrpid: 0,
            stime: 2,
            rtime: 0,
            ctime: 1,
        };
        vec![
            Row::sem(&set, "postgres".into()),
            Row::msg(&queue, "alice".into()),
            Row::mqueue(&mq(b"jobs queue"), "root".into()),
        ]
    }

    #[test]
    fn every_kind_has_its_row_in_the_table() {
        let mut all = rows();
        all.extend(ipc_rows());
        let t = render_table(&all);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines,
            [
                "KIND    ID             KEY         SIZE  MODE   OWNER     NATTCH  RSS",
                "sysv    32769          0x0000162e  4096  0600   alice     2       4096",
                "posix   my obj         -           8192  0640   root      -       0",
                "sem     98307          0xdeadbeef  3     0600   postgres  -       -",
                "msg     65536          0x00000000  300   0644   alice     -       -",
                "mqueue  jobs\\x20queue  -           3     04620  root      -       -",
            ]
        );
    }

    #[test]
    fn json_of_each_kind_has_its_own_fields() {
        let v: Value = serde_json::from_str(&render_json(&ipc_rows())).unwrap();
        let keys = |i: usize| -> Vec<&str> {
            v[i].as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect()
        };
        assert_eq!(
            keys(0),
            [
                "key",
                "kind",
                "mode",
                "mode_octal",
                "nsems",
                "owner",
                "semid",
                "size",
                "uid"
            ]
        );
        assert_eq!(v[0]["kind"], "sem");
        assert_eq!(v[0]["semid"], 98307);
        assert_eq!(v[0]["key"], 0xdeadbeefu32);
        assert_eq!(v[0]["nsems"], 3);
        assert_eq!(
            keys(1),
            [
                "cbytes",
                "key",
                "kind",
                "mode",
                "mode_octal",
                "msqid",
                "owner",
                "qbytes",
                "qnum",
                "size",
                "uid"
            ]
        );
        assert_eq!(v[1]["msqid"], 65536);
        assert_eq!(v[1]["key"], 0);
        assert_eq!(v[1]["qnum"], 3);
        assert_eq!(v[1]["qbytes"], 16384);
        assert_eq!(v[1]["cbytes"], 300);
        assert_eq!(v[1]["size"], 300);
        assert_eq!(
            keys(2),
            [
                "curmsgs",
                "kind",
                "maxmsg",
                "mode",
                "mode_octal",
                "msgsize",
                "name",
                "owner",
                "size",
                "uid"
            ]
        );
        assert_eq!(v[2]["name"], "jobs queue");
        assert_eq!(v[2]["mode_octal"], "04620");
        assert_eq!(v[2]["maxmsg"], 10);
        assert_eq!(v[2]["msgsize"], 8192);
        assert_eq!(v[2]["curmsgs"], 3);
        let odd = Row::mqueue(&mq(b"q\xff"), "root".into());
        let v: Value = serde_json::from_str(&render_json(&[odd])).unwrap();
        assert_eq!(v[0]["name"], "q\\xff");
        assert_eq!(v[0]["name_bytes"], json!([b'q', 0xff]));
    }

    #[test]
    fn table_is_aligned() {
        let t = render_table(&rows());
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines[0],
            "KIND   ID      KEY         SIZE  MODE  OWNER  NATTCH  RSS"
        );
        assert_eq!(
            lines[1],
            "sysv   32769   0x0000162e  4096  0600  alice  2       4096"
        );
        assert_eq!(
            lines[2],
            "posix  my obj  -           8192  0640  root   -       0"
        );
    }

    #[test]
    fn json_has_numbers() {
        let v: Value = serde_json::from_str(&render_json(&rows())).unwrap();
        assert_eq!(v[0]["shmid"], 32769);
        assert_eq!(v[0]["key"], 0x162e);
        assert_eq!(v[0]["nattch"], 2);
        assert_eq!(v[0]["mode"], 0o600);
        assert_eq!(v[1]["name"], "my obj");
        assert_eq!(v[1]["size"], 8192);
        assert!(
            v[1].get("name_bytes").is_none(),
            "a UTF-8 name has no name_bytes"
        );
    }

    fn json_of_name(name: &[u8]) -> Value {
        let mut rows = rows();
        rows[1].name = Some(name.to_vec());
        let v: Value = serde_json::from_str(&render_json(&rows)).unwrap();
        v[1].clone()
    }

    #[test]
    fn json_names_are_escaped_once() {
        for name in [
            "a\nb",
            "esc\u{1b}[0m",
            "say \"hi\"",
            "back\\slash",
            "t\tab ü",
        ] {
            let v = json_of_name(name.as_bytes());
            assert_eq!(v["name"].as_str(), Some(name), "{v}");
            assert!(v.get("name_bytes").is_none());
        }
    }

    #[test]
    fn table_names_are_one_word() {
        for (name, shown) in [
            (&b"plain"[..], "plain"),
            (b"my obj", "my\\x20obj"),
            (b"t\tab", "t\\tab"),
            (b"a\nb\r", "a\\nb\\r"),
            (b"back\\slash", "back\\\\slash"),
            (b"esc\x1b[0m", "esc\\u{1b}[0m"),
            ("nb\u{a0}sp\u{2003}".as_bytes(), "nb\\u{a0}sp\\u{2003}"),
            (b"x\xff y", "x\\xff\\x20y"),
            ("caf\u{e9}".as_bytes(), "caf\u{e9}"),
        ] {
            let got = escape_name(name);
            assert_eq!(got, shown, "{name:?}");
            assert!(!got.contains(char::is_whitespace), "{got:?}");
        }
        assert_ne!(escape_name(b"\xff"), escape_name(b"\xfe"));
    }

    #[test]
    fn non_utf8_names_stay_apart() {
        let a = json_of_name(b"x\xff\\y");
        let b = json_of_name(b"x\xfe\\y");
        assert_eq!(a["name"].as_str(), Some("x\\xff\\\\y"));
        assert_eq!(b["name"].as_str(), Some("x\\xfe\\\\y"));
        assert_eq!(a["name_bytes"], json!([b'x', 0xff, b'\\', b'y']));
        // A UTF-8 name that reads like the escape differs by having no name_bytes.
        let lookalike = json_of_name(b"x\\xff\\\\y");
        assert!(lookalike.get("name_bytes").is_none());
        assert_eq!(escape_non_utf8(b"\xc3"), "\\xc3");
        assert_eq!(escape_non_utf8(b"\xc3\xa9\xff"), "é\\xff");
    }
}
