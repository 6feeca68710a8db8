//! The one place that maps files into memory, and so the only `unsafe` code in logcrunch.
//!
//! Each chunk of a plain file is a read-only map of its own range, so the pages a worker has read
//! are released with the chunk. A map of a file that another process truncates (logrotate's
//! `copytruncate`, `> access.log`) would make reads past the new end raise SIGBUS and kill the
//! process. So every map is registered in a fixed table, and a SIGBUS handler (installed once)
//! that finds the faulting address in it puts a page of zeros in place of the vanished one and
//! marks the map as faulted: the read completes, the worker sees [`Mapped::faulted`] and the scanner
//! treats the source as changed while read. A fault anywhere else goes to the handler that was
//! there before (Rust's stack-overflow reporter, or the default action), as if logcrunch had none.
//! systemd's journal reader guards its maps the same way.

use std::fs::File;
use std::ops::Deref;
use std::sync::Once;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering};

use memmap2::{Advice, Mmap, MmapOptions};

/// Maps that can be guarded at once; a map beyond that is refused and the caller reads instead.
const SLOTS: usize = 1024;

/// One registered map: its address range and whether a fault was repaired in it.
struct Slot {
    taken: AtomicBool,
    start: AtomicUsize,
    end: AtomicUsize,
    faulted: AtomicBool,
}

#[allow(clippy::declare_interior_mutable_const)]
const FREE: Slot = Slot {
    taken: AtomicBool::new(false),
    start: AtomicUsize::new(0),
    end: AtomicUsize::new(0),
    faulted: AtomicBool::new(false),
};

static REGISTRY: [Slot; SLOTS] = [FREE; SLOTS];
static INSTALL: Once = Once::new();
static INSTALLED: AtomicBool = AtomicBool::new(false);
static PAGE: AtomicUsize = AtomicUsize::new(4096);
/// The SIGBUS disposition found at installation (`sa_sigaction` and `sa_flags`).
static PREVIOUS_HANDLER: AtomicUsize = AtomicUsize::new(libc::SIG_DFL);
static PREVIOUS_FLAGS: AtomicI32 = AtomicI32::new(0);

/// A read-only map of part of a file, guarded against the file shrinking under it.
#[derive(Debug)]
pub struct Mapped {
    map: Mmap,
    slot: usize,
}

impl Mapped {
    /// Whether a page of this map vanished while it was read (the file was truncated): the bytes
    /// read from that page were zeros, not the file's.
    pub fn faulted(&self) -> bool {
        REGISTRY[self.slot].faulted.load(Ordering::Acquire)
    }
}

impl Deref for Mapped {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.map
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        // Unregistered before `map` is unmapped (fields drop after this body).
        let slot = &REGISTRY[self.slot];
        slot.start.store(0, Ordering::Release);
        slot.end.store(0, Ordering::Release);
        slot.faulted.store(false, Ordering::Release);
        slot.taken.store(false, Ordering::Release);
    }
}

/// Maps `len` (> 0) bytes of `file` from `offset` read-only, for one chunk: unmapping it when the
/// chunk is dropped releases its pages, so resident memory follows the chunks in flight, not the
/// file. `Ok(None)` when the guard cannot cover another map (every slot in use, or the handler
/// could not be installed): the caller reads the range instead.
pub fn map_range(file: &File, offset: u64, len: usize) -> std::io::Result<Option<Mapped>> {
    INSTALL.call_once(install_handler);
    if !INSTALLED.load(Ordering::Acquire) {
        return Ok(None);
    }
    let Some(slot) = REGISTRY.iter().position(|s| {
        s.taken
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    }) else {
        return Ok(None);
    };
    // SAFETY: the map is read-only and logcrunch never writes to its inputs; its bytes are only
    // read as `&[u8]`. Appends beyond the mapped length are invisible. Another process shrinking
    // the file would make reads of the vanished pages fault: the map is registered below before
    // anyone reads it, so the SIGBUS handler replaces such a page with zeros and flags the slot,
    // which the scanner checks before it trusts the chunk.
    let map = match unsafe { MmapOptions::new().offset(offset).len(len).map(file) } {
        Ok(map) => map,
        Err(e) => {
            REGISTRY[slot].taken.store(false, Ordering::Release);
            return Err(e);
        }
    };
    // Advice is only a hint; failing to give it changes nothing but speed.
    let _ = map.advise(Advice::Sequential);
    let start = map.as_ptr() as usize;
    REGISTRY[slot].faulted.store(false, Ordering::Release);
    REGISTRY[slot]
        .end
        .store(start + map.len(), Ordering::Release);
    REGISTRY[slot].start.store(start, Ordering::Release);
    Ok(Some(Mapped { map, slot }))
}

fn install_handler() {
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if page > 0 {
        PAGE.store(page as usize, Ordering::Relaxed);
    }
    // SAFETY: both sigaction structs are fully initialised (zeroed, then the fields set), the
    // handler is an `extern "C"` function of the SA_SIGINFO signature, and the previous
    // disposition is saved before any map exists that could fault.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        if libc::sigaction(libc::SIGBUS, std::ptr::null(), &mut old) != 0 {
            return;
        }
        PREVIOUS_HANDLER.store(old.sa_sigaction, Ordering::Release);
        PREVIOUS_FLAGS.store(old.sa_flags, Ordering::Release);
        let mut act: libc::sigaction = std::mem::zeroed();
        act.sa_sigaction = on_sigbus as *const () as usize;
        act.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
        libc::sigemptyset(&mut act.sa_mask);
        if libc::sigaction(libc::SIGBUS, &act, std::ptr::null_mut()) == 0 {
            INSTALLED.store(true, Ordering::Release);
        }
    }
}

/// The SIGBUS handler: repairs a fault in a registered map, hands any other to the previous handler.
/// It only loads atomics and calls `mmap`/`sigaction`, which are plain system calls.
extern "C" fn on_sigbus(
    signal: libc::c_int,
    info: *mut libc::siginfo_t,
    context: *mut libc::c_void,
) {
    // SAFETY: the kernel passes a valid siginfo_t to an SA_SIGINFO handler.
    let addr = unsafe { (*info).si_addr() } as usize;
    let page = PAGE.load(Ordering::Relaxed);
    for slot in &REGISTRY {
        let start = slot.start.load(Ordering::Acquire);
        if start == 0 || addr < start || addr >= slot.end.load(Ordering::Acquire) {
            continue;
        }
        // SAFETY: the page lies inside a live read-only map that logcrunch owns (registered and
        // not yet unmapped); replacing it with an anonymous zero page only changes what later
        // reads of that page return, and the whole map is still unmapped as one range.
        let zero = unsafe {
            libc::mmap(
                (addr & !(page - 1)) as *mut libc::c_void,
                page,
                libc::PROT_READ,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                -1,
                0,
            )
        };
        if zero != libc::MAP_FAILED {
            slot.faulted.store(true, Ordering::Release);
            return;
        }
        break;
    }
    let previous = PREVIOUS_HANDLER.load(Ordering::Acquire);
    if previous == libc::SIG_DFL || previous == libc::SIG_IGN {
        // SAFETY: restores the default action; returning re-runs the faulting access, which then
        // ends the process with SIGBUS exactly as it would have without this handler.
        unsafe {
            let mut act: libc::sigaction = std::mem::zeroed();
            act.sa_sigaction = libc::SIG_DFL;
            libc::sigaction(libc::SIGBUS, &act, std::ptr::null_mut());
        }
    } else if PREVIOUS_FLAGS.load(Ordering::Acquire) & libc::SA_SIGINFO != 0 {
        // SAFETY: the previous handler was installed with SA_SIGINFO, so it has this signature.
        let handler: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
            unsafe { std::mem::transmute(previous) };
        handler(signal, info, context);
    } else {
        // SAFETY: a handler installed without SA_SIGINFO takes the signal number only.
        let handler: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(previous) };
        handler(signal);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    #[test]
    fn a_truncated_map_reads_zeros_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.log");
        let page = PAGE.load(Ordering::Relaxed).max(4096);
        let mut f = File::create(&path).unwrap();
        f.write_all(&vec![b'a'; page * 4]).unwrap();
        let f = File::open(&path).unwrap();
        let map = map_range(&f, 0, page * 4).unwrap().expect("a free slot");
        assert_eq!(map[0], b'a');
        assert!(!map.faulted());
        File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(page as u64 + 10)
            .unwrap();
        // Past the new end of its page: zeros, no fault. Pages beyond: a repaired fault.
        assert_eq!(map[page + 5], b'a');
        assert_eq!(map[page + 20], 0);
        assert!(!map.faulted());
        assert!(map[page * 3..].iter().all(|b| *b == 0));
        assert!(map.faulted());
    }

    #[test]
    fn slots_are_released_with_their_maps() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.log");
        std::fs::write(&path, b"x\n").unwrap();
        let f = File::open(&path).unwrap();
        for _ in 0..SLOTS * 2 {
            let map = map_range(&f, 0, 2).unwrap().expect("a free slot");
            assert_eq!(&map[..], b"x\n");
        }
    }
}
