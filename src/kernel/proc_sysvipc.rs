//! `/proc/sysvipc/shm` read a piece at a time, for the `rss` and `swap` of each segment: the
//! kernel's side of [`crate::kernel::usage`], whose rules decide when to read it.
//!
//! The file shows the segments of the IPC namespace of the thread that opens it, and
//! `shmctl(SHM_INFO)` the totals of the caller's: a reading is of one namespace.

use std::fs::File;
use std::io::{self, Read};
use std::time::Instant;

use crate::kernel::sysv::{self, Totals, Usage};
use crate::kernel::usage::{Shared, Source};

/// The kernel as the source of usage readings: `shmctl(SHM_INFO)` and `/proc/sysvipc/shm`,
/// both of the calling thread's IPC namespace. A [`Shared`] reading over it belongs to one
/// namespace: see `kernel::context`, which keeps one per namespace.
pub struct KernelReadings;

impl Source for KernelReadings {
    type Pass = ProcPass<File>;

    fn totals(&self) -> io::Result<Totals> {
        sysv::totals()
    }

    fn start(&self) -> io::Result<ProcPass<File>> {
        Ok(ProcPass::new(File::open("/proc/sysvipc/shm")?))
    }

    fn next_piece(
        &self,
        pass: &mut ProcPass<File>,
        read_at: Instant,
        row: &mut dyn FnMut(i32, Usage, Instant),
    ) -> io::Result<bool> {
        pass.next_piece(read_at, row)
    }

    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// The shared reading of one IPC namespace's `/proc/sysvipc/shm`.
pub type Readings = Shared<KernelReadings>;

/// A new shared reading, for the namespace of the threads that will ask it.
pub fn readings() -> Readings {
    Shared::new(KernelReadings)
}

/// A new shared reading that leaves `/proc/sysvipc/shm` open between no two calls (see
/// [`Shared::closing`]): for a namespace the daemon visits, which an open reading would pin.
pub fn closing_readings() -> Readings {
    Shared::closing(KernelReadings)
}

/// One reading of `/proc/sysvipc/shm` in progress, read a piece at a time.
pub struct ProcPass<R> {
    file: R,
    /// Where each read(2) lands: at least two pages, so that the kernel, which formats whole
    /// lines into a buffer of one page, can always hand over all it formatted.
    piece: Vec<u8>,
    /// Learnt from the header line.
    columns: Option<Columns>,
    /// The start of a line whose end the next piece brings, and the time before the read that
    /// brought it (the kernel formatted the whole line then).
    pending: Vec<u8>,
    pending_at: Option<Instant>,
}

impl<R: Read> ProcPass<R> {
    fn new(file: R) -> ProcPass<R> {
        // SAFETY: sysconf has no memory effects.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
        ProcPass {
            file,
            piece: vec![0; (2 * page).max(8192)],
            columns: None,
            pending: Vec::new(),
            pending_at: None,
        }
    }

    /// One read(2): the kernel formats the lines of about one page per call, and formatting is
    /// what a reading costs. Each line completed goes to `row` with the time before the read
    /// that brought its first byte.
    fn next_piece(
        &mut self,
        read_at: Instant,
        row: &mut dyn FnMut(i32, Usage, Instant),
    ) -> io::Result<bool> {
        let n = loop {
            match self.file.read(&mut self.piece) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other?,
            }
        };
        let at_end = n == 0;
        if at_end && self.pending.is_empty() {
            return match self.columns {
                Some(_) => Ok(false),
                None => Err(unexpected_header()),
            };
        }
        // At the end, a last line without its newline.
        let mut text: &[u8] = if at_end { b"\n" } else { &self.piece[..n] };
        while let Some(newline) = text.iter().position(|&b| b == b'\n') {
            let line_at = self.pending_at.take().unwrap_or(read_at);
            let line = if self.pending.is_empty() {
                &text[..newline]
            } else {
                self.pending.extend_from_slice(&text[..newline]);
                &self.pending[..]
            };
            match &self.columns {
                None => self.columns = Some(Columns::of_header(line)?),
                Some(columns) => {
                    if let Some((id, usage)) = columns.parse(line) {
                        row(id, usage, line_at);
                    }
                }
            }
            self.pending.clear();
            text = &text[newline + 1..];
        }
        if !text.is_empty() {
            self.pending_at.get_or_insert(read_at);
            self.pending.extend_from_slice(text);
        }
        Ok(!at_end)
    }
}

fn unexpected_header() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        "/proc/sysvipc/shm: unexpected header",
    )
}

/// Where shmid, rss and swap are in the lines of `/proc/sysvipc/shm`. They are found by the
/// header's names, so that a kernel that adds columns does not break it.
struct Columns {
    id: usize,
    rss: usize,
    swap: usize,
}

impl Columns {
    fn of_header(header: &[u8]) -> io::Result<Columns> {
        let column = |name: &[u8]| {
            header
                .split(u8::is_ascii_whitespace)
                .filter(|f| !f.is_empty())
                .position(|c| c == name)
        };
        match (column(b"shmid"), column(b"rss"), column(b"swap")) {
            (Some(id), Some(rss), Some(swap)) => Ok(Columns { id, rss, swap }),
            _ => Err(unexpected_header()),
        }
    }

    /// The shmid and usage of one segment's line; None for a line that does not parse.
    // Bytes, not strings: at thousands of segments this runs often enough that a String (and a
    // UTF-8 check) per line showed in profiles.
    fn parse(&self, line: &[u8]) -> Option<(i32, Usage)> {
        let last = self.id.max(self.rss).max(self.swap);
        let (mut id, mut rss, mut swap) = (None, None, None);
        let fields = line
            .split(u8::is_ascii_whitespace)
            .filter(|f| !f.is_empty());
        for (i, field) in fields.enumerate().take(last + 1) {
            if i == self.id {
                id = parse_decimal(field).and_then(|n| i32::try_from(n).ok());
            } else if i == self.rss {
                rss = parse_decimal(field);
            } else if i == self.swap {
                swap = parse_decimal(field);
            }
        }
        Some((
            id?,
            Usage {
                rss: rss?,
                swap: swap?,
            },
        ))
    }
}

/// A decimal number of ASCII digits, or None (empty, another byte, or too big).
fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &d| {
        if d.is_ascii_digit() {
            n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file that hands over the given pieces, one per read(2), as the kernel's seq_file does.
    struct Pieces(std::collections::VecDeque<Vec<u8>>);

    impl Read for Pieces {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let Some(piece) = self.0.pop_front() else {
                return Ok(0);
            };
            assert!(piece.len() <= buf.len());
            buf[..piece.len()].copy_from_slice(&piece);
            Ok(piece.len())
        }
    }

    const HEADER: &str = "       key      shmid perms                  size  cpid  lpid nattch   uid   gid  cuid  cgid      atime      dtime      ctime                   rss                  swap\n";

    fn line(shmid: i32, rss: u64, swap: u64) -> String {
        format!(
            "-559038737 {shmid:>10}  1600                  4096  4242  4250      2  70000  1000  1000  1000 1763900000 1763899990 1763899000 {rss:>21} {swap:>21}\n"
        )
    }

    /// Reads `pieces` to the end, one piece per call at times 0, 1, 2… ms after `t0`; gives
    /// each segment's (shmid, rss, swap, ms of its time).
    fn read_all(pieces: &[&str]) -> io::Result<Vec<(i32, u64, u64, u64)>> {
        let t0 = Instant::now();
        let mut pass = ProcPass::new(Pieces(
            pieces.iter().map(|p| p.as_bytes().to_vec()).collect(),
        ));
        let mut rows = Vec::new();
        for ms in 0.. {
            let read_at = t0 + std::time::Duration::from_millis(ms);
            let more = pass.next_piece(read_at, &mut |id, u, at| {
                rows.push((id, u.rss, u.swap, (at - t0).as_millis() as u64))
            })?;
            if !more {
                return Ok(rows);
            }
        }
        unreachable!()
    }

    #[test]
    fn reads_proc_sysvipc_shm_a_piece_at_a_time() {
        let (a, b, c) = (line(7, 8192, 0), line(9, 0, 4096), line(11, 4096, 4096));
        let text = format!("{HEADER}{a}garbage line\n\n{b}");
        assert_eq!(
            read_all(&[&text, &c]).unwrap(),
            vec![(7, 8192, 0, 0), (9, 0, 4096, 0), (11, 4096, 4096, 1)],
            "lines that do not parse are skipped"
        );
    }

    #[test]
    fn a_line_split_between_reads_keeps_the_time_of_its_first_byte() {
        let (a, b) = (line(7, 8192, 0), line(9, 0, 4096));
        let (b1, b2) = b.split_at(30);
        let (h1, h2) = HEADER.split_at(10);
        assert_eq!(
            read_all(&[h1, h2, &a, b1, b2]).unwrap(),
            vec![(7, 8192, 0, 2), (9, 0, 4096, 3)],
            "b was formatted when its first byte was read"
        );
    }

    #[test]
    fn a_last_line_without_newline_counts_and_a_file_without_header_is_an_error() {
        let a = line(7, 8192, 0);
        let text = format!("{HEADER}{}", a.trim_end());
        assert_eq!(read_all(&[&text]).unwrap(), vec![(7, 8192, 0, 0)]);
        for bad in [&[][..], &["x y z\n"][..], &["       key      shmid\n"][..]] {
            let err = read_all(bad).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{bad:?}");
        }
    }
}
