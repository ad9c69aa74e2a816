//! The root `index` and `index.json` (shmfs(5) "index and index.json"): one row for each of the
//! test's segments and objects with the right kind, id or name, key, size, mode, owner, nattch
//! and rss; `index.json` parses, with numbers as JSON numbers. And `rss` in `stat` follows the
//! kernel's value within 50 ms when the totals do not move (a regression test).

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;

use serde_json::Value;

use common::*;

/// A uid with no account: its owner column is the number.
const OTHER: u32 = 12345;

fn owner(uid: u32) -> String {
    user_name(uid).unwrap_or_else(|| uid.to_string())
}

fn key_text(key: i32) -> String {
    format!("0x{:08x}", key as u32)
}

/// What a row must say of one of the test's segments or objects.
#[derive(Debug, Clone, PartialEq)]
struct Want {
    kind: &'static str,
    id: String,
    key: Option<i32>,
    size: u64,
    mode: u32,
    uid: u32,
    nattch: Option<u64>,
    rss: u64,
}

impl Want {
    fn cells(&self) -> Vec<String> {
        vec![
            self.kind.to_string(),
            self.id.clone(),
            self.key.map_or("-".into(), key_text),
            self.size.to_string(),
            fmt_mode(self.mode),
            owner(self.uid),
            self.nattch.map_or("-".into(), |n| n.to_string()),
            self.rss.to_string(),
        ]
    }
}

/// Checks `index` against the wanted rows: the header, one row each, cells aligned under the
/// header's columns.
fn check_table(text: &str, wants: &[Want]) {
    let mut lines = text.lines();
    let header = lines.next().expect("index is empty");
    let names: Vec<&str> = header.split_whitespace().collect();
    assert_eq!(
        names,
        [
            "KIND", "ID", "KEY", "SIZE", "MODE", "OWNER", "NATTCH", "RSS"
        ],
        "index header"
    );
    let starts: Vec<usize> = names.iter().map(|n| header.find(n).unwrap()).collect();
    for want in wants {
        let rows: Vec<&str> = text
            .lines()
            .skip(1)
            .filter(|l| {
                let c: Vec<&str> = l.split_whitespace().collect();
                c.len() >= 2 && c[0] == want.kind && c[1] == want.id
            })
            .collect();
        assert_eq!(
            rows.len(),
            1,
            "index must have one `{} {}` row:\n{text}",
            want.kind,
            want.id
        );
        let row = rows[0];
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(
            cells,
            want.cells(),
            "index row of {} {} (left) vs the kernel (right)",
            want.kind,
            want.id
        );
        // Aligned: each cell starts where its column's header does.
        let mut pos = 0;
        for (i, cell) in cells.iter().enumerate() {
            let at = pos + row[pos..].find(cell).unwrap();
            assert_eq!(
                at, starts[i],
                "index row {row:?}: column {} is not aligned under the header {header:?}",
                names[i]
            );
            pos = at + cell.len();
        }
    }
}

/// Checks `index.json` against the wanted rows.
fn check_json(text: &str, wants: &[Want]) {
    let v: Value = serde_json::from_str(text)
        .unwrap_or_else(|e| panic!("index.json does not parse as JSON: {e}\n{text}"));
    let all = v.as_array().expect("index.json is a JSON array");
    for want in wants {
        let found: Vec<&Value> = all
            .iter()
            .filter(|e| {
                e["kind"] == want.kind
                    && match want.kind {
                        "sysv" => e["shmid"].as_i64() == want.id.parse::<i64>().ok(),
                        _ => e["name"].as_str() == Some(want.id.as_str()),
                    }
            })
            .collect();
        assert_eq!(
            found.len(),
            1,
            "index.json must have one entry for {} {}",
            want.kind,
            want.id
        );
        let e = found[0];
        let what = format!("index.json entry of {} {}: {e}", want.kind, want.id);
        for field in ["size", "mode", "uid", "rss"] {
            assert!(e[field].is_u64(), "{what}: `{field}` is not a JSON number");
        }
        assert_eq!(e["size"].as_u64(), Some(want.size), "{what}: size");
        assert_eq!(
            e["mode"].as_u64(),
            Some(u64::from(want.mode)),
            "{what}: mode"
        );
        assert_eq!(
            e["mode_octal"].as_str(),
            Some(fmt_mode(want.mode).as_str()),
            "{what}: mode_octal"
        );
        assert_eq!(e["uid"].as_u64(), Some(u64::from(want.uid)), "{what}: uid");
        assert_eq!(
            e["owner"].as_str(),
            Some(owner(want.uid).as_str()),
            "{what}: owner"
        );
        assert_eq!(e["rss"].as_u64(), Some(want.rss), "{what}: rss");
        match want.kind {
            "sysv" => {
                assert!(e["shmid"].is_i64(), "{what}: shmid is not a JSON number");
                assert_eq!(
                    e["key"].as_u64(),
                    want.key.map(|k| u64::from(k as u32)),
                    "{what}: key (a JSON number, the key as unsigned 32 bits)"
                );
                assert_eq!(e["nattch"].as_u64(), want.nattch, "{what}: nattch");
                assert!(e.get("name").is_none(), "{what}: a SysV entry has no name");
            }
            _ => {
                for field in ["shmid", "key", "nattch"] {
                    assert!(
                        e.get(field).is_none(),
                        "{what}: a POSIX entry has no {field}"
                    );
                }
            }
        }
    }
}

#[test]
fn index_and_index_json_have_a_correct_row_for_each_object() {
    require_fuse!();
    let m = Mount::new();

    // A keyed root segment, attached by the test with one page touched.
    let keyed = SysvSeg::keyed(12288, 0o640);
    let att = keyed.attach();
    att.write(0, b"x");
    // A private segment given to a uid without a name.
    let private = SysvSeg::private(8192, 0o606);
    private.set(None, Some(OTHER), Some(OTHER));
    // A segment pending removal (still attached): key 0.
    let mut dying = SysvSeg::keyed(4096, 0o600);
    let dying_att = dying.attach();
    dying.remove();
    // Two objects, one of them owned by OTHER.
    let a = create_posix(m.shm_dir(), "idx-a", 0o640, &[1u8; 5000]);
    let b = create_posix(m.shm_dir(), "idx-b", 0o600, b"");
    std::os::unix::fs::chown(&b, Some(OTHER), Some(OTHER)).unwrap();
    let blocks = |p: &std::path::Path| fs::metadata(p).unwrap().blocks() * 512;

    let wants = [
        Want {
            kind: "sysv",
            id: keyed.id.to_string(),
            key: Some(keyed.key),
            size: 12288,
            mode: 0o640,
            uid: 0,
            nattch: Some(1),
            rss: 4096,
        },
        Want {
            kind: "sysv",
            id: private.id.to_string(),
            key: Some(0),
            size: 8192,
            mode: 0o606,
            uid: OTHER,
            nattch: Some(0),
            rss: 0,
        },
        Want {
            kind: "sysv",
            id: dying.id.to_string(),
            key: Some(0),
            size: 4096,
            mode: 0o600,
            uid: 0,
            nattch: Some(1),
            rss: 0,
        },
        Want {
            kind: "posix",
            id: "idx-a".into(),
            key: None,
            size: 5000,
            mode: 0o640,
            uid: 0,
            nattch: None,
            rss: blocks(&a),
        },
        Want {
            kind: "posix",
            id: "idx-b".into(),
            key: None,
            size: 0,
            mode: 0o600,
            uid: OTHER,
            nattch: None,
            rss: 0,
        },
    ];
    assert_eq!(wants[3].rss, 8192, "5000 bytes on tmpfs take two pages");
    // The kernel agrees with what the test expects of its segments.
    for w in wants.iter().filter(|w| w.kind == "sysv") {
        let row = proc_sysvipc_row(w.id.parse().unwrap()).unwrap();
        assert_eq!(
            row["rss"],
            w.rss.to_string(),
            "/proc/sysvipc/shm rss of {}",
            w.id
        );
    }

    let table = read_text(&m.p("index"));
    check_table(&table, &wants);
    let json = read_text(&m.p("index.json"));
    check_json(&json, &wants);

    // The rows agree with each segment's own stat.
    for w in wants.iter().filter(|w| w.kind == "sysv") {
        let stat = read_fields(&m.sysv(w.id.parse().unwrap(), "stat"));
        assert_eq!(stat.num("rss"), w.rss, "stat rss of {}", w.id);
        assert_eq!(
            stat.num("nattch"),
            w.nattch.unwrap(),
            "stat nattch of {}",
            w.id
        );
    }
    drop((att, dying_att));
}

/// Regression: `rss` in `stat` was served from a parse of /proc/sysvipc/shm kept for as long as
/// the system's totals did not change, so when one segment gained a page and another lost one,
/// both showed stale values for good. The contract now (shmfs(5) FRESHNESS) lets a
/// reading serve while the totals hold, but for 50 ms at most: after that, the kernel's value.
#[test]
fn stat_rss_follows_when_one_segment_gains_what_another_loses() {
    require_fuse!();
    let m = Mount::new();
    let a = SysvSeg::private(4096, 0o600);
    let b = SysvSeg::private(4096, 0o600);
    let att_a = a.attach();
    let att_b = b.attach();
    let rss = |seg: &SysvSeg| read_fields(&m.sysv(seg.id, "stat")).num("rss");
    let kernel =
        |seg: &SysvSeg| -> u64 { proc_sysvipc_row(seg.id).unwrap()["rss"].parse().unwrap() };

    att_b.write(0, b"b");
    let first = (rss(&a), rss(&b));
    assert_eq!(
        first,
        (kernel(&a), kernel(&b)),
        "stat rss (A, B) vs /proc/sysvipc/shm"
    );
    assert_eq!(first, (0, 4096), "stat rss (A, B) after touching B's page");

    att_a.write(0, b"a");
    att_b.madvise_remove(0, 4096);
    // The totals are unchanged: a reading may serve for up to 50 ms, as a script would see.
    std::thread::sleep(std::time::Duration::from_millis(60));
    let second = (rss(&a), rss(&b));
    assert_eq!(
        second,
        (kernel(&a), kernel(&b)),
        "stat rss (A, B) vs /proc/sysvipc/shm after A gained a page and B lost one"
    );
    assert_eq!(
        second,
        (4096, 0),
        "stat rss (A, B) after touching A's page and MADV_REMOVE of B's"
    );
}

/// Regression: `index.json` escaped names twice (`a\\n…`, `\\u{1b}`), so `jq -r .name`
/// did not give the real name, and non-UTF-8 names collapsed into one text. A UTF-8 name must
/// parse back to itself; a non-UTF-8 one has `name_bytes` (its exact bytes) and a `name` text of
/// its own (invalid bytes as `\xHH`, backslashes doubled).
#[test]
fn index_json_names_round_trip() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;

    require_fuse!();
    let m = Mount::new();
    let utf8 = [
        "new\nline",
        "esc\u{1b}[31mred",
        "say \"hi\"",
        "back\\slash",
        "x\\xff",
    ];
    for name in utf8 {
        create_posix(m.shm_dir(), name, 0o600, b"");
    }
    let raw: [&[u8]; 2] = [b"bad\xff\\name", b"bad\xfe\\name"];
    for name in raw {
        let p = m.shm_dir().join(OsStr::from_bytes(name));
        fs::File::create(&p).unwrap_or_else(|e| panic!("create {p:?}: {e}"));
    }

    let text = read_text(&m.p("index.json"));
    let v: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("index.json does not parse as JSON: {e}\n{text}"));
    let posix: Vec<&Value> = v
        .as_array()
        .expect("index.json is a JSON array")
        .iter()
        .filter(|e| e["kind"] == "posix")
        .collect();
    assert_eq!(posix.len(), utf8.len() + raw.len(), "{text}");

    for name in utf8 {
        let found: Vec<&&Value> = posix
            .iter()
            .filter(|e| e["name"].as_str() == Some(name))
            .collect();
        assert_eq!(
            found.len(),
            1,
            "index.json must carry the name {name:?} escaped once, as JSON escapes it:\n{text}"
        );
        assert!(
            found[0].get("name_bytes").is_none(),
            "a UTF-8 name has no name_bytes: {}",
            found[0]
        );
    }
    let mut texts = Vec::new();
    for name in raw {
        let want: Vec<Value> = name.iter().map(|&b| Value::from(b)).collect();
        let found: Vec<&&Value> = posix
            .iter()
            .filter(|e| e["name_bytes"].as_array() == Some(&want))
            .collect();
        assert_eq!(
            found.len(),
            1,
            "index.json must give the bytes of {name:?} in name_bytes:\n{text}"
        );
        let shown = found[0]["name"]
            .as_str()
            .expect("name is a string")
            .to_string();
        let hex = format!("\\x{:02x}", name[3]);
        assert_eq!(
            shown,
            format!("bad{hex}\\\\name"),
            "name text of {name:?}: invalid byte as \\xHH, backslash doubled"
        );
        texts.push(shown);
    }
    assert_ne!(
        texts[0], texts[1],
        "two non-UTF-8 names must not share a text"
    );
    assert!(
        !posix
            .iter()
            .any(|e| e["name_bytes"].is_array() && e["name"] == "x\\xff"),
        "the UTF-8 name `x\\xff` is told apart by having no name_bytes"
    );
}

/// `index` keeps one word per column whatever the names: a POSIX name's space is written
/// `\x20` and a tab `\t` (as a newline is `\n`), so that `awk` and `sort -k` see eight fields on
/// every line; `index.json` has the names themselves.
#[test]
fn index_names_with_blanks_stay_one_column() {
    require_fuse!();
    let m = Mount::new();
    for name in ["two words", "tab\there", " lead", "nbsp\u{a0}x"] {
        create_posix(m.shm_dir(), name, 0o600, b"x");
    }
    let index = m.p("index");
    let r = sh_ok(&format!("awk '{{print NF, $1, $2}}' {}", q(&index)));
    let rows: Vec<&str> = r.lines().filter(|l| l.contains(" posix ")).collect();
    let mut names: Vec<&str> = rows
        .iter()
        .map(|l| {
            assert!(
                l.starts_with("8 posix "),
                "a row of other than 8 fields: {l:?}\n{r}"
            );
            l.rsplit(' ').next().unwrap()
        })
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["\\x20lead", "nbsp\\u{a0}x", "tab\\there", "two\\x20words"],
        "{r}"
    );
    let sorted = sh_ok(&format!(
        "grep '^posix ' {} | LC_ALL=C sort -k2,2 | awk '{{print $2}}'",
        q(&index)
    ));
    assert_eq!(
        sorted, "\\x20lead\nnbsp\\u{a0}x\ntab\\there\ntwo\\x20words\n",
        "sort -k2 over the posix rows"
    );
    let json: Value = serde_json::from_slice(&fs::read(m.p("index.json")).unwrap()).unwrap();
    let mut json_names: Vec<&str> = json
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    json_names.sort();
    assert_eq!(
        json_names,
        [" lead", "nbsp\u{a0}x", "tab\there", "two words"]
    );
}
