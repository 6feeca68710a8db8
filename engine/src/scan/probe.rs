//! Positional reads around chunk boundaries of a plain file.
//!
//! The mapped scanner never maps the whole file: where a chunk ends, where the next line starts,
//! whether the bytes ahead are a run of NULs, are answered by `pread` into one small block that is
//! kept while consecutive questions fall inside it. So the scanner's memory is one block whatever
//! the file holds (a 10 GB line, a sparse file of NULs), and a file that shrinks under it makes a
//! read come back short instead of faulting.

use std::fs::File;
use std::io::ErrorKind;
use std::os::unix::fs::FileExt;

/// Bytes read at a time.
const BLOCK: usize = 64 << 10;

/// A cached block of a file, read with `pread`.
pub(super) struct Probe<'f> {
    file: &'f File,
    buf: Vec<u8>,
    /// File offset of `buf[0]`.
    at: u64,
}

impl<'f> Probe<'f> {
    pub(super) fn new(file: &'f File) -> Probe<'f> {
        Probe {
            file,
            buf: Vec::with_capacity(BLOCK),
            at: 0,
        }
    }

    /// Reads up to `len` bytes at `offset` into `out` (fewer at the end of the file).
    fn read_at(&self, offset: u64, out: &mut [u8]) -> std::io::Result<usize> {
        let mut n = 0;
        while n < out.len() {
            match self.file.read_at(&mut out[n..], offset + n as u64) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(n)
    }

    /// The file's bytes from `offset` to the end of the block holding it, at least `want` (up to a
    /// block) unless the file ends first; empty at the end of the file.
    fn window(&mut self, offset: u64, want: usize) -> std::io::Result<&[u8]> {
        let end = self.at + self.buf.len() as u64;
        let cached = offset >= self.at
            && offset < end
            && ((end - offset) as usize >= want.min(BLOCK) || self.buf.len() < BLOCK);
        if !cached {
            let mut buf = std::mem::take(&mut self.buf);
            buf.resize(BLOCK, 0);
            let read = self.read_at(offset, &mut buf);
            buf.truncate(read.as_ref().map_or(0, |n| *n));
            self.buf = buf;
            self.at = offset;
            read?;
        }
        Ok(&self.buf[(offset - self.at) as usize..])
    }

    /// The byte at `offset`, `None` past the end of the file.
    pub(super) fn byte(&mut self, offset: u64) -> std::io::Result<Option<u8>> {
        Ok(self.window(offset, 1)?.first().copied())
    }

    /// The offset of the first `\n` in `[from, to)`; `None` when there is none, or the file ends
    /// first.
    pub(super) fn find_newline(&mut self, from: u64, to: u64) -> std::io::Result<Option<u64>> {
        let mut pos = from;
        while pos < to {
            let w = self.window(pos, 1)?;
            if w.is_empty() {
                return Ok(None);
            }
            let w = &w[..w.len().min((to - pos) as usize)];
            if let Some(i) = memchr::memchr(b'\n', w) {
                return Ok(Some(pos + i as u64));
            }
            pos += w.len() as u64;
        }
        Ok(None)
    }

    /// The offset of the last `\n` in `[from, to)`, if any.
    pub(super) fn rfind_newline(&mut self, from: u64, to: u64) -> std::io::Result<Option<u64>> {
        let mut end = to;
        while end > from {
            let start = end.saturating_sub(BLOCK as u64).max(from);
            let w = self.window(start, (end - start) as usize)?;
            let w = &w[..w.len().min((end - start) as usize)];
            if let Some(i) = memchr::memrchr(b'\n', w) {
                return Ok(Some(start + i as u64));
            }
            end = start;
        }
        Ok(None)
    }

    /// The offset just after the next `\n` at or after `from`, or `len` when there is none.
    pub(super) fn next_line(&mut self, from: u64, len: u64) -> std::io::Result<u64> {
        Ok(self.find_newline(from, len)?.map_or(len, |i| i + 1))
    }

    /// The first offset at or after `from` (and before `len`) that is not a NUL byte: holes of a
    /// sparse file are skipped with `SEEK_DATA` without reading them, written NULs are read past
    /// a block at a time.
    pub(super) fn skip_nuls(&mut self, from: u64, len: u64) -> std::io::Result<u64> {
        let mut pos = match rustix::fs::seek(self.file, rustix::fs::SeekFrom::Data(from)) {
            Ok(data) => data.max(from),
            Err(rustix::io::Errno::NXIO) => len,
            // A file system without hole support: everything is data.
            Err(_) => from,
        };
        while pos < len {
            let w = self.window(pos, 1)?;
            if w.is_empty() {
                break;
            }
            let zeros = w.iter().take_while(|b| **b == 0).count();
            pos += zeros as u64;
            if zeros < w.len() {
                break;
            }
        }
        Ok(pos.min(len))
    }

    /// `len` bytes at `offset`, read into a buffer of their own; an error when the file ends first.
    pub(super) fn read_owned(&self, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
        let mut out = vec![0u8; len];
        let n = self.read_at(offset, &mut out)?;
        if n < len {
            return Err(std::io::Error::new(
                ErrorKind::UnexpectedEof,
                format!("the file ends at {} bytes", offset + n as u64),
            ));
        }
        Ok(out)
    }

    /// The first `len` bytes (fewer when the file is shorter), read afresh.
    pub(super) fn head(&self, len: u64) -> std::io::Result<Vec<u8>> {
        let mut buf = vec![0u8; len as usize];
        let n = self.read_at(0, &mut buf)?;
        buf.truncate(n);
        Ok(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe_of(bytes: &[u8]) -> (tempfile::TempDir, File) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.log");
        std::fs::write(&path, bytes).unwrap();
        let f = File::open(&path).unwrap();
        (dir, f)
    }

    #[test]
    fn newlines_forward_and_back_across_blocks() {
        let mut text = vec![b'a'; BLOCK * 2 + 10];
        text[5] = b'\n';
        text[BLOCK + 7] = b'\n';
        let (_d, f) = probe_of(&text);
        let mut p = Probe::new(&f);
        let len = text.len() as u64;
        assert_eq!(p.find_newline(0, len).unwrap(), Some(5));
        assert_eq!(p.find_newline(6, len).unwrap(), Some(BLOCK as u64 + 7));
        assert_eq!(p.find_newline(6, BLOCK as u64).unwrap(), None);
        assert_eq!(p.find_newline(BLOCK as u64 + 8, len + 100).unwrap(), None);
        assert_eq!(p.rfind_newline(0, len).unwrap(), Some(BLOCK as u64 + 7));
        assert_eq!(p.rfind_newline(0, BLOCK as u64 + 7).unwrap(), Some(5));
        assert_eq!(p.rfind_newline(6, BLOCK as u64 + 7).unwrap(), None);
        assert_eq!(
            p.rfind_newline(0, len + 50).unwrap(),
            Some(BLOCK as u64 + 7)
        );
        assert_eq!(p.next_line(6, len).unwrap(), BLOCK as u64 + 8);
        assert_eq!(p.next_line(BLOCK as u64 + 8, len).unwrap(), len);
        assert_eq!(p.byte(5).unwrap(), Some(b'\n'));
        assert_eq!(p.byte(len).unwrap(), None);
    }

    #[test]
    fn runs_of_nuls_and_holes_are_skipped() {
        let mut text = vec![0u8; BLOCK * 3];
        text.extend_from_slice(b"x\n");
        let (_d, f) = probe_of(&text);
        let mut p = Probe::new(&f);
        let len = text.len() as u64;
        assert_eq!(p.skip_nuls(0, len).unwrap(), BLOCK as u64 * 3);
        assert_eq!(p.skip_nuls(len - 1, len).unwrap(), len - 1);

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sparse.log");
        let sparse = File::create(&path).unwrap();
        sparse.set_len(1 << 30).unwrap();
        sparse.write_all_at(b"tail\n", 1 << 30).unwrap();
        let f = File::open(&path).unwrap();
        let mut p = Probe::new(&f);
        let len = f.metadata().unwrap().len();
        assert_eq!(p.skip_nuls(0, len).unwrap(), 1 << 30);
        assert!(p.read_owned(len - 2, 4).is_err(), "short read is an error");
    }
}
