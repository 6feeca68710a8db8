//! The `logcrunch` command line: argument parsing, progress display, and exit codes over the library.

mod cli;

/// mimalloc, built without transparent huge pages (its `no_thp` feature). With them, the first
/// touch of any 2 MiB of its arenas zeroes all of it: ingest, which allocates and frees a batch's
/// buffers per chunk, spent up to a sixth of its CPU time zeroing pages, erratically from run to
/// run, and the more memory a run touched the more it paid (the latency statistics' 20 MiB cost
/// +19% instead of +8% in one interleaved comparison). Without them, peak RSS is about 12% lower
/// and ingest is no slower.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    std::process::exit(cli::main());
}
