//! The `logcrunch` command line: argument parsing, progress display, and exit codes over the library.

mod cli;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    std::process::exit(cli::main());
}
