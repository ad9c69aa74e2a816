//! One user cannot exhaust the daemon's file descriptors: each account but root's (a user and
//! its subordinate uids, see tests/shares.rs) may hold a quarter of them through open `data`
//! files, and past that its own opens fail with EMFILE while other users, root and the reports
//! keep working.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};

use common::*;

const HOG: u32 = 4601;
const NEIGHBOUR: u32 = 4602;
/// The daemon's descriptor limit in these tests, so that a share is quick to fill.
const LIMIT: usize = 400;

/// A process of `uid` that opens `path` up to `tries` times, reports how many it holds and
/// the errno of the first refusal, and keeps them open until its stdin closes.
struct Hog {
    child: Child,
    held: usize,
    refused_with: String,
}

impl Hog {
    fn start(uid: u32, path: &std::path::Path, tries: usize) -> Hog {
        let script = format!(
            "import errno, os, sys\n\
             fds, err = [], 'none'\n\
             for _ in range({tries}):\n    \
                 try:\n        fds.append(os.open({path:?}, os.O_RDONLY))\n    \
                 except OSError as e:\n        err = errno.errorcode[e.errno]; break\n\
             print(len(fds), err, flush=True)\n\
             sys.stdin.read()\n",
            path = path.display().to_string(),
        );
        let mut child = Command::new("setpriv")
            .arg(format!("--reuid={uid}"))
            .arg(format!("--regid={uid}"))
            .arg("--clear-groups")
            .args(["/usr/bin/python3", "-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start python3");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("hog's report");
        let mut words = line.split_whitespace();
        let held = words
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| {
                panic!("hog printed {line:?}");
            });
        let refused_with = words.next().unwrap_or("").to_string();
        Hog {
            child,
            held,
            refused_with,
        }
    }
}

impl Drop for Hog {
    fn drop(&mut self) {
        if let Some(mut stdin) = self.child.stdin.take() {
            let _ = stdin.write_all(b"");
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn one_user_holding_many_opens_leaves_others_working() {
    require_fuse!();
    let m = Mount::builder().option("allow_other").mount();
    let r = sh(&format!(
        "prlimit --pid {} --nofile={LIMIT}:{LIMIT}",
        m.pid()
    ));
    assert!(r.ok(), "prlimit on the daemon: {r:?}");
    let share = LIMIT / 4;

    create_posix(m.shm_dir(), "public", 0o644, b"everyone may read this");
    let seg = SysvSeg::private(1 << 20, 0o644);
    seg.attach().write(0, &pattern(1 << 20, 7));
    let nattch_before = seg.stat().shm_nattch;

    // More opens than the daemon has descriptors: the hog gets exactly its share.
    let hog = Hog::start(HOG, &m.posix("public", "data"), LIMIT + 50);
    assert_eq!(
        (hog.held, hog.refused_with.as_str()),
        (share, "EMFILE"),
        "uid {HOG} holding opens of data"
    );
    let hog_sysv = Hog::start(HOG, &m.sysv(seg.id, "data"), 10);
    assert_eq!(
        (hog_sysv.held, hog_sysv.refused_with.as_str()),
        (0, "EMFILE"),
        "uid {HOG} past its share opening a segment"
    );
    assert_eq!(
        seg.stat().shm_nattch,
        nattch_before,
        "a refused open left an attachment behind"
    );

    // Everyone else keeps working: another user's opens, root's reports and listings.
    let r = sh_as(
        NEIGHBOUR,
        &format!(
            "cat {} && echo && head -c 4096 {} | wc -c",
            q(m.posix("public", "data")),
            q(m.sysv(seg.id, "data")),
        ),
    );
    assert!(
        r.ok() && r.stdout_str() == "everyone may read this\n4096\n",
        "uid {NEIGHBOUR} reading while uid {HOG} holds its share: {r:?}"
    );
    for report in ["index", "index.json", "metrics.prom", "limits"] {
        let r = sh(&format!("cat {} >/dev/null", q(m.p(report))));
        assert!(r.ok(), "root reading {report}: {r:?}");
    }
    assert!(m.ls("posix").contains("public"));
    let stat = read_fields(&m.sysv(seg.id, "stat"));
    assert_eq!(stat.num("rss"), 1 << 20, "rss of a fully written segment");

    // Closing gives the share back.
    drop(hog);
    drop(hog_sysv);
    retry(50, || {
        let again = Hog::start(HOG, &m.posix("public", "data"), 3);
        if again.held == 3 {
            Ok(())
        } else {
            Err(format!("after closing, uid {HOG} got {} opens", again.held))
        }
    });
}
