//! The root `metrics.prom` (docs/monitoring.md): the test's segments and objects with
//! the numbers `index` and the kernel give, label values escaped as the Prometheus text format
//! wants, no attach; `promtool check metrics` finds nothing to say; `-o metrics=totals` keeps the
//! totals alone; the real `prometheus-node-exporter` serves the series over HTTP and drops a
//! removed segment's at the next scrape; the alert rules' unit test uses only families the file
//! has.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// A uid with no account: its owner label is the number.
const OTHER: u32 = 12345;

/// One sample: family name, labels (empty values dropped: Prometheus treats them as absent),
/// value as written.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: String,
}

/// Parses the text exposition format: `# HELP`/`# TYPE` lines are skipped (checked apart),
/// label values are unescaped (`\\`, `\"`, `\n`).
fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|line| parse_line(line).unwrap_or_else(|e| panic!("{e}: {line:?}")))
        .collect()
}

fn parse_line(line: &str) -> Result<Sample, String> {
    let name_end = line.find(['{', ' ']).ok_or("no value")?;
    let name = line[..name_end].to_string();
    let mut labels = BTreeMap::new();
    let mut rest = &line[name_end..];
    if let Some(inner) = rest.strip_prefix('{') {
        let mut chars = inner.char_indices().peekable();
        let end;
        loop {
            // label name
            let start = chars.peek().ok_or("unterminated labels")?.0;
            if inner[start..].starts_with('}') {
                end = start + 1;
                break;
            }
            let eq = inner[start..].find('=').ok_or("no = in label")? + start;
            let label = inner[start..eq].to_string();
            while chars.peek().is_some_and(|&(i, _)| i <= eq) {
                chars.next();
            }
            if chars.next().map(|(_, c)| c) != Some('"') {
                return Err("label value not quoted".into());
            }
            let mut value = String::new();
            loop {
                match chars.next().ok_or("unterminated label value")?.1 {
                    '"' => break,
                    '\\' => match chars.next().ok_or("dangling backslash")?.1 {
                        '\\' => value.push('\\'),
                        '"' => value.push('"'),
                        'n' => value.push('\n'),
                        c => return Err(format!("unknown escape \\{c}")),
                    },
                    c => value.push(c),
                }
            }
            if !value.is_empty() {
                labels.insert(label, value);
            }
            if chars.peek().is_some_and(|&(_, c)| c == ',') {
                chars.next();
            }
        }
        rest = &inner[end..];
    }
    let value = rest.strip_prefix(' ').ok_or("no space before the value")?;
    Ok(Sample {
        name,
        labels,
        value: value.to_string(),
    })
}

/// The value of the one sample of `name` whose labels include `with`.
#[track_caller]
fn value(samples: &[Sample], name: &str, with: &[(&str, &str)]) -> String {
    let found: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            with.iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .collect();
    assert_eq!(
        found.len(),
        1,
        "want one {name} with {with:?}, found {found:?}"
    );
    found[0].value.clone()
}

/// The labels of the one sample of `name` with `with`.
#[track_caller]
fn labels(samples: &[Sample], name: &str, with: &[(&str, &str)]) -> BTreeMap<String, String> {
    value(samples, name, with);
    samples
        .iter()
        .find(|s| {
            s.name == name
                && with
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .unwrap()
        .labels
        .clone()
}

fn owner(uid: u32) -> String {
    user_name(uid).unwrap_or_else(|| uid.to_string())
}

fn key_text(key: i32) -> String {
    format!("0x{:08x}", key as u32)
}

/// The families of a metrics text, from its `# TYPE` lines.
fn families(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| l.split(' ').next().unwrap().to_string())
        .collect()
}

/// Every family of the totals, present whatever the host holds.
const TOTALS: [&str; 22] = [
    "shmfs_sysv_segments",
    "shmfs_sysv_segments_limit",
    "shmfs_sysv_segments_unattached",
    "shmfs_sysv_segments_unattached_bytes",
    "shmfs_sysv_segment_size_limit_bytes",
    "shmfs_sysv_allocated_bytes",
    "shmfs_sysv_allocated_limit_bytes",
    "shmfs_sysv_resident_bytes",
    "shmfs_sysv_swapped_bytes",
    "shmfs_posix_objects",
    "shmfs_posix_objects_size_bytes",
    "shmfs_posix_objects_allocated_bytes",
    "shmfs_shm_dir_size_bytes",
    "shmfs_shm_dir_used_bytes",
    "shmfs_sem_sets",
    "shmfs_sem_sets_limit",
    "shmfs_sem_semaphores",
    "shmfs_sem_semaphores_limit",
    "shmfs_msg_queues",
    "shmfs_msg_queues_limit",
    "shmfs_msg_messages",
    "shmfs_msg_bytes",
];

/// The per-namespace totals, one series per IPC namespace the reader may see (`ns/`).
const NAMESPACE_TOTALS: [&str; 7] = [
    "shmfs_namespace_segments",
    "shmfs_namespace_segment_bytes",
    "shmfs_namespace_segment_rss_bytes",
    "shmfs_namespace_orphan_segments",
    "shmfs_namespace_shm_dir_used_bytes",
    "shmfs_namespace_shm_dir_size_bytes",
    "shmfs_namespace_processes",
];

/// Names of POSIX objects that the format must carry: quotes, backslashes, newlines, bytes
/// that are not UTF-8. With the `name` label (unescaped) and `name_bytes` each must have.
fn odd_names() -> Vec<(&'static [u8], &'static str, Option<&'static str>)> {
    vec![
        (b"met-plain", "met-plain", None),
        (br#"say "hi""#, r#"say "hi""#, None),
        (br"back\slash", r"back\slash", None),
        ("ünï".as_bytes(), "ünï", None),
        (b"new\nline", r"new\x0aline", Some("6e65770a6c696e65")),
        (b"bad\xff\\", r"bad\xff\\", Some("626164ff5c")),
    ]
}

fn create_named(dir: &Path, name: &[u8], content: &[u8]) {
    let p = dir.join(OsStr::from_bytes(name));
    fs::write(&p, content).unwrap_or_else(|e| panic!("create {p:?}: {e}"));
}

#[test]
fn metrics_prom_shows_each_segment_and_object_with_the_numbers_of_index() {
    require_fuse!();
    let m = Mount::new();

    // A keyed segment attached by the test with one page touched; a private one given to a uid
    // without a name (never attached); one pending removal, still attached.
    let keyed = SysvSeg::keyed(12288, 0o640);
    let att = keyed.attach();
    att.write(0, b"x");
    let private = SysvSeg::private(8192, 0o606);
    private.set(None, Some(OTHER), Some(OTHER));
    let mut dying = SysvSeg::keyed(4096, 0o600);
    let dying_att = dying.attach();
    dying.remove();
    for (name, _, _) in odd_names() {
        create_named(m.shm_dir(), name, &[7u8; 5000]);
    }
    let before = private.stat();

    let text = read_text(&m.p("metrics.prom"));
    let samples = parse(&text);
    let index = read_text(&m.p("index"));

    for (seg, mode, uid, nattch, rss, pending) in [
        (&keyed, "0640", 0, 1, 4096, 0),
        (&private, "0606", OTHER, 0, 0, 0),
        (&dying, "0600", 0, 1, 0, 1),
    ] {
        let id = seg.id.to_string();
        let ds = seg.stat();
        let key = key_text(ds.shm_perm.__key);
        let want = BTreeMap::from(
            [
                ("shmid", id.clone()),
                ("key", key.clone()),
                ("owner", owner(uid)),
                ("mode", mode.to_string()),
            ]
            .map(|(k, v)| (k.to_string(), v)),
        );
        let with = [("shmid", id.as_str())];
        assert_eq!(
            labels(&samples, "shmfs_sysv_segment_size_bytes", &with),
            want,
            "labels of segment {id}"
        );
        let get = |family: &str| value(&samples, family, &with);
        assert_eq!(get("shmfs_sysv_segment_size_bytes"), seg.size.to_string());
        assert_eq!(get("shmfs_sysv_segment_resident_bytes"), rss.to_string());
        assert_eq!(get("shmfs_sysv_segment_swapped_bytes"), "0");
        assert_eq!(get("shmfs_sysv_segment_attachments"), nattch.to_string());
        assert_eq!(
            get("shmfs_sysv_segment_removal_pending"),
            pending.to_string()
        );
        assert_eq!(
            get("shmfs_sysv_segment_last_change_timestamp_seconds"),
            ds.shm_ctime.to_string()
        );
        assert_eq!(
            get("shmfs_sysv_segment_last_attach_timestamp_seconds"),
            ds.shm_atime.to_string()
        );
        assert_eq!(
            get("shmfs_sysv_segment_last_detach_timestamp_seconds"),
            ds.shm_dtime.to_string()
        );
        // The same numbers as index's row: SIZE, NATTCH, RSS.
        let row: Vec<&str> = index
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .find(|c| c.len() == 8 && c[0] == "sysv" && c[1] == id)
            .unwrap_or_else(|| panic!("no index row of {id}:\n{index}"));
        assert_eq!(
            [row[3], row[6], row[7]],
            [
                get("shmfs_sysv_segment_size_bytes").as_str(),
                get("shmfs_sysv_segment_attachments").as_str(),
                get("shmfs_sysv_segment_resident_bytes").as_str()
            ],
            "index row {row:?} vs metrics.prom"
        );
    }

    // The objects: names exact, with name_bytes where the name is not plain UTF-8.
    let allocated = fs::metadata(m.shm_dir().join("met-plain"))
        .unwrap()
        .blocks()
        * 512;
    for (raw, name, hex) in odd_names() {
        let mut want = BTreeMap::from(
            [
                ("name", name.to_string()),
                ("owner", owner(0)),
                ("mode", "0644".to_string()),
            ]
            .map(|(k, v)| (k.to_string(), v)),
        );
        let mut with = vec![("name", name)];
        if let Some(hex) = hex {
            want.insert("name_bytes".into(), hex.to_string());
            with.push(("name_bytes", hex));
        }
        assert_eq!(
            labels(&samples, "shmfs_posix_object_size_bytes", &with),
            want,
            "labels of {raw:?} in\n{text}"
        );
        assert_eq!(
            value(&samples, "shmfs_posix_object_size_bytes", &with),
            "5000"
        );
        assert_eq!(
            value(&samples, "shmfs_posix_object_allocated_bytes", &with),
            allocated.to_string()
        );
    }
    // The private shm dir holds the test's objects alone.
    let n = odd_names().len();
    assert_eq!(value(&samples, "shmfs_posix_objects", &[]), n.to_string());
    assert_eq!(
        value(&samples, "shmfs_posix_objects_size_bytes", &[]),
        (n * 5000).to_string()
    );
    // Totals from the same listing as the series (of the mount's own namespace: those of the
    // other namespaces of `ns/` carry their `namespace`).
    let segments = samples
        .iter()
        .filter(|s| s.name == "shmfs_sysv_segment_size_bytes")
        .filter(|s| !s.labels.contains_key("namespace"))
        .count();
    assert_eq!(
        value(&samples, "shmfs_sysv_segments", &[]),
        segments.to_string()
    );
    for family in TOTALS {
        value(&samples, family, &[]);
    }
    assert_eq!(
        value(&samples, "shmfs_sysv_segments_limit", &[]),
        fs::read_to_string("/proc/sys/kernel/shmmni")
            .unwrap()
            .trim()
    );

    // Reading it attached nothing.
    let after = private.stat();
    assert_eq!(
        (after.shm_nattch, after.shm_atime, after.shm_lpid),
        (before.shm_nattch, before.shm_atime, before.shm_lpid),
        "reading metrics.prom must not attach segment {}",
        private.id
    );
    drop((att, dying_att));
}

#[test]
fn metrics_prom_is_read_only_sized_and_fresh_at_each_open() {
    require_fuse!();
    let m = Mount::new();
    let meta = fs::metadata(m.p("metrics.prom")).unwrap();
    assert_eq!(meta.mode() & 0o7777, 0o444, "read-only, like index");
    // Its exact length is checked in a private namespace by tests/sizes.rs: here other
    // tests' segments come and go between the stat and the read.
    assert!(
        meta.len() > 0,
        "metrics.prom reports its length, as index does"
    );
    let first = parse(&read_text(&m.p("metrics.prom")));
    assert_eq!(value(&first, "shmfs_posix_objects", &[]), "0");
    let seg = SysvSeg::private(4096, 0o600);
    create_posix(m.shm_dir(), "fresh", 0o600, b"abc");
    let again = parse(&read_text(&m.p("metrics.prom")));
    assert_eq!(value(&again, "shmfs_posix_objects", &[]), "1");
    let id = seg.id.to_string();
    value(&again, "shmfs_sysv_segment_size_bytes", &[("shmid", &id)]);
}

#[test]
fn promtool_check_metrics_has_nothing_to_say() {
    require_fuse!();
    require_tools!("promtool" => "Debian package prometheus");
    let m = Mount::new();
    let _seg = SysvSeg::keyed(4096, 0o600);
    for (name, _, _) in odd_names() {
        create_named(m.shm_dir(), name, b"x");
    }
    let totals = Mount::builder().option("metrics=totals").mount();
    for path in [m.p("metrics.prom"), totals.p("metrics.prom")] {
        let out = Command::new(find_tool("promtool").unwrap())
            .args(["check", "metrics"])
            .stdin(fs::File::open(&path).unwrap())
            .output()
            .expect("run promtool");
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success() && said.trim().is_empty(),
            "`promtool check metrics < {}`: {} {said}\n{}",
            path.display(),
            out.status,
            read_text(&path)
        );
    }
}

#[test]
fn metrics_totals_keeps_the_totals_alone() {
    require_fuse!();
    let m = Mount::builder().option("metrics=totals").mount();
    let _seg = SysvSeg::private(4096, 0o600);
    create_posix(m.shm_dir(), "tot", 0o600, b"abc");
    let text = read_text(&m.p("metrics.prom"));
    // The totals of the mount's own namespace, and the per-namespace totals of `ns/`.
    let mut expected: BTreeSet<String> = TOTALS.iter().map(|s| s.to_string()).collect();
    expected.extend(NAMESPACE_TOTALS.iter().map(|s| s.to_string()));
    assert_eq!(families(&text), expected, "{text}");
    let samples = parse(&text);
    let own: Vec<_> = samples
        .iter()
        .filter(|s| !s.name.starts_with("shmfs_namespace_"))
        .collect();
    assert_eq!(own.len(), TOTALS.len(), "one series each:\n{text}");
    assert!(own.iter().all(|s| s.labels.is_empty()), "{text}");
    // One series of each per-namespace family per namespace: no per-object series.
    assert!(
        samples
            .iter()
            .filter(|s| s.name.starts_with("shmfs_namespace_"))
            .all(|s| s.labels.contains_key("namespace")),
        "{text}"
    );
    assert_eq!(value(&samples, "shmfs_posix_objects", &[]), "1");
    assert_eq!(value(&samples, "shmfs_posix_objects_size_bytes", &[]), "3");
    let segments: u64 = value(&samples, "shmfs_sysv_segments", &[]).parse().unwrap();
    assert!(segments >= 1);
}

#[test]
fn a_bad_metrics_value_stops_the_mount_with_a_clear_message() {
    require_fuse!();
    let err = match Mount::builder().option("metrics=some").try_mount() {
        Ok(_) => panic!("-o metrics=some was accepted"),
        Err(e) => e,
    };
    assert!(
        err.contains("metrics=\\\"some\\\"") || err.contains("metrics=\"some\""),
        "{err}"
    );
    assert!(err.contains("metrics=all or metrics=totals"), "{err}");
}

#[test]
fn other_users_read_it_with_allow_other() {
    require_fuse!();
    let m = Mount::builder().option("allow_other").mount();
    let r = sh_as(OTHER, &format!("cat {}", q(m.p("metrics.prom"))));
    assert!(
        r.ok() && r.stdout_str().contains("shmfs_sysv_segments "),
        "{r:?}"
    );
}

/// The alert rules and their unit test name only families that shmfs writes.
#[test]
fn the_alert_rules_use_only_families_of_metrics_prom() {
    require_fuse!();
    let m = Mount::new();
    let _seg = SysvSeg::private(4096, 0o600);
    create_posix(m.shm_dir(), "fam", 0o600, b"abc");
    let have = families(&read_text(&m.p("metrics.prom")));
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("mount-scripts/prometheus");
    let mut used = BTreeSet::new();
    for file in ["shmfs-alerts.yml", "shmfs-alerts.test.yml"] {
        let text = fs::read_to_string(dir.join(file)).unwrap();
        let bytes = text.as_bytes();
        let mut i = 0;
        while let Some(at) = text[i..].find("shmfs_") {
            let start = i + at;
            let mut end = start;
            while end < bytes.len() && (bytes[end].is_ascii_lowercase() || bytes[end] == b'_') {
                end += 1;
            }
            if start == 0 || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'-')
            {
                used.insert(text[start..end].to_string());
            }
            i = end;
        }
    }
    assert!(used.len() >= 8, "{used:?}");
    let unknown: Vec<&String> = used.difference(&have).collect();
    assert!(
        unknown.is_empty(),
        "the rules use families metrics.prom lacks: {unknown:?}"
    );
}

/// A `prometheus-node-exporter` on 127.0.0.1, killed on drop.
struct Exporter {
    child: Child,
    port: u16,
}

impl Exporter {
    /// Starts the exporter with only the textfile collector, reading `dir`, on a free port.
    fn start(dir: &Path) -> Exporter {
        Exporter::start_as(dir, None)
    }

    /// As [`Exporter::start`], as user `uid` (uid and gid, no other groups) if given, as
    /// Debian's service runs it as `prometheus`.
    fn start_as(dir: &Path, uid: Option<u32>) -> Exporter {
        let bin = find_tool("prometheus-node-exporter").unwrap();
        let mut last = String::new();
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port")
                .port();
            let log = tempfile::NamedTempFile::new().unwrap();
            let mut cmd = match uid {
                Some(id) => {
                    let mut cmd = Command::new("setpriv");
                    cmd.arg(format!("--reuid={id}"))
                        .arg(format!("--regid={id}"))
                        .arg("--clear-groups")
                        .arg(&bin);
                    cmd
                }
                None => Command::new(&bin),
            };
            let child = cmd
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg("--collector.disable-defaults")
                .arg("--collector.textfile")
                .arg(format!("--collector.textfile.directory={}", dir.display()))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log.reopen().unwrap())
                .spawn()
                .expect("start prometheus-node-exporter");
            let mut exporter = Exporter { child, port };
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = exporter.child.try_wait() {
                    break;
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return exporter;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            last = fs::read_to_string(log.path()).unwrap_or_default();
            // Dropping it kills it; then another port.
        }
        panic!("prometheus-node-exporter did not come up; its log:\n{last}");
    }

    /// `GET /metrics`: the body. A connection the exporter resets (it happened once in many
    /// full-suite runs, on a loaded machine) is tried again, a few times.
    fn scrape(&self) -> String {
        let get = || -> std::io::Result<Vec<u8>> {
            let mut stream = TcpStream::connect(("127.0.0.1", self.port))?;
            stream.set_read_timeout(Some(Duration::from_secs(30)))?;
            write!(
                stream,
                "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1:{}\r\n\r\n",
                self.port
            )?;
            let mut response = Vec::new();
            stream.read_to_end(&mut response)?;
            Ok(response)
        };
        let mut response = get();
        for _ in 0..4 {
            match &response {
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                    eprintln!("scrape: {e}; trying again");
                    std::thread::sleep(Duration::from_millis(200));
                    response = get();
                }
                _ => break,
            }
        }
        let response = response.expect("read the response");
        let response = String::from_utf8(response).expect("a UTF-8 response");
        let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
        assert!(
            head.starts_with("HTTP/1.") && head.contains(" 200 "),
            "{head}"
        );
        body.to_string()
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn node_exporter_serves_the_series_and_forgets_a_removed_segment() {
    require_fuse!();
    require_tools!("prometheus-node-exporter" => "Debian package prometheus-node-exporter");
    let m = Mount::new();
    let kept = SysvSeg::keyed(16384, 0o640);
    let att = kept.attach();
    let mut gone = SysvSeg::private(8192, 0o600);
    gone.set(None, Some(OTHER), Some(OTHER));
    create_posix(m.shm_dir(), "exported", 0o600, &[1u8; 3000]);
    create_named(m.shm_dir(), b"odd\xff\"", b"x");

    let exporter = Exporter::start(m.path());
    let samples: Vec<Sample> = parse(&exporter.scrape())
        .into_iter()
        .filter(|s| s.name.starts_with("shmfs_") || s.name.starts_with("node_textfile"))
        .collect();
    assert_eq!(
        value(&samples, "node_textfile_scrape_error", &[]),
        "0",
        "node_exporter read metrics.prom without error"
    );
    let (kept_id, gone_id) = (kept.id.to_string(), gone.id.to_string());
    let kept_labels = [
        ("shmid", kept_id.as_str()),
        ("key", &*key_text(kept.key)),
        ("owner", &*owner(0)),
        ("mode", "0640"),
    ]
    .map(|(k, v)| (k, v.to_string()));
    let kept_with: Vec<(&str, &str)> = kept_labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let num = |v: String| v.parse::<f64>().unwrap();
    assert_eq!(
        num(value(&samples, "shmfs_sysv_segment_size_bytes", &kept_with)),
        16384.0
    );
    assert_eq!(
        num(value(
            &samples,
            "shmfs_sysv_segment_attachments",
            &kept_with
        )),
        1.0
    );
    let gone_owner = owner(OTHER);
    let gone_with = [("shmid", gone_id.as_str()), ("owner", gone_owner.as_str())];
    assert_eq!(
        num(value(&samples, "shmfs_sysv_segment_size_bytes", &gone_with)),
        8192.0
    );
    assert_eq!(
        num(value(
            &samples,
            "shmfs_sysv_segment_attachments",
            &gone_with
        )),
        0.0
    );
    let obj = [
        ("name", "exported"),
        ("owner", &*owner(0)),
        ("mode", "0600"),
    ];
    assert_eq!(
        num(value(&samples, "shmfs_posix_object_size_bytes", &obj)),
        3000.0
    );
    let odd = [("name", r#"odd\xff""#), ("name_bytes", "6f6464ff22")];
    assert_eq!(
        num(value(&samples, "shmfs_posix_object_size_bytes", &odd)),
        1.0
    );

    gone.remove();
    fs::remove_file(m.shm_dir().join("exported")).unwrap();
    let next = parse(&exporter.scrape());
    assert!(
        !next.iter().any(|s| s.labels.get("shmid") == Some(&gone_id)),
        "removed segment {gone_id} still scraped"
    );
    assert!(
        !next
            .iter()
            .any(|s| s.labels.get("name").is_some_and(|n| n == "exported")),
        "removed object still scraped"
    );
    assert_eq!(
        num(value(&next, "shmfs_sysv_segment_size_bytes", &kept_with)),
        16384.0
    );
    drop(att);
}

/// Debian's way that keeps its own textfile directory: a symlink `shmfs.prom` in it to the
/// mount's file, read by an exporter running as another user through an `allow_other` mount.
#[test]
fn node_exporter_as_another_user_follows_a_symlink_to_metrics_prom() {
    require_fuse!();
    require_tools!("prometheus-node-exporter" => "Debian package prometheus-node-exporter");
    use std::os::unix::fs::PermissionsExt;
    let m = Mount::builder().option("allow_other").mount();
    let seg = SysvSeg::private(4096, 0o600);
    let dir = tempfile::Builder::new()
        .prefix("shmfs-textfile-")
        .tempdir()
        .unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink(m.p("metrics.prom"), dir.path().join("shmfs.prom")).unwrap();
    let exporter = Exporter::start_as(dir.path(), Some(OTHER));
    let samples = parse(&exporter.scrape());
    assert_eq!(value(&samples, "node_textfile_scrape_error", &[]), "0");
    let id = seg.id.to_string();
    assert_eq!(
        value(&samples, "shmfs_sysv_segment_size_bytes", &[("shmid", &id)]),
        "4096"
    );
}

#[test]
fn the_parser_of_this_test_unescapes_as_the_format_says() {
    let s = parse_line(r#"x{a="q\"b\\c\nd",b="",c="1"} 2"#).unwrap();
    assert_eq!(s.name, "x");
    assert_eq!(s.value, "2");
    assert_eq!(
        s.labels,
        BTreeMap::from([
            ("a".to_string(), "q\"b\\c\nd".to_string()),
            ("c".to_string(), "1".to_string())
        ])
    );
    assert_eq!(parse_line("y 3").unwrap().labels.len(), 0);
}
