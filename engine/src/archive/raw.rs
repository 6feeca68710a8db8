//! Raw log files in and out of the archive: compress (or copy) while hashing, verify by reading the
//! archive back, restore by decompressing while hashing. Every byte is hashed (xxh3-128) on the way
//! in and again on the way out, so a damaged archive is reported and never written out as a log.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use xxhash_rust::xxh3::Xxh3Default;

use crate::error::{Error, Result};

const BUF: usize = 1 << 20;

/// How an original is kept in the archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// Compressed with zstd.
    Zstd,
    /// Already compressed (gzip, zstd): kept byte for byte; recompressing saves about 1%.
    Stored,
}

impl Codec {
    /// The name stored in the manifest.
    pub fn name(self) -> &'static str {
        match self {
            Codec::Zstd => "zstd",
            Codec::Stored => "stored",
        }
    }

    /// The codec a manifest name stands for.
    pub fn from_name(name: &str) -> Option<Codec> {
        match name {
            "zstd" => Some(Codec::Zstd),
            "stored" => Some(Codec::Stored),
            _ => None,
        }
    }
}

/// zstd settings of raw archives.
#[derive(Debug, Clone, Copy)]
pub struct Compression {
    /// zstd level (1-22).
    pub level: i32,
    /// zstd worker threads (0: compress on the calling thread).
    pub threads: u32,
}

/// Size and xxh3-128 of a byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Digest {
    /// Bytes.
    pub size: u64,
    /// xxh3-128.
    pub hash: u128,
}

impl Digest {
    /// The hash as 32 hex digits (the manifest's form).
    pub fn hex(&self) -> String {
        format!("{:032x}", self.hash)
    }
}

/// Reads `r` to the end through `sink`, hashing; `progress` counts the bytes. `pause` names the
/// checkpoint passed after the first block (see [`super::checkpoint`]).
fn pump(
    r: &mut impl Read,
    mut sink: impl FnMut(&[u8]) -> std::io::Result<()>,
    progress: &AtomicU64,
    pause: Option<&str>,
) -> std::io::Result<Digest> {
    let mut hasher = Xxh3Default::new();
    let mut buf = vec![0u8; BUF];
    let mut size = 0u64;
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        sink(&buf[..n])?;
        size += n as u64;
        progress.fetch_add(n as u64, Ordering::Relaxed);
        if let Some(point) = pause
            && size == n as u64
        {
            super::checkpoint(point);
        }
    }
    Ok(Digest {
        size,
        hash: hasher.digest128(),
    })
}

/// Writes the first `len` bytes of `original` to `dest` (a new file) with `codec`, fsyncs it, and
/// returns the digest of the bytes read; `pause` names the checkpoint after the first block.
pub fn pack(
    original: &Path,
    len: u64,
    dest: &Path,
    codec: Codec,
    zstd: Compression,
    progress: &AtomicU64,
    pause: Option<&str>,
) -> Result<Digest> {
    let src = File::open(original).map_err(|e| Error::io("cannot open", original, e))?;
    let mut src = BufReader::with_capacity(BUF, src).take(len);
    let out = File::create(dest).map_err(|e| Error::io("cannot create", dest, e))?;
    let sync = out
        .try_clone()
        .map_err(|e| Error::io("cannot open", dest, e))?;
    let werr = |e| Error::io("cannot write", dest, e);
    let short = |d: &Digest| {
        if d.size == len {
            return Ok(());
        }
        Err(Error::io(
            "cannot read",
            original,
            std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!(
                    "it has {} bytes, {len} were ingested; it was truncated or replaced, ingest it again",
                    d.size
                ),
            ),
        ))
    };
    let digest = match codec {
        Codec::Stored => {
            let mut w = BufWriter::with_capacity(BUF, out);
            let d = pump(&mut src, |b| w.write_all(b), progress, pause)
                .map_err(|e| Error::io("cannot read", original, e))?;
            short(&d)?;
            w.flush().map_err(werr)?;
            d
        }
        Codec::Zstd => {
            let mut enc =
                zstd::stream::write::Encoder::new(BufWriter::with_capacity(BUF, out), zstd.level)
                    .map_err(werr)?;
            enc.include_checksum(true).map_err(werr)?;
            enc.set_pledged_src_size(Some(len)).map_err(werr)?;
            if zstd.threads > 0 {
                enc.multithread(zstd.threads).map_err(werr)?;
            }
            let mut write_err = None;
            let d = pump(
                &mut src,
                |b| {
                    enc.write_all(b).inspect_err(|e| {
                        write_err = Some(e.kind());
                    })
                },
                progress,
                pause,
            );
            let d = match (d, write_err) {
                (Ok(d), _) => d,
                (Err(e), Some(_)) => return Err(werr(e)),
                (Err(e), None) => return Err(Error::io("cannot read", original, e)),
            };
            short(&d)?;
            enc.finish().map_err(werr)?.flush().map_err(werr)?;
            d
        }
    };
    sync.sync_all()
        .map_err(|e| Error::io("cannot sync", dest, e))?;
    Ok(digest)
}

/// What a user should do about a damaged archive file found while restoring or checking.
pub const RESTORE_ADVICE: &str = "nothing was written from it; put back the file from a backup of the archive directory (the dataset's rows are not affected)";

/// Reads the archive file `path` back through `codec` and hands the original bytes to `sink`;
/// fails with [`Error::Corrupt`] (ending with `advice`) unless they are `expected`.
pub fn unpack(
    path: &Path,
    codec: Codec,
    expected: &Digest,
    sink: impl FnMut(&[u8]) -> std::io::Result<()>,
    progress: &AtomicU64,
    advice: &str,
) -> Result<()> {
    let file = File::open(path).map_err(|e| Error::io("cannot open", path, e))?;
    let corrupt = |message: String| Error::Corrupt {
        path: path.to_path_buf(),
        message: format!("{message}\n  {advice}"),
    };
    let got = match codec {
        Codec::Stored => pump(
            &mut BufReader::with_capacity(BUF, file),
            sink,
            progress,
            None,
        )
        .map_err(|e| Error::io("cannot read", path, e))?,
        Codec::Zstd => {
            let mut dec = zstd::stream::read::Decoder::new(file)
                .map_err(|e| Error::io("cannot read", path, e))?;
            pump(&mut dec, sink, progress, None).map_err(|e| match e.kind() {
                std::io::ErrorKind::Other
                | std::io::ErrorKind::InvalidData
                | std::io::ErrorKind::UnexpectedEof => {
                    corrupt(format!("zstd cannot decode it ({e})"))
                }
                _ => Error::io("cannot read", path, e),
            })?
        }
    };
    if got != *expected {
        return Err(corrupt(format!(
            "it holds {} bytes with checksum {}, the original had {} bytes with checksum {}",
            got.size,
            got.hex(),
            expected.size,
            expected.hex()
        )));
    }
    Ok(())
}

/// [`unpack`] into nothing: checks that `path` gives back the original.
pub fn verify(
    path: &Path,
    codec: Codec,
    expected: &Digest,
    progress: &AtomicU64,
    advice: &str,
) -> Result<()> {
    unpack(path, codec, expected, |_| Ok(()), progress, advice)
}

/// The digest of a whole file.
pub fn digest_file(path: &Path) -> Result<Digest> {
    let f = File::open(path).map_err(|e| Error::io("cannot open", path, e))?;
    pump(
        &mut BufReader::with_capacity(BUF, f),
        |_| Ok(()),
        &AtomicU64::new(0),
        None,
    )
    .map_err(|e| Error::io("cannot read", path, e))
}

/// Copies `from` to the new file `to` (fsynced) and returns the digest of what was copied.
pub fn copy_file(from: &Path, to: &Path) -> Result<Digest> {
    let len = std::fs::metadata(from)
        .map_err(|e| Error::io("cannot read", from, e))?
        .len();
    pack(
        from,
        len,
        to,
        Codec::Stored,
        Compression {
            level: 0,
            threads: 0,
        },
        &AtomicU64::new(0),
        None,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest_of(bytes: &[u8]) -> Digest {
        let mut h = Xxh3Default::new();
        h.update(bytes);
        Digest {
            size: bytes.len() as u64,
            hash: h.digest128(),
        }
    }

    #[test]
    fn packed_files_unpack_to_the_original_and_damage_is_caught() {
        let dir = tempfile::tempdir().unwrap();
        let original = dir.path().join("a.log");
        let text: Vec<u8> = (0..50_000)
            .flat_map(|i| format!("10.0.0.{} - - GET /x/{i} 200\n", i % 7).into_bytes())
            .collect();
        std::fs::write(&original, &text).unwrap();
        let n = AtomicU64::new(0);
        for codec in [Codec::Zstd, Codec::Stored] {
            let packed = dir.path().join(format!("a.{}", codec.name()));
            let zstd = Compression {
                level: 3,
                threads: 0,
            };
            let d = pack(&original, text.len() as u64, &packed, codec, zstd, &n, None).unwrap();
            assert_eq!(d, digest_of(&text));
            let mut back = Vec::new();
            unpack(
                &packed,
                codec,
                &d,
                |b| {
                    back.extend_from_slice(b);
                    Ok(())
                },
                &n,
                RESTORE_ADVICE,
            )
            .unwrap();
            assert_eq!(back, text);
            let mut bytes = std::fs::read(&packed).unwrap();
            let mid = bytes.len() / 2;
            bytes[mid] ^= 0x40;
            std::fs::write(&packed, &bytes).unwrap();
            let err = verify(&packed, codec, &d, &n, RESTORE_ADVICE).unwrap_err();
            assert!(
                matches!(err, Error::Corrupt { .. }) && err.to_string().contains("damaged"),
                "{codec:?}: {err}"
            );
        }
    }

    #[test]
    fn a_shorter_original_than_ingested_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let original = dir.path().join("a.log");
        std::fs::write(&original, b"one\ntwo\n").unwrap();
        let zstd = Compression {
            level: 3,
            threads: 0,
        };
        let err = pack(
            &original,
            100,
            &dir.path().join("a.zst"),
            Codec::Zstd,
            zstd,
            &AtomicU64::new(0),
            None,
        )
        .unwrap_err();
        assert!(err.to_string().contains("truncated or replaced"), "{err}");
    }
}
