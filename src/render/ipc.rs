//! The text files of the other IPC kinds (issue 24): System V semaphore sets (`sem/ID/`) and
//! message queues (`msg/ID/`), POSIX message queues (`mqueue/NAME/`) and what a POSIX named
//! semaphore adds to its `stat`; their parts of `limits`; and the parser of what is written to
//! a set's `values`. Pure functions over the kernel layer's plain structs, no system calls.
//!
//! The `stat` texts are `key: value` lines starting with `kind: …`, as `render::text`'s are.
//! The tables (`values`, `waiters`, `queue`) have a header line of upper-case column names,
//! then one line per row, the columns left-aligned and separated by at least two spaces (as
//! `index` is), every cell one word, so that `awk` and `column -t` see the same columns on
//! every line.

use std::collections::HashSet;
use std::fmt::Write;

use crate::kernel::mqueue::MqInfo;
use crate::kernel::msg::{MsgLimits, Queue};
use crate::kernel::posix_sem::SemState;
use crate::kernel::sem::{SemLimits, SemSet, SemValue};
use crate::render::index::escape_name;

/// A table: `header`, then one line per row, each column but the last padded to its widest
/// cell plus two spaces (widths counted in characters).
fn table<const N: usize>(header: [&str; N], rows: &[[String; N]]) -> String {
    let mut widths = header.map(|h| h.chars().count());
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let row_len: usize = widths.iter().map(|w| w + 2).sum();
    let mut out = String::with_capacity(row_len * (rows.len() + 1));
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

/// A process's command as one word of a table: as [`escape_name`] writes it, or `-` if empty.
fn command(comm: &str) -> String {
    if comm.is_empty() {
        "-".to_string()
    } else {
        escape_name(comm.as_bytes())
    }
}

/// The `+N hidden` line of a `waiters` file, as `attached` ends: nothing when N is 0.
fn hidden_line(hidden: usize) -> String {
    crate::kernel::attach::render_hidden(hidden as u64)
}

/// The `stat` file of a semaphore set (`sem/ID/stat`): every field `ipcs -s -i` shows, as
/// `key: value` lines (key in hex as `ipcs` prints it, mode in octal, times in seconds since
/// the epoch, 0 for never). Anyone may read it, as anyone may run `ipcs`.
pub fn sem_stat(set: &SemSet) -> String {
    let mut s = String::with_capacity(160);
    let _ = write!(
        s,
        "kind: sem\nsemid: {}\nkey: 0x{:08x}\nnsems: {}\nmode: 0{:03o}\nuid: {}\ngid: {}\n\
         cuid: {}\ncgid: {}\notime: {}\nctime: {}\n",
        set.semid,
        set.key,
        set.nsems,
        set.mode,
        set.uid,
        set.gid,
        set.cuid,
        set.cgid,
        set.otime,
        set.ctime,
    );
    s
}

/// The header of the `values` table, column by column.
const VALUES_HEADER: [&str; 5] = ["SEMNUM", "VALUE", "NCOUNT", "ZCOUNT", "PID"];

/// The `values` file of a set (`sem/ID/values`): the `ipcs -s -i` table, a header
/// `SEMNUM VALUE NCOUNT ZCOUNT PID` and one line per semaphore in order, numbers only.
/// NCOUNT and ZCOUNT are the kernel's GETNCNT and GETZCNT (a task blocked in an operation on
/// several semaphores counts under the first it waits for only: `waiters` has them all); PID
/// is the last process that changed the semaphore.
pub fn sem_values(values: &[SemValue]) -> String {
    let rows: Vec<[String; 5]> = values
        .iter()
        .enumerate()
        .map(|(num, v)| {
            [
                num.to_string(),
                v.value.to_string(),
                v.ncount.to_string(),
                v.zcount.to_string(),
                v.pid.to_string(),
            ]
        })
        .collect();
    table(VALUES_HEADER, &rows)
}

/// What a write to `values` asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ValuesWrite {
    /// Every semaphore's value, in order (SETALL): one per semaphore of the set.
    All(Vec<u16>),
    /// Some semaphores' values (SETVAL each): (semaphore number, value), in the order written,
    /// each semaphore at most once.
    Each(Vec<(u16, u16)>),
}

/// The most characters of a refused word that a refusal quotes.
const SHOWN_CHARS: usize = 24;

/// `word` quoted for a refusal: escaped, and cut after [`SHOWN_CHARS`] characters.
fn shown(word: &str) -> String {
    match word.char_indices().nth(SHOWN_CHARS) {
        Some((at, _)) => format!("{:?}…", &word[..at]),
        None => format!("{word:?}"),
    }
}

/// A decimal number: ASCII digits only (no sign, no `0x`, no spaces inside).
fn decimal(word: &str, line: usize, what: &str) -> Result<u64, String> {
    if word.is_empty() || !word.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "line {line}: {what} {} is not a decimal number",
            shown(word)
        ));
    }
    word.parse::<u64>()
        .map_err(|_| format!("line {line}: {what} {} is too large", shown(word)))
}

/// The bounds a write to `values` is checked against.
struct Bounds {
    nsems: usize,
    /// The largest value: semvmx, and at most what a semaphore holds (u16).
    max: u16,
}

impl Bounds {
    fn value(&self, word: &str, line: usize) -> Result<u16, String> {
        let v = decimal(word, line, "value")?;
        match u16::try_from(v) {
            Ok(v) if v <= self.max => Ok(v),
            _ => Err(format!(
                "line {line}: value {v} is above the largest a semaphore holds ({}, semvmx)",
                self.max
            )),
        }
    }

    fn semnum(&self, word: &str, line: usize) -> Result<u16, String> {
        let n = decimal(word, line, "semaphore number")?;
        match u16::try_from(n) {
            Ok(num) if (n as usize) < self.nsems => Ok(num),
            _ => Err(format!(
                "line {line}: no semaphore {n}: the set has {} (0 to {})",
                self.nsems,
                self.nsems - 1
            )),
        }
    }
}

/// Parses a write to a set's `values` (`sem/ID/values`) for a set of `nsems` semaphores whose
/// values may go up to `semvmx` (the kernel's SEMVMX, 32767). Three forms are taken:
///
/// - lines of two numbers `N V`: set semaphore N to V (SETVAL each), e.g. `echo '0 1'`; each
///   semaphore at most once;
/// - one line of `nsems` numbers (for a set of one, a single number): set all, in order
///   (SETALL), e.g. `echo '1 0 5'` for a set of three. A set of two has no such form, as its
///   two numbers read as `N V`: write two `N V` lines or the table;
/// - the `values` file's own table (a header line of its column names, which must include
///   `SEMNUM` and `VALUE`, then one line per semaphore): set all, each semaphore's VALUE by its
///   SEMNUM, so that `cat values > f`, editing f and `cat f > values` works. It must name every
///   semaphore exactly once; the other columns (NCOUNT, ZCOUNT, PID) are the kernel's to keep
///   and are only checked to be numbers.
///
/// Numbers are decimal, without sign; values 0 to `semvmx`. Words are separated by spaces or
/// tabs, lines by newlines; blank lines and a trailing newline are fine. Anything else (an
/// empty write, a sign, hex, any other word, bytes that are not UTF-8) refuses the whole write,
/// as does any bad line: nothing is set unless all of it is good. The error is the reason,
/// for the operator, naming the line (from 1).
///
/// What the kernel does on SETVAL and SETALL (ctime moves, sempid becomes the writer, every
/// process's SEM_UNDO adjustment of the semaphores set is cleared, blocked operations that
/// can now go on wake) is for the documentation of `values` to say.
pub fn parse_sem_values(data: &[u8], nsems: usize, semvmx: u32) -> Result<ValuesWrite, String> {
    let Ok(text) = std::str::from_utf8(data) else {
        return Err("not text: write decimal numbers".into());
    };
    if nsems == 0 {
        return Err("the set has no semaphores".into());
    }
    let bounds = Bounds {
        nsems,
        max: u16::try_from(semvmx).unwrap_or(u16::MAX),
    };
    let lines: Vec<(usize, Vec<&str>)> = text
        .split('\n')
        .enumerate()
        .map(|(i, l)| (i + 1, l.split_ascii_whitespace().collect::<Vec<_>>()))
        .filter(|(_, words)| !words.is_empty())
        .collect();
    let Some((first_line, first)) = lines.first() else {
        return Err(format!(
            "empty: write `N V` lines, all {nsems} values on one line, or the values table"
        ));
    };
    if first.first().is_some_and(|w| VALUES_HEADER.contains(w)) {
        return parse_values_table(&lines, &bounds);
    }
    if lines.len() == 1 && nsems != 2 && first.len() == nsems {
        let values = first
            .iter()
            .map(|w| bounds.value(w, *first_line))
            .collect::<Result<Vec<u16>, String>>()?;
        return Ok(ValuesWrite::All(values));
    }
    let mut seen = HashSet::with_capacity(lines.len());
    let mut each = Vec::with_capacity(lines.len());
    for (line, words) in &lines {
        let [n, v] = words[..] else {
            let all = if nsems == 2 {
                String::new()
            } else if lines.len() == 1 {
                format!(" or all {nsems} values")
            } else {
                format!(" (all {nsems} values go on one line alone)")
            };
            return Err(format!(
                "line {line}: {} words: want `N V` (set semaphore N to V){all}",
                words.len()
            ));
        };
        let num = bounds.semnum(n, *line)?;
        let value = bounds.value(v, *line)?;
        if !seen.insert(num) {
            return Err(format!("line {line}: semaphore {num} given twice"));
        }
        each.push((num, value));
    }
    Ok(ValuesWrite::Each(each))
}

/// The table form of a `values` write: the header is `lines[0]`.
fn parse_values_table(
    lines: &[(usize, Vec<&str>)],
    bounds: &Bounds,
) -> Result<ValuesWrite, String> {
    let (header_line, header) = &lines[0];
    let mut names: Vec<&str> = Vec::with_capacity(header.len());
    for word in header {
        if !VALUES_HEADER.contains(word) {
            return Err(format!(
                "line {header_line}: {} is not a column of values ({})",
                shown(word),
                VALUES_HEADER.join(" ")
            ));
        }
        if names.contains(word) {
            return Err(format!("line {header_line}: column {word} given twice"));
        }
        names.push(word);
    }
    let column = |name: &str| names.iter().position(|n| *n == name);
    let (Some(semnum_at), Some(value_at)) = (column("SEMNUM"), column("VALUE")) else {
        return Err(format!(
            "line {header_line}: the table needs the columns SEMNUM and VALUE"
        ));
    };
    let rows = &lines[1..];
    if rows.len() != bounds.nsems {
        return Err(format!(
            "the table has {} rows: it must name each of the set's {} semaphores once",
            rows.len(),
            bounds.nsems
        ));
    }
    let mut values: Vec<Option<u16>> = vec![None; bounds.nsems];
    for (line, words) in rows {
        if words.len() != names.len() {
            return Err(format!(
                "line {line}: {} words under {} columns",
                words.len(),
                names.len()
            ));
        }
        for (i, word) in words.iter().enumerate() {
            if i != semnum_at && i != value_at {
                decimal(word, *line, names[i])?;
            }
        }
        let num = bounds.semnum(words[semnum_at], *line)?;
        let value = bounds.value(words[value_at], *line)?;
        let slot = &mut values[usize::from(num)];
        if slot.is_some() {
            return Err(format!("line {line}: semaphore {num} given twice"));
        }
        *slot = Some(value);
    }
    // As many rows as semaphores, none twice: every semaphore is named.
    Ok(ValuesWrite::All(values.into_iter().flatten().collect()))
}

/// The `waiters` file of a set (`sem/ID/waiters`): the tasks blocked in `semop` on it, a header
/// `PID TID COMMAND SEMNUM OP UNDO` and one line per operation of each task, in the order of
/// its operations (OP signed: `-1` waits to take one, `+1` gives one, `0` waits for zero; UNDO
/// `yes` for SEM_UNDO). A task whose operations could not be read has one line with `-` in
/// those three columns. COMMAND is one word (as [`escape_name`] writes it). `hidden` tasks the
/// reader may not see are counted on a last line `+N hidden`, as `attached` does.
pub fn sem_waiters(waiters: &[crate::kernel::sem::Waiter], hidden: usize) -> String {
    let mut rows: Vec<[String; 6]> = Vec::with_capacity(waiters.len());
    for w in waiters {
        let who = [w.pid.to_string(), w.tid.to_string(), command(&w.comm)];
        if w.ops.is_empty() {
            let [pid, tid, comm] = who;
            rows.push([pid, tid, comm, "-".into(), "-".into(), "-".into()]);
            continue;
        }
        for &(num, op, undo) in &w.ops {
            let [pid, tid, comm] = who.clone();
            let op = if op == 0 {
                "0".to_string()
            } else {
                format!("{op:+}")
            };
            let undo = if undo { "yes" } else { "no" };
            rows.push([pid, tid, comm, num.to_string(), op, undo.to_string()]);
        }
    }
    let mut out = table(["PID", "TID", "COMMAND", "SEMNUM", "OP", "UNDO"], &rows);
    out.push_str(&hidden_line(hidden));
    out
}

/// The `stat` file of a System V message queue (`msg/ID/stat`): every field `ipcs -q -i` shows,
/// qbytes included (which `/proc/sysvipc/msg` lacks), as `key: value` lines. Anyone may read it.
pub fn msg_stat(q: &Queue) -> String {
    let mut s = String::with_capacity(240);
    let _ = write!(
        s,
        "kind: msg\nmsqid: {}\nkey: 0x{:08x}\nmode: 0{:03o}\nuid: {}\ngid: {}\ncuid: {}\n\
         cgid: {}\ncbytes: {}\nqbytes: {}\nqnum: {}\nlspid: {}\nlrpid: {}\nstime: {}\n\
         rtime: {}\nctime: {}\n",
        q.msqid,
        q.key,
        q.mode,
        q.uid,
        q.gid,
        q.cuid,
        q.cgid,
        q.cbytes,
        q.qbytes,
        q.qnum,
        q.lspid,
        q.lrpid,
        q.stime,
        q.rtime,
        q.ctime,
    );
    s
}

/// The `perm` file of a message queue (`msg/ID/perm`): mode, uid, gid as every `perm` shows
/// them, and `qbytes`, the most bytes the queue may hold, which a write of `qbytes: N` changes
/// (see `render::text::parse_perm`).
pub fn msg_perm(mode: u32, uid: u32, gid: u32, qbytes: u64) -> String {
    let mut s = crate::render::text::perm(mode, uid, gid);
    let _ = writeln!(s, "qbytes: {qbytes}");
    s
}

/// The `queue` file of a message queue (`msg/ID/queue`): a header `INDEX TYPE SIZE` and one
/// line per message in queue order, INDEX from 0 (the N of `messages/N`), TYPE its mtype and
/// SIZE its bytes. `messages` may be the first ones only (a listing is bounded): when the queue
/// holds more (`qnum`), a last line `+N more` says how many are not listed.
pub fn msg_queue(messages: &[(i64, usize)], qnum: u64) -> String {
    let rows: Vec<[String; 3]> = messages
        .iter()
        .enumerate()
        .map(|(i, (mtype, size))| [i.to_string(), mtype.to_string(), size.to_string()])
        .collect();
    let mut out = table(["INDEX", "TYPE", "SIZE"], &rows);
    let more = qnum.saturating_sub(messages.len() as u64);
    if more > 0 {
        let _ = writeln!(out, "+{more} more");
    }
    out
}

/// The `waiters` file of a message queue (`msg/ID/waiters`): the tasks blocked in `msgsnd` or
/// `msgrcv` on it, a header `PID TID COMMAND OP TYPE SIZE` and one line per task. OP is `send`
/// or `receive`; TYPE is the type a receiver asks for (0 any, N that type, -N the lowest type
/// up to N) and `-` for a sender; SIZE is a sender's message size or a receiver's buffer size.
/// COMMAND is one word (as [`escape_name`] writes it). `hidden` tasks the reader may not see are
/// counted on a last line `+N hidden`, as `attached` does.
pub fn msg_waiters(waiters: &[crate::kernel::msg::Waiter], hidden: usize) -> String {
    let rows: Vec<[String; 6]> = waiters
        .iter()
        .map(|w| {
            [
                w.pid.to_string(),
                w.tid.to_string(),
                command(&w.comm),
                if w.sending { "send" } else { "receive" }.to_string(),
                match (w.sending, w.mtype) {
                    (false, Some(t)) => t.to_string(),
                    _ => "-".to_string(),
                },
                w.size.to_string(),
            ]
        })
        .collect();
    let mut out = table(["PID", "TID", "COMMAND", "OP", "TYPE", "SIZE"], &rows);
    out.push_str(&hidden_line(hidden));
    out
}

/// The `stat` file of a POSIX message queue (`mqueue/NAME/stat`): its name (shown as
/// `posix_stat` shows a POSIX object's: lossily if not UTF-8, escaped to stay on its line),
/// mode (four octal digits when set-id or sticky bits are set), owner, the queue's attributes
/// from `mq_getattr` and its file's times.
pub fn mqueue_stat(q: &MqInfo) -> String {
    let mut s = String::with_capacity(200);
    let _ = write!(
        s,
        "kind: mqueue\nname: {}\nmode: 0{:03o}\nuid: {}\ngid: {}\nmaxmsg: {}\nmsgsize: {}\n\
         curmsgs: {}\natime: {}\nmtime: {}\nctime: {}\n",
        q.name.to_string_lossy().escape_debug(),
        q.mode,
        q.uid,
        q.gid,
        q.maxmsg,
        q.msgsize,
        q.curmsgs,
        q.atime,
        q.mtime,
        q.ctime,
    );
    s
}

/// The lines a POSIX object's `stat` gains when it is a glibc named semaphore
/// (`posix/sem.NAME/stat`): `semaphore: yes`, its `value`, `waiters`, the threads found
/// blocked on it (in `futex` on its memory; `None` when they could not be looked for, shown as
/// `unknown`), and `glibc_waiters`, the number glibc keeps in the semaphore's own bytes: a hint,
/// which a waiter killed while it waits leaves too high.
pub fn posix_sem_lines(state: &SemState, waiters: Option<usize>) -> String {
    let waiters = waiters.map_or_else(|| "unknown".to_string(), |n| n.to_string());
    format!(
        "semaphore: yes\nvalue: {}\nwaiters: {waiters}\nglibc_waiters: {}\n",
        state.value, state.waiters_hint
    )
}

/// The semaphore part of `limits`, after the shared memory part: the limits named as the
/// `kernel.sem` fields and `ipcs -s -l` name them (semvmx is the kernel's constant), then the
/// use: `sem_sets` (against semmni) and `semaphores` (against semmns).
pub fn sem_limits(l: &SemLimits) -> String {
    format!(
        "semmsl: {}\nsemmns: {}\nsemopm: {}\nsemmni: {}\nsemvmx: {}\nsem_sets: {}\n\
         semaphores: {}\n",
        l.semmsl, l.semmns, l.semopm, l.semmni, l.semvmx, l.sets_used, l.semaphores_used,
    )
}

/// The message queue part of `limits`: the limits named as their sysctls
/// (`kernel.msgmax`, `kernel.msgmnb`, `kernel.msgmni`), then the use: `msg_queues` (against
/// msgmni), `messages` and `msg_bytes` queued in all queues.
pub fn msg_limits(l: &MsgLimits) -> String {
    format!(
        "msgmax: {}\nmsgmnb: {}\nmsgmni: {}\nmsg_queues: {}\nmessages: {}\nmsg_bytes: {}\n",
        l.msgmax, l.msgmnb, l.msgmni, l.queues_used, l.messages_used, l.bytes_used,
    )
}

/// The POSIX message queue part of `limits`: `/proc/sys/fs/mqueue/queues_max`, `msg_max` and
/// `msgsize_max`, each prefixed `mqueue_`, then the use: `mqueues`, the queues now.
pub fn mqueue_limits(queues_max: u64, msg_max: u64, msgsize_max: u64, queues: u64) -> String {
    format!(
        "mqueue_queues_max: {queues_max}\nmqueue_msg_max: {msg_max}\n\
         mqueue_msgsize_max: {msgsize_max}\nmqueues: {queues}\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::{msg, sem};
    use std::ffi::OsString;
    use std::os::unix::ffi::OsStringExt;

    fn set() -> SemSet {
        SemSet {
            semid: 98307,
            key: 0xdeadbeef,
            nsems: 3,
            mode: 0o600,
            uid: 1000,
            gid: 100,
            cuid: 0,
            cgid: 0,
            otime: 0,
            ctime: 1763899000,
        }
    }

    fn queue() -> Queue {
        Queue {
            msqid: 65536,
            key: 0x162e,
            mode: 0o644,
            uid: 1000,
            gid: 1000,
            cuid: 1001,
            cgid: 1002,
            cbytes: 30,
            qbytes: 16384,
            qnum: 3,
            lspid: 4242,
            lrpid: 0,
            stime: 1763900000,
            rtime: 0,
            ctime: 1763899000,
        }
    }

    fn mq(name: &[u8], mode: u32) -> MqInfo {
        MqInfo {
            ino: 7,
            name: OsString::from_vec(name.to_vec()),
            mode,
            uid: 1000,
            gid: 1000,
            atime: 1,
            mtime: 2,
            ctime: 3,
            maxmsg: 10,
            msgsize: 8192,
            curmsgs: 4,
        }
    }

    #[test]
    fn sem_stat_shows_every_field_of_ipcs() {
        assert_eq!(
            sem_stat(&set()),
            "kind: sem\nsemid: 98307\nkey: 0xdeadbeef\nnsems: 3\nmode: 0600\nuid: 1000\n\
             gid: 100\ncuid: 0\ncgid: 0\notime: 0\nctime: 1763899000\n"
        );
        let mut private = set();
        private.key = 0;
        private.mode = 0o7;
        let text = sem_stat(&private);
        assert!(
            text.contains("\nkey: 0x00000000\nnsems: 3\nmode: 0007\n"),
            "{text}"
        );
    }

    fn value(value: u16, ncount: u32, zcount: u32, pid: i32) -> SemValue {
        SemValue {
            value,
            ncount,
            zcount,
            pid,
        }
    }

    #[test]
    fn values_is_the_ipcs_table_aligned() {
        let text = sem_values(&[
            value(0, 1, 0, 4242),
            value(32767, 0, 12, 0),
            value(1, 0, 0, 123456),
        ]);
        assert_eq!(
            text,
            "SEMNUM  VALUE  NCOUNT  ZCOUNT  PID\n\
             0       0      1       0       4242\n\
             1       32767  0       12      0\n\
             2       1      0       0       123456\n"
        );
        assert_eq!(sem_values(&[]), "SEMNUM  VALUE  NCOUNT  ZCOUNT  PID\n");
    }

    fn parse(text: &str, nsems: usize) -> Result<ValuesWrite, String> {
        parse_sem_values(text.as_bytes(), nsems, sem::SEMVMX)
    }

    #[test]
    fn values_writes_of_n_v_lines_set_each() {
        assert_eq!(parse("0 1\n", 3), Ok(ValuesWrite::Each(vec![(0, 1)])));
        assert_eq!(
            parse("2 5\n\n0   7\r\n\t1\t32767", 3),
            Ok(ValuesWrite::Each(vec![(2, 5), (0, 7), (1, 32767)]))
        );
        assert_eq!(parse("  0 0  ", 1), Ok(ValuesWrite::Each(vec![(0, 0)])));
        assert_eq!(parse("007 010", 8), Ok(ValuesWrite::Each(vec![(7, 10)])));
    }

    #[test]
    fn values_writes_of_one_whole_line_set_all() {
        assert_eq!(parse("1 0 5\n", 3), Ok(ValuesWrite::All(vec![1, 0, 5])));
        assert_eq!(
            parse("\n\n1 0 5\n\n", 3),
            Ok(ValuesWrite::All(vec![1, 0, 5]))
        );
        assert_eq!(parse("9\n", 1), Ok(ValuesWrite::All(vec![9])));
        assert_eq!(parse("4 3 2 1", 4), Ok(ValuesWrite::All(vec![4, 3, 2, 1])));
        // A set of four: two lines of four are not a form.
        assert!(parse("4 3 2 1\n4 3 2 1", 4).is_err());
        // A whole line among N V lines is refused, whichever comes first.
        assert!(parse("0 1\n1 2 3", 3).is_err());
        assert!(parse("1 2 3\n0 1", 3).is_err());
        // Too few or too many for all, and not N V.
        assert!(parse("1 2 3", 4).is_err());
        assert!(parse("1 2 3 4 5", 4).is_err());
        assert!(parse("1", 3).is_err());
    }

    #[test]
    fn two_numbers_are_always_n_v_even_for_a_set_of_two() {
        assert_eq!(parse("1 0", 2), Ok(ValuesWrite::Each(vec![(1, 0)])));
        assert_eq!(
            parse("0 5\n1 6\n", 2),
            Ok(ValuesWrite::Each(vec![(0, 5), (1, 6)]))
        );
        // "5 7" is not the values 5 and 7, but semaphore 5, which a set of two lacks.
        let err = parse("5 7", 2).unwrap_err();
        assert!(err.contains("no semaphore 5"), "{err}");
        // A set of one: one number sets all; two are N V.
        assert_eq!(parse("0 5", 1), Ok(ValuesWrite::Each(vec![(0, 5)])));
        assert!(parse("1 5", 1).is_err());
        // A set of two is set whole by its table.
        assert_eq!(
            parse("SEMNUM VALUE\n1 6\n0 5\n", 2),
            Ok(ValuesWrite::All(vec![5, 6]))
        );
    }

    #[test]
    fn the_values_table_written_back_sets_all() {
        let values = [value(3, 1, 0, 4242), value(0, 0, 2, 17), value(12, 0, 0, 0)];
        let text = sem_values(&values);
        assert_eq!(parse(&text, 3), Ok(ValuesWrite::All(vec![3, 0, 12])));
        // Edited: rows in another order, other values, columns left out or spaced otherwise.
        let edited = "SEMNUM VALUE NCOUNT ZCOUNT PID\n2 7 0 0 0\n0 1 1 0 4242\n1 0 0 2 17\n";
        assert_eq!(parse(edited, 3), Ok(ValuesWrite::All(vec![1, 0, 7])));
        assert_eq!(
            parse("VALUE SEMNUM\n9 1\n8 0\n", 2),
            Ok(ValuesWrite::All(vec![8, 9]))
        );
        for (bad, why) in [
            (
                "SEMNUM VALUE NCOUNT ZCOUNT PID\n0 1 0 0 0\n1 2 0 0 0\n",
                "rows",
            ),
            (
                "SEMNUM VALUE NCOUNT ZCOUNT PID\n0 1 0 0 0\n1 2 0 0 0\n1 3 0 0 0\n",
                "twice",
            ),
            (
                "SEMNUM VALUE NCOUNT ZCOUNT PID\n0 1 0 0 0\n1 2 0 0\n2 3 0 0 0\n",
                "words",
            ),
            ("SEMNUM VALUE NCOUNT\n0 1 x\n1 2 0\n2 3 0\n", "decimal"),
            ("SEMNUM NCOUNT\n0 1\n1 2\n2 3\n", "SEMNUM and VALUE"),
            ("SEMNUM VALUE VALUE\n0 1 1\n1 2 2\n2 3 3\n", "twice"),
            ("SEMNUM VALUE OTHER\n0 1 1\n1 2 2\n2 3 3\n", "not a column"),
            ("semnum value\n0 1\n1 2\n2 3\n", "decimal"),
            ("SEMNUM VALUE\n0 1\n1 2\n3 3\n", "no semaphore 3"),
            ("SEMNUM VALUE\n0 1\n1 2\n2 32768\n", "semvmx"),
            ("SEMNUM VALUE\n0 1\nSEMNUM VALUE\n1 2\n2 3\n", "rows"),
            ("SEMNUM VALUE\n", "rows"),
        ] {
            let err = parse(bad, 3).expect_err(bad);
            assert!(err.contains(why), "{bad:?}: {err}");
        }
    }

    #[test]
    fn values_are_bounded_by_semvmx_and_semaphores_by_nsems() {
        assert_eq!(parse("0 32767", 1), Ok(ValuesWrite::Each(vec![(0, 32767)])));
        assert!(parse("0 32768", 1).is_err());
        assert!(parse("0 65535", 1).is_err());
        assert!(parse("0 65536", 1).is_err());
        assert_eq!(
            parse_sem_values(b"0 100", 1, 100),
            Ok(ValuesWrite::Each(vec![(0, 100)]))
        );
        assert!(parse_sem_values(b"0 101", 1, 100).is_err());
        // A semvmx beyond what a semaphore holds is held to u16.
        assert_eq!(
            parse_sem_values(b"0 65535", 1, u32::MAX),
            Ok(ValuesWrite::Each(vec![(0, 65535)]))
        );
        assert!(parse_sem_values(b"0 65536", 1, u32::MAX).is_err());
        assert!(parse("3 0", 3).is_err());
        assert_eq!(
            parse("65535 1", 65536),
            Ok(ValuesWrite::Each(vec![(65535, 1)]))
        );
        assert!(parse("65536 1", 70000).is_err());
        assert!(parse("0 1", 0).is_err());
    }

    #[test]
    fn anything_else_refuses_the_whole_write() {
        for bad in [
            "",
            "\n",
            " \n\t\n",
            "-1",
            "0 -1",
            "+1 2",
            "0 +1",
            "0x1 2",
            "0 0x10",
            "0 1.0",
            "0 1e3",
            "0 1,",
            "0,1",
            "0 1 # comment",
            "zero one",
            "0 1\nbogus",
            "0 1\n0 2",
            "0 1\n1",
            "0 99999999999999999999999999999999",
            "99999999999999999999999999999999 0",
            "18446744073709551616 1",
            "0 \u{ff11}",
            "0\u{a0}1",
            "0 1\0",
            "\0",
            "0 1\n\x001 2",
        ] {
            assert!(parse(bad, 3).is_err(), "{bad:?} was accepted");
            assert!(parse(bad, 1).is_err(), "{bad:?} was accepted for one");
        }
        assert!(parse_sem_values(b"0 \xff", 3, 32767).is_err());
        assert!(parse_sem_values(b"\xc3", 1, 32767).is_err());
        assert!(parse_sem_values(&[b'\n'; 100_000], 3, 32767).is_err());
    }

    #[test]
    fn refusals_say_why_and_where_without_quoting_too_much() {
        let err = parse("0 1\n\n1 2\n2 x", 3).unwrap_err();
        assert!(err.starts_with("line 4: value \"x\""), "{err}");
        let long = format!("0 {}", "9".repeat(10_000));
        let err = parse(&long, 3).unwrap_err();
        assert!(err.len() < 120, "{err}");
        assert!(err.contains("too large"), "{err}");
        let err = parse(&format!("0 {}", "\u{1b}[2J".repeat(100)), 3).unwrap_err();
        assert!(!err.contains('\u{1b}'), "{err:?}");
        assert!(parse("", 3).unwrap_err().contains("empty"));
    }

    fn sem_waiter(pid: u32, comm: &str, ops: Vec<(u16, i16, bool)>) -> sem::Waiter {
        sem::Waiter {
            pid,
            tid: pid + 1,
            comm: comm.into(),
            ops,
        }
    }

    #[test]
    fn sem_waiters_have_a_line_per_operation() {
        let text = sem_waiters(
            &[
                sem_waiter(100, "postgres", vec![(0, -1, true), (2, 0, false)]),
                sem_waiter(20000, "my prog\n", vec![(1, 3, false)]),
                sem_waiter(7, "", vec![]),
            ],
            0,
        );
        assert_eq!(
            text,
            "PID    TID    COMMAND       SEMNUM  OP  UNDO\n\
             100    101    postgres      0       -1  yes\n\
             100    101    postgres      2       0   no\n\
             20000  20001  my\\x20prog\\n  1       +3  no\n\
             7      8      -             -       -   -\n"
        );
        let text = sem_waiters(&[sem_waiter(5, "a", vec![(0, i16::MIN, true)])], 2);
        assert!(text.contains(" -32768 "), "{text}");
        assert!(text.ends_with("\n+2 hidden\n"), "{text}");
        assert_eq!(
            sem_waiters(&[], 3),
            "PID  TID  COMMAND  SEMNUM  OP  UNDO\n+3 hidden\n"
        );
        // Every line but the last has the header's six words.
        for line in text.lines().filter(|l| !l.starts_with('+')) {
            assert_eq!(line.split_whitespace().count(), 6, "{line:?}");
        }
    }

    #[test]
    fn msg_stat_shows_every_field_of_ipcs() {
        assert_eq!(
            msg_stat(&queue()),
            "kind: msg\nmsqid: 65536\nkey: 0x0000162e\nmode: 0644\nuid: 1000\ngid: 1000\n\
             cuid: 1001\ncgid: 1002\ncbytes: 30\nqbytes: 16384\nqnum: 3\nlspid: 4242\n\
             lrpid: 0\nstime: 1763900000\nrtime: 0\nctime: 1763899000\n"
        );
    }

    #[test]
    fn msg_perm_parses_back_with_its_qbytes() {
        let text = msg_perm(0o640, 1000, 50, 16384);
        assert_eq!(text, "mode: 0640\nuid: 1000\ngid: 50\nqbytes: 16384\n");
        let none = |_: &str| None;
        assert_eq!(
            crate::render::text::parse_perm(text.as_bytes(), &none, &none),
            Ok(crate::render::text::PermChange {
                mode: Some(0o640),
                uid: Some(1000),
                gid: Some(50),
                qbytes: Some(16384),
            })
        );
    }

    #[test]
    fn msg_queue_lists_messages_and_says_when_it_stops_short() {
        assert_eq!(
            msg_queue(&[(1, 10), (-5, 0), (9_000_000_000, 8192)], 3),
            "INDEX  TYPE        SIZE\n\
             0      1           10\n\
             1      -5          0\n\
             2      9000000000  8192\n"
        );
        assert_eq!(
            msg_queue(&[(1, 10)], 10_001),
            "INDEX  TYPE  SIZE\n0      1     10\n+10000 more\n"
        );
        assert_eq!(msg_queue(&[], 0), "INDEX  TYPE  SIZE\n");
        // Messages received while listing: never a negative count.
        assert_eq!(msg_queue(&[(1, 1), (2, 2)], 1).lines().count(), 3);
    }

    #[test]
    fn msg_waiters_show_senders_and_receivers() {
        let w = |pid, sending, mtype, size| msg::Waiter {
            pid,
            tid: pid,
            comm: "q\tworker".into(),
            sending,
            mtype,
            size,
        };
        assert_eq!(
            msg_waiters(
                &[
                    w(10, true, None, 100),
                    w(11, false, Some(-3), 8192),
                    w(12, false, Some(0), 64)
                ],
                1
            ),
            "PID  TID  COMMAND    OP       TYPE  SIZE\n\
             10   10   q\\tworker  send     -     100\n\
             11   11   q\\tworker  receive  -3    8192\n\
             12   12   q\\tworker  receive  0     64\n\
             +1 hidden\n"
        );
        assert_eq!(msg_waiters(&[], 0), "PID  TID  COMMAND  OP  TYPE  SIZE\n");
    }

    #[test]
    fn mqueue_stat_shows_attributes_and_times() {
        assert_eq!(
            mqueue_stat(&mq(b"jobs", 0o660)),
            "kind: mqueue\nname: jobs\nmode: 0660\nuid: 1000\ngid: 1000\nmaxmsg: 10\n\
             msgsize: 8192\ncurmsgs: 4\natime: 1\nmtime: 2\nctime: 3\n"
        );
        let text = mqueue_stat(&mq(b"a\nb\xff", 0o4640));
        assert!(
            text.contains("\nname: a\\nb\u{fffd}\nmode: 04640\n"),
            "{text}"
        );
    }

    #[test]
    fn posix_semaphores_add_value_and_waiters() {
        let state = SemState {
            value: 3,
            waiters_hint: 1,
        };
        assert_eq!(
            posix_sem_lines(&state, Some(0)),
            "semaphore: yes\nvalue: 3\nwaiters: 0\nglibc_waiters: 1\n"
        );
        assert!(posix_sem_lines(&state, None).contains("waiters: unknown\n"));
    }

    #[test]
    fn limits_are_named_as_the_sysctls() {
        let sem = SemLimits {
            semmsl: 32000,
            semmns: 1024000000,
            semopm: 500,
            semmni: 32000,
            semvmx: 32767,
            sets_used: 3,
            semaphores_used: 7,
        };
        assert_eq!(
            sem_limits(&sem),
            "semmsl: 32000\nsemmns: 1024000000\nsemopm: 500\nsemmni: 32000\nsemvmx: 32767\n\
             sem_sets: 3\nsemaphores: 7\n"
        );
        let msg = MsgLimits {
            msgmax: 8192,
            msgmnb: 16384,
            msgmni: 32000,
            queues_used: 2,
            messages_used: 5,
            bytes_used: 50,
        };
        assert_eq!(
            msg_limits(&msg),
            "msgmax: 8192\nmsgmnb: 16384\nmsgmni: 32000\nmsg_queues: 2\nmessages: 5\n\
             msg_bytes: 50\n"
        );
        assert_eq!(
            mqueue_limits(256, 10, 8192, 1),
            "mqueue_queues_max: 256\nmqueue_msg_max: 10\nmqueue_msgsize_max: 8192\nmqueues: 1\n"
        );
        // No name twice in the whole limits file.
        let all = crate::render::text::limits(&Default::default())
            + &sem_limits(&sem)
            + &msg_limits(&msg)
            + &mqueue_limits(1, 2, 3, 4);
        let mut names = HashSet::new();
        for line in all.lines() {
            let (name, _) = line.split_once(": ").expect(line);
            assert!(names.insert(name), "{name} twice");
        }
    }
}

#[cfg(test)]
mod proptests {
    //! Properties of the `values` parser over arbitrary input.

    use super::*;
    use proptest::prelude::*;

    const SEMVMX: u32 = crate::kernel::sem::SEMVMX;

    proptest! {
        // No regression files: the tests must not write into the source tree.
        #![proptest_config(ProptestConfig {
            cases: 2000,
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        /// Never panics, whatever the bytes, and anything accepted is within the set and
        /// semvmx, each semaphore at most once, all of them for a whole write.
        #[test]
        fn arbitrary_bytes_never_panic_and_accepted_writes_are_in_range(
            input in prop_oneof![
                prop::collection::vec(any::<u8>(), 0..64),
                proptest::string::string_regex("[0-9 \n\t+-]{0,40}").unwrap().prop_map(String::into_bytes),
                proptest::string::string_regex("(SEMNUM VALUE( NCOUNT)?\n)?([0-9]{1,6} [0-9]{1,6}( [0-9])?\n){0,4}")
                    .unwrap()
                    .prop_map(String::into_bytes),
            ],
            nsems in 0..6usize,
        ) {
            match parse_sem_values(&input, nsems, SEMVMX) {
                Ok(ValuesWrite::All(values)) => {
                    prop_assert_eq!(values.len(), nsems);
                    prop_assert!(values.iter().all(|&v| u32::from(v) <= SEMVMX));
                }
                Ok(ValuesWrite::Each(each)) => {
                    prop_assert!(!each.is_empty());
                    let mut seen = HashSet::new();
                    for (num, v) in each {
                        prop_assert!(usize::from(num) < nsems);
                        prop_assert!(u32::from(v) <= SEMVMX);
                        prop_assert!(seen.insert(num), "semaphore {} twice", num);
                    }
                }
                Err(why) => prop_assert!(!why.is_empty()),
            }
        }

        /// What `values` reads, written back, sets every semaphore to the value it shows.
        #[test]
        fn the_values_file_parses_back(
            values in prop::collection::vec(
                (0..=SEMVMX as u16, any::<u32>(), any::<u32>(), 0..i32::MAX), 1..40),
        ) {
            let rows: Vec<SemValue> = values
                .iter()
                .map(|&(value, ncount, zcount, pid)| SemValue { value, ncount, zcount, pid })
                .collect();
            let want: Vec<u16> = values.iter().map(|v| v.0).collect();
            prop_assert_eq!(
                parse_sem_values(sem_values(&rows).as_bytes(), rows.len(), SEMVMX),
                Ok(ValuesWrite::All(want))
            );
        }

        /// `N V` lines give exactly their pairs, in order; one line of nsems values (nsems
        /// not 2) gives them all.
        #[test]
        fn well_formed_writes_give_what_they_say(
            nsems in 1..50usize,
            picks in prop::collection::vec((any::<prop::sample::Index>(), 0..=SEMVMX as u16), 1..10),
            all in prop::collection::vec(0..=SEMVMX as u16, 50),
        ) {
            let mut seen = HashSet::new();
            let pairs: Vec<(u16, u16)> = picks
                .iter()
                .map(|(i, v)| (i.index(nsems) as u16, *v))
                .filter(|(n, _)| seen.insert(*n))
                .collect();
            let text: String = pairs.iter().map(|(n, v)| format!("{n} {v}\n")).collect();
            prop_assert_eq!(
                parse_sem_values(text.as_bytes(), nsems, SEMVMX),
                Ok(ValuesWrite::Each(pairs))
            );
            if nsems != 2 {
                let all = &all[..nsems];
                let line = all.iter().map(u16::to_string).collect::<Vec<_>>().join(" ");
                prop_assert_eq!(
                    parse_sem_values(line.as_bytes(), nsems, SEMVMX),
                    Ok(ValuesWrite::All(all.to_vec()))
                );
            }
        }
    }
}
