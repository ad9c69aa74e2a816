//! The texts of `ns/` (issue 23) that have no twin at the root: `ns/index` (one row per IPC
//! namespace), `ns/N/members` (its processes) and `ns/N/container` (what it belongs to).
//! Pure functions over plain rows that the filesystem fills in.
//!
//! A hostname, a command name and a container's name (nspawn, LXC) are chosen by whoever runs
//! the container or the process: they may hold spaces, newlines, terminal escapes. The tables
//! show each as one word (as the root `index` shows a POSIX name, see [`escape_name`]), and the
//! `container` file each on one line, so that no such text can add a line or a column, or be
//! taken for an absent value.

use std::fmt::Write;

use crate::kernel::container::Container;
use crate::render::index::escape_name;

/// One IPC namespace: a row of `ns/index`, and the per-namespace series of `metrics.prom`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NsRow {
    /// The namespace's nsfs inode number (as `readlink /proc/PID/ns/ipc` shows it), the name
    /// of its directory under `ns/`.
    pub ns: u64,
    /// The container its members are in; `None` for the host's own namespace, or one whose
    /// members are in no container that shmfs recognises.
    pub container: Option<Container>,
    /// The UTS hostname its members see; `None` if it could not be had.
    pub hostname: Option<String>,
    /// How many processes are in it.
    pub procs: usize,
    /// How many System V segments it holds.
    pub segments: u64,
    /// The total size of those segments, bytes.
    pub bytes: u64,
    /// Their total resident bytes (`rss` of `/proc/sysvipc/shm`).
    pub rss: u64,
    /// How many of them no process has attached (`nattch` 0).
    pub orphans: u64,
    /// Bytes used on the `/dev/shm` its members see; `None` if it has none reachable.
    pub shm_used: Option<u64>,
    /// Capacity of that `/dev/shm`, bytes; `None` if it has none reachable.
    pub shm_size: Option<u64>,
}

/// One process of a namespace: a line of `ns/N/members`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// Its pid, as the mount's own pid namespace numbers it.
    pub pid: u32,
    /// Its command name (`/proc/PID/comm`).
    pub command: String,
    /// The container it is in, if any.
    pub container: Option<Container>,
}

/// An untrusted text as one word of a table: as [`escape_name`] writes it, `-` if it is absent
/// or empty, and `\x2d` if it is `-` itself (so that it is never read as absent).
fn word(text: Option<&str>) -> String {
    match text {
        None | Some("") => "-".to_string(),
        Some("-") => "\\x2d".to_string(),
        Some(text) => escape_name(text.as_bytes()),
    }
}

/// The CONTAINER cell: `RUNTIME:SHORT_ID` (see [`Container`]'s `Display`), escaped as one
/// word (a name of nspawn or LXC is chosen by its owner), or `-` for none.
fn container_word(container: Option<&Container>) -> String {
    match container {
        None => "-".to_string(),
        Some(c) => escape_name(c.to_string().as_bytes()),
    }
}

/// A table: the header and one line per row, each column as wide as its widest cell and two
/// spaces apart, the last column unpadded (as the root `index`). Widths count characters.
fn table<const N: usize>(header: [&str; N], rows: &[[String; N]]) -> String {
    let mut widths = header.map(|h| h.chars().count());
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: [&str; N]| {
        for (i, cell) in cells.iter().enumerate() {
            out.push_str(cell);
            if i + 1 < N {
                let pad = widths[i] - cell.chars().count() + 2;
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push('\n');
    };
    line(header);
    for row in rows {
        line(row.each_ref().map(String::as_str));
    }
    out
}

/// `ns/index`: the header `NS CONTAINER HOSTNAME PROCS SEGMENTS BYTES RSS ORPHANS SHM_USED
/// SHM_SIZE` and one aligned line per row, in the order given. CONTAINER is
/// `RUNTIME:SHORT_ID` (`docker:3f2a9c0b1d4e`) or `-`; HOSTNAME is `-` when unknown (or
/// empty); SHM_USED and SHM_SIZE are `-` for a namespace with no `/dev/shm` reachable.
/// Container names and hostnames are one word each, escaped as the root `index` escapes a
/// POSIX name.
pub fn ns_index(rows: &[NsRow]) -> String {
    let header = [
        "NS",
        "CONTAINER",
        "HOSTNAME",
        "PROCS",
        "SEGMENTS",
        "BYTES",
        "RSS",
        "ORPHANS",
        "SHM_USED",
        "SHM_SIZE",
    ];
    let number = |n: Option<u64>| n.map_or("-".to_string(), |n| n.to_string());
    let cells: Vec<[String; 10]> = rows
        .iter()
        .map(|r| {
            [
                r.ns.to_string(),
                container_word(r.container.as_ref()),
                word(r.hostname.as_deref()),
                r.procs.to_string(),
                r.segments.to_string(),
                r.bytes.to_string(),
                r.rss.to_string(),
                r.orphans.to_string(),
                number(r.shm_used),
                number(r.shm_size),
            ]
        })
        .collect();
    table(header, &cells)
}

/// `ns/N/members`: the header `PID COMMAND CONTAINER` and one aligned line per process, in
/// the order given. COMMAND is one word (escaped as the root `index` escapes a POSIX name,
/// `-` if empty); CONTAINER as in [`ns_index`].
pub fn members(rows: &[Member]) -> String {
    let cells: Vec<[String; 3]> = rows
        .iter()
        .map(|m| {
            [
                m.pid.to_string(),
                word(Some(&m.command)),
                container_word(m.container.as_ref()),
            ]
        })
        .collect();
    table(["PID", "COMMAND", "CONTAINER"], &cells)
}

/// A value of the `container` file: on one line (each character as `escape_debug` writes it,
/// as `stat` shows a POSIX name), `-` if absent or empty, `\x2d` if it is `-` itself.
fn value(text: Option<&str>) -> String {
    match text {
        None | Some("") => "-".to_string(),
        Some("-") => "\\x2d".to_string(),
        Some(text) => text.escape_debug().to_string(),
    }
}

/// `ns/N/container`: what the namespace belongs to, six `key: value` lines, always the same
/// keys in the same order:
///
/// ```text
/// container: docker:3f2a9c0b1d4e
/// runtime: docker
/// id: 3f2a9c0b1d4e…(the full id, or the nspawn or LXC name)
/// pod_uid: -
/// cgroup: /system.slice/docker-3f2a9c0b1d4e….scope
/// hostname: web1
/// ```
///
/// `container` is `RUNTIME:SHORT_ID` as `ns/index` shows it, or `none` when the members are in
/// no container shmfs recognises (the host's own namespace, one made with `unshare`): then
/// `runtime`, `id`, `pod_uid` and `cgroup` are `-`. `pod_uid` is `-` outside a Kubernetes
/// pod; `hostname` is `-` when unknown. Values are on one line each (control characters,
/// backslashes and quotes as Rust's `escape_debug` writes them, as `stat` shows a POSIX name).
pub fn container_text(container: Option<&Container>, hostname: Option<&str>) -> String {
    let mut out = String::with_capacity(256);
    match container {
        Some(c) => {
            let _ = write!(
                out,
                "container: {}\nruntime: {}\nid: {}\npod_uid: {}\ncgroup: {}\n",
                value(Some(&c.to_string())),
                c.runtime,
                value(Some(&c.id)),
                value(c.pod_uid.as_deref()),
                value(Some(&c.cgroup)),
            );
        }
        None => out.push_str("container: none\nruntime: -\nid: -\npod_uid: -\ncgroup: -\n"),
    }
    let _ = writeln!(out, "hostname: {}", value(hostname));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::container::Runtime;

    const ID: &str = "3f2a9c0b1d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8";

    fn docker() -> Container {
        Container {
            runtime: Runtime::Docker,
            id: ID.to_string(),
            pod_uid: None,
            cgroup: format!("/system.slice/docker-{ID}.scope"),
        }
    }

    fn nspawn(name: &str) -> Container {
        Container {
            runtime: Runtime::Nspawn,
            id: name.to_string(),
            pod_uid: None,
            cgroup: format!("/machine.slice/systemd-nspawn@{name}.service"),
        }
    }

    fn row(ns: u64, container: Option<Container>, hostname: Option<&str>) -> NsRow {
        NsRow {
            ns,
            container,
            hostname: hostname.map(str::to_string),
            procs: 3,
            segments: 2,
            bytes: 8192,
            rss: 4096,
            orphans: 1,
            shm_used: Some(1 << 20),
            shm_size: Some(64 << 20),
        }
    }

    #[test]
    fn ns_index_is_aligned_with_dashes_for_what_is_absent() {
        let rows = [
            row(4026531839, None, Some("host1")),
            NsRow {
                shm_used: None,
                shm_size: None,
                ..row(4026532456, Some(docker()), None)
            },
        ];
        let text = ns_index(&rows);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                "NS          CONTAINER            HOSTNAME  PROCS  SEGMENTS  BYTES  RSS   ORPHANS  SHM_USED  SHM_SIZE",
                "4026531839  -                    host1     3      2         8192   4096  1        1048576   67108864",
                "4026532456  docker:3f2a9c0b1d4e  -         3      2         8192   4096  1        -         -",
            ]
        );
        assert_eq!(
            ns_index(&[]),
            "NS  CONTAINER  HOSTNAME  PROCS  SEGMENTS  BYTES  RSS  ORPHANS  SHM_USED  SHM_SIZE\n"
        );
    }

    /// Every line of a table has as many words as its header, whatever the hostile texts.
    fn assert_columns(text: &str, columns: usize) {
        for line in text.lines() {
            assert_eq!(
                line.split_whitespace().count(),
                columns,
                "{line:?} in\n{text}"
            );
            assert!(!line.contains(|c: char| c.is_control()), "{line:?}");
        }
    }

    const HOSTILE: [&str; 9] = [
        "two words",
        "new\nline",
        "\r\x1b[2Jclear",
        "tab\there",
        "nb\u{a0}sp\u{2028}",
        "-",
        "",
        "back\\slash \"q\"",
        "\u{85}next",
    ];

    #[test]
    fn hostile_hostnames_and_names_stay_one_word() {
        let mut rows = Vec::new();
        for (i, text) in HOSTILE.iter().enumerate() {
            rows.push(row(i as u64, Some(nspawn(text)), Some(text)));
        }
        let table = ns_index(&rows);
        assert_eq!(table.lines().count(), HOSTILE.len() + 1, "{table}");
        assert_columns(&table, 10);
        let lines: Vec<&str> = table.lines().collect();
        let cell = |i: usize, col: usize| lines[i + 1].split_whitespace().nth(col).unwrap();
        assert_eq!(cell(0, 2), "two\\x20words");
        assert_eq!(cell(0, 1), "nspawn:two\\x20words");
        assert_eq!(cell(1, 2), "new\\nline");
        assert_eq!(cell(2, 2), "\\r\\u{1b}[2Jclear");
        // A hostname `-` is not an absent one; an empty one is.
        assert_eq!(cell(5, 2), "\\x2d");
        assert_eq!(cell(6, 2), "-");
    }

    #[test]
    fn members_is_a_table_of_one_word_commands() {
        let mut rows = vec![
            Member {
                pid: 1,
                command: "systemd".into(),
                container: None,
            },
            Member {
                pid: 4242,
                command: "postgres".into(),
                container: Some(docker()),
            },
        ];
        assert_eq!(
            members(&rows),
            "PID   COMMAND   CONTAINER\n\
             1     systemd   -\n\
             4242  postgres  docker:3f2a9c0b1d4e\n"
        );
        for text in HOSTILE {
            rows.push(Member {
                pid: 7,
                command: text.into(),
                container: Some(nspawn(text)),
            });
        }
        let table = members(&rows);
        assert_eq!(table.lines().count(), rows.len() + 1);
        assert_columns(&table, 3);
        assert!(table.contains("\n7     new\\nline  "), "{table}");
        assert_eq!(members(&[]), "PID  COMMAND  CONTAINER\n");
    }

    #[test]
    fn container_text_of_a_container() {
        let c = Container {
            pod_uid: Some("0b5e3ad2-5b5f-4e4c-9d1a-0123456789ab".into()),
            runtime: Runtime::Containerd,
            cgroup: format!(
                "/kubepods.slice/kubepods-pod0b5e3ad2_5b5f_4e4c_9d1a_0123456789ab.slice/cri-containerd-{ID}.scope"
            ),
            ..docker()
        };
        assert_eq!(
            container_text(Some(&c), Some("web-0")),
            format!(
                "container: containerd:3f2a9c0b1d4e\nruntime: containerd\nid: {ID}\n\
                 pod_uid: 0b5e3ad2-5b5f-4e4c-9d1a-0123456789ab\ncgroup: {}\nhostname: web-0\n",
                c.cgroup
            )
        );
        assert_eq!(
            container_text(Some(&docker()), None),
            format!(
                "container: docker:3f2a9c0b1d4e\nruntime: docker\nid: {ID}\npod_uid: -\n\
                 cgroup: /system.slice/docker-{ID}.scope\nhostname: -\n"
            )
        );
    }

    #[test]
    fn container_text_without_a_container_says_none() {
        assert_eq!(
            container_text(None, Some("host1")),
            "container: none\nruntime: -\nid: -\npod_uid: -\ncgroup: -\nhostname: host1\n"
        );
    }

    #[test]
    fn container_text_keeps_hostile_values_on_their_line() {
        for text in HOSTILE {
            let out = container_text(Some(&nspawn(text)), Some(text));
            let keys: Vec<&str> = out
                .lines()
                .map(|l| l.split_once(": ").map_or(l, |(k, _)| k))
                .collect();
            assert_eq!(
                keys,
                [
                    "container",
                    "runtime",
                    "id",
                    "pod_uid",
                    "cgroup",
                    "hostname"
                ],
                "{out:?}"
            );
            assert!(
                !out.contains(|c: char| c.is_control() && c != '\n'),
                "{out:?}"
            );
            let host = out.lines().last().unwrap();
            match text {
                "" => assert_eq!(host, "hostname: -"),
                "-" => assert_eq!(host, "hostname: \\x2d"),
                _ => assert_ne!(host, "hostname: -"),
            }
        }
        assert!(container_text(None, Some("a\nb")).ends_with("hostname: a\\nb\n"));
    }
}
