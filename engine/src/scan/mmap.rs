//! The one place that maps files into memory, and so the only `unsafe` code in logcrunch.
//!
//! A whole-file map is used to find chunk boundaries (touching a page or two per chunk); each chunk
//! then gets a map of its own range, so the pages a worker has read are released with the chunk.

use std::fs::File;

use memmap2::{Advice, Mmap, MmapOptions};

/// Maps `file` read-only and tells the kernel it will be read sequentially.
pub fn map(file: &File) -> std::io::Result<Mmap> {
    // SAFETY: the map is read-only and logcrunch never writes to its inputs. Another process
    // truncating the file while it is mapped would make reads past the new end fault (SIGBUS);
    // that is the accepted cost of mmap, shared with ripgrep and every mmap-based reader, and log
    // files are appended to, not truncated, while they are being read. The bytes are only read
    // as `&[u8]`, so concurrent appends beyond the mapped length are invisible and harmless.
    let map = unsafe { Mmap::map(file)? };
    // Advice is only a hint; failing to give it changes nothing but speed.
    let _ = map.advise(Advice::Sequential);
    Ok(map)
}

/// Maps `len` bytes of `file` from `offset` read-only, for one chunk: unmapping it when the chunk
/// is dropped releases its pages, so resident memory follows the chunks in flight, not the file.
pub fn map_range(file: &File, offset: u64, len: usize) -> std::io::Result<Mmap> {
    // SAFETY: as for `map`: a read-only view of a file logcrunch does not write.
    let map = unsafe { MmapOptions::new().offset(offset).len(len).map(file)? };
    let _ = map.advise(Advice::Sequential);
    Ok(map)
}
