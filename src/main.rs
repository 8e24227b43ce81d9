//! The `trailkeep` executable: the command line lives in the library (`trailkeep::cli`).

/// mimalloc instead of glibc malloc: the request path builds and drops many small JSON values, and
/// glibc's bin management (`_int_malloc`, `unlink_chunk`) took over half of the HTTP threads' CPU in
/// bulk ingest (BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_collect(true)`: the calling thread's freed pages and those other threads freed
/// for it go back to the OS. The crate's one `unsafe` block (CONTRIBUTING.md): a call with no
/// pointer, valid on any thread at any time.
#[allow(unsafe_code)]
fn collect() {
    // SAFETY: `mi_collect` takes a flag, touches only the allocator's own state, and may be
    // called from any thread.
    unsafe { libmimalloc_sys::mi_collect(true) }
}

fn main() -> std::process::ExitCode {
    // Threads that sleep between bursts (the replication uploader) give their freed pages back.
    trailkeep::memory::set_thread_release(collect);
    trailkeep::cli::main()
}
