//! The `trailkeep` executable: the command line lives in the library (`trailkeep::cli`).

/// mimalloc instead of glibc malloc: the request path builds and drops many small JSON values, and
/// glibc's bin management (`_int_malloc`, `unlink_chunk`) took over half of the HTTP threads' CPU in
/// bulk ingest (BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    trailkeep::cli::main()
}
