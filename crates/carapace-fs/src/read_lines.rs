//! Line windows (`offset` / `limit` reads) of a verified file, in bounded memory and time
//! whatever the file's shape.
//!
//! - **Memory**: at most `max_bytes` of output plus one 64 KiB buffer. Only whole lines are
//!   returned; a window stops before the first line that would not fit. When not even the
//!   window's first line fits, that is [`FsError::LineTooLong`] — decided after reading at most
//!   `max_bytes` + 64 KiB of it, however long the line is.
//! - **Time**: skipping to the first line reads at most `max_scan` bytes
//!   ([`FsError::ScanLimit`] past that). Holes of sparse files are skipped with
//!   `SEEK_DATA`/`SEEK_HOLE` without reading them: a hole holds only NUL bytes, so it has no
//!   line breaks, and a 3 GiB file made by one `truncate` costs two `lseek`s to skip.
//!
//! Reads are positional (`pread`), so the file offset of the fd is never relied on.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use rustix::fs::SeekFrom;
use rustix::io::Errno;

use crate::error::FsError;
use crate::options::VerifiedFile;
use crate::root::io_error;

/// Read size of one step.
const CHUNK: usize = 64 * 1024;

/// What to read: lines `first ..` (1-based), at most `limit` of them and `max_bytes` of output,
/// scanning at most `max_scan` bytes to reach line `first`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineQuery {
    /// First line, 1-based (0 is treated as 1).
    pub first: u64,
    /// Most lines to return; `None`: as many as fit.
    pub limit: Option<u64>,
    /// Most bytes to return.
    pub max_bytes: u64,
    /// Most bytes read while skipping to `first` (holes of sparse files are free).
    pub max_scan: u64,
}

/// A window of whole lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineWindow {
    /// The lines, each with its `\n` (the file's last line may lack one).
    pub bytes: Vec<u8>,
    /// The line number of the first line returned (the query's `first`).
    pub first: u64,
    /// How many lines were returned.
    pub lines: u64,
    /// True when the file has more after the window (a limit or the byte cap stopped it).
    pub more: bool,
    /// The file's line count, when the read reached its end.
    pub total_lines: Option<u64>,
}

impl VerifiedFile {
    /// Reads a window of whole lines (see the module docs for the bounds).
    pub fn read_lines(&self, q: &LineQuery) -> Result<LineWindow, FsError> {
        read_lines(&self.file, &self.rel, self.meta.size, q)
    }
}

/// The data regions of a file: `SEEK_DATA`/`SEEK_HOLE` where the filesystem has them,
/// else the whole file is one region.
struct Regions<'a> {
    file: &'a File,
    size: u64,
    sparse_aware: bool,
    /// The data region last found: `[start, end)`.
    cur: Option<(u64, u64)>,
}

impl Regions<'_> {
    /// The data region containing `pos`, or the next one after it; `None` at the end.
    fn at(&mut self, pos: u64) -> Result<Option<(u64, u64)>, Errno> {
        if let Some((s, e)) = self.cur
            && s <= pos
            && pos < e
        {
            return Ok(Some((pos, e)));
        }
        if !self.sparse_aware {
            return Ok((pos < self.size).then_some((pos, self.size)));
        }
        let start = match rustix::fs::seek(self.file, SeekFrom::Data(pos)) {
            Ok(s) => s,
            Err(Errno::NXIO) => return Ok(None),
            Err(Errno::INVAL | Errno::OPNOTSUPP | Errno::NOSYS) => {
                self.sparse_aware = false;
                return Ok((pos < self.size).then_some((pos, self.size)));
            }
            Err(e) => return Err(e),
        };
        let end = match rustix::fs::seek(self.file, SeekFrom::Hole(start)) {
            Ok(e) => e.max(start + 1),
            Err(_) => self.size.max(start + 1),
        };
        self.cur = Some((start, end));
        Ok(Some((start, end)))
    }
}

fn pread(file: &File, rel: &Path, buf: &mut [u8], pos: u64) -> Result<usize, FsError> {
    loop {
        match file.read_at(buf, pos) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_error("read", rel, e)),
        }
    }
}

fn count_newlines(b: &[u8]) -> u64 {
    b.iter().filter(|c| **c == b'\n').count() as u64
}

/// Index of the `n`-th (0-based) newline of `b`.
fn nth_newline(b: &[u8], n: u64) -> Option<usize> {
    b.iter()
        .enumerate()
        .filter(|(_, c)| **c == b'\n')
        .nth(usize::try_from(n).ok()?)
        .map(|(i, _)| i)
}

pub(crate) fn read_lines(
    file: &File,
    rel: &Path,
    size: u64,
    q: &LineQuery,
) -> Result<LineWindow, FsError> {
    let first = q.first.max(1);
    let mut buf = vec![0u8; CHUNK];
    let mut regions = Regions {
        file,
        size,
        sparse_aware: true,
        cur: None,
    };
    let seek_err = |e: Errno| io_error("seek", rel, std::io::Error::from(e));

    // 1. Skip to line `first`: count line breaks, reading only data regions.
    let mut pos = 0u64;
    let mut line = 1u64;
    let mut at_line_start = true;
    let mut scanned = 0u64;
    while line < first {
        let Some((start, end)) = regions.at(pos).map_err(seek_err)? else {
            // The end of the file: it has fewer lines than `first - 1`.
            if pos < size {
                at_line_start = false; // a trailing hole is one unterminated line (of NULs)
            }
            let total = if at_line_start { line - 1 } else { line };
            return Ok(LineWindow {
                bytes: Vec::new(),
                first,
                lines: 0,
                more: false,
                total_lines: Some(total),
            });
        };
        if start > pos {
            at_line_start = false; // skipped a hole: NUL bytes, no line break
        }
        pos = start;
        let want = usize::try_from((end - pos).min(CHUNK as u64)).unwrap_or(CHUNK);
        let n = pread(file, rel, &mut buf[..want], pos)?;
        if n == 0 {
            // Shorter than fstat said (truncated meanwhile): the end.
            regions.size = pos;
            regions.cur = None;
            regions.sparse_aware = false;
            continue;
        }
        scanned += n as u64;
        if scanned > q.max_scan {
            return Err(FsError::ScanLimit {
                path: rel.to_path_buf(),
                line: first,
                scanned: q.max_scan,
            });
        }
        let chunk = &buf[..n];
        let need = first - line;
        let count = count_newlines(chunk);
        if count < need {
            line += count;
            pos += n as u64;
            at_line_start = chunk.last() == Some(&b'\n');
        } else {
            let i = nth_newline(chunk, need - 1).unwrap_or(n - 1);
            pos += i as u64 + 1;
            line = first;
            at_line_start = true;
        }
    }

    // 2. Collect whole lines from `pos` (holes read as NULs, within the byte cap).
    let limit = q.limit.unwrap_or(u64::MAX);
    let cap = usize::try_from(q.max_bytes).unwrap_or(usize::MAX);
    let mut out: Vec<u8> = Vec::with_capacity(
        usize::try_from(size.saturating_sub(pos).min(q.max_bytes).min(1 << 20)).unwrap_or(0),
    );
    let mut lines = 0u64;
    let mut committed = 0usize; // out.len() at the end of the last whole line
    let too_long = || FsError::LineTooLong {
        path: rel.to_path_buf(),
        line: first,
        limit: q.max_bytes,
    };
    let mut more = false;
    let mut total_lines = None;
    if limit == 0 {
        return Ok(LineWindow {
            bytes: out,
            first,
            lines: 0,
            more: pos < size,
            total_lines: None,
        });
    }
    'read: loop {
        let n = pread(file, rel, &mut buf, pos)?;
        if n == 0 {
            if out.len() > committed {
                lines += 1; // the last line, without a line break (it fit: checked below)
                committed = out.len();
            }
            total_lines = Some(first - 1 + lines);
            break;
        }
        let chunk = &buf[..n];
        let mut start = 0usize;
        while let Some(off) = chunk[start..].iter().position(|c| *c == b'\n') {
            let end = start + off + 1;
            if out.len() + (end - start) > cap {
                if lines == 0 {
                    return Err(too_long());
                }
                more = true;
                break 'read;
            }
            out.extend_from_slice(&chunk[start..end]);
            committed = out.len();
            lines += 1;
            start = end;
            if lines == limit {
                more = pos + (end as u64) < size;
                break 'read;
            }
        }
        let rest = &chunk[start..];
        if out.len() + rest.len() > cap {
            if lines == 0 {
                return Err(too_long());
            }
            more = true;
            break;
        }
        out.extend_from_slice(rest);
        pos += n as u64;
    }
    out.truncate(committed);
    Ok(LineWindow {
        bytes: out,
        first,
        lines,
        more,
        total_lines,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn file(content: &[u8]) -> (tempfile::NamedTempFile, File) {
        let mut t = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut t, content).unwrap();
        let f = File::open(t.path()).unwrap();
        (t, f)
    }

    fn q(first: u64, limit: Option<u64>, max_bytes: u64) -> LineQuery {
        LineQuery {
            first,
            limit,
            max_bytes,
            max_scan: 1 << 30,
        }
    }

    fn run(content: &[u8], query: LineQuery) -> Result<LineWindow, FsError> {
        let (_t, f) = file(content);
        read_lines(&f, Path::new("f"), content.len() as u64, &query)
    }

    #[test]
    fn windows() {
        let text = b"a\nbb\nccc\ndddd";
        let w = run(text, q(2, Some(2), 100)).unwrap();
        assert_eq!(
            (w.bytes.as_slice(), w.lines, w.more),
            (&b"bb\nccc\n"[..], 2, true)
        );
        assert_eq!(w.total_lines, None);
        let w = run(text, q(3, None, 100)).unwrap();
        assert_eq!(w.bytes, b"ccc\ndddd");
        assert_eq!((w.lines, w.more, w.total_lines), (2, false, Some(4)));
        // The byte cap keeps whole lines only.
        let w = run(text, q(1, None, 6)).unwrap();
        assert_eq!(
            (w.bytes.as_slice(), w.lines, w.more),
            (&b"a\nbb\n"[..], 2, true)
        );
        // Past the end: empty, with the line count.
        let w = run(text, q(9, None, 100)).unwrap();
        assert_eq!((w.lines, w.total_lines), (0, Some(4)));
        let w = run(b"a\nb\n", q(3, None, 100)).unwrap();
        assert_eq!((w.lines, w.total_lines, w.more), (0, Some(2), false));
        let w = run(b"", q(1, None, 100)).unwrap();
        assert_eq!((w.lines, w.total_lines), (0, Some(0)));
        // The limit exactly at the end: nothing more.
        let w = run(b"a\nb\n", q(1, Some(2), 100)).unwrap();
        assert!(!w.more);
        // A first line over the cap is refused; a later one ends the window.
        assert!(matches!(
            run(b"0123456789\n", q(1, None, 4)),
            Err(FsError::LineTooLong { line: 1, .. })
        ));
        assert!(matches!(
            run(b"0123456789", q(1, None, 4)),
            Err(FsError::LineTooLong { .. })
        ));
        // The scan budget.
        let mut big = vec![b'x'; 3 * CHUNK];
        big.push(b'\n');
        let e = run(
            &big,
            LineQuery {
                first: 2,
                limit: None,
                max_bytes: 10,
                max_scan: CHUNK as u64,
            },
        )
        .unwrap_err();
        assert!(matches!(e, FsError::ScanLimit { line: 2, .. }), "{e}");
        // Lines across chunk boundaries.
        let many: Vec<u8> = (0..50_000u32)
            .flat_map(|i| format!("{i}\n").into_bytes())
            .collect();
        let w = run(&many, q(40_000, Some(3), 1 << 20)).unwrap();
        assert_eq!(w.bytes, b"39999\n40000\n40001\n");
    }
}
