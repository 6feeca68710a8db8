//! Finds the inputs and cuts them into chunks that end at line boundaries.
//!
//! Plain files are memory-mapped a chunk at a time: where a chunk ends is found with a small
//! positional read at its nominal end, so cutting costs one `pread` and one `memchr` per chunk and
//! the workers fault the pages in parallel. Gzip (multi-member) and zstd files and stdin are
//! decoded as streams into owned buffers of about the chunk size; only the partial last line of a
//! buffer is carried over. On both paths a line longer than `max_line_bytes` is cut short (the
//! parser then quarantines it) while the rest of it is skipped, and a run of NULs at a line start
//! (what `copytruncate` leaves, or a sparse file's holes) is passed over without being held, so
//! memory stays bounded by the chunk size whatever the input. Both paths give the parser the same
//! lines at the same offsets.
//!
//! A file may change while it is read. A mapped chunk whose pages vanish (the file was truncated)
//! reads zeros instead of killing the process (see `mmap`), and [`Chunk::intact`] says so; the
//! scan ends by checking that the file is still as long and starts with the same bytes, and
//! reports a change in [`ScanEnd::changed`]. An unterminated last line of a file that grew while
//! it was read is left for the next run, which reads it whole.

mod mmap;
mod probe;
mod shard;

pub use shard::Shard;

use std::fs::File;
use std::io::{BufReader, Read};
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};
use crate::parse::splitter::ByteSet;
use probe::Probe;

/// Largest zstd window decoded (2^27 = 128 MiB, zstd's own default): a frame that declares a larger
/// one is refused as damaged instead of allocating it.
pub const ZSTD_WINDOW_LOG_MAX: u32 = 27;

/// What auto-detection read from stdin; the stream is replayed from it.
static STDIN_HEAD: std::sync::Mutex<Option<Vec<u8>>> = std::sync::Mutex::new(None);

/// Bytes of content hashed to recognise a source again.
pub const FINGERPRINT_BYTES: u64 = 64 << 10;

/// Shorter heads of a plain file that are hashed too, so that a log truncated in place below
/// [`FINGERPRINT_BYTES`] is still recognised by the bytes it kept.
pub const PREFIX_BYTES: [u64; 3] = [1 << 10, 4 << 10, 16 << 10];

/// The hash of `head` and its length, and those of its prefixes of [`PREFIX_BYTES`] it is longer than.
pub fn head_hashes(head: &[u8]) -> ((u64, u64), Vec<(u64, u64)>) {
    let hash = |b: &[u8]| xxhash_rust::xxh3::xxh3_64(b);
    let prefixes = PREFIX_BYTES
        .iter()
        .filter(|n| (**n as usize) < head.len())
        .map(|n| (*n, hash(&head[..*n as usize])))
        .collect();
    ((hash(head), head.len() as u64), prefixes)
}

/// How an input is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// Uncompressed, memory-mapped.
    Plain,
    /// gzip, possibly several members.
    Gzip,
    /// zstd, possibly several frames.
    Zstd,
    /// Standard input (read as a stream; may itself be compressed).
    Stdin,
}

/// One input to ingest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    /// The path (`-` for stdin).
    pub path: PathBuf,
    /// How it is stored.
    pub encoding: Encoding,
    /// Size on disk in bytes (0 for stdin).
    pub size: u64,
}

impl Input {
    /// The name shown to users and stored in the `source` column.
    pub fn label(&self) -> String {
        match self.encoding {
            Encoding::Stdin => "-".to_string(),
            _ => self.path.display().to_string(),
        }
    }
}

/// Whether a file name looks like a log when a directory is scanned.
pub fn is_log_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    !n.starts_with('.')
        && (n.contains(".log")
            || n.contains("_log")
            || n.contains("access")
            || n.ends_with(".gz")
            || n.ends_with(".zst")
            || n.ends_with(".txt"))
}

/// The input at `path`, its encoding told by its first bytes. A file that cannot be opened or read
/// (permission denied) is still an input, as plain text: reading it fails later, for it alone.
fn detect(path: &Path) -> Result<Input> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io("cannot read", path, e))?;
    let mut magic = [0u8; 4];
    let n = File::open(path)
        .and_then(|mut f| read_full(&mut f, &mut magic))
        .unwrap_or(0);
    let encoding = match &magic[..n] {
        [0x1f, 0x8b, ..] => Encoding::Gzip,
        [0x28, 0xb5, 0x2f, 0xfd] => Encoding::Zstd,
        _ => Encoding::Plain,
    };
    Ok(Input {
        path: path.to_path_buf(),
        encoding,
        size: meta.len(),
    })
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| Error::io("cannot list", dir, e))?
        .filter_map(|e| e.ok())
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let ft = e
            .file_type()
            .map_err(|err| Error::io("cannot read", &path, err))?;
        if ft.is_dir() {
            walk(&path, out)?;
        } else if is_log_name(&name) && std::fs::metadata(&path).is_ok_and(|m| m.is_file()) {
            out.push(path);
        }
    }
    Ok(())
}

/// Expands the command-line paths: files as given, directories recursively (log-like names only),
/// globs, and `-` for stdin. Fails on a missing path or a directory/glob without logs.
pub fn resolve(args: &[String]) -> Result<Vec<Input>> {
    resolve_excluding(args, &[])
}

/// [`resolve`], leaving out `exclude` (logcrunch's own log file) when directories or globs are
/// expanded.
pub fn resolve_excluding(args: &[String], exclude: &[PathBuf]) -> Result<Vec<Input>> {
    let excluded: std::collections::HashSet<PathBuf> = exclude
        .iter()
        .filter_map(|p| std::fs::canonicalize(p).ok())
        .collect();
    let mut inputs: Vec<Input> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for arg in args {
        if arg == "-" {
            if seen.insert(PathBuf::from("-")) {
                inputs.push(Input {
                    path: PathBuf::from("-"),
                    encoding: Encoding::Stdin,
                    size: 0,
                });
            }
            continue;
        }
        let path = PathBuf::from(arg);
        let mut files = Vec::new();
        if path.is_dir() {
            walk(&path, &mut files)?;
            files.retain(|f| std::fs::canonicalize(f).map_or(true, |c| !excluded.contains(&c)));
            if files.is_empty() {
                return Err(Error::NoLogFiles(path));
            }
        } else if path.exists() {
            files.push(path);
        } else if arg.contains(['*', '?', '[']) {
            let opts = glob::MatchOptions {
                require_literal_leading_dot: true,
                ..glob::MatchOptions::new()
            };
            let paths = glob::glob_with(arg, opts)
                .map_err(|e| Error::Usage(format!("invalid glob `{arg}`: {e}")))?;
            for p in paths.filter_map(|p| p.ok()) {
                if p.is_dir() {
                    walk(&p, &mut files)?;
                } else if p.is_file() {
                    files.push(p);
                }
            }
            files.retain(|f| std::fs::canonicalize(f).map_or(true, |c| !excluded.contains(&c)));
            if files.is_empty() {
                return Err(Error::NoLogFiles(path));
            }
        } else {
            return Err(Error::InputNotFound(path));
        }
        for f in files {
            let key = std::fs::canonicalize(&f).unwrap_or_else(|_| f.clone());
            if seen.insert(key) {
                inputs.push(detect(&f)?);
            }
        }
    }
    Ok(inputs)
}

/// Opens a decoding reader over `input`'s content.
fn open_stream(input: &Input, counter: Arc<AtomicU64>) -> Result<Box<dyn Read + Send>> {
    let raw: Box<dyn Read + Send> = match input.encoding {
        Encoding::Stdin => {
            let head = STDIN_HEAD
                .lock()
                .map_or_else(|_| None, |mut h| h.take())
                .unwrap_or_default();
            Box::new(std::io::Cursor::new(head).chain(std::io::stdin()))
        }
        _ => {
            Box::new(File::open(&input.path).map_err(|e| Error::io("cannot open", &input.path, e))?)
        }
    };
    let counted = BufReader::with_capacity(
        256 << 10,
        Counting {
            inner: raw,
            counter,
        },
    );
    Ok(match input.encoding {
        Encoding::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(counted)),
        Encoding::Zstd => {
            let failed = |e| Error::io("cannot decode zstd", &input.path, e);
            let mut decoder = zstd::stream::read::Decoder::with_buffer(counted).map_err(failed)?;
            decoder
                .window_log_max(ZSTD_WINDOW_LOG_MAX)
                .map_err(failed)?;
            Box::new(decoder)
        }
        Encoding::Plain | Encoding::Stdin => Box::new(counted),
    })
}

struct Counting<R> {
    inner: R,
    counter: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.counter.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Hash of the first `len` bytes of `input`'s content and how many bytes it covers (fewer when the
/// content is shorter). Used to recognise a source that was ingested before.
pub fn fingerprint(input: &Input, len: u64) -> Result<(u64, u64)> {
    let mut r = open_stream(input, Arc::new(AtomicU64::new(0)))?;
    let mut buf = vec![0u8; len as usize];
    let n = read_full(&mut r, &mut buf).map_err(|e| Error::io("cannot read", &input.path, e))?;
    Ok((xxhash_rust::xxh3::xxh3_64(&buf[..n]), n as u64))
}

/// The first `len` bytes of `input`'s content (decoded) and whether that is all of it. Reading
/// stdin keeps what was read, so the ingest that follows still sees it.
pub fn head(input: &Input, len: u64) -> Result<(Vec<u8>, bool)> {
    let mut r = open_stream(input, Arc::new(AtomicU64::new(0)))?;
    let mut buf = vec![0u8; len as usize + 1];
    let n = read_full(&mut r, &mut buf).map_err(|e| Error::io("cannot read", &input.path, e))?;
    buf.truncate(n);
    let complete = n <= len as usize;
    if input.encoding == Encoding::Stdin
        && let Ok(mut h) = STDIN_HEAD.lock()
    {
        *h = Some(buf.clone());
    }
    buf.truncate(len as usize);
    Ok((buf, complete))
}

/// What a scan that read a plain file to its end (`input.size`) would have recorded, without
/// reading it: its end, its head hashes and whether its last byte is a newline. For a log truncated
/// in place, whose rows before the cut were read already.
pub fn end_of(input: &Input) -> Result<ScanEnd> {
    let file = File::open(&input.path).map_err(|e| Error::io("cannot open", &input.path, e))?;
    let probe = Probe::new(&file);
    let failed = |e| Error::io("cannot read", &input.path, e);
    let (fingerprint, prefixes) = head_hashes(
        &probe
            .head(input.size.min(FINGERPRINT_BYTES))
            .map_err(failed)?,
    );
    let last = match input.size {
        0 => None,
        n => Probe::new(&file).byte(n - 1).map_err(failed)?,
    };
    Ok(ScanEnd {
        end: input.size,
        ends_with_newline: last.is_none_or(|b| b == b'\n'),
        fingerprint: Some(fingerprint),
        prefixes,
        ..ScanEnd::default()
    })
}

/// The bytes of a chunk: a range of a mapped file, or a decoded or read buffer.
#[derive(Debug)]
pub enum ChunkData {
    /// A memory-mapped range of a file.
    Mapped(mmap::Mapped),
    /// Bytes decoded from a stream, or read from a file.
    Owned(Vec<u8>),
}

impl Deref for ChunkData {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            ChunkData::Mapped(m) => m,
            ChunkData::Owned(v) => v,
        }
    }
}

/// A run of whole lines of one source.
#[derive(Debug)]
pub struct Chunk {
    /// Index of the source in the ingest plan.
    pub source: usize,
    /// Position of this chunk among its source's chunks (0, 1, 2, ...).
    pub seq: u64,
    /// Byte offset of `data[0]` in the source's content.
    pub offset: u64,
    /// The lines.
    pub data: ChunkData,
    /// The mapped file, to check that it still holds the chunk once it is parsed.
    pub file: Option<Arc<File>>,
}

impl Chunk {
    /// Whether the bytes the parser saw were the file's: always for decoded and read chunks; for a
    /// mapped chunk, none of its pages vanished and the file still reaches the chunk's end (a file
    /// truncated under a map reads as zeros past its new end). Ask after parsing.
    pub fn intact(&self) -> bool {
        match (&self.data, &self.file) {
            (ChunkData::Mapped(m), Some(file)) => {
                !m.faulted()
                    && file
                        .metadata()
                        .is_ok_and(|meta| meta.len() >= self.offset + m.len() as u64)
            }
            (ChunkData::Mapped(m), None) => !m.faulted(),
            (ChunkData::Owned(_), _) => true,
        }
    }
}

/// What scanning a source found besides its chunks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanEnd {
    /// Content offset after the last byte read.
    pub end: u64,
    /// Whether the content ends with `\n` (or is empty from the start offset).
    pub ends_with_newline: bool,
    /// Chunks emitted.
    pub chunks: u64,
    /// The stream broke off: the decoder's message, the offset of the unfinished line and its bytes.
    pub truncated: Option<(String, u64, Vec<u8>)>,
    /// Bytes skipped at the start because they finish a line an earlier run already read: (offset, len).
    pub skipped_partial: Option<(u64, u64)>,
    /// Hash and length of the first [`FINGERPRINT_BYTES`] of content, when the scan covered them.
    pub fingerprint: Option<(u64, u64)>,
    /// Lengths and hashes of shorter heads (plain files only; see [`PREFIX_BYTES`]).
    pub prefixes: Vec<(u64, u64)>,
    /// The file changed while it was read (truncated, rewritten, replaced): what was seen. What
    /// was read of it may not be its content and must not be kept.
    pub changed: Option<String>,
}

/// What to read of one input.
#[derive(Debug, Clone)]
pub struct ScanRequest<'a> {
    /// Index of the source in the ingest plan (copied into its chunks).
    pub source: usize,
    /// The input.
    pub input: &'a Input,
    /// Content offset to start at.
    pub start: u64,
    /// Skip the bytes up to the first newline: they end a line that an earlier run read without
    /// its end.
    pub skip_partial: bool,
    /// Chunks only end before a line whose first byte is in the set (so that a multi-line entry
    /// stays in one chunk).
    pub cut_before: Option<ByteSet>,
    /// Hash and length of the first bytes an earlier run read, when resuming: a plain file that
    /// starts otherwise now was replaced since planning, and is reported as changed.
    pub expect_head: Option<(u64, u64)>,
    /// The file is followed as it is written: an unterminated last line is left for the next
    /// read, even when the file did not grow meanwhile (its writer may be between two writes).
    pub follow: bool,
}

/// Cuts sources into chunks.
#[derive(Debug, Clone, Copy)]
pub struct Scanner {
    /// Target chunk size in bytes.
    pub chunk_size: usize,
    /// Longest line kept whole by the stream path.
    pub max_line_bytes: usize,
}

impl Scanner {
    /// Scans `req.input` from `req.start`, calling `emit` for each chunk in order (`emit` returns
    /// `false` to stop early). `progress` is advanced by the bytes read from disk.
    pub fn scan(
        &self,
        req: &ScanRequest<'_>,
        progress: &Arc<AtomicU64>,
        emit: &mut dyn FnMut(Chunk) -> bool,
    ) -> Result<ScanEnd> {
        match req.input.encoding {
            Encoding::Plain => self.scan_mapped(req, progress, emit),
            Encoding::Stdin => self.scan_stream(req, progress, emit),
            Encoding::Gzip | Encoding::Zstd => {
                let mut end = self.scan_stream(req, progress, emit)?;
                let now = std::fs::metadata(&req.input.path)
                    .map_err(|e| Error::io("cannot read", &req.input.path, e))?
                    .len();
                if end.changed.is_none() && now < req.input.size {
                    end.changed = Some(format!(
                        "it became shorter while it was read ({} -> {now} bytes)",
                        req.input.size
                    ));
                }
                Ok(end)
            }
        }
    }

    fn scan_mapped(
        &self,
        req: &ScanRequest<'_>,
        progress: &Arc<AtomicU64>,
        emit: &mut dyn FnMut(Chunk) -> bool,
    ) -> Result<ScanEnd> {
        let path = &req.input.path;
        let failed = |action: &'static str| move |e| Error::io(action, path, e);
        let file = Arc::new(File::open(path).map_err(failed("cannot open"))?);
        let len = file.metadata().map_err(failed("cannot read"))?.len();
        let mut end = ScanEnd {
            end: req.start,
            ends_with_newline: true,
            ..ScanEnd::default()
        };
        if len == 0 || req.start >= len {
            return Ok(end);
        }
        let mut probe = Probe::new(&file);
        let head_bytes = probe
            .head(len.min(FINGERPRINT_BYTES))
            .map_err(failed("cannot read"))?;
        let (head, prefixes) = head_hashes(&head_bytes);
        end.fingerprint = Some(head);
        end.prefixes = prefixes;
        if let Some((hash, n)) = req.expect_head
            && head_hashes(&probe.head(n).map_err(failed("cannot read"))?).0 != (hash, n)
        {
            end.changed = Some("its first bytes are not those read before: it was replaced".into());
            return Ok(end);
        }
        let mut pos = req.start;
        if req.skip_partial {
            let next = probe.next_line(pos, len).map_err(failed("cannot read"))?;
            end.skipped_partial = Some((pos, next - pos));
            progress.fetch_add(next - pos, Ordering::Relaxed);
            pos = next;
        }
        end.ends_with_newline = probe.byte(len - 1).map_err(failed("cannot read"))? == Some(b'\n');
        while pos < len {
            let from = probe.skip_nuls(pos, len).map_err(failed("cannot read"))?;
            progress.fetch_add(from - pos, Ordering::Relaxed);
            pos = from;
            if pos >= len {
                // NULs to the end, after a line: the next line, when written, is read whole.
                end.ends_with_newline = true;
                break;
            }
            let cut = match self
                .find_cut(&mut probe, pos, len, req.cut_before)
                .map_err(failed("cannot read"))?
            {
                Cut::At(cut) => cut,
                Cut::LongLine => {
                    // `pos` starts a line longer than max_line_bytes: the parser gets enough of
                    // it to quarantine it, the rest is skipped.
                    let head = (self.max_line_bytes + 2) as u64;
                    let data = match probe.read_owned(pos, head as usize) {
                        Ok(data) => data,
                        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                            end.changed =
                                Some(format!("it became shorter while it was read ({e})"));
                            break;
                        }
                        Err(e) => return Err(Error::io("cannot read", path, e)),
                    };
                    let next = probe
                        .next_line(pos + head, len)
                        .map_err(failed("cannot read"))?;
                    progress.fetch_add(next - pos, Ordering::Relaxed);
                    let chunk = Chunk {
                        source: req.source,
                        seq: end.chunks,
                        offset: pos,
                        data: ChunkData::Owned(data),
                        file: None,
                    };
                    end.chunks += 1;
                    pos = next;
                    if !emit(chunk) {
                        break;
                    }
                    continue;
                }
            };
            // An unterminated last line of a file that is growing is still being written: it is
            // left for the next run, which reads it whole.
            let held_back = cut == len
                && !end.ends_with_newline
                && (req.follow || file.metadata().map_err(failed("cannot read"))?.len() > len);
            let cut = if held_back {
                end.ends_with_newline = true;
                match probe
                    .rfind_newline(pos, len)
                    .map_err(failed("cannot read"))?
                {
                    Some(nl) => nl + 1,
                    None => break,
                }
            } else {
                cut
            };
            let data = match mmap::map_range(&file, pos, (cut - pos) as usize)
                .map_err(failed("cannot map"))?
            {
                Some(map) => ChunkData::Mapped(map),
                None => match probe.read_owned(pos, (cut - pos) as usize) {
                    Ok(bytes) => ChunkData::Owned(bytes),
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                        end.changed = Some(format!("it became shorter while it was read ({e})"));
                        break;
                    }
                    Err(e) => return Err(Error::io("cannot read", path, e)),
                },
            };
            let chunk = Chunk {
                source: req.source,
                seq: end.chunks,
                offset: pos,
                data,
                file: Some(Arc::clone(&file)),
            };
            progress.fetch_add(cut - pos, Ordering::Relaxed);
            end.chunks += 1;
            pos = cut;
            if !emit(chunk) || held_back {
                break;
            }
        }
        end.end = pos;
        if end.changed.is_none() {
            end.changed = changed_since(&file, &probe, len, head).map_err(failed("cannot read"))?;
        }
        Ok(end)
    }

    /// Where the chunk that starts at `pos` (a line start, not a NUL) ends: after the line that
    /// holds its nominal end, looking at most `max_line_bytes` past it; with `cut_before`, only
    /// before a line that starts an entry (a run of continuation lines longer than four chunks is
    /// cut anyway). `LongLine` when `pos` starts a line too long to look through.
    fn find_cut(
        &self,
        probe: &mut Probe<'_>,
        pos: u64,
        len: u64,
        cut_before: Option<ByteSet>,
    ) -> std::io::Result<Cut> {
        let nominal = pos.saturating_add(self.chunk_size as u64).min(len);
        let horizon = (nominal - 1).saturating_add(self.max_line_bytes as u64 + 2);
        let mut cut = match probe.find_newline(nominal - 1, horizon.min(len))? {
            Some(nl) => nl + 1,
            None if horizon >= len => len,
            None => {
                // The line that holds the nominal end runs past the horizon: end the chunk before
                // it, or, when it is the chunk's first line, treat it as too long.
                return Ok(match probe.rfind_newline(pos, nominal - 1)? {
                    Some(nl) => Cut::At(nl + 1),
                    None => Cut::LongLine,
                });
            }
        };
        if let Some(set) = cut_before {
            let limit = nominal.saturating_add(4 * self.chunk_size as u64);
            while cut < len && cut < limit && !probe.byte(cut)?.is_some_and(|b| set.contains(b)) {
                cut = probe.next_line(cut, len)?;
            }
        }
        Ok(Cut::At(cut))
    }

    fn scan_stream(
        &self,
        req: &ScanRequest<'_>,
        progress: &Arc<AtomicU64>,
        emit: &mut dyn FnMut(Chunk) -> bool,
    ) -> Result<ScanEnd> {
        let (source, input, start) = (req.source, req.input, req.start);
        let (skip_partial, cut_before) = (req.skip_partial, req.cut_before);
        let mut r = open_stream(input, Arc::clone(progress))?;
        let mut st = StreamState {
            end: ScanEnd {
                ends_with_newline: true,
                ..ScanEnd::default()
            },
            base: 0,
            buf: Vec::with_capacity(self.chunk_size + (64 << 10)),
            fp: xxhash_rust::xxh3::Xxh3Default::new(),
            fp_len: 0,
        };
        let block = self.chunk_size.clamp(64 << 10, 4 << 20);
        // Skip content an earlier run read, hashing its head on the way.
        let mut to_skip = start;
        let mut skip_buf = vec![0u8; block];
        while to_skip > 0 {
            let want = (to_skip as usize).min(block);
            match read_full(&mut r, &mut skip_buf[..want]) {
                Ok(0) => break,
                Ok(n) => {
                    st.hash(&skip_buf[..n]);
                    st.base += n as u64;
                    to_skip -= n as u64;
                }
                Err(e) => {
                    st.end.truncated = Some((decode_error(&e), st.base, Vec::new()));
                    return Ok(st.finish());
                }
            }
        }
        let mut skipping_partial = skip_partial && start > 0;
        let mut skipping_long = false;
        loop {
            let old = st.buf.len();
            st.buf.resize(old + block, 0);
            let read = loop {
                match r.read(&mut st.buf[old..]) {
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    other => break other,
                }
            };
            let n = match read {
                Ok(n) => n,
                Err(e) => {
                    st.buf.truncate(old);
                    if skipping_partial || skipping_long {
                        st.base += st.buf.len() as u64;
                        st.buf.clear();
                    }
                    if let Some(i) = memchr::memrchr(b'\n', &st.buf) {
                        let rest = st.buf.split_off(i + 1);
                        let data = std::mem::replace(&mut st.buf, rest);
                        st.emit_owned(source, data, emit);
                    }
                    let line = std::mem::take(&mut st.buf);
                    st.end.ends_with_newline =
                        line.is_empty() && !(skipping_partial || skipping_long);
                    let at = st.base;
                    st.base += line.len() as u64;
                    st.end.truncated = Some((decode_error(&e), at, line));
                    return Ok(st.finish());
                }
            };
            st.buf.truncate(old + n);
            st.hash_new(old);
            if n == 0 {
                if !st.buf.is_empty() && !skipping_long && !skipping_partial {
                    st.end.ends_with_newline = st.buf.last() == Some(&b'\n');
                    let data = std::mem::take(&mut st.buf);
                    st.emit_owned(source, data, emit);
                } else if !st.buf.is_empty() {
                    if skipping_partial {
                        st.end.skipped_partial =
                            Some((start, st.base + st.buf.len() as u64 - start));
                    }
                    st.end.ends_with_newline = false;
                    st.base += st.buf.len() as u64;
                    st.buf.clear();
                }
                return Ok(st.finish());
            }
            if skipping_partial || skipping_long {
                match memchr::memchr(b'\n', &st.buf[old..]) {
                    Some(i) => {
                        let cut = old + i + 1;
                        if skipping_partial {
                            st.end.skipped_partial = Some((start, (st.base + cut as u64) - start));
                        }
                        st.base += cut as u64;
                        st.buf.drain(..cut);
                        skipping_partial = false;
                        skipping_long = false;
                    }
                    None => {
                        st.base += st.buf.len() as u64;
                        st.buf.clear();
                        continue;
                    }
                }
            }
            // A run of NULs without a newline (a log truncated by copytruncate) is dropped as it
            // comes, so it cannot fill memory; the parser strips leading NULs the same way.
            if memchr::memchr(b'\n', &st.buf).is_none() && st.buf.iter().all(|b| *b == 0) {
                st.base += st.buf.len() as u64;
                st.buf.clear();
                continue;
            }
            if st.buf.len() < self.chunk_size {
                continue;
            }
            let last_cut = match cut_before {
                None => memchr::memrchr(b'\n', &st.buf),
                // Only before a line that starts an entry; a run of continuation lines longer
                // than four chunks is cut anyway, at its last line end.
                Some(set) => memchr::memrchr_iter(b'\n', &st.buf)
                    .find(|&i| st.buf.get(i + 1).is_some_and(|b| set.contains(*b)))
                    .or_else(|| {
                        (st.buf.len() > 4 * self.chunk_size)
                            .then(|| memchr::memrchr(b'\n', &st.buf))
                            .flatten()
                    }),
            };
            match last_cut {
                Some(i) => {
                    let rest = st.buf.split_off(i + 1);
                    let data = std::mem::replace(&mut st.buf, rest);
                    if !st.emit_owned(source, data, emit) {
                        return Ok(st.finish());
                    }
                }
                None => {
                    let lead = st.buf.iter().take_while(|b| **b == 0).count();
                    if st.buf.len() - lead > self.max_line_bytes + 1 {
                        // Too long to keep: hand the parser enough of it to see that, skip the rest.
                        let cut = lead + self.max_line_bytes + 2;
                        let skipped = (st.buf.len() - cut) as u64;
                        st.buf.truncate(cut);
                        let data = std::mem::take(&mut st.buf);
                        if !st.emit_owned(source, data, emit) {
                            return Ok(st.finish());
                        }
                        st.base += skipped;
                        skipping_long = true;
                    }
                }
            }
        }
    }
}

/// A decoder's error as the user reads it, with what to do about a zstd window too large to decode.
fn decode_error(e: &std::io::Error) -> String {
    let msg = e.to_string();
    if msg.contains("too much memory") {
        format!(
            "{msg}: its zstd window is larger than the {} MiB logcrunch decodes; decompress it with `zstd -d --long=31` and ingest the result",
            1u64 << (ZSTD_WINDOW_LOG_MAX - 20)
        )
    } else {
        msg
    }
}

/// Where a chunk of a mapped file ends.
enum Cut {
    /// Just before this offset.
    At(u64),
    /// The chunk's first line is longer than the scanner looks ahead.
    LongLine,
}

/// How `file`, mapped when it was `len` bytes long and started with `head`, changed since: shorter
/// now, or other first bytes (truncated and written again).
fn changed_since(
    file: &File,
    probe: &Probe<'_>,
    len: u64,
    head: (u64, u64),
) -> std::io::Result<Option<String>> {
    let now = file.metadata()?.len();
    if now < len {
        return Ok(Some(format!(
            "it was truncated while it was read ({len} -> {now} bytes)"
        )));
    }
    if head_hashes(&probe.head(head.1)?).0 != head {
        return Ok(Some(
            "its first bytes changed while it was read: it was truncated and written again".into(),
        ));
    }
    Ok(None)
}

struct StreamState {
    end: ScanEnd,
    base: u64,
    buf: Vec<u8>,
    fp: xxhash_rust::xxh3::Xxh3Default,
    fp_len: u64,
}

impl StreamState {
    fn hash(&mut self, bytes: &[u8]) {
        if self.fp_len < FINGERPRINT_BYTES {
            let take = bytes.len().min((FINGERPRINT_BYTES - self.fp_len) as usize);
            self.fp.update(&bytes[..take]);
            self.fp_len += take as u64;
        }
    }

    fn hash_new(&mut self, from: usize) {
        if self.fp_len < FINGERPRINT_BYTES {
            let buf = std::mem::take(&mut self.buf);
            self.hash(&buf[from..]);
            self.buf = buf;
        }
    }

    fn emit_owned(
        &mut self,
        source: usize,
        data: Vec<u8>,
        emit: &mut dyn FnMut(Chunk) -> bool,
    ) -> bool {
        let len = data.len() as u64;
        let chunk = Chunk {
            source,
            seq: self.end.chunks,
            offset: self.base,
            data: ChunkData::Owned(data),
            file: None,
        };
        self.end.chunks += 1;
        self.base += len;
        emit(chunk)
    }

    fn finish(mut self) -> ScanEnd {
        self.end.end = self.base;
        self.end.fingerprint = Some((self.fp.digest(), self.fp_len));
        self.end
    }
}

/// Live counters a progress display can poll while a long command (ingest, archive, verify) works.
#[derive(Debug, Default)]
pub struct Progress {
    /// Bytes to read in total (compressed size for compressed inputs; 0 when unknown).
    pub total_bytes: AtomicU64,
    /// Bytes read so far.
    pub bytes: Arc<AtomicU64>,
    /// Lines parsed so far.
    pub lines: AtomicU64,
}

/// `n`, or the number of cores when `n` is 0 (the meaning of 0 in the `threads` settings).
pub fn threads_or_cores(n: usize) -> usize {
    match n {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
}

#[cfg(test)]
mod tests;
